"""What a target's runtime really runs: per runtime, the (op, precision) pairs it has fast kernels for.

A kernel is timed at the precision its arithmetic runs at (planner.predict.fusion.compute_dtype). That holds only
where the runtime has a kernel for that op at that precision; otherwise the runtime does something else, and
the plan must say so and time what really runs:

    runtime            op (precision)                                   what really runs
    onnxruntime-cpu    MatMulInteger, DynamicQuantizeMatMul, QLinear*,  int8 GEMM (MLAS u8s8) where the CPU has
                       QGemm, ConvInteger, QAttention (int8)            VNNI / AMX / dot-product (an int8 peak in
                                                                        the target); else 16-bit multiply-adds:
                                                                        timed at the fp32 peak
                       MatMul, Gemm, Conv, Attention (float16)          no fp16 GEMM/conv kernels in MLAS on x86:
                                                                        onnxruntime inserts Casts and runs fp32
                       MatMulNBits (int4 weights, accuracy_level 4)     int8 activations x int4 weights with VNNI;
                                                                        fp32 arithmetic otherwise
    onnxruntime-cuda   DynamicQuantizeMatMul, MatMulIntegerToFloat,     no CUDA kernel: the node falls back to the
    onnxruntime-rocm   QGemm, QLinearConv, QLinearMatMul, ConvInteger,  CPU, with copies each way: the candidate
                       DynamicQuantizeLinear; MatMulInteger and         is rejected (it does not run on the device)
                       QAttention with uint8 activations (CUDA
                       registers them for int8 x int8 only)
                       GroupQueryAttention (float32)                    registered for float16 / bfloat16 only:
                                                                        rejected as above (fp16 variants run it)
                       MatMulNBits                                      4-bit weights dequantized in the GEMM: the
                                                                        activation precision (fp16 / fp32)
                       QuantizeLinear/DequantizeLinear around a GEMM    the Q/DQ ops run, the GEMM runs in float
                       (QDQ int8)                                       (TensorRT would fuse them; ORT's CUDA EP
                                                                        does not): timed at fp32
    neuron, xla        any com.microsoft op; int8 dynamic quantization  compiled from standard ONNX ops only: the
                                                                        candidate is rejected

Sources: onnxruntime's docs/OperatorKernels.md (the CUDA EP registers MatMulInteger and com.microsoft::QAttention
for int8 x int8 only, MatMulNBits for float/float16/bfloat16 activations, GroupQueryAttention for
float16/bfloat16 only (contrib_ops/cuda/cuda_contrib_kernels.cc), and none of DynamicQuantizeMatMul,
MatMulIntegerToFloat, QGemm, QLinearConv, QLinearMatMul), MLAS's QGEMM dispatch (AVX512-VNNI / AVX-VNNI / AMX
for u8s8), and onnxruntime's CPU fallback for nodes without a device kernel. On this project's host the fp16 row
matches what timing shows (fp16 pipelines ran slower than fp32); the MatMulNBits row is the kernel's design, and
there int4 measured slower than fp32 for hidden sizes 128-384 (planner.search.variants's host timing corrects for it).
The GPU rows come from the kernel registrations and are not measured here.
"""

from __future__ import annotations

from dataclasses import replace

from planner.model.ir import Graph
from planner.predict.fusion import Kernel
from planner.targets.target import Target

INT8_GEMM = frozenset({"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul",
                       "QLinearConv", "QGemm", "ConvInteger", "QAttention", "MatMulInteger16"})
FLOAT_MATRIX = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "MultiHeadAttention",
                          "FusedMatMul", "FusedConv", "FusedGemm", "GroupQueryAttention", "Einsum"})
NO_CUDA_KERNEL = frozenset({"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "QGemm", "QLinearConv",
                            "ConvInteger", "DynamicQuantizeLinear", "MatMulInteger", "MatMulInteger16",
                            "DynamicQuantizeLSTM", "QLinearMatMul"})
INT8_X_INT8_ON_GPU = frozenset({"MatMulInteger", "QAttention"})  # CUDA kernels exist for int8 activations only
NO_CUDA_KERNEL_AT = {"GroupQueryAttention": frozenset({"float32"})}  # registered for float16 / bfloat16 only
GPU_RUNTIMES = frozenset({"onnxruntime-cuda", "onnxruntime-rocm"})
COMPILER_RUNTIMES = frozenset({"neuron", "xla"})


def _activation_dtype(node) -> str:
    t = node.inputs[0] if node.inputs else None
    return t.dtype if t is not None else "undefined"


def _anchor(k: Kernel, graph: Graph):
    return graph.nodes[k.nodes[0]]


def _feeds_from_dequantize(graph: Graph, node) -> bool:
    producers = {t.name: n for n in graph.nodes for t in n.outputs if t is not None}
    return any(t is not None and t.name in producers and producers[t.name].op_type == "DequantizeLinear"
               for t in node.inputs)


def runtime_kernels(kernels: list[Kernel], graph: Graph, target: Target
                    ) -> tuple[list[Kernel], tuple[str, ...], tuple[str, ...]]:
    """(kernels with the precision that really runs, notes on what changed, reasons it does not run at all)."""
    runtime = target.runtime
    has_int8 = "int8" in target.matrix_flops_per_s
    out: list[Kernel] = []
    notes: dict[str, int] = {}
    unsupported: dict[str, int] = {}
    qdq_checked = False
    qdq = False

    def note(text: str) -> None:
        notes[text] = notes.get(text, 0) + 1

    for k in kernels:
        n = _anchor(k, graph)
        op = n.op_type
        key = f"{n.domain}::{op}" if n.domain else op
        dtype = k.dtype
        if runtime in COMPILER_RUNTIMES and (n.domain == "com.microsoft" or op in INT8_GEMM):
            unsupported[f"{runtime} compiles standard ONNX ops only: no {key}"] = 1
        elif runtime in GPU_RUNTIMES and op in INT8_X_INT8_ON_GPU and _activation_dtype(n) == "int8":
            dtype = "int8"
        elif runtime in GPU_RUNTIMES and op in NO_CUDA_KERNEL:
            unsupported[f"{runtime} has no device kernel for {key} (it would fall back to the CPU)"] = 1
        elif runtime in GPU_RUNTIMES and dtype in NO_CUDA_KERNEL_AT.get(op, ()):
            unsupported[f"{runtime} has no {dtype} device kernel for {key} (it would fall back to the CPU)"] = 1
        elif runtime == "onnxruntime-cpu" and op in INT8_GEMM and not has_int8:
            dtype = "float32"
            note(f"{target.name} has no fast int8 dot product (VNNI/AMX/dot-prod): {key} timed at the fp32 peak")
        elif runtime == "onnxruntime-cpu" and op in FLOAT_MATRIX and dtype == "float16":
            dtype = "float32"
            note(f"onnxruntime-cpu has no fp16 {op} kernel on this kind of CPU: Casts inserted, timed at fp32")
        elif op == "MatMulNBits" and runtime == "onnxruntime-cpu" and n.attr("accuracy_level", 0) == 4 and has_int8:
            dtype = "int8"
            note(f"{key} with accuracy_level 4: int8 activations x int4 weights (VNNI)")
        elif runtime in GPU_RUNTIMES and op in FLOAT_MATRIX:
            if not qdq_checked:
                qdq = any(x.op_type == "DequantizeLinear" for x in graph.nodes)
                qdq_checked = True
            if qdq and _feeds_from_dequantize(graph, n):
                note(f"{runtime} runs QDQ {op} as DequantizeLinear + float {op} (no int8 fusion): timed in float")
        out.append(replace(k, dtype=dtype) if dtype != k.dtype else k)
    text = tuple(f"{t} ({c} kernels)" if c > 1 else t for t, c in notes.items())
    return out, text, tuple(unsupported)
