"""The model zoo in models/: shipped files are up to date and run in onnxruntime; big decoders build fast."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import build_models  # noqa: E402
from models.llama_like import (  # noqa: E402
    ALIGNMENT,
    EXTERNAL_THRESHOLD,
    LLAMA2_7B,
    LLAMA3_70B,
    TINY,
    DecoderConfig,
    build_decoder,
    rotary_table_names,
)

MODELS = ROOT / "models"


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _ext(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


# ---------------------------------------------------------------------------------------------------------
# Shipped files
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> dict[str, Path]:
    return build_models.build_all(tmp_path_factory.mktemp("zoo"))


@pytest.mark.parametrize("name", build_models.MODEL_FILES)
def test_shipped_model_is_up_to_date(name, rebuilt):
    # The build is deterministic (PCG64 raw stream, deterministic serialization, no timestamps), so a stale
    # shipped file shows up as a byte difference.
    shipped = MODELS / name
    assert shipped.exists(), f"{shipped} missing: run python models/build_models.py"
    assert shipped.read_bytes() == rebuilt[name].read_bytes(), (
        f"{shipped} is out of date with models/*.py: run python models/build_models.py"
    )


@pytest.mark.parametrize("name", build_models.MODEL_FILES)
def test_shipped_model_is_valid(name):
    path = MODELS / name
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(path)
    assert model.opset_import[0].version == 17
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node), "primitive ops only"
    onnx.shape_inference.infer_shapes(model, strict_mode=True)


def test_shipped_models_are_small():
    total = sum((MODELS / name).stat().st_size for name in build_models.MODEL_FILES)
    assert total < 5 * 2**20


@pytest.mark.parametrize("batch", [1, 3])
def test_mlp_runs(batch):
    rng = np.random.default_rng(batch)
    (probs,) = _session(MODELS / "mlp.onnx").run(None, {"x": rng.standard_normal((batch, 784), np.float32)})
    assert probs.shape == (batch, 10)
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_cnn_runs(batch):
    rng = np.random.default_rng(batch)
    image = rng.standard_normal((batch, 3, 64, 64), np.float32)
    (logits,) = _session(MODELS / "cnn.onnx").run(None, {"image": image})
    assert logits.shape == (batch, 10)
    assert np.isfinite(logits).all()
    ops = {n.op_type for n in onnx.load(MODELS / "cnn.onnx").graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"} <= ops


@pytest.mark.parametrize("batch", [1, 3])
def test_encoder_runs(batch):
    rng = np.random.default_rng(batch)
    seq = 11
    ids = rng.integers(0, build_models.ENC_VOCAB, (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, 7:] = 0  # right padding on the last row
    sess = _session(MODELS / "encoder.onnx")
    (hidden,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
    assert hidden.shape == (batch, seq, build_models.ENC_HIDDEN)
    assert np.isfinite(hidden).all()
    # Padded keys are masked out: changing a padded token leaves the unpadded positions unchanged.
    ids2 = ids.copy()
    ids2[-1, 9] = (ids2[-1, 9] + 1) % build_models.ENC_VOCAB
    (hidden2,) = sess.run(None, {"input_ids": ids2, "attention_mask": mask})
    np.testing.assert_allclose(hidden2[-1, :7], hidden[-1, :7], atol=1e-5)
    ops = [n.op_type for n in onnx.load(MODELS / "encoder.onnx").graph.node]
    assert ops.count("LayerNormalization") == 1 + 2 * build_models.ENC_LAYERS
    assert ops.count("Erf") == build_models.ENC_LAYERS


# ---------------------------------------------------------------------------------------------------------
# Decoder (TINY, embedded weights)
# ---------------------------------------------------------------------------------------------------------


def _decoder_feed(cfg: DecoderConfig, ids, mask, positions, past=None) -> dict[str, np.ndarray]:
    batch = ids.shape[0]
    feed = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    dtype = np.float16 if cfg.dtype == "float16" else np.float32
    for i in range(cfg.num_layers):
        for j, kv in enumerate(("key", "value")):
            empty = np.zeros((batch, cfg.num_kv_heads, 0, cfg.head_dim), dtype)
            feed[f"past_key_values.{i}.{kv}"] = empty if past is None else past[2 * i + j]
    return feed


def _run_decoder(sess, cfg, ids, mask=None, start=0, past=None):
    batch, seq = ids.shape
    total = start + seq
    mask = np.ones((batch, total), np.int64) if mask is None else mask
    positions = np.tile(np.arange(start, total, dtype=np.int64), (batch, 1))
    out = sess.run(None, _decoder_feed(cfg, ids, mask, positions, past))
    return out[0], out[1:]  # logits, [present.0.key, present.0.value, present.1.key, ...]


def test_decoder_interface():
    model = onnx.load(MODELS / "decoder.onnx")

    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    ins = {vi.name: dims(vi) for vi in model.graph.input}
    outs = {vi.name: dims(vi) for vi in model.graph.output}
    c = TINY
    assert ins["input_ids"] == ["batch_size", "sequence_length"]
    assert ins["attention_mask"] == ["batch_size", "total_sequence_length"]
    assert ins["position_ids"] == ["batch_size", "sequence_length"]
    assert outs["logits"] == ["batch_size", "sequence_length", c.vocab_size]
    for i in range(c.num_layers):
        for kv in ("key", "value"):
            assert ins[f"past_key_values.{i}.{kv}"] == ["batch_size", c.num_kv_heads, "past_sequence_length",
                                                         c.head_dim]
            assert outs[f"present.{i}.{kv}"] == ["batch_size", c.num_kv_heads, "total_sequence_length",
                                                  c.head_dim]
    ops = {n.op_type for n in model.graph.node}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    # RMSNorm, rotary, GQA repeat, mask, SwiGLU are all spelled with primitive ops.
    assert {"Pow", "ReduceMean", "Sqrt", "Reciprocal", "Slice", "Neg", "Concat", "Expand", "Softmax",
            "Sigmoid", "LessOrEqual", "Where", "Gather", "MatMul"} <= ops


@pytest.mark.parametrize("batch", [1, 3])
def test_decoder_runs_and_kv_cache_is_consistent(batch):
    cfg = TINY
    sess = _session(MODELS / "decoder.onnx")
    rng = np.random.default_rng(batch)
    ids = rng.integers(0, cfg.vocab_size, (batch, 9), dtype=np.int64)

    # past length 0
    full_logits, full_present = _run_decoder(sess, cfg, ids)
    assert full_logits.shape == (batch, 9, cfg.vocab_size)
    assert np.isfinite(full_logits).all()
    for t in full_present:
        assert t.shape == (batch, cfg.num_kv_heads, 9, cfg.head_dim)

    # prefill 6 tokens, then 3 more with past length 6
    logits_a, present_a = _run_decoder(sess, cfg, ids[:, :6])
    logits_b, present_b = _run_decoder(sess, cfg, ids[:, 6:], start=6, past=present_a)
    assert logits_b.shape == (batch, 3, cfg.vocab_size)
    assert np.isfinite(logits_b).all()
    for past, new_only, present in zip(present_a, full_present, present_b, strict=True):
        assert present.shape == (batch, cfg.num_kv_heads, 9, cfg.head_dim)
        # present = concat(past, new), the past part copied bit for bit
        np.testing.assert_array_equal(present[:, :, :6], past)
        np.testing.assert_allclose(present[:, :, 6:], new_only[:, :, 6:], rtol=1e-5, atol=1e-6)
    # causal attention: the cached run reproduces the single-pass logits
    np.testing.assert_allclose(logits_a, full_logits[:, :6], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits_b, full_logits[:, 6:], rtol=1e-4, atol=1e-5)

    # a single-token decode step (sequence_length 1, past length 9)
    step_ids = rng.integers(0, cfg.vocab_size, (batch, 1), dtype=np.int64)
    step_logits, step_present = _run_decoder(sess, cfg, step_ids, start=9, past=full_present)
    assert step_logits.shape == (batch, 1, cfg.vocab_size) and np.isfinite(step_logits).all()
    assert all(t.shape[2] == 10 for t in step_present)


def test_decoder_masks():
    cfg = TINY
    sess = _session(MODELS / "decoder.onnx")
    rng = np.random.default_rng(7)
    ids = rng.integers(0, cfg.vocab_size, (1, 8), dtype=np.int64)
    base, _ = _run_decoder(sess, cfg, ids)
    # causal: changing the last token changes only the last position
    changed = ids.copy()
    changed[0, -1] = (changed[0, -1] + 1) % cfg.vocab_size
    other, _ = _run_decoder(sess, cfg, changed)
    np.testing.assert_array_equal(other[0, :-1], base[0, :-1])
    assert not np.allclose(other[0, -1], base[0, -1])
    # padding: a masked-out (left padded) token does not influence the others
    mask = np.ones((1, 8), np.int64)
    mask[0, 0] = 0
    changed = ids.copy()
    changed[0, 0] = (changed[0, 0] + 1) % cfg.vocab_size
    a, _ = _run_decoder(sess, cfg, ids, mask=mask)
    b, _ = _run_decoder(sess, cfg, changed, mask=mask)
    np.testing.assert_allclose(a[0, 1:], b[0, 1:], atol=1e-6)
    assert np.isfinite(a).all()


def test_decoder_float16_gqa(tmp_path):
    cfg = DecoderConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_layers=2, num_heads=8,
                        num_kv_heads=2, max_position=64, dtype="float16", name="tiny-fp16")
    path = build_decoder(cfg, tmp_path / "fp16.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    sess = _session(path)
    ids = np.random.default_rng(0).integers(0, 128, (3, 5), dtype=np.int64)
    logits, present = _run_decoder(sess, cfg, ids)
    assert logits.dtype == np.float16 and logits.shape == (3, 5, 128) and np.isfinite(logits).all()
    logits_b, present_b = _run_decoder(sess, cfg, ids[:, :2], start=5, past=present)
    np.testing.assert_array_equal(present_b[0][:, :, :5], present[0])
    assert np.isfinite(logits_b).all()


def test_tiny_external_sparse_data_loads(tmp_path):
    path = build_decoder(TINY, tmp_path / "tiny.onnx", external_data=True)
    data = tmp_path / "tiny.onnx.data"
    assert data.exists() and not (tmp_path / "tiny.onnx.data.tmp").exists()
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        nbytes = int(np.prod(t.dims, dtype=np.int64)) * itemsize
        assert (t.data_location == onnx.TensorProto.EXTERNAL) == (nbytes >= EXTERNAL_THRESHOLD), t.name
    # onnxruntime maps the (all-zero) sparse file and runs
    logits, present = _run_decoder(_session(path), TINY, np.zeros((3, 4), np.int64))
    assert logits.shape == (3, 4, TINY.vocab_size) and np.isfinite(logits).all()
    # sparse=False: same graph, metadata only, no data file written
    other = build_decoder(TINY, tmp_path / "meta" / "tiny.onnx", external_data=True, sparse=False)
    assert not (tmp_path / "meta" / "tiny.onnx.data").exists()
    assert other.read_bytes() == path.read_bytes()


# ---------------------------------------------------------------------------------------------------------
# Llama-2-7B / Llama-3-70B: metadata-only external data
# ---------------------------------------------------------------------------------------------------------


def hand_parameter_count(cfg: DecoderConfig) -> int:
    """Learned parameters of a Llama decoder, by hand from the config."""
    V, h, inter, L = cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    q_o = 2 * h * (cfg.num_heads * cfg.head_dim)  # q_proj [h, nh*d], o_proj [nh*d, h]
    k_v = 2 * h * (cfg.num_kv_heads * cfg.head_dim)  # k_proj, v_proj [h, nkv*d]
    mlp = 3 * h * inter  # gate_proj, up_proj [h, inter], down_proj [inter, h]
    norms = 2 * h  # input_layernorm, post_attention_layernorm
    return V * h + L * (q_o + k_v + mlp + norms) + h + h * V  # embed, layers, final norm, lm_head


def _check_big_decoder(cfg: DecoderConfig, tmp_path: Path, monkeypatch, expected_params: int,
                       max_seconds: float) -> None:
    path = tmp_path / f"{cfg.name}.onnx"
    t0 = time.perf_counter()
    build_decoder(cfg, path, external_data=True)
    elapsed = time.perf_counter() - t0
    assert elapsed < max_seconds, f"{cfg.name} took {elapsed:.1f} s"

    assert path.stat().st_size < 5 * 2**20
    assert hand_parameter_count(cfg) == cfg.num_parameters == expected_params

    model = onnx.load(path, load_external_data=False)
    assert len(model.graph.node) > 1000
    rotary = set(rotary_table_names())
    param_bytes = rotary_bytes = 0
    spans = []
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            assert t.ByteSize() < 2 * EXTERNAL_THRESHOLD, t.name  # only small constants stay inline
            continue
        assert not t.raw_data
        info = _ext(t)
        assert info["location"] == path.name + ".data"
        offset, length = int(info["offset"]), int(info["length"])
        assert offset % ALIGNMENT == 0
        assert length == int(np.prod(t.dims, dtype=np.int64)) * cfg.dtype_bytes
        spans.append((offset, length))
        if t.name in rotary:
            rotary_bytes += length
        else:
            param_bytes += length
    assert param_bytes == 2 * hand_parameter_count(cfg)  # fp16
    assert rotary_bytes == 2 * cfg.max_position * cfg.head_dim * 2  # cos and sin tables, fp16
    spans.sort()
    assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "overlapping tensors"

    data = path.with_name(path.name + ".data")
    st = data.stat()
    assert st.st_size == spans[-1][0] + spans[-1][1]
    assert st.st_blocks * 512 < 2**20, "the data file should be sparse"

    # Structural validity without touching the data: the in-memory checker resolves `location` against the
    # working directory, so run it from the model's folder.
    monkeypatch.chdir(tmp_path)
    onnx.checker.check_model(model, full_check=False)
    onnx.checker.check_model(str(path), full_check=False)
    inferred = onnx.shape_inference.infer_shapes(model)
    logits = next(o for o in inferred.graph.output if o.name == "logits")
    assert logits.type.tensor_type.shape.dim[2].dim_value == cfg.vocab_size


def test_llama2_7b_builds_fast(tmp_path, monkeypatch):
    # Llama-2-7B: 6,738,415,616 parameters (the published count).
    _check_big_decoder(LLAMA2_7B, tmp_path, monkeypatch, 6_738_415_616, max_seconds=5.0)


def test_llama3_70b_is_structurally_valid(tmp_path, monkeypatch):
    # Llama-3-70B (GQA, 8 KV heads): 70,553,706,496 parameters (the published count).
    _check_big_decoder(LLAMA3_70B, tmp_path, monkeypatch, 70_553_706_496, max_seconds=10.0)
    model = onnx.load(tmp_path / f"{LLAMA3_70B.name}.onnx", load_external_data=False)
    assert sum(n.op_type == "Expand" for n in model.graph.node) == 2 * LLAMA3_70B.num_layers


def test_embedding_a_big_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="external_data=True"):
        build_decoder(LLAMA2_7B, tmp_path / "x.onnx")
    assert not os.listdir(tmp_path)
