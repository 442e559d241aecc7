"""Pass pipelines on decoders (planner.llm.variants): run, verified by generation, planned per precision, emitted;
int4 projected from shapes for a 7B with external data. Numbers worked out by hand in each docstring."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import planner  # noqa: F401  (first: passes -> planner.errors -> planner -> passes is a cycle when passes comes first)
from models.llama_like import LLAMA2_7B, TINY, build_decoder, make_decoder
from passes import get_pass
from passes.base import PassContext
from passes.projection import int4_weight_bytes, project_int4
from planner.api import plan
from planner.cli import main
from planner.errors import PlannerError
from planner.search.variants import PassOptions

P, G = 16, 16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_decoder(TINY, tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_plan(tiny):
    return plan(tiny, targets=["c7i-xlarge"], passes=PassOptions("fused,int8-dynamic,int8-weight,int4", max_drift=0.2),
                prompt_len=P, gen_len=G)


def _matmul_shapes(cfg) -> list[tuple[int, int]]:
    """[K, N] of every projection and the lm_head of a Llama config (the tiny one: all heads are 16 wide)."""
    h, i, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    layer = [(h, cfg.num_heads * d), (h, cfg.num_kv_heads * d), (h, cfg.num_kv_heads * d), (cfg.num_heads * d, h),
             (h, i), (h, i), (i, h)]
    return layer * cfg.num_layers + [(h, cfg.vocab_size)]


def test_int4_on_the_tiny_decoder_is_verified_by_generation_and_planned(tiny_plan):
    """fused -> int4 replaces 90,112 float32 weights (360,448 B) with 4-bit blocks of 32 and a float32 scale each:
    sum over [K, N] of N x K/32 x (16 + 4) B = 56,320 B, so the int4 model is 304,128 B lighter than 'fused'."""
    shapes = _matmul_shapes(TINY)
    assert sum(k * n for k, n in shapes) == 90_112
    int4 = sum(n * (k // 32) * (16 + 4) for k, n in shapes)
    assert int4 == 56_320
    w = tiny_plan.model.decoder["precisions"]
    assert w["fused"]["weight_bytes"] - w["int4"]["weight_bytes"] == 4 * 90_112 - 56_320
    report = {r["pipeline"]: r for r in tiny_plan.pipelines}
    g = report["int4"]["drift"]["generation"]
    assert report["int4"]["rejected"] is None and report["int4"]["passes"][-1] == "int4"
    assert (g["prompts"], g["tokens"]) == (4, 32) and 0 < g["agreement"] <= 1 and g["cosine_min"] > 0.9
    assert report["fused"]["drift"]["generation"]["agreement"] == 1.0  # float-exact: every token agrees
    cands = {c.pipeline: c for c in tiny_plan.candidates}
    assert cands["int4"].precision == "int4" and cands["int8-dynamic"].precision == "int8"
    assert cands["int4"].drift["generation"]["agreement"] == g["agreement"]


def test_int8_weight_only_bytes_by_hand(tiny_plan):
    """int8-weight: MatMulNBits at 8 bits, one float32 scale per block of 32: N x K/32 x (32 + 4) B per weight,
    90,112 x 36 / 32 = 101,376 B in all, so 360,448 - 101,376 = 259,072 B lighter than 'fused'."""
    w = tiny_plan.model.decoder["precisions"]
    assert sum(n * (k // 32) * (32 + 4) for k, n in _matmul_shapes(TINY)) == 101_376
    assert w["fused"]["weight_bytes"] - w["int8-weight"]["weight_bytes"] == 4 * 90_112 - 101_376
    c = next(c for c in tiny_plan.candidates if c.pipeline == "int8-weight")
    assert c.precision == "int8" and c.drift["generation"]["agreement"] >= 0.9


def test_drift_limit_applies_to_agreement(tiny):
    """At --max-drift 0.001 the int4 model's agreement (< 0.999 on this random-init decoder) rejects it."""
    p = plan(tiny, targets=["c7i-xlarge"], passes=PassOptions("int4", max_drift=0.001), prompt_len=P, gen_len=G)
    c = [c for c in p.candidates if c.pipeline == "int4"]
    assert c and all(x.rejected.startswith("drift: ") for x in c)
    assert p.chosen.pipeline == "none"


def test_decoders_default_to_a_generation_drift_limit_of_0_1(tiny, tiny_plan):
    """Without --max-drift a decoder's pipelines must agree on >= 90% of tokens: int8-dynamic (0.992 here) is
    admitted, int4 (0.883 on this random-init decoder, whose logits are near-uniform) is refused, saying why."""
    p = plan(tiny, targets=["c7i-xlarge"], passes=PassOptions("int8-dynamic,int4"), prompt_len=P, gen_len=G)
    agree = {r["pipeline"]: r["drift"]["generation"]["agreement"] for r in p.pipelines if r["drift"]}
    assert agree["int8-dynamic"] >= 0.9 > agree["int4"]
    assert p.constraints["max_drift"] == 0.1
    int4 = [c for c in p.candidates if c.pipeline == "int4"]
    assert all(c.rejected == f"drift: token agreement {agree['int4']:.3f} < 0.9 (--max-drift 0.1)" for c in int4)
    assert any(c.rejected is None or c.rejected.startswith("lost") for c in p.candidates
               if c.pipeline == "int8-dynamic")


def test_projection_matches_what_the_quantizer_writes():
    """The shapes-only int4 layout (passes.projection) against onnxruntime's MatMulNBitsQuantizer on the same
    model: the same MatMuls, and per node the same bytes: N x ceil(K/32) x (16 + 4)."""
    model, _ = make_decoder(TINY)
    projected, rewritten = project_int4(model, 32)
    real = get_pass("int4").apply(model, PassContext(options={"int4_block_size": 32})).model
    nbits = [n for n in real.graph.node if n.op_type == "MatMulNBits"]
    assert rewritten == len(nbits) == len(_matmul_shapes(TINY)) == 15
    inits = {t.name: numpy_helper.to_array(t) for t in real.graph.initializer}
    sizes = {t.name: t for t in projected.graph.initializer}
    for n in nbits:
        attrs = {a.name: a.i for a in n.attribute}
        k, nn = attrs["K"], attrs["N"]
        assert inits[n.input[1]].nbytes + inits[n.input[2]].nbytes == int4_weight_bytes(k, nn, 32, 4)
    projected_bytes = sum(int(next(e.value for e in t.external_data if e.key == "length")) for t in sizes.values()
                          if t.data_location == onnx.TensorProto.EXTERNAL)
    assert projected_bytes == sum(int4_weight_bytes(k, n, 32, 4) for k, n in _matmul_shapes(TINY)) == 56_320


def test_int4_options_asymmetric_and_float_lm_head():
    model, _ = make_decoder(TINY)
    ctx = PassContext(options={"int4_block_size": 32, "int4_symmetric": False, "int4_lm_head": False})
    out = get_pass("int4").apply(model, ctx).model
    nbits = [n for n in out.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 14 and all(len(n.input) >= 4 and n.input[3] for n in nbits)  # zero points given
    producer = {o: n for n in out.graph.node for o in n.output}
    assert producer["logits"].op_type == "MatMul"  # the lm_head stayed float


def test_7b_int4_fits_a_smaller_cheaper_target_than_fp16(tmp_path):
    """Llama-2-7B, fp16, external data (never read). Weights in MatMuls: 32 layers x (4 x 4096^2 + 3 x 4096 x
    11008) + 4096 x 32000 = 6,607,077,376; as int4 (block 32, fp16 scales) each costs 1/2 + 2/32 = 0.5625 B
    instead of 2 B. c7i-xlarge has 8 GiB: fp16 (13.48 GB) cannot fit, int4 (3.98 GB) does; c7i-2xlarge (16 GiB)
    holds fp16 at twice the price."""
    path = build_decoder(LLAMA2_7B, tmp_path / "7b.onnx", external_data=True)
    p = plan(path, targets=["c7i-xlarge", "c7i-2xlarge"], prompt_len=128, gen_len=32)
    params = 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008) + 4096 * 32000
    assert params == 6_607_077_376
    w = p.model.decoder["precisions"]
    assert w["int4"]["weight_bytes"] == w["none"]["weight_bytes"] - 2 * params + params * 9 // 16 == 3_981_254_802
    small = [c for c in p.candidates if c.target == "c7i-xlarge"]
    assert all(c.rejected.startswith("does not fit") for c in small if c.pipeline == "none")
    assert any(c.fits for c in small if c.pipeline == "int4")
    assert any(c.fits for c in p.candidates if c.target == "c7i-2xlarge" and c.pipeline == "none")
    assert p.best_per_target["c7i-xlarge"].precision == "int4"
    assert any("c7i-xlarge: precision changes what fits" in n and "fp16 (none) does not fit" in n
               for n in p.model.notes)
    int4 = next(r for r in p.pipelines if r["pipeline"] == "int4")
    assert int4["projected"] and int4["drift"] is None
    assert any("name it, --passes int4, to quantize and verify it" in n for n in p.model.notes)
    with pytest.raises(PlannerError, match="projected from shapes"):  # planned, never written
        plan(path, targets=["c7i-xlarge"], prompt_len=128, gen_len=32, emit=tmp_path / "int4.onnx")


def test_emit_writes_the_chosen_decoder_and_leaves_the_input(tiny, tmp_path, capsys):
    before = hashlib.sha256(tiny.read_bytes()).hexdigest()
    out = tmp_path / "int4.onnx"
    rc = main([str(tiny), "--target", "c7i-xlarge", "--passes", "int4", "--max-drift", "0.2", "--prompt-len",
               str(P), "--gen-len", str(G), "--emit", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "agree" in text and "int4 [int4]" in text
    assert hashlib.sha256(tiny.read_bytes()).hexdigest() == before
    m = onnx.load(str(out))
    assert sum(n.op_type == "MatMulNBits" for n in m.graph.node) == 15
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": np.array([[1, 2, 3]]), "attention_mask": np.ones((1, 3), np.int64),
             "position_ids": np.arange(3)[None]}
    feeds |= {f"past_key_values.{i}.{k}": np.zeros((1, 2, 0, 16), np.float32) for i in range(2)
              for k in ("key", "value")}
    assert s.run(["logits"], feeds)[0].shape == (1, 3, TINY.vocab_size)


@pytest.mark.parametrize("argv, message", [
    (["--passes", "int8-static"], "int8-static does not apply to decoders"),
    (["--passes", "int4", "--eval-text", "/nonexistent/text.txt"], "--eval-text /nonexistent/text.txt"),
])
def test_bad_decoder_pass_options_exit_2_on_one_line(tiny, tmp_path, capsys, argv, message):
    out = tmp_path / "never.onnx"
    rc = main([str(tiny), "--target", "c7i-xlarge", "--prompt-len", str(P), "--gen-len", str(G), "--emit",
               str(out), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_host_phases_follow_the_measured_ratio(tiny):
    """On host each variant's decode step and prefill are timed against the stored model's (batch 1,
    interleaved) and its host predictions scaled so that, at batch 1, TPOT(variant) / TPOT(stored) is the
    measured decode time ratio, and TTFT likewise for prefill."""
    p = plan(tiny, targets=["host"], passes=PassOptions("fused"), prompt_len=P, gen_len=G, batch=1)
    host = next(r for r in p.pipelines if r["pipeline"] == "fused")["host_measured"]
    assert host["decode_speedup"] == pytest.approx(host["original_decode_ms"] / host["decode_ms"])
    by = {c.pipeline: c for c in p.candidates}
    assert by["none"].tpot_ms / by["fused"].tpot_ms == pytest.approx(host["decode_speedup"], rel=1e-6)
    assert by["none"].ttft_ms / by["fused"].ttft_ms == pytest.approx(host["prefill_speedup"], rel=1e-6)


@pytest.mark.parametrize("times,admitted,why", [
    # seconds per decode step: {batch: (stored, variant)}; prefill equal
    ({1: (1.0e-3, 1.0e-3), 8: (4.0e-3, 3.0e-3)}, True, None),  # x1.00 at batch 1, x1.33 at batch 8
    ({1: (1.0e-3, 0.9e-3), 8: (4.0e-3, 4.0e-3)}, True, None),  # x1.11 at batch 1
    ({1: (1.0e-3, 1.0e-3), 8: (4.0e-3, 3.9e-3)}, False, "x1.00 the stored model's speed, x1.03 at batch 8"),
])
def test_host_admits_a_decoder_variant_measurably_faster_at_either_batch(tiny, monkeypatch, times, admitted, why):
    """The decode step is timed at batch 1 and at batch 8; a variant is refused on host only when it is not
    x1.05 faster at either (ratios worked out from the given times)."""
    import planner.llm.variants as variants

    def fake(models, feeds, budget_s, threads=1, shrink=False):
        batch = feeds["input_ids"].shape[0]
        phase_s = times[batch] if feeds["input_ids"].shape[1] == 1 else (0.01, 0.01)
        return {"none": (phase_s[0], 9), **{n: (phase_s[1], 9) for n in models if n != "none"}, "_batch": batch}

    monkeypatch.setattr(variants, "measure_on_host", fake)
    monkeypatch.setattr(variants, "_RUNS", {})
    p = plan(tiny, targets=["host"], passes=PassOptions("fused"), prompt_len=P, gen_len=G)
    host = next(r for r in p.pipelines if r["pipeline"] == "fused")["host_measured"]
    assert host["wide_batch"] == 8
    assert host["wide_decode_speedup"] == pytest.approx(times[8][0] / times[8][1])
    assert ("rejected" not in host) == admitted
    if why:
        assert why in host["rejected"]


def test_decoder_variants_a_gpu_runtime_cannot_run_are_rejected_on_it(tiny):
    """planner.predict.support holds for decoders too: onnxruntime's CUDA EP has no DynamicQuantizeLinear kernel
    (int8-dynamic) and registers GroupQueryAttention for float16 / bfloat16 only (the fused float32 model of this
    4-head, 2-KV-head decoder), so those candidates do not run on a10g; fp16 does, and on host all three run."""
    p = plan(tiny, targets=["a10g", "c7i-xlarge"], passes=PassOptions("fused,int8-dynamic,fp16", max_drift=0.2),
             prompt_len=P, gen_len=G)
    why = {(c.pipeline, c.target): c.rejected or "" for c in p.candidates}
    assert "no device kernel for DynamicQuantizeLinear" in why[("int8-dynamic", "a10g")]
    assert "no float32 device kernel for com.microsoft::GroupQueryAttention" in why[("fused", "a10g")]
    assert not why[("fp16", "a10g")].startswith("does not run")
    assert not any(why[(v, "c7i-xlarge")].startswith("does not run") for v in ("fused", "int8-dynamic", "fp16"))
