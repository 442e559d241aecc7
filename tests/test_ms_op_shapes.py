"""Shapes after com.microsoft ops that neither onnx nor onnxruntime's symbolic pass infers
(planner.model.ort_symbolic): without them every shape after the op was unknown or a scalar, and the nodes
there went unpriced (a QOperator DB text detector's head, an int8 CRNN's classifier). Each expected shape is
what onnxruntime itself returns when it runs the model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from planner.model.analyze import Analyzer
from planner.model.loader import load_model

MS = "com.microsoft"


def _scalar(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def _run_and_analyze(model: onnx.ModelProto, path, feeds: dict) -> tuple[dict, dict]:
    onnx.save(model, path)
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = s.run(None, feeds)
    ran = {o.name: tuple(v.shape) for o, v in zip(s.get_outputs(), outs, strict=True)}
    a = Analyzer(load_model(path)).analyze()
    return ran, {n: t.shape for n, t in a.graph.tensors.items()}


def test_qlinear_concat_concatenates_its_tensors_not_its_scales(tmp_path):
    u8 = TensorProto.UINT8
    q = [_scalar("ys", 0.05, np.float32), _scalar("yz", 3, np.uint8), _scalar("as", 0.02, np.float32),
         _scalar("az", 1, np.uint8), _scalar("bs", 0.03, np.float32), _scalar("bz", 2, np.uint8)]
    nodes = [helper.make_node("QLinearConcat", ["ys", "yz", "a", "as", "az", "b", "bs", "bz"], ["c"], axis=1,
                              domain=MS),
             helper.make_node("DequantizeLinear", ["c", "ys", "yz"], ["d"]),
             helper.make_node("Relu", ["d"], ["out"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", u8, [1, 4, 5, 6]),
                                       helper.make_tensor_value_info("b", u8, [1, 3, 5, 6])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], q)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(MS, 1)])
    feeds = {"a": np.ones((1, 4, 5, 6), np.uint8), "b": np.ones((1, 3, 5, 6), np.uint8)}
    ran, shapes = _run_and_analyze(m, tmp_path / "qc.onnx", feeds)
    assert ran["out"] == (1, 7, 5, 6)
    assert shapes["c"] == shapes["d"] == shapes["out"] == (1, 7, 5, 6)


def test_dynamic_quantize_lstm_has_an_lstms_outputs(tmp_path):
    seq, batch, inp, hidden = 10, 2, 8, 16
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-8, 8, (2, inp, 4 * hidden)).astype(np.int8), "w")
    r = numpy_helper.from_array(rng.integers(-8, 8, (2, hidden, 4 * hidden)).astype(np.int8), "r")
    q = [_scalar("ws", [0.01, 0.01], np.float32), _scalar("wz", [0, 0], np.int8),
         _scalar("rs", [0.01, 0.01], np.float32), _scalar("rz", [0, 0], np.int8)]
    lstm = helper.make_node("DynamicQuantizeLSTM", ["x", "w", "r", "", "", "", "", "", "ws", "wz", "rs", "rz"],
                            ["y", "yh", "yc"], hidden_size=hidden, direction="bidirectional", domain=MS)
    g = helper.make_graph([lstm, helper.make_node("Relu", ["y"], ["out"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, inp])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("yh", TensorProto.FLOAT, None)], [w, r, *q])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(MS, 1)])
    ran, shapes = _run_and_analyze(m, tmp_path / "lstm.onnx", {"x": np.ones((seq, batch, inp), np.float32)})
    assert ran["out"] == shapes["y"] == shapes["out"] == (seq, 2, batch, hidden)
    assert ran["yh"] == shapes["yh"] == shapes["yc"] == (2, batch, hidden)


def test_int8_matmuls_that_output_floats_have_a_matmuls_shape(tmp_path):
    """DynamicQuantizeMatMul (float A) and MatMulIntegerToFloat (u8 A, float scales), two of each in a row: the
    second's input shape comes only from the first's rule."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-8, 8, (16, 16)).astype(np.int8), n) for n in ("w0", "w1")]
    inits += [_scalar("ws", 0.01, np.float32), _scalar("as", 0.02, np.float32), _scalar("az", 3, np.uint8)]
    nodes = [helper.make_node("DynamicQuantizeMatMul", ["x", "w0", "ws"], ["d0"], domain=MS),
             helper.make_node("DynamicQuantizeMatMul", ["d0", "w1", "ws"], ["d1"], domain=MS),
             helper.make_node("QuantizeLinear", ["d1", "as", "az"], ["q"]),
             helper.make_node("MatMulIntegerToFloat", ["q", "w0", "as", "ws", "az"], ["f0"], domain=MS),
             helper.make_node("QuantizeLinear", ["f0", "as", "az"], ["q1"]),
             helper.make_node("MatMulIntegerToFloat", ["q1", "w1", "as", "ws", "az"], ["out"], domain=MS)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 16])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(MS, 1)])
    ran, shapes = _run_and_analyze(m, tmp_path / "dq.onnx", {"x": np.ones((2, 5, 16), np.float32)})
    assert ran["out"] == (2, 5, 16)
    assert shapes["d0"] == shapes["d1"] == shapes["f0"] == shapes["out"] == (2, 5, 16)
