"""Real optimum exports (models/hf, made by models/export_hf.py): recognised, planned and run in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from planner.api import plan
from planner.llm.decoder import DECODE, PREFILL, mean_context, phase_feeds, recognise
from planner.llm.plan import DecoderPlanner
from planner.model.loader import load_model

HF = Path(__file__).parent.parent / "models" / "hf"
P, G = 32, 16


@pytest.mark.parametrize("name, kv_heads", [("gpt2", 4), ("llama-gqa", 2)])
def test_optimum_decoders_are_recognised_and_planned(name, kv_heads):
    path = HF / f"{name}.onnx"
    info = recognise(onnx.load(path))
    layers, head_dim, fp32 = 2, 16, 4
    assert (info.layers, info.kv_heads, info.head_dim) == (layers, kv_heads, head_dim)
    assert info.kv_bytes_per_token == 2 * layers * kv_heads * head_dim * fp32
    assert info.past_dims == ("past_sequence_length",)
    assert info.total_dims == ("past_sequence_length + sequence_length",)  # attention_mask's dim in optimum
    p = plan(path, targets="a10g", prompt_len=P, gen_len=G, max_batch=8)
    d = p.model.decoder
    assert d["hidden_size"] == 64 and d["vocab_size"] == 256 and d["phases_affine_in_batch"]
    assert d["kv_cache_check"]["formula_bytes"] == d["kv_cache_check"]["graph_present_bytes"]
    assert p.chosen is not None and p.chosen.tpot_ms > 0 and p.chosen.ttft_ms > p.chosen.tpot_ms


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_optimum_decoder_phases_run_in_onnxruntime(name):
    """The prefill (empty cache) and decode bindings `plan validate` gets run as they are."""
    path = HF / f"{name}.onnx"
    model = onnx.load(path)
    loaded = load_model(path)
    dp = DecoderPlanner(loaded, recognise(loaded.model), P, G)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    batch = 2
    for phase, total in ((PREFILL, P), (DECODE, mean_context(P, G))):
        out = session.run(None, phase_feeds(model, dp.dims[phase], batch))
        present = out[names.index("present.1.value")]
        assert present.shape[2] == total
        predicted = dp.analyzer.analyze(dp.dims[phase], batch=batch).graph.tensors["present.1.value"].shape
        assert predicted == present.shape


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_encoders_are_not_decoders(name):
    assert recognise(onnx.load(HF / f"{name}.onnx")) is None


@pytest.mark.slow
def test_export_hf_reproduces_the_committed_files(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("optimum.exporters.onnx")
    from models.export_hf import NAMES, main

    assert main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        new, old = onnx.load(tmp_path / f"{name}.onnx"), onnx.load(HF / f"{name}.onnx")
        assert [i.name for i in new.graph.input] == [i.name for i in old.graph.input]
        assert len(new.graph.node) == len(old.graph.node)
