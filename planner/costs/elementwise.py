"""Elementwise ops: FLOPs = output numel × a per-element count from the one table below.

    cost(op) = numel(Y) × FLOPS[op]                      unary, binary (numpy broadcasting), Where, Clip, ...
    cost(op) = numel(Y) × FLOPS[op] × (n_inputs - 1)     variadic Sum / Max / Min (pairwise combines)
    cost(Mean) = numel(Y) × n_inputs                     (n - 1) adds and one divide
    bytes  = io_cost: every input read once (broadcast operands at their own size), the output written once.

How an element is counted (a multiply-add counts 2, as everywhere in the planner):
    * each arithmetic operation, compare, select, min/max, cast or bit operation counts 1;
    * exp, log, sqrt, sin and cos count 1 (hardware transcendental units have them);
    * erf counts 4 (no instruction: a short polynomial), tanh counts 5 ((e^2x - 1) / (e^2x + 1)),
      inverse trigonometric functions count 4, hyperbolic ones 5;
    * composites count the operations of their textbook definition, built from the counts above, e.g.
          Sigmoid  = 1 / (1 + exp(-x))                       neg, exp, add, div            = 4
          Gelu     = 0.5·x·(1 + erf(x/√2))                   mul, erf(4), add, mul, mul    = 8
          Gelu     (approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))     = 13
          Swish    = x · sigmoid(αx)                         mul, sigmoid(4), mul          = 6
          Mish     = x · tanh(softplus(x))                   softplus(3), tanh(5), mul     = 9

`epilogue` marks the ops a GPU runtime folds into the producing Conv/MatMul/Gemm kernel (bias, residual add,
activation, clip). Registrations are generated from the table: add a row, not a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from planner.costs.registry import OpClass, OpCost, attr_str, io_cost, out_numel, register
from planner.model.ir import NodeInfo

MS = "com.microsoft"

PerElement = int | Callable[[NodeInfo], int]


@dataclass(frozen=True)
class Elementwise:
    flops: PerElement  # per output element; a callable when an attribute or optional input changes it
    epilogue: bool = False
    how: str = ""
    domain: str = ""
    variadic: bool = False  # Sum/Mean/Max/Min: the count is per pairwise combine


def _gelu(node: NodeInfo) -> int:
    return 13 if attr_str(node, "approximate", "none") == "tanh" else 8


def _fast_gelu(node: NodeInfo) -> int:
    return 13 + (1 if node.has_input(1) else 0)  # the optional bias add


def _bias_dropout(node: NodeInfo) -> int:
    return 1 + (1 if node.has_input(2) else 0)  # inference: data + bias (+ residual); dropout is identity


E = True  # readability in the table below

# (op_type, domain) -> how one output element is counted.  The single source of per-element FLOPs: other
# families (RNN gates, fused activations) read it through `per_element`.
TABLE: dict[tuple[str, str], Elementwise] = {
    (op, entry.domain): entry
    for op, entry in [
        # arithmetic
        ("Add", Elementwise(1, E, "a + b")),
        ("Sub", Elementwise(1, E, "a - b")),
        ("Mul", Elementwise(1, E, "a * b")),
        ("Div", Elementwise(1, E, "a / b")),
        ("Neg", Elementwise(1, how="-x")),
        ("Abs", Elementwise(1, how="|x|")),
        ("Sign", Elementwise(1, how="sign(x)")),
        ("Floor", Elementwise(1, how="floor(x)")),
        ("Ceil", Elementwise(1, how="ceil(x)")),
        ("Round", Elementwise(1, how="round(x)")),
        ("Reciprocal", Elementwise(1, how="1 / x")),
        ("Mod", Elementwise(3, how="a - b·trunc(a / b): div, trunc, multiply-subtract")),
        ("Pow", Elementwise(3, how="exp(b·log a)")),
        ("BitShift", Elementwise(1, how="a << b")),
        # transcendental
        ("Sqrt", Elementwise(1, how="hardware sqrt")),
        ("Exp", Elementwise(1, how="hardware exp")),
        ("Log", Elementwise(1, how="hardware log")),
        ("Erf", Elementwise(4, E, "polynomial approximation")),
        ("Sin", Elementwise(1, how="hardware sin")),
        ("Cos", Elementwise(1, how="hardware cos")),
        ("Tan", Elementwise(3, how="sin / cos")),
        ("Asin", Elementwise(4, how="polynomial approximation")),
        ("Acos", Elementwise(4, how="polynomial approximation")),
        ("Atan", Elementwise(4, how="polynomial approximation")),
        ("Sinh", Elementwise(5, how="(e^x - e^-x) / 2")),
        ("Cosh", Elementwise(5, how="(e^x + e^-x) / 2")),
        ("Asinh", Elementwise(5, how="log(x + sqrt(x² + 1))")),
        ("Acosh", Elementwise(5, how="log(x + sqrt(x² - 1))")),
        ("Atanh", Elementwise(5, how="0.5·log((1 + x) / (1 - x))")),
        ("Tanh", Elementwise(5, E, "(e^2x - 1) / (e^2x + 1)")),
        ("Sigmoid", Elementwise(4, E, "1 / (1 + exp(-x))")),
        # activations
        ("Relu", Elementwise(1, E, "max(x, 0)")),
        ("LeakyRelu", Elementwise(2, E, "x < 0 ? αx : x: mul, select")),
        ("PRelu", Elementwise(2, E, "x < 0 ? slope·x : x: mul, select")),
        ("ThresholdedRelu", Elementwise(1, how="x > α ? x : 0")),
        ("Elu", Elementwise(4, E, "x < 0 ? α(exp(x) - 1) : x")),
        ("Selu", Elementwise(5, E, "γ·(x > 0 ? x : α·exp(x) - α)")),
        ("Celu", Elementwise(7, how="max(0, x) + min(0, α(exp(x/α) - 1))")),
        ("Softplus", Elementwise(3, E, "log(exp(x) + 1)")),
        ("Softsign", Elementwise(3, how="x / (1 + |x|)")),
        ("Mish", Elementwise(9, E, "x·tanh(softplus(x))")),
        ("HardSigmoid", Elementwise(4, E, "max(0, min(1, αx + β))")),
        ("HardSwish", Elementwise(5, E, "x·hardsigmoid(x)")),
        ("Swish", Elementwise(6, E, "x·sigmoid(αx)")),
        ("Gelu", Elementwise(_gelu, E, "erf form 8, tanh form 13")),
        ("SwiGLU", Elementwise(7, how="swish(a)·b")),
        ("Clip", Elementwise(2, E, "min(max(x, lo), hi)")),
        ("Shrink", Elementwise(3, how="two compares, add/sub, select")),
        # comparisons, logic, bits, tests
        ("Equal", Elementwise(1)),
        ("Greater", Elementwise(1)),
        ("Less", Elementwise(1)),
        ("GreaterOrEqual", Elementwise(1)),
        ("LessOrEqual", Elementwise(1)),
        ("And", Elementwise(1)),
        ("Or", Elementwise(1)),
        ("Xor", Elementwise(1)),
        ("Not", Elementwise(1)),
        ("BitwiseAnd", Elementwise(1)),
        ("BitwiseOr", Elementwise(1)),
        ("BitwiseXor", Elementwise(1)),
        ("BitwiseNot", Elementwise(1)),
        ("IsNaN", Elementwise(1)),
        ("IsInf", Elementwise(1)),
        ("Where", Elementwise(1, how="select")),
        ("Cast", Elementwise(1, how="one conversion")),
        ("CastLike", Elementwise(1, how="one conversion")),
        # variadic
        ("Sum", Elementwise(1, how="(n - 1) adds", variadic=True)),
        ("Max", Elementwise(1, how="(n - 1) max", variadic=True)),
        ("Min", Elementwise(1, how="(n - 1) min", variadic=True)),
        ("Mean", Elementwise(1, how="(n - 1) adds + 1 divide", variadic=True)),
        # com.microsoft activations
        ("Gelu", Elementwise(8, E, "erf form", MS)),
        ("FastGelu", Elementwise(_fast_gelu, E, "tanh form (13) + optional bias add", MS)),
        ("BiasGelu", Elementwise(9, E, "bias add + erf gelu", MS)),
        ("QuickGelu", Elementwise(6, E, "x·sigmoid(αx)", MS)),
        ("BiasAdd", Elementwise(2, E, "x + bias + skip", MS)),
        ("BiasDropout", Elementwise(_bias_dropout, how="data + bias (+ residual), dropout off", domain=MS)),
    ]
}


def per_element(op_type: str, node: NodeInfo | None = None, domain: str = "") -> int:
    """FLOPs per output element of an elementwise op (0 when not in the table)."""
    entry = TABLE.get((op_type, domain))
    if entry is None:
        return 0
    if callable(entry.flops):
        if node is None:
            return 0
        return entry.flops(node)
    return entry.flops


def elementwise_cost(node: NodeInfo, flops_per_element: int) -> OpCost:
    return io_cost(node, out_numel(node) * flops_per_element)


def _make_formula(entry: Elementwise) -> Callable[[NodeInfo], OpCost]:
    def formula(node: NodeInfo) -> OpCost:
        k = entry.flops(node) if callable(entry.flops) else entry.flops
        if entry.variadic:
            n = sum(1 for t in node.inputs if t is not None)
            k = k * max(n - 1, 0) + (1 if node.op_type == "Mean" and n > 1 else 0)
        return elementwise_cost(node, k)

    return formula


for (_op, _domain), _entry in TABLE.items():
    _f = _make_formula(_entry)
    _f.__name__ = f"elementwise_{_op}"
    _f.__doc__ = f"{_op}: {_entry.how or 'one op'} per element."
    register(_op, domain=_domain, op_class=OpClass.VECTOR, epilogue=_entry.epilogue)(_f)
