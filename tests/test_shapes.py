"""Binding symbolic dims: user values, stated defaults, and clear errors for bad bindings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import planner
from planner.commands.args import parse_dims
from planner.errors import DimError, PlannerError
from planner.model.analyze import Analyzer
from planner.model.loader import load_model
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


def test_a_dim_named_by_arithmetic_on_other_dims_is_computed_from_them():
    """optimum names the attention mask's length "past_sequence_length + sequence_length" (torch's dynamo
    exporter writes "s0 + s1"): it follows from the other two, 255 + 1 = 256, and a contradiction is refused."""
    m = _model([("ids", ["batch_size", "sequence_length"]),
                ("mask", ["batch_size", "past_sequence_length + sequence_length"]),
                ("past", ["batch_size", 2, "past_sequence_length", 16]),
                ("twice", ["batch_size", "2*sequence_length - 1"])])
    spec = dim_spec(m)
    assert spec.kinds["past_sequence_length + sequence_length"] == "expression"
    b = bind_dims(spec, {"sequence_length": 1, "past_sequence_length": 255}, batch=1)
    assert b.values["past_sequence_length + sequence_length"] == 256
    assert b.values["2*sequence_length - 1"] == 1
    ok = bind_dims(spec, {"sequence_length": 4, "past_sequence_length": 0,
                          "past_sequence_length + sequence_length": 4}, batch=1)
    assert ok.values["past_sequence_length + sequence_length"] == 4  # a prefill with an empty cache
    with pytest.raises(DimError, match="contradicts"):
        bind_dims(spec, {"sequence_length": 1, "past_sequence_length": 255,
                         "past_sequence_length + sequence_length": 128}, batch=1)


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


# ---- dims of -1 and of 0 (issue #16: both refused although onnxruntime runs them) ---------------------------


def _matmul_any_rows(path, first_dim):
    """y = x @ W with x [first_dim, 8] and W [8, 16]; onnxruntime reads a declared -1 as "any size"."""
    w = numpy_helper.from_array(np.zeros((8, 16), np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [first_dim, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [first_dim, 16])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_dim_declared_minus_one_is_planned_as_a_symbolic_dim(tmp_path):
    path = _matmul_any_rows(tmp_path / "m.onnx", -1)
    before = path.read_bytes()
    p = planner.plan(path, targets="a10g", batch=4, passes=None)
    assert p.model.dims == {"x:0": 4}  # the input's first axis, named as unnamed dims are
    assert p.model.flops == 2 * 4 * 8 * 16  # a [4, 8] x [8, 16] product
    assert any("2 dims declared -1" in n for n in p.model.notes)  # the input's and the output's
    assert path.read_bytes() == before  # the file is never touched


def test_other_negative_dims_are_still_refused(tmp_path):
    with pytest.raises(PlannerError, match="negative dim"):
        load_model(_matmul_any_rows(tmp_path / "m.onnx", -3))


def test_zero_binds_a_past_length_only():
    assert parse_dims(["past_sequence_length=0"]) == {"past_sequence_length": 0}
    with pytest.raises(DimError, match="0 or more"):
        parse_dims(["past_sequence_length=-1"])
    m = _model([("ids", ["batch_size", "sequence_length"]),
                ("past", ["batch_size", 4, "past_sequence_length", 16]),
                ("mask", ["batch_size", "total_sequence_length"])])
    b = bind_dims(dim_spec(m), {"past_sequence_length": 0, "sequence_length": 16}, batch=1)
    assert b.values["past_sequence_length"] == 0 and b.values["total_sequence_length"] == 16  # 0 + 16
    with pytest.raises(DimError, match="0 only for a past"):
        bind_dims(dim_spec(m), {"sequence_length": 0}, batch=1)


def test_a_decoder_prefill_with_an_empty_cache_is_analyzed(tmp_path):
    decoder = Path(__file__).resolve().parent.parent / "models" / "decoder.onnx"
    a = Analyzer(load_model(decoder)).analyze({"past_sequence_length": 0, "sequence_length": 16,
                                               "total_sequence_length": 16}, batch=1)
    past = a.graph.tensors["past_key_values.0.key"]
    assert past.shape == (1, 2, 0, 16) and past.nbytes == 0  # [batch, kv heads, past, head size], empty
