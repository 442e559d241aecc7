"""BERT-base- and ResNet-50-shaped graphs whose weights are never produced, for checking GPU predictions.

benchmarks/gpu_published.py plans the models that published GPU measurements ran; planning needs every
tensor's shape and dtype, not its values. So each initializer of 1 KiB or more is described as external data
(``location`` / ``offset`` / ``length``) in one sparse file of zeros beside the model (``truncate()``: no disk
space), as models/llama_like.py does for decoders.

* ``make_bert``: the Hugging Face BERT layout (word + position + token-type embeddings, LayerNorm, per layer
  Q/K/V MatMul + Add, scaled scores + mask, Softmax, context, output dense, residual LayerNorm, GELU (erf)
  FFN), in fp32 or fp16; ``int8=True`` runs each projection as TensorRT's int8 BERT does: a static
  QuantizeLinear of the activation, ``MatMulInteger`` on int8 weights, the int32 result scaled back
  (Cast, Mul) before the bias.
* ``make_resnet50``: ResNet-50 v1.5 (torchvision's layout: stride on the 3x3 convolution of each bottleneck),
  Conv + BatchNormalization + Relu, a 7x7 stem and MaxPool, stages of 3/4/6/3 bottlenecks, average pool, fc.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.llama_like import EXTERNAL_THRESHOLD, IR_VERSION, OPSET, external_tensor

_DT = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int8": TensorProto.INT8}
_NP = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


class _Graph:
    """Nodes plus initializers: small ones inline (zeros or the value given), large ones external metadata."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.offset = 0
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.count = 0

    def weight(self, name: str, shape: tuple[int, ...], dtype: str, value: float | None = None) -> str:
        nbytes = math.prod(shape) * np.dtype(_NP[dtype]).itemsize
        if value is None and nbytes >= EXTERNAL_THRESHOLD:
            t, self.offset = external_tensor(name, shape, _DT[dtype], nbytes, self.location, self.offset)
            self.inits.append(t)
        else:
            arr = np.full(shape, 0.0 if value is None else value, dtype=_NP[dtype])
            self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op_type}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"/{op_type}_{self.count}", **attrs))
        return out


def make_bert(*, layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072,
              vocab: int = 30522, max_position: int = 512, dtype: str = "float16", int8: bool = False,
              location: str = "bert.onnx.data") -> tuple[onnx.ModelProto, int]:
    """The model and the size its external data file must have."""
    g = _Graph(location)
    d = hidden // heads
    fdt = _DT[dtype]

    quantized: dict[str, str] = {}  # each activation quantized once, whatever reads it (Q, K and V share one)

    def linear(x: str, k: int, n: int) -> str:
        if int8:
            if x not in quantized:
                quantized[x] = g.op("QuantizeLinear", [x, g.weight(f"s{g.count}", (), dtype, 0.05),
                                                       g.weight(f"z{g.count}", (), "int8", 0)])
            xq = quantized[x]
            y = g.op("MatMulInteger", [xq, g.weight(f"w{g.count}", (k, n), "int8")])
            y = g.op("Cast", [y], to=fdt)
            y = g.op("Mul", [y, g.weight(f"ws{g.count}", (), dtype, 0.001)])
        else:
            y = g.op("MatMul", [x, g.weight(f"w{g.count}", (k, n), dtype)])
        return g.op("Add", [y, g.weight(f"b{g.count}", (n,), dtype)])

    def norm(x: str) -> str:
        return g.op("LayerNormalization", [x, g.weight(f"g{g.count}", (hidden,), dtype),
                                           g.weight(f"be{g.count}", (hidden,), dtype)], axis=-1, epsilon=1e-12)

    x = g.op("Gather", [g.weight("word_embeddings", (vocab, hidden), dtype), "input_ids"], axis=0)
    pos = g.op("Slice", [g.weight("position_embeddings", (max_position, hidden), dtype),
                         _i64(g, "start", [0]), _shape_dim(g, "input_ids", 1), _i64(g, "axis0", [0])])
    x = g.op("Add", [x, pos])
    x = g.op("Add", [x, g.weight("token_type_row", (hidden,), dtype)])
    x = norm(x)
    m = g.op("Unsqueeze", ["attention_mask", _i64(g, "axes12", [1, 2])])
    m = g.op("Cast", [m], to=fdt)
    m = g.op("Sub", [g.weight("one", (), dtype, 1.0), m])
    mask = g.op("Mul", [m, g.weight("neg", (), dtype, -10000.0)])
    heads_shape = _i64(g, "heads_shape", [0, 0, heads, d])
    merge_shape = _i64(g, "merge_shape", [0, 0, hidden])
    for _ in range(layers):
        q, k, v = (g.op("Reshape", [linear(x, hidden, hidden), heads_shape]) for _ in range(3))
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        s = g.op("MatMul", [q, k])
        s = g.op("Div", [s, g.weight(f"sqrt{g.count}", (), dtype, math.sqrt(d))])
        s = g.op("Add", [s, mask])
        p = g.op("Softmax", [s], axis=-1)
        c = g.op("MatMul", [p, v])
        c = g.op("Reshape", [g.op("Transpose", [c], perm=[0, 2, 1, 3]), merge_shape])
        x = norm(g.op("Add", [linear(c, hidden, hidden), x]))
        f = linear(x, hidden, intermediate)
        e = g.op("Erf", [g.op("Div", [f, g.weight(f"r2{g.count}", (), dtype, math.sqrt(2.0))])])
        e = g.op("Mul", [g.op("Mul", [f, g.op("Add", [e, g.weight(f"o{g.count}", (), dtype, 1.0)])]),
                         g.weight(f"h{g.count}", (), dtype, 0.5)])
        x = norm(g.op("Add", [linear(e, intermediate, hidden), x]))
    g.nodes[-1].output[0] = "last_hidden_state"
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", fdt, ["batch", "sequence", hidden])]
    return _model(g, "bert", inputs, outputs, "BERT-shaped encoder, weights not produced"), g.offset


def _i64(g: _Graph, name: str, value) -> str:
    if not any(t.name == name for t in g.inits):
        g.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
    return name


def _shape_dim(g: _Graph, tensor: str, axis: int) -> str:
    return g.op("Shape", [tensor], start=axis, end=axis + 1)


def make_resnet50(*, dtype: str = "float32", location: str = "resnet50.onnx.data") -> tuple[onnx.ModelProto, int]:
    g = _Graph(location)

    def conv_bn(x: str, c_in: int, c_out: int, k: int, stride: int, relu: bool = True) -> str:
        y = g.op("Conv", [x, g.weight(f"w{g.count}", (c_out, c_in, k, k), dtype)], kernel_shape=[k, k],
                 strides=[stride, stride], pads=[k // 2] * 4)
        y = g.op("BatchNormalization", [y] + [g.weight(f"bn{g.count}_{i}", (c_out,), dtype) for i in range(4)],
                 epsilon=1e-5)
        return g.op("Relu", [y]) if relu else y

    x = conv_bn("image", 3, 64, 7, 2)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            y = conv_bn(x, c_in, width, 1, 1)
            y = conv_bn(y, width, width, 3, stride)
            y = conv_bn(y, width, width * 4, 1, 1, relu=False)
            short = conv_bn(x, c_in, width * 4, 1, stride, relu=False) if b == 0 else x
            x = g.op("Relu", [g.op("Add", [y, short])])
            c_in = width * 4
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [x, g.weight("fc_w", (1000, 2048), dtype), g.weight("fc_b", (1000,), dtype)], transB=1)
    g.nodes[-1].output[0] = "logits"
    fdt = _DT[dtype]
    inputs = [helper.make_tensor_value_info("image", fdt, ["batch", 3, 224, 224])]
    outputs = [helper.make_tensor_value_info("logits", fdt, ["batch", 1000])]
    return _model(g, "resnet50", inputs, outputs, "ResNet-50 v1.5, weights not produced"), g.offset


def _model(g: _Graph, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="onnx-planner", doc_string=doc)


def write(model: onnx.ModelProto, data_size: int, path: str | Path, location: str) -> Path:
    """The model and its sparse data file, each through a temporary name and os.replace."""
    path = Path(path)
    data = path.with_name(location)
    for target, fill in ((data, None), (path, model.SerializeToString(deterministic=True))):
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            if fill is None:
                f.truncate(data_size)
            else:
                f.write(fill)
        os.replace(tmp, target)
    return path
