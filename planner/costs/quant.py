"""Quantised ops.  A multiply-add counts 2; integer MACs count the same as float ones.

(De)quantisation (VECTOR)
    QuantizeLinear     x / scale, round, + zero point, saturate: 2 per element   (ai.onnx and com.microsoft)
    DequantizeLinear   (x - zero point) · scale: 2 per element                    (ai.onnx and com.microsoft)
    DynamicQuantizeLinear   a min/max pass (2) + quantise (2): 4 per element
Quantised GEMM/conv (MATRIX): the FLOPs of the float op on the same shapes; requantising the output is done in
the kernel's epilogue and not counted; a bias input adds numel(Y).
    MatMulInteger, MatMulInteger16        MatMul(A=0, B=1)
    QLinearMatMul                         MatMul(a=0, b=3)
    MatMulIntegerToFloat                  MatMul(A=0, B=1) (+ bias 6)
    DynamicQuantizeMatMul                 MatMul(A=0, B=1) (+ bias 4) + DynamicQuantizeLinear(A): 4·numel(A)
    QGemm                                 Gemm(A=0, B=3, C=6)
    ConvInteger                           Conv(x=0, w=1), no bias
    QLinearConv                           Conv(x=0, w=3, B=8)
    QAttention                            com.microsoft::Attention with past at input 8
    MatMulNBits   A [..., K], B packed uint8 [N, ceil(K/block_size), block_size·bits/8], scales, zero_points,
                  attrs K, N, bits, block_size: FLOPs = 2·M·K·N (+ M·N with bias), M = numel(A)/K.
                  Bytes = io_cost = A + packed B + scales + zero points (+ bias) + Y: 4-bit weights are ~1/8
                  of fp32.  Dequantising B happens in registers and is not counted.  MatMulBnb4 the same.
    MatMulNBitsQkv  RMSNorm(A) (4·numel(A), + numel(A) with skip) + 2·M·K·(Nq + 2·Nkv) (+ biases)
    MatMulNBitsMlp  [RMSNorm(A)] + 2·M·K·2N + numel(Y)·(activation + 1) (+ biases)
Quantised elementwise/pooling (com.microsoft, VECTOR): dequantise each quantised operand (2), the float op,
requantise (2), per output element:
    QLinearAdd, QLinearMul 2+2+1+2 = 7;  QLinearSigmoid 2+4+2 = 8;  QLinearLeakyRelu 2+2+2 = 6;
    QLinearSoftmax 2+5+2 = 9;  QLinearWhere 2+2+1+2 = 7;  QLinearConcat 4 (requantise every element);
    MulInteger (two zero-point subtracts + mul) 3;
    QLinearAveragePool  pool + 4·numel(Y);
    QLinearGlobalAveragePool, QLinearReduceMean  numel(X) + 4·numel(Y);
    ReduceSumInteger  numel(X)
GatherBlockQuantized (VECTOR): reads only the gathered rows — numel(Y)·bits/8 bytes of packed data plus their
    scales/zero points (numel(Y)/block_size each) — and dequantises them: 2 per output element.
"""

from __future__ import annotations

import math

from planner.costs.attention import ms_attention_cost
from planner.costs.conv import conv_cost
from planner.costs.elementwise import per_element
from planner.costs.linalg import gemm_cost, matmul_cost
from planner.costs.movement import io_cost_reading
from planner.costs.norm import RMSNORM
from planner.costs.pool import pool
from planner.costs.registry import OpClass, OpCost, attr_str, in_numel, io_cost, out_numel, register
from planner.model.ir import DTYPE_BITS, NodeInfo

MS = "com.microsoft"
QUANTIZE = 2
DEQUANTIZE = 2
DYNAMIC_QUANTIZE = 4


@register("QuantizeLinear", "DequantizeLinear", op_class=OpClass.VECTOR)
@register("QuantizeLinear", "DequantizeLinear", domain=MS, op_class=OpClass.VECTOR)
def quantize_linear(node: NodeInfo) -> OpCost:
    return io_cost(node, QUANTIZE * in_numel(node))


@register("DynamicQuantizeLinear", op_class=OpClass.VECTOR)
def dynamic_quantize_linear(node: NodeInfo) -> OpCost:
    return io_cost(node, DYNAMIC_QUANTIZE * in_numel(node))


@register("MatMulInteger", op_class=OpClass.MATRIX)
@register("MatMulInteger16", domain=MS, op_class=OpClass.MATRIX)
def matmul_integer(node: NodeInfo) -> OpCost:
    return matmul_cost(node)


@register("QLinearMatMul", op_class=OpClass.MATRIX)
def qlinear_matmul(node: NodeInfo) -> OpCost:
    return matmul_cost(node, 0, 3)


@register("MatMulIntegerToFloat", domain=MS, op_class=OpClass.MATRIX)
def matmul_integer_to_float(node: NodeInfo) -> OpCost:
    return matmul_cost(node, extra_per_out=1 if node.has_input(6) else 0)


@register("DynamicQuantizeMatMul", domain=MS, op_class=OpClass.MATRIX)
def dynamic_quantize_matmul(node: NodeInfo) -> OpCost:
    cost = matmul_cost(node, extra_per_out=1 if node.has_input(4) else 0)
    return cost + OpCost(flops=DYNAMIC_QUANTIZE * in_numel(node))


@register("QGemm", domain=MS, op_class=OpClass.MATRIX)
def qgemm(node: NodeInfo) -> OpCost:
    return gemm_cost(node, 0, 3, 6)


@register("ConvInteger", op_class=OpClass.MATRIX)
def conv_integer(node: NodeInfo) -> OpCost:
    return conv_cost(node, 0, 1, None)


@register("QLinearConv", op_class=OpClass.MATRIX)
@register("QLinearConv", domain=MS, op_class=OpClass.MATRIX)
def qlinear_conv(node: NodeInfo) -> OpCost:
    return conv_cost(node, 0, 3, 8)


@register("QAttention", domain=MS, op_class=OpClass.MATRIX)
def qattention(node: NodeInfo) -> OpCost:
    return ms_attention_cost(node, iw=1, ib=2, ipast=8)


# ---- block-quantised weights -----------------------------------------------------------------------------


def _kn(node: NodeInfo) -> tuple[int, int] | None:
    """K and N from the attributes, else from A's last dim and Y's last dim."""
    k, n = node.attr("K", 0), node.attr("N", 0)
    a, y = node.in_shape(0), node.out_shape(0)
    if not (isinstance(k, int) and k > 0):
        k = a[-1] if a else 0
    if not (isinstance(n, int) and n > 0):
        n = y[-1] if y else 0
    return (k, n) if k > 0 and n > 0 else None


def _rows(node: NodeInfo, k: int, n: int) -> int | None:
    """M: rows of A = numel(A) / K, else numel(Y) / N."""
    a = node.in_shape(0)
    if a is not None:
        return math.prod(a) // k
    y = node.out_shape(0)
    return math.prod(y) // n if y is not None else None


@register("MatMulNBits", "MatMulBnb4", domain=MS, op_class=OpClass.MATRIX)
def matmul_nbits(node: NodeInfo) -> OpCost:
    """Block-quantized weights: 2*M*K*N, plus the bias add where MatMulNBits has one (input 5)."""
    kn = _kn(node)
    m = _rows(node, *kn) if kn else None
    if kn is None or m is None:
        return io_cost(node)
    k, n = kn
    bias = node.op_type == "MatMulNBits" and node.has_input(5)
    return io_cost(node, 2 * m * k * n + (m * n if bias else 0))


def _norm_flops(node: NodeInfo, a_numel: int) -> int:
    if not node.has_input(2):  # norm_scale
        return a_numel if node.has_input(1) else 0
    return RMSNORM * a_numel + (a_numel if node.has_input(1) else 0)


@register("MatMulNBitsQkv", domain=MS, op_class=OpClass.MATRIX)
def matmul_nbits_qkv(node: NodeInfo) -> OpCost:
    a = node.in_shape(0)
    k, nq, nkv = node.attr("K", 0), node.attr("Nq", 0), node.attr("Nkv", 0)
    if a is None or not all(isinstance(v, int) and v > 0 for v in (k, nq, nkv)):
        return io_cost(node)
    m = math.prod(a) // k
    n_total = nq + 2 * nkv
    biases = sum(m * nn for i, nn in ((5, nq), (8, nkv), (11, nkv)) if node.has_input(i))
    return io_cost(node, _norm_flops(node, m * k) + 2 * m * k * n_total + biases)


@register("MatMulNBitsMlp", domain=MS, op_class=OpClass.MATRIX)
def matmul_nbits_mlp(node: NodeInfo) -> OpCost:
    a = node.in_shape(0)
    k, n = node.attr("K", 0), node.attr("N", 0)
    if a is None or not all(isinstance(v, int) and v > 0 for v in (k, n)):
        return io_cost(node)
    m = math.prod(a) // k
    act = attr_str(node, "activation", "silu").lower()
    act_flops = per_element("Swish") if act in ("silu", "swish") else per_element(act.capitalize()) or 8
    biases = sum(m * n for i in (5, 8) if node.has_input(i))
    return io_cost(node, _norm_flops(node, m * k) + 2 * m * k * 2 * n + biases + m * n * (act_flops + 1))


@register("GatherBlockQuantized", domain=MS, op_class=OpClass.VECTOR)
def gather_block_quantized(node: NodeInfo) -> OpCost:
    y = node.out_shape(0)
    if y is None:
        return io_cost(node)
    n = math.prod(y)
    bits = node.attr("bits", 4)
    bits = bits if isinstance(bits, int) and bits > 0 else 4
    block = node.attr("block_size", 128)
    block = block if isinstance(block, int) and block > 0 else 128
    reads = {0: (n * bits + 7) // 8}
    for i in (2, 3):  # scales, zero points: one per block of gathered elements
        t = node.inputs[i] if node.has_input(i) else None
        if t is not None:
            reads[i] = (-(-n // block) * DTYPE_BITS.get(t.dtype, 32) + 7) // 8
    return io_cost_reading(node, reads, DEQUANTIZE * n)


# ---- QLinear elementwise / pooling (com.microsoft) -------------------------------------------------------

QLINEAR_PER_ELEMENT = {
    "QLinearAdd": DEQUANTIZE * 2 + 1 + QUANTIZE,
    "QLinearMul": DEQUANTIZE * 2 + 1 + QUANTIZE,
    "QLinearSigmoid": DEQUANTIZE + 4 + QUANTIZE,
    "QLinearLeakyRelu": DEQUANTIZE + 2 + QUANTIZE,
    "QLinearSoftmax": DEQUANTIZE + 5 + QUANTIZE,
    "QLinearWhere": DEQUANTIZE * 2 + 1 + QUANTIZE,
    "QLinearConcat": DEQUANTIZE + QUANTIZE,
    "MulInteger": 3,
}


def _make(k: int):
    def formula(node: NodeInfo) -> OpCost:
        return io_cost(node, out_numel(node) * k)

    return formula


for _op, _k in QLINEAR_PER_ELEMENT.items():
    _f = _make(_k)
    _f.__name__ = f"qlinear_{_op}"
    register(_op, domain=MS, op_class=OpClass.VECTOR)(_f)


@register("QLinearAveragePool", domain=MS, op_class=OpClass.VECTOR)
def qlinear_average_pool(node: NodeInfo) -> OpCost:
    return pool(node) + OpCost(flops=(DEQUANTIZE + QUANTIZE) * out_numel(node))


@register("QLinearGlobalAveragePool", "QLinearReduceMean", domain=MS, op_class=OpClass.VECTOR)
def qlinear_global_average_pool(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) + (DEQUANTIZE + QUANTIZE) * out_numel(node))


@register("ReduceSumInteger", domain=MS, op_class=OpClass.VECTOR)
def reduce_sum_integer(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node))
