"""Binding symbolic dims: user values, stated defaults, and clear errors for bad bindings."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from planner.errors import DimError
from planner.model.shapes import bind_dims, dim_spec


def _model(inputs) -> onnx.ModelProto:
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs]
    node = helper.make_node("Identity", [inputs[0][0]], ["y"])
    g = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_decoder_dims_classified_and_defaulted():
    m = _model([("ids", ["batch_size", "sequence_length"]),
                ("past", ["batch_size", 4, "past_sequence_length", 16]),
                ("mask", ["batch_size", "total_sequence_length"])])
    spec = dim_spec(m)
    assert spec.batch == "batch_size"
    b = bind_dims(spec, {"past_sequence_length": 100}, batch=8)
    assert b.values == {"batch_size": 8, "sequence_length": 128, "past_sequence_length": 100,
                        "total_sequence_length": 228}
    assert any(d.startswith("sequence_length=128") for d in b.defaults_used)
    assert any(d.startswith("total_sequence_length=228") for d in b.defaults_used)
    assert not any(d.startswith("batch_size") for d in b.defaults_used)


def test_anonymous_leading_dim_is_batch():
    m = _model([("x", [None, 3, 32, 32])])
    spec = dim_spec(m)
    assert spec.batch == "x:0"
    assert bind_dims(spec, {}, batch=4).values == {"x:0": 4}


def test_fixed_batch_recorded():
    spec = dim_spec(_model([("x", [1, 3, 32, 32])]))
    assert spec.batch is None and spec.fixed_batch == 1


@pytest.mark.parametrize("dims,batch,match", [
    ({"nope": 3}, None, "no such symbolic dim"),
    ({"N": 0}, None, "positive"),
    ({"N": 2}, 4, "contradicts"),
])
def test_bad_bindings(dims, batch, match):
    spec = dim_spec(_model([("x", ["N", 8])]))
    with pytest.raises(DimError, match=match):
        bind_dims(spec, dims, batch)
