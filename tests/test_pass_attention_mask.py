"""attention-mask (our rule): unsqueeze(m, [a, b]) = unsqueeze(unsqueeze(m, [a]), [b]); both axis spellings."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from pass_helpers import fvi, init, make_model

import passes
from passes.runner import Runner
from passes.verify import Reference

RULE = passes.get_pass("attention-mask")


def mask_model(opset: int = 17, axes=(1, 2), src_type=TensorProto.INT64, cast: bool = True):
    """additive mask (1 - Cast(Unsqueeze(mask, axes))) * -10000 added to scores [B, 1, S, S]"""
    if opset >= 13:
        unsq = helper.make_node("Unsqueeze", ["attention_mask", "axes"], ["u"], name="mask/Unsqueeze")
        inits = [init("axes", np.array(axes, np.int64))]
    else:
        unsq = helper.make_node("Unsqueeze", ["attention_mask"], ["u"], name="mask/Unsqueeze", axes=list(axes))
        inits = []
    first = helper.make_node("Cast", ["u"], ["c"], to=TensorProto.FLOAT) if cast else \
        helper.make_node("Identity", ["u"], ["c"])
    nodes = [unsq, first, helper.make_node("Sub", ["one", "c"], ["s"]), helper.make_node("Mul", ["s", "big"], ["m"]),
             helper.make_node("Add", ["scores", "m"], ["y"])]
    inits += [init("one", np.array(1.0, np.float32)), init("big", np.array(-10000.0, np.float32))]
    mask_vi = helper.make_tensor_value_info("attention_mask", src_type, ["batch", "sequence"])
    return make_model(nodes, [fvi("scores", ["batch", 1, "sequence", "sequence"]), mask_vi],
                      [fvi("y", ["batch", 1, "sequence", "sequence"])], inits, opset=opset)


@pytest.mark.parametrize("opset", [17, 11])
def test_splits_the_two_axis_mask_unsqueeze(opset):
    m = mask_model(opset)
    r = Runner(m, Reference.build(m)).run(passes.Pipeline("t", ("attention-mask",)))
    step = r.steps[0]
    assert step.applied and step.reason is None
    assert sum(step.counts.values()) == 1
    unsq = [n for n in r.model.graph.node if n.op_type == "Unsqueeze"]
    assert len(unsq) == 2
    assert unsq[1].output[0] == "u" and unsq[0].input[0] == "attention_mask"
    assert r.drift.max_abs_err == 0.0


@pytest.mark.parametrize("kwargs, why", [
    ({"axes": (1,)}, "1 axes"),
    ({"src_type": TensorProto.FLOAT}, "not an integer or bool mask"),
    ({"cast": False}, "not read by a Cast"),
    ({"axes": (1, -1)}, "negative axes"),
])
def test_near_misses_do_not_fire_and_say_why(kwargs, why):
    m = mask_model(**kwargs)
    r = RULE.apply(m)
    assert not r.changed
    assert any(why in note for note in r.notes), r.notes


def test_zoo_encoder_gets_attention_fused_only_with_the_rule():
    import onnx

    from passes.fusion.ort import OrtFusion

    m = onnx.load("models/encoder.onnx")
    without = OrtFusion().apply(passes.get_pass("cleanup").apply(m).model)
    assert "Attention" not in without.counts
    r = Runner(m, Reference.build(m)).run(passes.get_pipeline("fused"))
    fusion = next(s for s in r.steps if s.name == "ort-fusion")
    assert fusion.counts.get("Attention") == 2, fusion.counts
    assert r.drift.cosine > 0.99999
