"""Control-flow models of the zoo, built with onnx.helper as exporters lay them out (issue #16: a whole model
inside a top-level If, a Loop over steps, a Scan), their batch declared -1 as some exporters write it.

    if_model    image [-1, 3, S, S], mode bool [] -> If(mode): a CNN with 3x3 convolutions or one with 5x5
                ones (a mode switch, as models with a sample-rate or quality switch export); each branch
                is the whole model: Conv+Relu stride 2 per stage, GlobalAveragePool, Flatten, Gemm to 10
    if_rnn      features [time, -1, inputs], mode bool [] -> If(mode): an LSTM or a GRU layer over time, its last
                state -> Gemm to 10 (a voice-activity model's sample-rate switch, each rate its own recurrent net)
    loop_model  x [-1, inputs] -> Loop of `steps` trips (the trip count a constant): h = tanh(x W + h R + b),
                the states stacked as a scan output; last state -> Gemm to 10
    scan_model  xs [sequence, -1, inputs] -> Scan over the sequence: h = tanh(x_t W + h R + b) (an Elman RNN
                cell), the initial state zeros shaped from the batch; last state -> Gemm to 10

Opset 17, IR 8, seeded weights (scaled so tanh stays out of saturation).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET, IR = 17, 8
CLASSES = 10


def _w(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR)
    onnx.checker.check_model(m)
    return m


def _cnn_branch(rng: np.random.Generator, name: str, channels: list[int], k: int) -> onnx.GraphProto:
    nodes, inits, prev, cin = [], [], "image", 3
    for i, c in enumerate(channels):
        inits += [numpy_helper.from_array(_w(rng, (c, cin, k, k), cin * k * k), f"{name}_w{i}"),
                  numpy_helper.from_array(np.zeros(c, np.float32), f"{name}_b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"{name}_w{i}", f"{name}_b{i}"], [f"{name}_c{i}"],
                                   name=f"{name}_conv{i}", kernel_shape=[k, k], pads=[k // 2] * 4, strides=[2, 2]),
                  helper.make_node("Relu", [f"{name}_c{i}"], [f"{name}_r{i}"], name=f"{name}_relu{i}")]
        prev, cin = f"{name}_r{i}", c
    inits += [numpy_helper.from_array(_w(rng, (cin, CLASSES), cin), f"{name}_fc"),
              numpy_helper.from_array(np.zeros(CLASSES, np.float32), f"{name}_fcb")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], [f"{name}_gap"], name=f"{name}_gap"),
              helper.make_node("Flatten", [f"{name}_gap"], [f"{name}_flat"], name=f"{name}_flatten"),
              helper.make_node("Gemm", [f"{name}_flat", f"{name}_fc", f"{name}_fcb"], [f"{name}_logits"],
                               name=f"{name}_fc")]
    out = helper.make_tensor_value_info(f"{name}_logits", TensorProto.FLOAT, None)
    return helper.make_graph(nodes, name, [], [out], inits)


def if_model(channels: list[int], image: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    then_g = _cnn_branch(rng, "fast", channels, 3)
    else_g = _cnn_branch(rng, "wide", channels, 5)
    node = helper.make_node("If", ["mode"], ["logits"], name="mode_switch", then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph(
        [node], "if_model",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [-1, 3, image, image]),
         helper.make_tensor_value_info("mode", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [-1, CLASSES])])
    return _model(graph)


def _rnn_branch(rng: np.random.Generator, kind: str, inputs: int, hidden: int) -> onnx.GraphProto:
    gates = {"LSTM": 4, "GRU": 3}[kind]
    p = kind.lower()
    inits = [numpy_helper.from_array(_w(rng, (1, gates * hidden, inputs), inputs), f"{p}_W"),
             numpy_helper.from_array(_w(rng, (1, gates * hidden, hidden), hidden), f"{p}_R"),
             numpy_helper.from_array(np.zeros((1, 2 * gates * hidden), np.float32), f"{p}_B"),
             numpy_helper.from_array(np.array([-1, hidden], np.int64), f"{p}_flat"),
             numpy_helper.from_array(_w(rng, (hidden, CLASSES), hidden), f"{p}_fc"),
             numpy_helper.from_array(np.zeros(CLASSES, np.float32), f"{p}_fcb")]
    nodes = [helper.make_node(kind, ["features", f"{p}_W", f"{p}_R", f"{p}_B"], ["", f"{p}_h"], name=p,
                              hidden_size=hidden),
             helper.make_node("Reshape", [f"{p}_h", f"{p}_flat"], [f"{p}_hf"], name=f"{p}_flatten"),
             helper.make_node("Gemm", [f"{p}_hf", f"{p}_fc", f"{p}_fcb"], [f"{p}_logits"], name=f"{p}_fc")]
    return helper.make_graph(nodes, p, [], [helper.make_tensor_value_info(f"{p}_logits", TensorProto.FLOAT, None)],
                             inits)


def if_rnn(inputs: int, hidden: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    node = helper.make_node("If", ["mode"], ["logits"], name="rate_switch",
                            then_branch=_rnn_branch(rng, "LSTM", inputs, hidden),
                            else_branch=_rnn_branch(rng, "GRU", inputs, hidden))
    graph = helper.make_graph(
        [node], "if_rnn",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["time", -1, inputs]),
         helper.make_tensor_value_info("mode", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [-1, CLASSES])])
    return _model(graph)


def _cell(rng: np.random.Generator, inputs: int, hidden: int, x: str, h: str, out: str,
          prefix: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """out = tanh(x W + h R + b): the nodes and the weights (the weights go to the outer graph)."""
    inits = [numpy_helper.from_array(_w(rng, (inputs, hidden), inputs), f"{prefix}W"),
             numpy_helper.from_array(_w(rng, (hidden, hidden), hidden) * 0.5, f"{prefix}R"),
             numpy_helper.from_array((rng.standard_normal(hidden) * 0.1).astype(np.float32), f"{prefix}b")]
    nodes = [helper.make_node("MatMul", [x, f"{prefix}W"], [f"{prefix}xw"], name=f"{prefix}xw"),
             helper.make_node("MatMul", [h, f"{prefix}R"], [f"{prefix}hr"], name=f"{prefix}hr"),
             helper.make_node("Add", [f"{prefix}xw", f"{prefix}hr"], [f"{prefix}s"], name=f"{prefix}add"),
             helper.make_node("Add", [f"{prefix}s", f"{prefix}b"], [f"{prefix}sb"], name=f"{prefix}bias"),
             helper.make_node("Tanh", [f"{prefix}sb"], [out], name=f"{prefix}tanh")]
    return nodes, inits


def _head(rng: np.random.Generator, hidden: int, h: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    inits = [numpy_helper.from_array(_w(rng, (hidden, CLASSES), hidden), "fc"),
             numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fcb")]
    return [helper.make_node("Gemm", [h, "fc", "fcb"], ["logits"], name="classifier")], inits


def _zeros_like_batch(src: str, axis: int, hidden: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """h0 = zeros [batch, hidden], the batch read from src's shape at `axis`."""
    inits = [numpy_helper.from_array(np.array([axis], np.int64), "batch_axis"),
             numpy_helper.from_array(np.array([hidden], np.int64), "hidden_len")]
    nodes = [helper.make_node("Shape", [src], ["src_shape"], name="shape"),
             helper.make_node("Gather", ["src_shape", "batch_axis"], ["batch_len"], name="batch_len", axis=0),
             helper.make_node("Concat", ["batch_len", "hidden_len"], ["h0_shape"], name="h0_shape", axis=0),
             helper.make_node("ConstantOfShape", ["h0_shape"], ["h0"], name="h0",
                              value=numpy_helper.from_array(np.zeros(1, np.float32)))]
    return nodes, inits


def loop_model(hidden: int, inputs: int, steps: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    cell_nodes, inits = _cell(rng, inputs, hidden, "x", "h_in", "h_out", "cell_")
    body = helper.make_graph(
        [*cell_nodes, helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
         helper.make_node("Identity", ["h_out"], ["h_scan"], name="h_scan")],
        "step",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("h_scan", TensorProto.FLOAT, None)])
    zero_nodes, zero_inits = _zeros_like_batch("x", 0, hidden)
    head_nodes, head_inits = _head(rng, hidden, "h_last")
    inits += [*zero_inits, *head_inits, numpy_helper.from_array(np.array(steps, np.int64), "trips"),
              numpy_helper.from_array(np.array(True), "cond")]
    graph = helper.make_graph(
        [*zero_nodes, helper.make_node("Loop", ["trips", "cond", "h0"], ["h_last", "states"], name="steps",
                                       body=body), *head_nodes],
        "loop_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [-1, CLASSES]),
         helper.make_tensor_value_info("states", TensorProto.FLOAT, [steps, -1, hidden])], inits)
    return _model(graph)


def scan_model(hidden: int, inputs: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    cell_nodes, inits = _cell(rng, inputs, hidden, "x_t", "h_in", "h_out", "cell_")
    body = helper.make_graph(
        [*cell_nodes, helper.make_node("Identity", ["h_out"], ["y_t"], name="y_t")], "rnn_step",
        [helper.make_tensor_value_info("h_in", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("h_out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, None)])
    zero_nodes, zero_inits = _zeros_like_batch("xs", 1, hidden)
    head_nodes, head_inits = _head(rng, hidden, "h_last")
    graph = helper.make_graph(
        [*zero_nodes, helper.make_node("Scan", ["h0", "xs"], ["h_last", "ys"], name="rnn", body=body,
                                       num_scan_inputs=1), *head_nodes],
        "scan_model", [helper.make_tensor_value_info("xs", TensorProto.FLOAT, ["sequence", -1, inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [-1, CLASSES]),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, ["sequence", -1, hidden])],
        [*inits, *zero_inits, *head_inits])
    return _model(graph)


BUILDERS = {"if_model": if_model, "if_rnn": if_rnn, "loop_model": loop_model, "scan_model": scan_model}


def build(model: str, config: dict, seed: int = 0) -> onnx.ModelProto:
    """The control-flow model `model` (a key of BUILDERS) with the family's config."""
    return BUILDERS[model](**config, seed=seed)
