"""Recurrent layers: LSTM (4 gates), GRU (3), RNN (1).  A multiply-add counts 2.  MATRIX.

    X [seq, batch, in] (layout=1: [batch, seq, in]), W [dirs, G·h, in], R [dirs, G·h, h], B [dirs, 2·G·h]
    h = hidden_size (else R's last dim), dirs = 2 for direction="bidirectional" (else W's first dim or 1)

    FLOPs = dirs · seq · ( 2·batch·G·h·(in + h)        x·Wᵀ and h·Rᵀ for every gate
                         + 2·batch·G·h                  Wb and Rb, when B is given
                         + batch·h·gate_math            the gate nonlinearities and state update
                         + 2·3·batch·h )                LSTM peepholes, when P is given

    gate_math, from the elementwise table (activations attribute honoured; defaults shown):
        LSTM  3·f + g + h + 4  (f=Sigmoid 4, g=h=Tanh 5; c = f⊙c + i⊙g, H = o⊙h(c): 4)   = 26
        GRU   2·f + g + 5      (z, r; n = g(.. + r⊙(..)): 2; H = (1-z)⊙n + z⊙H: 3)       = 18
        RNN   f                (Tanh)                                                    = 5
Bytes: io_cost — X, W, R, B and the initial states read once (W and R stay in cache across steps), Y/Y_h/Y_c
written once.
com.microsoft DynamicQuantizeLSTM (W [dirs, in, 4h]) uses the LSTM count with its hidden_size attribute.
"""

from __future__ import annotations

from planner.costs.elementwise import per_element
from planner.costs.registry import OpClass, OpCost, io_cost, register
from planner.model.ir import NodeInfo
from planner.model.recurrent import shape_of

DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _activations(node: NodeInfo, kind: str) -> list[int]:
    defaults = DEFAULT_ACTIVATIONS[kind]
    given = node.attr("activations", None)
    names = list(given) if isinstance(given, (list, tuple)) else []
    out = []
    for i, default in enumerate(defaults):
        name = names[i] if i < len(names) else default
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        k = per_element(name) if isinstance(name, str) else 0
        out.append(k or per_element(default))
    return out


def gate_math(node: NodeInfo, kind: str) -> int:
    acts = _activations(node, kind)
    if kind == "LSTM":
        f, g, h = acts
        return 3 * f + g + h + 4
    if kind == "GRU":
        f, g = acts
        return 2 * f + g + 5
    return acts[0]


def rnn_cost(node: NodeInfo, kind: str, peephole_input: int | None = None) -> OpCost:
    shape = shape_of(node)
    if shape is None:
        return io_cost(node)
    x = node.in_shape(0)
    seq = x[1] if node.attr("layout", 0) == 1 else x[0]
    g, batch, in_size, h, dirs = shape.gates, shape.batch, shape.inputs, shape.hidden, shape.directions
    step = 2 * batch * g * h * (in_size + h) + batch * h * gate_math(node, kind)
    if node.has_input(3):
        step += 2 * batch * g * h
    if peephole_input is not None and node.has_input(peephole_input):
        step += 2 * 3 * batch * h
    return io_cost(node, dirs * seq * step)


@register("LSTM", op_class=OpClass.MATRIX)
@register("DynamicQuantizeLSTM", domain="com.microsoft", op_class=OpClass.MATRIX)
def lstm(node: NodeInfo) -> OpCost:
    return rnn_cost(node, "LSTM", peephole_input=7)


@register("GRU", op_class=OpClass.MATRIX)
def gru(node: NodeInfo) -> OpCost:
    return rnn_cost(node, "GRU")


@register("RNN", op_class=OpClass.MATRIX)
def rnn(node: NodeInfo) -> OpCost:
    return rnn_cost(node, "RNN")
