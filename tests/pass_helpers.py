"""Tiny models for the pass tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def make_model(nodes, inputs, outputs, inits=(), opset: int = OPSET) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), "t", list(inputs), list(outputs), list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def fvi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def rand(shape, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def mlp(k: int = 64, n: int = 32, classes: int = 10) -> onnx.ModelProto:
    """x [batch, k] -> MatMul + Add -> Relu -> MatMul + Add -> logits [batch, classes]"""
    return make_model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
         helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
         helper.make_node("Add", ["o", "b2"], ["logits"])],
        [fvi("x", ["batch", k])], [fvi("logits", ["batch", classes])],
        [init("w1", rand((k, n), 1)), init("b1", rand((n,), 2)), init("w2", rand((n, classes), 3)),
         init("b2", rand((classes,), 4))])


def serialized(m: onnx.ModelProto) -> bytes:
    return m.SerializeToString(deterministic=True)
