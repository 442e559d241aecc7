"""Per-channel affine ops folded into the Conv that feeds them (our rules: onnxscript's conv-affine rules take
scalar operands on a Conv that already has a bias; exporters from TF/Keras and hand-built graphs emit a bias-less
Conv followed by a per-channel Add or Mul).

With c a constant that varies along the channel axis only (shape [C], [C, 1, 1], [1, C, 1, 1], or a scalar):

    Conv(x, W, B) + c   =  Conv(x, W, B + c)               (c + Conv(...) the same)
    Conv(x, W, B) - c   =  Conv(x, W, B - c)
    Conv(x, W, B) · c   =  Conv(x, W · c[:, None, ...], B · c)   (c · Conv(...) the same)
    Conv(x, W, B) / c   =  Conv(x, W / c[:, None, ...], B / c)
    (B = 0 when the Conv has no bias)

        x ─ Conv(W, B) ─ Add/Sub/Mul/Div ─▶ y      ==>      x ─ Conv(W', B') ─▶ y
                            │
                            c (constant)

The six variants are generated from one table (op, where the Conv sits, how W and B change), not written out.
Preconditions, each a reason when it fails: the other operand is constant; the Conv's weight (and bias, if any)
are constant; the Conv's output has no other reader and is not a graph output; c varies along the channel axis
only; all are floating point.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from passes.base import Pass, PassContext, PassResult, register_pass
from passes.fusion import GraphView, Rewrite, Rule, apply_rules

# op -> (does it scale the weights?, how W and B combine with the per-channel vector v)
_ALGEBRA = {
    "Add": (False, lambda w, b, v: (w, b + v)),
    "Sub": (False, lambda w, b, v: (w, b - v)),
    "Mul": (True, lambda w, b, v: (w * v.reshape((-1,) + (1,) * (w.ndim - 1)), b * v)),
    "Div": (True, lambda w, b, v: (w / v.reshape((-1,) + (1,) * (w.ndim - 1)), b / v)),
}
_COMMUTATIVE = {"Add", "Mul"}


class ConvAffine(Rule):
    def __init__(self, op: str, conv_at: int) -> None:
        self.anchor = op
        self.conv_at = conv_at  # which input of the Add/Mul the Conv's output is
        self.name = f"conv-{op.lower()}" + ("" if conv_at == 0 else "-commuted")

    def _parts(self, g: GraphView, i: int):
        n = g.node(i)
        if len(n.input) != 2:
            return None
        conv_out, c_name = n.input[self.conv_at], n.input[1 - self.conv_at]
        j = g.producer.get(conv_out)
        return (n, conv_out, c_name, j, g.node(j) if j is not None else None)

    def check(self, g: GraphView, i: int) -> str | None:
        parts = self._parts(g, i)
        if parts is None:
            return "not a binary op"
        n, conv_out, c_name, j, conv = parts
        if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
            return f"input {self.conv_at} is not a Conv's output"
        c = g.const(c_name)
        if c is None:
            return "the other operand is not a constant"
        w = g.const(conv.input[1])
        if w is None:
            return "the Conv's weight is not constant"
        if len(conv.input) > 2 and conv.input[2] and g.const(conv.input[2]) is None:
            return "the Conv's bias is not constant"
        if len(g.consumers.get(conv_out, [])) != 1 or conv_out in g.outputs:
            return "the Conv's output has other readers"
        if not (np.issubdtype(c.dtype, np.floating) and np.issubdtype(w.dtype, np.floating)):
            return "not floating point"
        if _channel_vector(c, w.shape[0], w.ndim) is None:
            return f"the constant {list(c.shape)} varies along a non-channel axis"
        return None

    def replace(self, g: GraphView, i: int) -> Rewrite:
        n, conv_out, c_name, j, conv = self._parts(g, i)
        w = g.const(conv.input[1])
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        b = g.const(conv.input[2]) if has_bias else np.zeros(w.shape[0], w.dtype)
        v = _channel_vector(g.const(c_name), w.shape[0], w.ndim).astype(w.dtype)
        scales, combine = _ALGEBRA[self.anchor]
        w2, b2 = combine(w, b, v)
        inits = []
        w_name = conv.input[1]
        if scales:
            w_name = g.fresh(f"{conv.input[1]}_{self.anchor.lower()}_folded")
            inits.append(numpy_helper.from_array(w2.astype(w.dtype), w_name))
        b_name = g.fresh(f"{conv.name or 'conv'}_bias_folded")
        inits.append(numpy_helper.from_array(b2.astype(w.dtype), b_name))
        new = helper.make_node("Conv", [conv.input[0], w_name, b_name], [n.output[0]], name=conv.name or None,
                               domain=conv.domain)
        new.attribute.extend(conv.attribute)
        return Rewrite(remove=[j, i], add=[new], initializers=inits)


def _channel_vector(c: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """c as a [channels] vector when, broadcast against a [N, C, spatial...] output, it varies along C only."""
    if c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    if any(d != 1 for k, d in enumerate(shape) if k != 1):
        return None
    if shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).copy()


RULES = tuple(ConvAffine(op, at) for op in _ALGEBRA for at in ((0, 1) if op in _COMMUTATIVE else (0,)))


@register_pass
class ConvAffinePass(Pass):
    name = "conv-affine"
    description = "per-channel Add/Sub/Mul/Div after a Conv folded into its weights and bias (own rules)"
    after = ("cleanup",)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        out, counts, misses = apply_rules(model, RULES)
        return PassResult(out, bool(counts), dict(counts), tuple(misses[:5]))
