"""A QOperator CNN as onnxruntime runs it: its NHWC transformer rewrites QLinearConv into com.microsoft
QLinearConv (channels_last) between Transposes, names the new tensors afresh, and onnx's inference knows none
of the com.microsoft ops. Without shape rules for them every convolution after the first costs nothing (the zoo's
QOperator CNNs were predicted 98% too fast). Shapes and FLOPs here are worked out by hand."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import planner.targets.host as host
from planner.costs import lookup
from planner.model.loader import load_model
from planner.ort.executed import ort_analysis


def _qcnn(path) -> str:
    def t(name, v, dtype):
        return numpy_helper.from_array(np.array(v, dtype), name)

    rng = np.random.default_rng(0)
    inits = [t("xs", 0.02, np.float32), t("xz", 128, np.uint8), t("s", 0.05, np.float32), t("z", 128, np.uint8),
             t("ws", 0.01, np.float32), t("wz", 0, np.int8),
             t("w1", rng.integers(-100, 100, (16, 8, 3, 3)), np.int8), t("b1", np.zeros(16), np.int32),
             t("w2", rng.integers(-100, 100, (16, 1, 3, 3)), np.int8), t("b2", np.zeros(16), np.int32)]
    ms = "com.microsoft"
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "w1", "ws", "wz", "s", "z", "b1"], ["c1"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("QLinearConv", ["c1", "s", "z", "w2", "ws", "wz", "s", "z", "b2"], ["c2"], name="dw",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("QLinearAdd", ["c1", "s", "z", "c2", "s", "z", "s", "z"], ["a"], name="add", domain=ms),
        helper.make_node("QLinearGlobalAveragePool", ["a", "s", "z", "s", "z"], ["p"], name="gap", domain=ms,
                         channels_last=0),
        helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"]),
    ]
    g = helper.make_graph(nodes, "qcnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)], ir_version=8)
    onnx.save(m, str(path))
    return str(path)


def test_every_tensor_of_the_nhwc_graph_has_its_shape(tmp_path):
    path = _qcnn(tmp_path / "qcnn.onnx")
    a = ort_analysis(load_model(path), {"H": 40, "W": 24}, batch=2)
    assert a.unknown_shapes == []
    convs = [n for n in a.graph.nodes if n.op_type == "QLinearConv"]
    assert len(convs) == 2
    # stride 2, pad 1, 3x3 on 40 x 24: (40 + 2 - 3) // 2 + 1 = 20 rows, (24 + 2 - 3) // 2 + 1 = 12 columns
    for n in convs:
        last = bool(n.attrs.get("channels_last", 0))
        assert n.outputs[0].shape == ((2, 20, 12, 16) if last else (2, 16, 20, 12))
    # onnxruntime runs the model and agrees on the output
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((2, 8, 40, 24), np.float32)})[0]
    assert y.shape == a.graph.tensors[a.graph.outputs[0]].shape == (2, 16, 1, 1)


def test_the_convolutions_cost_what_they_compute(tmp_path):
    a = ort_analysis(load_model(_qcnn(tmp_path / "qcnn.onnx")), {"H": 40, "W": 24}, batch=1)
    dense, dw = sorted((n for n in a.graph.nodes if n.op_type == "QLinearConv"),
                       key=lambda n: n.inputs[3].shape[1])[::-1]
    out = 20 * 12 * 16
    # 2 FLOPs per MAC, 8 input channels x 3 x 3 per output (dense), 1 x 3 x 3 (depthwise), plus the bias add
    assert lookup(dense.domain, dense.op_type).formula(dense).flops == 2 * out * 8 * 9 + out
    assert lookup(dw.domain, dw.op_type).formula(dw).flops == 2 * out * 9 + out


def test_int8_has_its_own_peak_on_x86_without_vnni(monkeypatch):
    # AVX2 without VNNI: u8 x s8 through VPMADDUBSW, twice the fp32 rate per cycle; VNNI four times; none: fp32's
    def peaks(flags):
        sources: dict[str, str] = {}
        return host._matrix_peaks(set(flags.split()), 1, 3e9, 96e9, "1 core x 3 GHz", sources)[0]

    assert peaks("avx2 fma")["int8"] == 2 * 96e9
    assert peaks("avx512f avx512bw")["int8"] == 2 * 96e9
    assert peaks("avx2 avx512_vnni")["int8"] == 4 * 96e9
    assert "int8" not in peaks("sse4_2")
