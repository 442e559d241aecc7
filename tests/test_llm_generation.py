"""Verification of rewritten decoders by generation (planner.llm.generation): agreement, cosine, perplexity and
the KV-cache contract, on the tiny Llama-shaped decoder built from code."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import planner  # noqa: F401  (first: passes -> planner.errors -> planner -> passes is a cycle when passes comes first)
from models.llama_like import TINY, make_decoder
from passes.verify import ContractBroken, verify
from planner.errors import PlannerError
from planner.llm.generation import GenerationReference, text_ids


@pytest.fixture(scope="module")
def tiny() -> onnx.ModelProto:
    return make_decoder(TINY)[0]


@pytest.fixture(scope="module")
def reference(tiny) -> GenerationReference:
    return GenerationReference(tiny, tokens=16)


def _with_lm_head(model: onnx.ModelProto, fn) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, t in enumerate(out.graph.initializer):
        if t.name == "lm_head.weight":
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t)), t.name))
    return out


def test_identity_rewrite_agrees_fully(tiny, reference):
    copy = onnx.ModelProto()
    copy.CopyFrom(tiny)
    g = reference.measure(copy)
    assert g.agreement == 1.0 and g.greedy_agreement == 1.0
    assert g.cosine_min == pytest.approx(1.0, abs=1e-12)
    assert g.perplexity == g.perplexity_original and g.perplexity_change == 0.0
    assert (g.prompts, g.tokens) == (4, 16)
    drift = g.as_drift()
    assert drift.top1 == 1.0 and drift.violates(0.01) is None and drift.generation["agreement"] == 1.0


def test_perplexity_of_uniform_logits_is_the_vocabulary(tiny, reference):
    """lm_head all zeros: every logit is 0, each of the 256 tokens has probability 1/256, so ppl = 256 exactly."""
    flat = _with_lm_head(tiny, np.zeros_like)
    g = reference.measure(flat)
    assert g.perplexity == pytest.approx(TINY.vocab_size, rel=1e-9)
    assert g.perplexity_change == pytest.approx(TINY.vocab_size / reference.perplexity - 1, rel=1e-9)


def test_text_becomes_byte_ids_mod_vocab():
    assert text_ids("Ab\u00e9", 256, 10).tolist() == [65, 98, 0xC3, 0xA9]  # UTF-8 bytes
    assert text_ids("Ab", 50, 10).tolist() == [65 % 50, 98 % 50]
    assert len(text_ids("x" * 100, 256, 64)) == 64


def test_negated_lm_head_is_refused_by_agreement(tiny, reference):
    """-W flips every logit: the argmax becomes the argmin, so no step agrees and the cosine is -1."""
    negated = _with_lm_head(tiny, np.negative)
    g = reference.measure(negated)
    assert g.agreement == 0.0
    assert g.cosine_min == pytest.approx(-1.0, abs=1e-6)
    reason = g.as_drift().violates(0.1)
    assert reason is not None and reason.startswith("drift: cosine")


def test_swapped_present_outputs_break_the_cache(tiny, reference):
    swapped = onnx.ModelProto()
    swapped.CopyFrom(tiny)
    outs = {o.name: o for o in swapped.graph.output}
    k, v = "present.0.key", "present.0.value"
    for n in swapped.graph.node:  # the producers write each other's output: names and shapes still match
        n.output[:] = [v if o == k else k if o == v else o for o in n.output]
    assert k in outs and v in outs
    with pytest.raises(ContractBroken, match="'present.0.key' does not repeat its past input 'past_key_values.0.key'"):
        reference.measure(swapped)
    drift, reason = verify(swapped, reference, exact=False)
    assert drift is None and reason.startswith("KV cache broken: 'present.0.key'")


def test_dropped_present_output_is_refused(tiny, reference):
    dropped = onnx.ModelProto()
    dropped.CopyFrom(tiny)
    keep = [o for o in dropped.graph.output if o.name != "present.1.value"]
    del dropped.graph.output[:]
    dropped.graph.output.extend(keep)
    with pytest.raises(ContractBroken, match="present output 'present.1.value' is gone"):
        reference.measure(dropped)


def test_generation_refuses_contexts_past_the_position_table(tiny):
    with pytest.raises(PlannerError, match="pass the model's 128 positions"):
        GenerationReference(tiny, tokens=130)


def _text_logits(model: onnx.ModelProto, ids: np.ndarray) -> np.ndarray:
    """The model's logits over the text in one onnxruntime run, fed here by hand (empty cache)."""
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    n = len(ids)
    feeds = {"input_ids": ids[None], "attention_mask": np.ones((1, n), np.int64),
             "position_ids": np.arange(n, dtype=np.int64)[None]}
    for i in range(TINY.num_layers):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((1, TINY.num_kv_heads, 0, TINY.head_dim), np.float32)
    return s.run(["logits"], feeds)[0][0].astype(np.float64)


def _ppl(logits: np.ndarray, ids: np.ndarray) -> float:
    lg = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].mean()))


def test_perplexity_and_cosine_by_hand(tiny, reference):
    """lm_head x 2 doubles every logit: cosine stays 1 and the argmax (agreement) stays; the perplexity is that
    of the original's logits x 2, worked out here with numpy from one hand-fed onnxruntime run."""
    doubled = _with_lm_head(tiny, lambda w: 2 * w)
    g = reference.measure(doubled)
    assert g.agreement == 1.0 and g.cosine_min == pytest.approx(1.0, abs=1e-9)
    logits = _text_logits(tiny, reference.ids)
    assert reference.perplexity == pytest.approx(_ppl(logits, reference.ids), rel=1e-5)
    assert g.perplexity == pytest.approx(_ppl(2 * logits, reference.ids), rel=1e-4)
