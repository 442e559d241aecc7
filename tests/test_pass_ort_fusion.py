"""ort-fusion (onnxruntime's transformer optimizer): GELU, SkipLayerNormalization; parity; no-op on plain MLPs."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper
from pass_helpers import fvi, init, make_model, mlp, rand, serialized

import passes
from passes.runner import Runner
from passes.verify import Reference


def _run(m):
    r = Runner(m, Reference.build(m)).run(passes.Pipeline("t", ("ort-fusion",)))
    return r, r.steps[0]


def ffn_block(h: int = 32, inter: int = 64):
    """y = LayerNorm(x + (gelu_erf(x·W1 + b1))·W2 + b2)"""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Div", ["a1", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["a1", "e1"], ["g0"]),
        helper.make_node("Mul", ["g0", "half"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Add", ["a2", "x"], ["res"]),
        helper.make_node("LayerNormalization", ["res", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12),
    ]
    inits = [init("w1", rand((h, inter), 1)), init("b1", rand((inter,), 2)), init("w2", rand((inter, h), 3)),
             init("b2", rand((h,), 4)), init("sqrt2", np.array(math.sqrt(2), np.float32)),
             init("one", np.array(1.0, np.float32)), init("half", np.array(0.5, np.float32)),
             init("gamma", np.ones(h, np.float32)), init("beta", np.zeros(h, np.float32))]
    return make_model(nodes, [fvi("x", ["batch", "sequence", h])], [fvi("y", ["batch", "sequence", h])], inits)


def test_fuses_gelu_and_skip_layer_norm_with_parity():
    m = ffn_block()
    before = serialized(m)
    r, step = _run(m)
    assert step.applied and step.reason is None
    assert step.counts.get("BiasGelu") == 1 and step.counts.get("SkipLayerNormalization") == 1, step.counts
    ops = {(n.domain, n.op_type) for n in r.model.graph.node}
    assert ("com.microsoft", "BiasGelu") in ops and ("", "Erf") not in ops
    assert any(o.domain == "com.microsoft" for o in r.model.opset_import)
    assert r.drift.cosine > 0.99999 and r.drift.max_rel_err < 1e-4
    assert serialized(m) == before


def test_tanh_gelu_becomes_fast_gelu():
    # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    nodes = [helper.make_node("Pow", ["x", "three"], ["x3"]), helper.make_node("Mul", ["x3", "c"], ["cx3"]),
             helper.make_node("Add", ["x", "cx3"], ["inner"]), helper.make_node("Mul", ["inner", "k"], ["ki"]),
             helper.make_node("Tanh", ["ki"], ["t"]), helper.make_node("Add", ["t", "one"], ["t1"]),
             helper.make_node("Mul", ["x", "half"], ["hx"]), helper.make_node("Mul", ["hx", "t1"], ["y"])]
    inits = [init("three", np.array(3.0, np.float32)), init("c", np.array(0.044715, np.float32)),
             init("k", np.array(math.sqrt(2 / math.pi), np.float32)), init("one", np.array(1.0, np.float32)),
             init("half", np.array(0.5, np.float32))]
    m = make_model(nodes, [fvi("x", ["batch", 16])], [fvi("y", ["batch", 16])], inits)
    r, step = _run(m)
    assert step.counts.get("FastGelu") == 1 or step.counts.get("Gelu") == 1, step.counts
    assert "Tanh" not in [n.op_type for n in r.model.graph.node]
    assert r.drift.cosine > 0.99999


def test_nothing_to_fuse_leaves_the_model_unchanged():
    m = mlp()
    r, step = _run(m)
    assert not step.changed and step.counts == {}
    assert serialized(r.model) == serialized(m)


def test_a_gelu_with_the_wrong_constant_is_not_fused():
    m = ffn_block()
    for t in m.graph.initializer:
        if t.name == "sqrt2":
            t.CopyFrom(init("sqrt2", np.array(1.5, np.float32)))  # not GELU any more
    r, step = _run(m)
    assert "BiasGelu" not in step.counts and "Gelu" not in step.counts
    assert "Erf" in [n.op_type for n in r.model.graph.node]
