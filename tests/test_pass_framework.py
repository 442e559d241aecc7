"""The pass contract: registry, pipeline ordering checks, no mutation of the input, verification hook."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from pass_helpers import fvi, init, make_model, mlp, serialized

import passes
from passes.base import Pass, PassContext, PassResult, Pipeline, copy_model
from passes.runner import Runner
from passes.verify import Drift, Reference, compare, generate_inputs
from planner.errors import PlannerError


def test_every_pipeline_validates_and_names_its_precision():
    pls = passes.registered_pipelines()
    assert {"none", "fused", "int8-dynamic", "fused-int8", "int8-static", "int4", "fp16"} <= set(pls)
    assert pls["none"].passes == () and pls["none"].precision == "fp32"
    assert pls["int8-dynamic"].precision == "int8" and pls["int4"].precision == "int4"
    for p in pls.values():
        p.validate()


@pytest.mark.parametrize("order, why", [
    (("ort-fusion", "cleanup"), "'cleanup' must run before 'ort-fusion'"),
    (("cleanup", "int8-dynamic", "ort-fusion"), "must run last"),
    (("int8-dynamic", "fp16"), "more than one precision pass"),
    (("cleanup", "cleanup"), "appears twice"),
])
def test_ordering_rules_are_checked(order, why):
    with pytest.raises(PlannerError, match=why):
        Pipeline("bad", order).validate()


def test_unknown_names_list_the_known_ones():
    with pytest.raises(PlannerError, match="known: .*fused"):
        passes.get_pipeline("nope")
    with pytest.raises(PlannerError, match="known: .*cleanup"):
        passes.get_pass("nope")


@pytest.mark.parametrize("name", sorted(passes.registered_passes()))
def test_no_pass_mutates_its_input(name):
    m = mlp()
    before = serialized(m)
    ctx = PassContext(calibration=[generate_inputs(m, seed=1)])
    try:
        passes.get_pass(name).apply(m, ctx)
    except PlannerError:
        pass  # a precondition that does not hold for this model is fine; the input must still be untouched
    assert serialized(m) == before


class _Breaks(Pass):
    """Multiplies the first weight by 2: a 'float-exact' pass that is wrong, so verification must drop it."""

    name = "breaks"

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        w = model.graph.initializer[0]
        arr = onnx.numpy_helper.to_array(w) * 2
        w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
        return PassResult(model, True, {"broken": 1})


def test_a_failing_exact_pass_is_dropped_with_its_reason(monkeypatch):
    from passes import base

    monkeypatch.setitem(base._PASSES, "breaks", _Breaks())
    m = mlp()
    r = Runner(m, Reference.build(m)).run(Pipeline("t", ("breaks",)))
    assert r.rejected is None and r.applied == []
    step = r.steps[0]
    assert not step.applied and "failed verification" in step.reason and "cosine" in step.reason
    assert serialized(r.model) == serialized(m)


def test_drift_metrics_by_hand():
    ref = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    got = [np.array([[1.0, 0.1], [0.2, 0.1]], np.float32)]
    d = compare(ref, got, ["logits"], "t")
    assert d.max_abs_err == pytest.approx(0.9, abs=1e-6)
    assert d.max_rel_err == pytest.approx(0.9, abs=1e-6)
    cos = (1.0 + 0.1) / (np.sqrt(2) * np.sqrt(1 + 0.01 + 0.04 + 0.01))
    assert d.cosine == pytest.approx(cos, rel=1e-6)
    assert d.top1 == 0.5  # row 2's argmax moved from 1 to 0
    assert Drift(0, 0, 0.995, 0.5, 2, "t").violates(0.01).startswith("drift: top-1")
    assert Drift(0, 0, 0.98, None, 2, "t").violates(0.01).startswith("drift: cosine")
    assert Drift(0, 0, 0.995, None, 2, "t").violates(0.01) is None


def test_generated_inputs_respect_embedding_rows_and_pad_masks():
    m = make_model([helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
                    helper.make_node("ReduceSum", ["e"], ["y"], keepdims=0)],
                   [helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["batch", "sequence"]),
                    helper.make_tensor_value_info("attention_mask", onnx.TensorProto.INT64, ["batch", "sequence"])],
                   [fvi("y", None)], [init("emb", np.zeros((7, 4), np.float32))])
    f = generate_inputs(m, batch=4)
    assert f["input_ids"].shape == (4, 128) and f["input_ids"].max() < 7 and f["input_ids"].min() >= 0
    mask = f["attention_mask"]
    assert mask[0].all() and set(np.unique(mask)) <= {0, 1}
    for row in mask:  # right padding: ones then zeros
        assert (np.diff(row) <= 0).all()
    again = generate_inputs(m, batch=4)
    assert all((again[k] == f[k]).all() for k in f)


def test_copy_model_is_deep():
    m = mlp()
    c = copy_model(m)
    c.graph.node.pop()
    assert len(m.graph.node) == 5
