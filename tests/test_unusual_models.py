"""Unusual but valid models found by the walk over onnx's test data: each must plan, not be refused."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from planner.api import plan


def _pinned_batch_model(batch: int) -> onnx.ModelProto:
    """x[batch, 4] -> Reshape to the constant [batch, 2, 2]: the graph pins the batch, so it cannot be swept."""
    shape = numpy_helper.from_array(np.array([batch, 2, 2], np.int64), "shape")
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, 2])], [shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_fixed_batch_the_graph_pins_plans_at_its_own_batch(tmp_path):
    batch = 3
    p = tmp_path / "pinned.onnx"
    onnx.save(_pinned_batch_model(batch), p)
    result = plan(p, targets="a10g")
    assert result.chosen is not None
    assert [c.batch for c in result.candidates] == [batch]  # no sweep: 1, 2, 4 would contradict the Reshape


def test_fixed_batch_that_can_be_rebound_is_still_swept(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    p = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    result = plan(p, targets="a10g", max_batch=4)
    assert [c.batch for c in result.candidates] == [1, 2, 4]
