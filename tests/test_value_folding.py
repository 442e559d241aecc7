"""Shapes that hang on computed values (planner.model.value_folding): a Resize whose sizes come from the input's
dims through Div and Cast, as exporters write position-embedding interpolation, gets its shape once the dims
are bound, and the folding never swaps the nodes the planner costs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from planner.model.analyze import Analyzer
from planner.model.loader import load_model
from planner.model.value_folding import MAX_VALUE_NUMEL, fold_values
from planner.ort.executed import ort_analysis


def _half_resize(path) -> str:
    """y = Resize(x, sizes=[N, C, floor(float(H) / 2), floor(float(W) / 2)]), the sizes computed at run time."""
    c = lambda name, v: numpy_helper.from_array(np.array(v), name)  # noqa: E731
    inits = [c("i2", np.int64(2)), c("i3", np.int64(3)), c("two", np.float32(2.0)), c("ax0", np.array([0])),
             c("s0", np.array([0])), c("s2", np.array([2]))]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "s0", "s2"], ["nc"]),
        helper.make_node("Gather", ["shape", "i2"], ["h"]),
        helper.make_node("Gather", ["shape", "i3"], ["w"]),
        helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["hf", "two"], ["hd"]),
        helper.make_node("Div", ["wf", "two"], ["wd"]),
        helper.make_node("Floor", ["hd"], ["hfl"]),
        helper.make_node("Floor", ["wd"], ["wfl"]),
        helper.make_node("Cast", ["hfl"], ["hi"], to=TensorProto.INT64),
        helper.make_node("Cast", ["wfl"], ["wi"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["hi", "ax0"], ["hu"]),
        helper.make_node("Unsqueeze", ["wi", "ax0"], ["wu"]),
        helper.make_node("Concat", ["nc", "hu", "wu"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["r"], mode="linear", name="resize"),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "half", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, str(path))
    return str(path)


def test_onnx_alone_leaves_the_resize_unknown(tmp_path):
    # the case this module exists for: with the dims bound, onnx's data propagation still stops at Cast/Div/Floor
    m = onnx.load(_half_resize(tmp_path / "half.onnx"))
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], (64, 48), strict=True):
        d.Clear()
        d.dim_value = v
    inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
    r = next((vi for vi in inferred.graph.value_info if vi.name == "r"), None)
    assert r is None or not all(d.HasField("dim_value") for d in r.type.tensor_type.shape.dim)


def test_the_resize_gets_its_shape_by_hand(tmp_path):
    a = Analyzer(load_model(_half_resize(tmp_path / "half.onnx"))).analyze({"H": 64, "W": 48})
    # floor(64 / 2) = 32, floor(48 / 2) = 24
    assert a.graph.tensors["r"].shape == (1, 8, 32, 24)
    assert a.graph.tensors["y"].shape == (1, 8, 32, 24)
    assert any("small value computations evaluated" in n for n in a.notes)
    # the nodes costed are the model's: the Resize and its size computation are all still there
    ops = [n.op_type for n in a.graph.nodes]
    assert "Resize" in ops and "Relu" in ops


def test_onnxruntimes_graph_gets_it_too(tmp_path):
    a = ort_analysis(load_model(_half_resize(tmp_path / "half.onnx")), {"H": 30, "W": 90})
    resize = next(n for n in a.graph.nodes if n.op_type == "Resize")
    assert resize.outputs[0].shape == (1, 8, 15, 45)
    assert a.unknown_shapes == []


def test_large_values_are_never_materialized():
    # ConstantOfShape of a bound 2^20 x 2^10 dim: inference knows the shape is far past the limit, so it stays a node
    big = numpy_helper.from_array(np.array([1 << 20, 1 << 10], np.int64), "dims")
    nodes = [helper.make_node("ConstantOfShape", ["dims"], ["z"])]
    g = helper.make_graph(nodes, "big", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1 << 20, 1 << 10])],
                          [big])
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    folded, n = fold_values(m)
    assert n == 0 and folded is m
    assert (1 << 30) > MAX_VALUE_NUMEL
