"""conv-affine (our rules): per-channel Add/Sub/Mul/Div after a Conv folded into it; every variant, negatives."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from pass_helpers import fvi, init, make_model, rand, serialized

import passes
from passes.runner import Runner
from passes.verify import Reference

C = 4


def conv_then(op: str, c: np.ndarray, conv_first: bool = True, bias: bool = False, extra_reader: bool = False):
    conv_in = ["x", "w"] + (["b"] if bias else [])
    nodes = [helper.make_node("Conv", conv_in, ["conv"], name="conv", pads=[1, 1, 1, 1])]
    nodes.append(helper.make_node(op, ["conv", "c"] if conv_first else ["c", "conv"], ["y"], name="affine"))
    outputs = [fvi("y", ["batch", C, 8, 8])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["conv"], ["z"]))
        outputs.append(fvi("z", ["batch", C, 8, 8]))
    inits = [init("w", rand((C, 3, 3, 3), 1)), init("c", c)] + ([init("b", rand((C,), 2))] if bias else [])
    return make_model(nodes, [fvi("x", ["batch", 3, 8, 8])], outputs, inits)


def _run(m):
    r = Runner(m, Reference.build(m)).run(passes.Pipeline("t", ("conv-affine",)))
    return r, r.steps[0]


PER_CHANNEL = (1 + np.abs(rand((1, C, 1, 1), 7))).astype(np.float32)


@pytest.mark.parametrize("op, conv_first, bias, c", [
    ("Add", True, False, PER_CHANNEL),
    ("Add", False, True, PER_CHANNEL.reshape(C, 1, 1)),
    ("Sub", True, True, PER_CHANNEL.reshape(C, 1, 1)),
    ("Mul", True, True, PER_CHANNEL),
    ("Mul", False, False, PER_CHANNEL.reshape(C, 1, 1)),
    ("Div", True, True, PER_CHANNEL),
    ("Mul", True, True, np.array(0.5, np.float32)),
])
def test_folds_into_one_conv_with_parity(op, conv_first, bias, c):
    m = conv_then(op, c, conv_first, bias)
    before = serialized(m)
    r, step = _run(m)
    assert step.applied and sum(step.counts.values()) == 1, (step.counts, step.reason)
    assert [n.op_type for n in r.model.graph.node] == ["Conv"]
    assert len(r.model.graph.node[0].input) == 3  # now with a bias
    assert r.drift.cosine > 0.99999 and r.drift.max_rel_err < 1e-5
    assert serialized(m) == before


@pytest.mark.parametrize("kwargs, why", [
    ({"c": rand((1, 1, 8, 8))}, "varies along a non-channel axis"),
    ({"c": PER_CHANNEL, "extra_reader": True}, "other readers"),
    ({"op": "Sub", "conv_first": False, "c": PER_CHANNEL}, "not a Conv's output"),
])
def test_near_misses_do_not_fire_and_say_why(kwargs, why):
    args = {"op": "Add", **kwargs}
    m = conv_then(args.pop("op"), **args)
    r = passes.get_pass("conv-affine").apply(m)
    assert not r.changed and any(why in note for note in r.notes), r.notes


def test_a_residual_add_is_not_a_bias():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
                    helper.make_node("Add", ["conv", "x"], ["y"])],
                   [fvi("x", ["batch", 3, 8, 8])], [fvi("y", ["batch", 3, 8, 8])], [init("w", rand((3, 3, 3, 3)))])
    r = passes.get_pass("conv-affine").apply(m)
    assert not r.changed and any("not a constant" in n for n in r.notes)
