"""MatMul + Add to Gemm, by onnxscript's rewriter (the well-kept rules; we wrap them):

    Y = A·B + C        A [M, K] (2-D), B [K, N] constant or not, C broadcastable to [M, N]   ==>  Gemm(A, B, C)
    Y = Aᵀ·B + C, A·Bᵀ + C, Aᵀ·Bᵀ + C   (a Transpose feeding the MatMul)                  ==>  Gemm(transA/transB)

        A ─┐                              A ─┐
           MatMul ─ Add ─▶ Y     ==>         Gemm ─▶ Y
        B ─┘       │                      B ─┤
                   C                      C ─┘

Preconditions (onnxscript's checks): A and B of rank 2 (Gemm is 2-D only; a [batch, seq, hidden] MatMul stays),
the Add's other input broadcastable to the output. Shapes come from onnx's shape inference, run first.
"""

from __future__ import annotations

import contextlib
import io

import onnx

from passes.base import Pass, PassContext, PassResult, register_pass
from passes.cleanup import count_delta


@register_pass
class MatMulAddToGemm(Pass):
    name = "gemm"
    description = "MatMul + Add (2-D) to Gemm, with transposed-input variants (onnxscript rewriter rules)"
    after = ("cleanup",)

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        import onnxscript.rewriter as rw
        from onnxscript.rewriter.rules.common import (
            matmul_add_to_gemm_rule,
            transpose_a_matmul_add_to_gemm_rule,
            transpose_ab_matmul_add_to_gemm_rule,
            transpose_b_matmul_add_to_gemm_rule,
        )

        rules = [transpose_ab_matmul_add_to_gemm_rule, transpose_a_matmul_add_to_gemm_rule,
                 transpose_b_matmul_add_to_gemm_rule, matmul_add_to_gemm_rule]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                typed = onnx.shape_inference.infer_shapes(model, strict_mode=False)
            except Exception:  # shapes unknown: the rules' rank checks then refuse to fire
                typed = model
            out = rw.rewrite(typed, pattern_rewrite_rules=rules)
        counts = {k: v for k, v in count_delta(model, out).items() if k in ("+Gemm", "-MatMul", "-Add", "-Transpose")}
        if "+Gemm" not in counts:
            return PassResult(model, False, {})
        inits = {t.name for t in out.graph.initializer}
        kept = [vi for vi in out.graph.value_info if vi.name not in inits]
        del out.graph.value_info[:]
        out.graph.value_info.extend(kept)
        return PassResult(out, True, {"MatMul+Add->Gemm": counts["+Gemm"], **counts})
