"""Attention-mask canonical form, so that onnxruntime's attention fusion recognises the mask.

    unsqueeze(m, [a, b])  =  unsqueeze(unsqueeze(m, [a]), [b])          a < b

BERT-style exports build the additive mask as (1 - Cast(Unsqueeze(mask, [1, 2]))) * -10000. Exporters at
opset >= 13 (and onnxscript's cleanup, which merges Unsqueeze chains) emit one two-axis Unsqueeze; the
transformer optimizer's attention fusion only matches the older two-Unsqueeze form, so without this rule no
Attention node is fused:

    mask [B, S] (int)                    mask [B, S]
        │                                    │
    Unsqueeze axes=[1,2]        ==>      Unsqueeze axes=[1]   [B, 1, S]
        │                                    │
      Cast ─ Sub ─ Mul ─▶ Add(scores)    Unsqueeze axes=[2]   [B, 1, 1, S]
                                             │
                                           Cast ─ Sub ─ Mul ─▶ Add(scores)

Preconditions (each near-miss says which failed): the Unsqueeze reads an integer or bool graph input (a padding
mask), its axes are a constant list of exactly two non-negative axes, and its output is read by a Cast. Both
axis spellings are generated from one rule: an `axes` input (opset >= 13) or an `axes` attribute (opset < 13).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from passes.base import Pass, PassContext, PassResult, register_pass
from passes.fusion import GraphView, Rewrite, Rule, apply_rules

_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL, onnx.TensorProto.INT8,
              onnx.TensorProto.UINT8, onnx.TensorProto.INT16}


class SplitMaskUnsqueeze(Rule):
    anchor = "Unsqueeze"

    def __init__(self, axes_as_input: bool) -> None:
        self.axes_as_input = axes_as_input
        self.name = "split-mask-unsqueeze" + ("" if axes_as_input else "-attr")

    def _axes(self, g: GraphView, n: onnx.NodeProto) -> list[int] | None:
        if self.axes_as_input:
            v = g.const(n.input[1]) if len(n.input) > 1 and n.input[1] else None
            return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]
        for a in n.attribute:
            if a.name == "axes":
                return list(a.ints)
        return None

    def check(self, g: GraphView, i: int) -> str | None:
        n = g.node(i)
        if (g.opset >= 13) != self.axes_as_input:
            return f"axes spelled as {'attribute' if g.opset >= 13 else 'input'} at opset {g.opset}"
        src = g.inputs.get(n.input[0])
        if src is None:
            return "does not read a graph input"
        if src.type.tensor_type.elem_type not in _INT_TYPES:
            return "its input is not an integer or bool mask"
        axes = self._axes(g, n)
        if axes is None:
            return "axes are not constant"
        if len(axes) != 2:
            return f"{len(axes)} axes, the rule splits two"
        if any(a < 0 for a in axes):
            return "negative axes"
        if not any(r.op_type == "Cast" for r in g.readers(n.output[0])):
            return "its output is not read by a Cast (not the additive-mask path)"
        return None

    def replace(self, g: GraphView, i: int) -> Rewrite:
        n = g.node(i)
        a, b = sorted(self._axes(g, n))
        mid = g.fresh(n.output[0] + "_axis0")
        base = n.name or "mask_unsqueeze"
        if self.axes_as_input:
            ka, kb = g.fresh(f"{base}_axes_a"), g.fresh(f"{base}_axes_b")
            inits = [numpy_helper.from_array(np.array([a], np.int64), ka),
                     numpy_helper.from_array(np.array([b], np.int64), kb)]
            first = helper.make_node("Unsqueeze", [n.input[0], ka], [mid], name=f"{base}/split_a")
            second = helper.make_node("Unsqueeze", [mid, kb], [n.output[0]], name=f"{base}/split_b")
        else:
            inits = []
            first = helper.make_node("Unsqueeze", [n.input[0]], [mid], name=f"{base}/split_a", axes=[a])
            second = helper.make_node("Unsqueeze", [mid], [n.output[0]], name=f"{base}/split_b", axes=[b])
        return Rewrite(remove=[i], add=[first, second], initializers=inits)


RULES = (SplitMaskUnsqueeze(axes_as_input=True), SplitMaskUnsqueeze(axes_as_input=False))


@register_pass
class AttentionMask(Pass):
    name = "attention-mask"
    description = "two-axis mask Unsqueeze split so onnxruntime's attention fusion matches (own rule)"
    after = ("cleanup",)  # cleanup merges Unsqueeze chains; splitting must come after it

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        out, counts, misses = apply_rules(model, RULES)
        return PassResult(out, bool(counts), dict(counts), tuple(misses[:5]))
