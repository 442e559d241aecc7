"""cleanup (onnxscript's optimizer): folding, dead code, no-ops, Conv+BatchNormalization; parity in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper
from pass_helpers import fvi, init, make_model, mlp, rand, serialized

import passes
from passes.runner import Runner
from passes.verify import Reference

CLEANUP = passes.get_pass("cleanup")


def _verified(m: onnx.ModelProto):
    r = Runner(m, Reference.build(m)).run(passes.Pipeline("t", ("cleanup",)))
    step = r.steps[0]
    assert step.reason is None, step.reason
    return r, step


def test_folds_weights_built_at_run_time_and_removes_dead_and_identity():
    # w = ConstantOfShape([4, 3], 0.5) * 2  (a weight built at run time, like onnx's light models)
    m = make_model(
        [helper.make_node("ConstantOfShape", ["shape"], ["c"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
         helper.make_node("Mul", ["c", "two"], ["w"]),
         helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Identity", ["h"], ["y"]),
         helper.make_node("Relu", ["x"], ["dead"])],
        [fvi("x", ["batch", 4])], [fvi("y", ["batch", 3])],
        [init("shape", np.array([4, 3], np.int64)), init("two", np.array(2.0, np.float32)),
         init("unused", np.ones(5, np.float32))])
    r, step = _verified(m)
    ops = [n.op_type for n in r.model.graph.node]
    assert ops == ["MatMul"], ops
    assert step.counts["-ConstantOfShape"] == 1 and step.counts["-Identity"] == 1 and step.counts["-Relu"] == 1
    assert "unused" not in {t.name for t in r.model.graph.initializer}
    assert r.drift.cosine > 1 - 1e-12 and r.drift.max_abs_err == 0.0
    assert [o.name for o in r.model.graph.output] == ["y"]


def test_folds_batchnorm_into_conv():
    c = 4
    m = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "bb", "mean", "var"], ["y"], epsilon=1e-5)],
        [fvi("x", ["batch", 3, 8, 8])], [fvi("y", ["batch", c, 8, 8])],
        [init("w", rand((c, 3, 3, 3), 1)), init("b", rand((c,), 2)), init("s", 1 + rand((c,), 3)),
         init("bb", rand((c,), 4)), init("mean", rand((c,), 5)), init("var", 1 + np.abs(rand((c,), 6)))])
    r, step = _verified(m)
    assert [n.op_type for n in r.model.graph.node] == ["Conv"]
    assert step.counts["-BatchNormalization"] == 1
    assert r.drift.cosine > 0.99999 and r.drift.max_rel_err < 1e-5


def test_nothing_to_clean_leaves_the_graph_as_it_was():
    m = mlp()
    out = CLEANUP.apply(m).model
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in m.graph.node]
    assert {t.name for t in out.graph.initializer} == {t.name for t in m.graph.initializer}


def test_nothing_to_clean_is_no_change_though_onnx_ir_names_the_nodes():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [fvi("x", [3, 4])], [fvi("y", [3, 4])], [])
    result = CLEANUP.apply(m)
    assert [n.name for n in result.model.graph.node] != [""]  # onnx_ir gives the unnamed node a name
    assert result.changed is False


def test_refuses_external_data(tmp_path):
    m = mlp()
    before = serialized(m)
    for t in m.graph.initializer:
        t.data_location = TensorProto.EXTERNAL
    try:
        CLEANUP.apply(m)
    except passes.PassRejected as e:
        assert "external data" in str(e)
    else:
        raise AssertionError("external data must be refused")
    assert serialized(m) != before  # (we edited it ourselves above; the pass did not)
