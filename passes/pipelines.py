"""The named pipelines a plan searches over. Ordering rules are checked when each is registered.

    none          the model as stored (fp32 or whatever it holds): always a candidate
    fused         cleanup, conv-affine, gemm, attention-mask, ort-fusion,   float-exact
                  kv-attention
    int8-dynamic  cleanup + kv-attention + quantize_dynamic                 int8   the CPU recipe: onnxruntime's
                                                                                   session fuses the rest itself
                                                                                   (kv-attention: decoders only)
    fused-int8    fused + quantize_dynamic                                  int8   (named only: on CPUs it measured
                                                                                   slower than int8-dynamic, and GPU
                                                                                   runtimes have no kernel for it)
    int8-static   cleanup + quantize_static (QDQ, calibrated)               int8   (auto only with --calibration)
    int4          fused + MatMulNBits                                       int4
    int8-weight   fused + MatMulNBits at 8 bits (weight-only)               int8   (named only; decoders' auto)
    fp16          fused + float16                                           fp16
"""

from __future__ import annotations

from passes import cleanup, quantize  # noqa: F401  (registers the passes named below)
from passes.base import Pipeline, register_pipeline
from passes.fusion import attention_mask, conv_affine, gemm, kv_attention, ort  # noqa: F401

FUSED = ("cleanup", "conv-affine", "gemm", "attention-mask", "ort-fusion", "kv-attention")

NONE = register_pipeline(Pipeline("none", (), "the model as stored"))
register_pipeline(Pipeline("fused", FUSED, "cleanup and fusion, float-exact"))
register_pipeline(Pipeline("int8-dynamic", ("cleanup", "kv-attention", "int8-dynamic"),
                           "cleanup, int8 weights, dynamic activations (onnxruntime fuses at session start; a "
                           "decoder's attention over its cache is fused first, which onnxruntime does not do)"))
register_pipeline(Pipeline("fused-int8", FUSED + ("int8-dynamic",), "fused, int8 weights, dynamic activations",
                           auto=False))
register_pipeline(Pipeline("int8-static", ("cleanup", "int8-static"), "cleanup, int8 QDQ with calibration",
                           auto=False))
register_pipeline(Pipeline("int4", FUSED + ("int4",), "fused, 4-bit MatMul weights (MatMulNBits)"))
register_pipeline(Pipeline("int8-weight", FUSED + ("int8-weight",), "fused, 8-bit MatMul weights (MatMulNBits)",
                           auto=False))
register_pipeline(Pipeline("fp16", FUSED + ("fp16",), "fused, float16"))
