"""Weight-only passes on a decoder whose weights are external data (passes.external, planner.llm.external): the
result is onnxruntime's own quantizer's, tensor for tensor; each weight is read once, alone, and only the
weights quantized are read; the model is written with external data and verified by generation from its files;
--emit writes OUT and OUT.data and never touches the input. Numbers worked out by hand in each docstring.

The decoder is TINY with seeded weights, saved with onnx.save(..., save_as_external_data=True): its default
size threshold (1 KiB) keeps Reshape shapes inline, which onnxruntime's shape inference must read (with
size_threshold=0 onnxruntime refuses the original itself: "Cannot parse data from external tensors").
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import planner  # noqa: F401  (first: passes -> planner.errors -> planner -> passes is a cycle when passes comes first)
from models.llama_like import TINY, build_decoder
from passes import external
from passes.base import PassContext
from passes.quantize import Int4Weights
from planner.api import plan
from planner.cli import main
from planner.errors import PlannerError
from planner.llm.generation import GenerationReference
from planner.model.loader import load_model
from planner.search.variants import PassOptions

P, G = 16, 16
ROOT = Path(__file__).resolve().parent.parent
# TINY's MatMul weights, [K, N]: per layer q [64, 64], k and v [64, 32], o [64, 64], gate and up [64, 128],
# down [128, 64]; 2 layers; the lm_head [64, 256]. 2 x (4096 + 2048 + 2048 + 4096 + 8192 + 8192 + 8192) + 16384
# = 90,112 parameters, 360,448 B of float32.
MATMUL_BYTES = 360_448
# int4, block 32, a float32 scale per block: N x K/32 x (16 + 4) B per weight = 90,112 x 20 / 32 = 56,320 B.
INT4_BYTES = 56_320


def _feeds(n: int = 3) -> dict[str, np.ndarray]:
    feeds = {"input_ids": np.array([[1, 2, 3][:n]]), "attention_mask": np.ones((1, n), np.int64),
             "position_ids": np.arange(n)[None]}
    return feeds | {f"past_key_values.{i}.{k}": np.zeros((1, 2, 0, 16), np.float32) for i in range(2)
                    for k in ("key", "value")}


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    """(embedded, external) copies of the same seeded TINY decoder."""
    d = tmp_path_factory.mktemp("ext")
    embedded = build_decoder(TINY, d / "embedded.onnx")
    folder = d / "model"
    folder.mkdir()
    onnx.save(onnx.load(str(embedded)), str(folder / "tiny.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tiny.onnx.data")
    return embedded, folder / "tiny.onnx"


def _ort_quantized(embedded, symmetric: bool = True, lm_head: bool = True) -> onnx.ModelProto:
    """onnxruntime's MatMulNBitsQuantizer on the whole model in memory (passes.quantize's int4, alone)."""
    ctx = PassContext(options={"int4_block_size": 32, "int4_symmetric": symmetric, "int4_lm_head": lm_head})
    return Int4Weights().apply(onnx.load(str(embedded)), ctx).model


@pytest.mark.parametrize("symmetric, lm_head", [(True, True), (False, False)])
def test_one_weight_at_a_time_writes_what_onnxruntimes_quantizer_writes(decoders, tmp_path, symmetric, lm_head):
    embedded, ext = decoders
    loaded = load_model(ext)
    w = external.quantize_external(loaded.model, ext.parent, tmp_path / "q.onnx", symmetric=symmetric,
                                   lm_head=lm_head)
    want = _ort_quantized(embedded, symmetric, lm_head)
    got = onnx.load(str(tmp_path / "q.onnx"))  # with its data: a small model
    assert [(n.op_type, n.input[:]) for n in got.graph.node] == [(n.op_type, n.input[:]) for n in want.graph.node]
    a = {t.name: numpy_helper.to_array(t) for t in want.graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in got.graph.initializer}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert len(w.quantized) == (15 if lm_head else 14)
    s1 = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(want.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(s1.run(["logits"], _feeds())[0], s2.run(["logits"], _feeds())[0])


def test_each_quantized_weight_is_mapped_once_alone_and_nothing_big_is_read(decoders, tmp_path, monkeypatch):
    """Weights reach the quantizer's step only through external.mapped_weight (a descriptor of the file, which
    the step maps read-only): once per MatMul weight (15), for 360,448 B in all, before the model file is
    written. external.read_tensor, the only reader of bytes into memory, is called for tensors under 1 KiB
    alone (they go back inline); the embedding [256, 64] (65,536 B) and the rest are copied through unread.
    Loading a whole model with its data is made to fail."""
    _, ext = decoders
    loaded = load_model(ext)
    mapped: list[tuple[str, int, bool]] = []
    read: list[int] = []
    real_map, real_read = external.mapped_weight, external.read_tensor

    def spy_map(t, base, out):
        mapped.append((t.name, external.tensor_bytes(t), (tmp_path / "q.onnx").exists()))
        return real_map(t, base, out)

    def spy_read(t, base):
        read.append(external.tensor_bytes(t))
        return real_read(t, base)

    def refuse(*a, **k):
        raise AssertionError("a whole model was loaded with its data")

    monkeypatch.setattr(external, "mapped_weight", spy_map)
    monkeypatch.setattr(external, "read_tensor", spy_read)
    monkeypatch.setattr(onnx, "load", refuse)
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", refuse)
    w = external.quantize_external(loaded.model, ext.parent, tmp_path / "q.onnx")
    assert [name for name, _, _ in mapped] == w.quantized and len(set(w.quantized)) == 15
    assert sum(n for _, n, _ in mapped) == MATMUL_BYTES
    assert not any(done for _, _, done in mapped)  # the model file is written last
    assert all(n < external.EMBED_BELOW for n in read)  # none here: onnx.save kept those inline
    assert w.bytes_before - w.bytes_after == MATMUL_BYTES - INT4_BYTES
    written = (tmp_path / "q.onnx").stat().st_size
    assert written < 64 * 1024 < (tmp_path / "q.onnx.data").stat().st_size  # the weights are not in the proto


def test_plan_emits_int4_with_external_data_verified_by_generation(decoders, tmp_path, capsys):
    """`plan tiny.onnx --passes int4 --emit out.onnx` on the external-data decoder: out.onnx and out.onnx.data,
    the input's files unchanged, the weights 360,448 - 56,320 = 304,128 B lighter, and the logits onnxruntime
    computes from the files equal to those of onnxruntime's own quantizer's model."""
    embedded, ext = decoders
    data = ext.parent / "tiny.onnx.data"
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (ext, data)]
    out = tmp_path / "out.onnx"
    rc = main([str(ext), "--target", "c7i-xlarge", "--passes", "int4", "--max-drift", "0.2", "--prompt-len", str(P),
               "--gen-len", str(G), "--emit", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["chosen"]["pipeline"] == "int4"
    schema = json.loads((ROOT / "planner" / "schema" / "plan.schema.json").read_text())
    jsonschema = pytest.importorskip("jsonschema")
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in (ext, data)] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "out.onnx.data"]
    m = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"out.onnx.data"}
    onnx.checker.check_model(str(out))
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    want = ort.InferenceSession(_ort_quantized(embedded).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(s.run(["logits"], _feeds())[0], want.run(["logits"], _feeds())[0])
    int4 = next(r for r in doc["pipelines"] if r["pipeline"] == "int4")
    g = int4["drift"]["generation"]
    assert (g["prompts"], g["tokens"]) == (4, 32) and g["cosine_min"] > 0.9 and int4["rejected"] is None
    step = int4["steps"][-1]["counts"]
    assert step["weight_bytes_before"] - step["weight_bytes_after"] == MATMUL_BYTES - INT4_BYTES


def test_external_generation_matches_the_embedded_pass(decoders):
    """The same weights, the same step: the external-data int4 and the embedded int4 step alone agree on every
    generation figure (both are run by onnxruntime on identical tensors)."""
    embedded, ext = decoders
    opts = PassOptions("int4", max_drift=0.2)
    p_ext = plan(ext, targets=["c7i-xlarge"], passes=opts, prompt_len=P, gen_len=G)
    g_ext = next(r for r in p_ext.pipelines if r["pipeline"] == "int4")["drift"]["generation"]
    ref = GenerationReference(onnx.load(str(embedded)))
    g = ref.measure(_ort_quantized(embedded)).to_dict()
    assert g_ext == g


def test_pipelines_that_need_the_whole_model_are_refused_with_the_reason(decoders):
    _, ext = decoders
    p = plan(ext, targets=["c7i-xlarge"], passes=PassOptions("int8-dynamic,fp16"), prompt_len=P, gen_len=G)
    reasons = {r["pipeline"]: r["rejected"] for r in p.pipelines}
    assert all("only the weight-only passes (int4, int8-weight)" in reasons[n] for n in ("int8-dynamic", "fp16"))
    assert p.chosen.pipeline == "none"


def test_emit_over_the_input_data_is_refused(decoders, capsys):
    _, ext = decoders
    data = ext.parent / "tiny.onnx.data"
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    rc = main([str(ext), "--target", "c7i-xlarge", "--passes", "int4", "--max-drift", "0.2", "--prompt-len", str(P),
               "--gen-len", str(G), "--emit", str(ext.parent / "tiny.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "refusing to overwrite the input" in err and len(err.splitlines()) == 1
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in ext.parent.iterdir()) == ["tiny.onnx", "tiny.onnx.data"]


PEAK_SCRIPT = """
import sys
from pathlib import Path
import planner
import onnx
from passes.external import quantize_external
from planner.model.loader import load_model

def peak_mb():  # VmHWM: this process image's peak RSS (ru_maxrss would count the parent's, from before exec)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024

d = Path(sys.argv[1])
quantize_external(load_model(d / "warm.onnx").model, d, d / "warm_q.onnx")  # kernels loaded, buffers grown
base = peak_mb()
quantize_external(load_model(d / "big.onnx").model, d, d / "big_q.onnx")
lazy = peak_mb()
whole = onnx.load(str(d / "big.onnx"))  # what onnxruntime's quantizer does first: the model with its data
print(lazy - base, peak_mb() - base)
"""


def _chain(path, layers: int, k: int, sparse: bool = False) -> None:
    """x -> MatMul(W_1) -> ... -> MatMul(W_layers), each W a seeded [k, k] float32 written straight to the data
    file (never all in memory here either); `sparse`: zeros, a file of holes."""
    rng = np.random.default_rng(0)
    data = path.with_name(path.name + ".data")
    inits, nodes, x = [], [], "x"
    with open(data, "wb") as f:
        for i in range(layers):
            w = None if sparse else rng.standard_normal((k, k), dtype=np.float32)
            t = onnx.TensorProto(name=f"w{i}", data_type=onnx.TensorProto.FLOAT, dims=[k, k],
                                 data_location=onnx.TensorProto.EXTERNAL)
            offset = i * k * k * 4
            for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(k * k * 4))):
                t.external_data.add(key=key, value=value)
            if w is None:
                f.truncate(offset + k * k * 4)
            else:
                f.write(w.tobytes())
            inits.append(t)
            nodes.append(onnx.helper.make_node("MatMul", [x, f"w{i}"], [f"y{i}"], name=f"mm{i}"))
            x = f"y{i}"
    g = onnx.helper.make_graph(nodes, "chain", [onnx.helper.make_tensor_value_info("x", 1, [1, k])],
                               [onnx.helper.make_tensor_value_info(x, 1, [1, k])], inits)
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc (Linux)")
def test_peak_memory_holds_one_weight_not_the_model(tmp_path):
    """16 weights of 1024 x 1024 float32 (4 MiB each, 64 MiB in all), quantized in a child process: its peak
    resident memory grows by less than a quarter of the model (1.2 MiB measured: each weight is mapped, not
    copied, and its blocks written at once), while loading the same model with its data, as onnxruntime's
    quantizer starts by doing, grows it by more than half (62 MiB measured). A first version kept each weight's
    scratch graph alive through a reference to its blocks: this caught it (70 MiB)."""
    _chain(tmp_path / "warm.onnx", 2, 1024)
    _chain(tmp_path / "big.onnx", 16, 1024)
    r = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=300, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    lazy, whole = map(float, r.stdout.split())
    assert lazy < 64 / 4 and whole > 64 / 2, (lazy, whole)


def test_when_no_rewrite_is_admitted_emit_says_there_is_nothing_to_write(decoders, tmp_path, capsys):
    """At --max-drift 0.001 int4's agreement (below 0.999 on this random-init decoder) rejects it: the stored
    model is chosen, and its files are the answer; nothing is left in the output folder."""
    _, ext = decoders
    rc = main([str(ext), "--target", "c7i-xlarge", "--passes", "int4", "--max-drift", "0.001", "--prompt-len",
               str(P), "--gen-len", str(G), "--emit", str(tmp_path / "out.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nothing to write, use the original files" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_data_file_over_the_inputs_is_refused(decoders):
    _, ext = decoders
    before = hashlib.sha256((ext.parent / "tiny.onnx.data").read_bytes()).hexdigest()
    with pytest.raises(PlannerError, match="would overwrite the input's external data"):
        external.quantize_external(load_model(ext).model, ext.parent, ext.parent / "tiny.onnx")
    assert hashlib.sha256((ext.parent / "tiny.onnx.data").read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_three_gib_of_external_weights_past_protobufs_limit(tmp_path):
    """3 MatMul weights of 16384 x 16384 float32, 1 GiB each (a sparse data file of zeros: no disk), 3 GiB in
    all, past protobuf's 2 GiB: quantized one at a time (about 20 s and 1.9 GB peak RSS here) into
    3 x 16384 x 16384/32 x (16 + 4) = 503,316,480 B of blocks and scales, the model file a few hundred bytes,
    checked by onnx.checker on its path. Slow: run with -m slow."""
    k, layers = 16384, 3
    _chain(tmp_path / "huge.onnx", layers, k, sparse=True)
    w = external.quantize_external(load_model(tmp_path / "huge.onnx").model, tmp_path, tmp_path / "q.onnx")
    assert w.bytes_before == 3 * 2**30 and w.bytes_after == 503_316_480 == layers * k * (k // 32) * 20
    onnx.checker.check_model(str(tmp_path / "q.onnx"))
    assert (tmp_path / "q.onnx").stat().st_size < 4096
