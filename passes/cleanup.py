"""Cleanup: constant folding, dead node and unused initializer removal, identity / no-op elimination and
shape-subgraph simplification, by onnxscript's optimizer (the well-kept implementation; onnx_ir passes).

What it does: fold every node whose inputs are constant (including weights built at run time, e.g.
ConstantOfShape + Mul, which onnxscript leaves alone by default, and Shape subgraphs whose dims are static),
apply its default rewrite rules (Identity, Dropout in inference, Mul by 1, Cast to the same type, Reshape
of Reshape, Conv + BatchNormalization folding, ...), remove unused nodes, functions, opsets, and duplicate
initializers, and eliminate common subexpressions. Graph inputs and outputs keep their names.
"""

from __future__ import annotations

import contextlib
import io
import logging

import onnx

from passes.base import Pass, PassContext, PassResult, op_counts, register_pass

# onnxscript keeps ConstantOfShape and tensors over 8192 / 262144 elements unfolded to keep files small; weights
# built at run time (onnx's light models) are what a runtime folds at session start anyway, so fold them up to
# 16M elements (64 MB of float32) each.
FOLD_LIMIT_ELEMENTS = 1 << 24


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def count_delta(before: onnx.ModelProto, after: onnx.ModelProto) -> dict[str, int]:
    """Per op type: how many nodes went away ("-Identity": 2) or appeared ("+Gemm": 1)."""
    a, b = op_counts(before), op_counts(after)
    out = {}
    for op in sorted(set(a) | set(b)):
        d = b[op] - a[op]
        if d:
            out[f"{'+' if d > 0 else '-'}{op}"] = abs(d)
    return out


@register_pass
class Cleanup(Pass):
    name = "cleanup"
    description = "constant folding, dead code, identity/no-op elimination, shape simplification (onnxscript)"

    def check(self, model: onnx.ModelProto) -> str | None:
        if _has_external_data(model):
            return "weights are stored as external data; passes do not rewrite such models"
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        import onnx_ir
        import onnxscript.optimizer

        quiet = logging.getLogger("onnxscript")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ir_model = onnx_ir.serde.deserialize_model(model)
                onnxscript.optimizer.optimize_ir(
                    ir_model, input_size_limit=FOLD_LIMIT_ELEMENTS, output_size_limit=FOLD_LIMIT_ELEMENTS,
                    should_fold=lambda node: True if node.op_type == "ConstantOfShape" else None)
                out = onnx_ir.serde.serialize_model(ir_model)
        finally:
            quiet.setLevel(level)
        inits = {t.name for t in out.graph.initializer}
        kept = [vi for vi in out.graph.value_info if vi.name not in inits]  # onnxscript types initializers
        del out.graph.value_info[:]
        out.graph.value_info.extend(kept)
        counts = count_delta(model, out)
        inits = len(model.graph.initializer) - len(out.graph.initializer)
        if inits > 0:
            counts["initializers_removed"] = inits
        counts["nodes_removed"] = max(0, len(model.graph.node) - len(out.graph.node))
        return PassResult(out, True, counts)  # Pass.apply compares the bytes
