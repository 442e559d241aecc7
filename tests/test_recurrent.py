"""planner.model.recurrent: a layer's sizes from its node, its counts by hand, and the fit recovering known costs."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from planner.calibration.recurrent import MIN_SAMPLES, TERMS, features, fit, seconds
from planner.model.build import build_graph
from planner.model.ir import Graph
from planner.model.recurrent import RecurrentShape, shape_of
from planner.predict.fusion import build_kernels, graph_costs


def _layer_model(op: str, seq: int, batch: int, inputs: int, hidden: int, layout: int = 0,
                 direction: str = "forward", hidden_attr: bool = True) -> onnx.ModelProto:
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs = 2 if direction == "bidirectional" else 1
    x_shape = [batch, seq, inputs] if layout else [seq, batch, inputs]
    w = helper.make_tensor("W", TensorProto.FLOAT, [dirs, g * hidden, inputs], [0.01] * (dirs * g * hidden * inputs))
    r = helper.make_tensor("R", TensorProto.FLOAT, [dirs, g * hidden, hidden], [0.01] * (dirs * g * hidden * hidden))
    attrs = {"direction": direction, "layout": layout}
    if hidden_attr:
        attrs["hidden_size"] = hidden
    node = helper.make_node(op, ["x", "W", "R"], ["y"], name="rnn", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, r])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)


def _graph(model: onnx.ModelProto) -> Graph:
    return build_graph(model)


@pytest.mark.parametrize(("layout", "direction", "hidden_attr", "dirs"),
                         [(0, "forward", True, 1), (1, "forward", True, 1), (0, "bidirectional", False, 2)])
def test_shape_of_reads_batch_input_and_hidden(layout, direction, hidden_attr, dirs):
    graph = _graph(_layer_model("LSTM", 7, 3, 20, 16, layout, direction, hidden_attr))
    assert shape_of(graph.nodes[0]) == RecurrentShape(gates=4, batch=3, inputs=20, hidden=16, directions=dirs)


def test_kernels_carry_the_layer_sizes():
    graph = _graph(_layer_model("GRU", 5, 2, 12, 8))
    (k,) = build_kernels(graph, graph_costs(graph), True, False)
    assert k.steps == 5 and k.recurrent == RecurrentShape(3, 2, 12, 8)


def test_features_by_hand():
    # LSTM, batch 2, input 10, hidden 6, bidirectional, 5 steps: 10 steps in all
    f = features(RecurrentShape(gates=4, batch=2, inputs=10, hidden=6, directions=2), steps=5)
    assert f == [1, 10, 10 * 4 * 36, 10 * 2 * 4 * 36, 10 * 2 * 4 * 6 * 10, 10 * 2 * 4 * 6, 10 * 2]
    costs = dict(zip(TERMS, (1e-6, 2e-7, 1e-11, 2e-11, 3e-11, 1e-9, 5e-8), strict=True))
    assert seconds(costs, RecurrentShape(4, 2, 10, 6, 2), 5) == pytest.approx(
        1e-6 + 10 * 2e-7 + 1440 * 1e-11 + 2880 * 2e-11 + 4800 * 3e-11 + 480 * 1e-9 + 20 * 5e-8)


def _layers(costs, shapes):
    return [(s, n, seconds(costs, s, n)) for s, n in shapes]


SHAPES = [(RecurrentShape(3, b, i, h), n) for b, i, h, n in
          [(1, 64, 128, 32), (16, 256, 256, 16), (4, 96, 64, 24), (2, 32, 48, 12), (32, 64, 96, 20),
           (1, 160, 160, 16), (1, 32, 64, 40), (1, 128, 96, 24), (8, 160, 120, 16), (1, 96, 48, 48),
           (4, 192, 192, 8), (64, 32, 64, 12)]]


def test_fit_recovers_the_costs_the_layers_were_made_from():
    costs = {"call": 8e-6, "step": 0.1e-6, "weights": 2e-11, "recurrent": 1.5e-11, "inputs": 1.6e-11,
             "gates": 1.7e-9, "rows": 4e-8}
    got = fit(_layers(costs, SHAPES))
    assert got is not None
    for term in TERMS:
        assert got[term] == pytest.approx(costs[term], rel=1e-6)


def test_fit_keeps_every_cost_nonnegative():
    # layers made with no per-step cost at all, then 3% noise either way: no cost may come out negative
    costs = {"call": 5e-6, "step": 0.0, "weights": 3e-11, "recurrent": 1.2e-11, "inputs": 1.4e-11, "gates": 2e-9,
             "rows": 3e-8}
    layers = [(s, n, t * (1.03 if k % 2 else 0.97)) for k, (s, n, t) in enumerate(_layers(costs, SHAPES))]
    got = fit(layers)
    assert got is not None and all(v >= 0 for v in got.values())
    for s, n, t in layers:  # and it still fits what it was given
        assert seconds(got, s, n) == pytest.approx(t, rel=0.08)


def test_too_few_layers_fit_nothing():
    costs = dict.fromkeys(TERMS, 1e-9)
    assert fit(_layers(costs, SHAPES[:MIN_SAMPLES - 1])) is None
