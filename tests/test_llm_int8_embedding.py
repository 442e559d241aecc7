"""int8-dynamic on a decoder quantizes the token embedding too (onnxruntime's quantize_dynamic with Gather):
stored 8-bit, the gathered rows dequantized; the rotary tables, also read by Gather, stay float."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import planner  # noqa: F401  (first: passes -> planner.errors -> planner -> passes is a cycle when passes comes first)
from models.llama_like import TINY, build_decoder, make_decoder
from passes import get_pass
from passes.base import PassContext
from planner.api import plan
from planner.llm.generation import GenerationReference
from planner.search.variants import PassOptions


def _quantized(gather: bool) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    model, _ = make_decoder(TINY)
    return model, get_pass("int8-dynamic").apply(model, PassContext(options={"int8_gather": gather})).model


def test_the_token_embedding_is_stored_8_bit_and_dequantized_after_the_gather():
    """TINY's embedding [256, 64] float32 is 65,536 B; as 8-bit 16,384 B (onnxruntime's Gather quantizer picks
    uint8 with a zero point), one scale and one zero point for the table. Dequantized, every entry is within
    half a step (scale / 2) of the float one: worked out here from the stored values, not read from the pass."""
    model, q = _quantized(True)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    consumers = {i: n for n in q.graph.node for i in n.input}
    gather = next(n for n in q.graph.node if n.op_type == "Gather" and "embed_tokens" in n.input[0])
    table = inits[gather.input[0]]
    assert table.dtype == np.uint8 and table.shape == (256, 64) and table.nbytes == 16_384
    dq = consumers[gather.output[0]]
    assert dq.op_type == "DequantizeLinear"
    scale, zero = inits[dq.input[1]], inits[dq.input[2]]
    want = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "model.embed_tokens.weight"))
    got = (table.astype(np.float32) - zero.astype(np.float32)) * scale
    assert np.max(np.abs(got - want)) <= float(scale) / 2 + 1e-7
    rotary = [n.input[0] for n in q.graph.node if n.op_type == "Gather" and "rotary" in n.input[0]]
    assert rotary and all(inits[r].dtype == np.float32 for r in rotary)  # cos/sin tables stay float


def test_without_the_option_the_embedding_stays_float_and_generation_is_judged_the_same_way():
    """The option changes only the embedding: the weights differ by 65,536 - 16,384 B (plus the table's scale
    and zero point), and both models run the generation check (onnxruntime, 4 prompts x 32 tokens)."""
    model, with_table = _quantized(True)
    _, without = _quantized(False)
    emb = next(t for t in without.graph.initializer if t.name == "model.embed_tokens.weight")
    assert emb.data_type == onnx.TensorProto.FLOAT
    size = [sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer) for m in (with_table, without)]
    assert size[1] - size[0] == 65_536 - 16_384 - 4 - 1  # and the table's scale (float32) and zero point (uint8)
    ref = GenerationReference(model)
    for m in (with_table, without):
        g = ref.measure(m)
        assert g.tokens == 32 and 0 < g.agreement <= 1 and g.cosine_min > 0.9


def test_the_planner_runs_int8_dynamic_on_decoders_with_the_embedding(tmp_path):
    """Through plan(): one DequantizeLinear appears (the embedding's). The pass with the option, against the
    float model, loses 3/4 of the bytes of the 15 MatMul weights and of the embedding: (360,448 + 65,536) x 3/4
    = 319,488 B, less the 16 per-tensor scales (float32) and zero points (8-bit): 319,488 - 16 x 5 = 319,408 B."""
    path = build_decoder(TINY, tmp_path / "tiny.onnx")
    p = plan(path, targets=["c7i-xlarge"], passes=PassOptions("int8-dynamic", max_drift=0.9), prompt_len=16,
             gen_len=16)
    report = next(r for r in p.pipelines if r["pipeline"] == "int8-dynamic")
    counts = report["steps"][-1]["counts"]
    assert counts["+DequantizeLinear"] == 1
    _, q = _quantized(True)
    model, _ = make_decoder(TINY)
    size = [sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer) for m in (model, q)]
    assert size[0] - size[1] == 319_408
