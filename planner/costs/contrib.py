"""onnxruntime contrib fusions (domain com.microsoft), built from the plain ops' counts.

(The com.microsoft activations — Gelu, FastGelu, BiasGelu, QuickGelu, BiasAdd, BiasDropout — are rows of the
elementwise table; the attention family lives in attention.py, quantised ops in quant.py.)

Normalisations (VECTOR), per element of the input:
    SkipLayerNormalization            skip add (1) + bias add (1, when given) + LayerNormalization (8)
    SkipSimplifiedLayerNormalization  skip add (1) + bias add (1, when given) + RMS norm (4)
    SimplifiedLayerNormalization      RMS norm (4).  onnxruntime registers it in the ai.onnx domain (its
                                      transformer optimizer emits it there); com.microsoft is accepted too.
    GroupNorm / SkipGroupNorm         group norm (8) + SiLU (6) with activation=1; SkipGroupNorm adds skip
                                      (+ bias)
    EmbedLayerNormalization           word + position (+ segment) embedding adds + LayerNormalization (8) per
                                      output element; the embedding tables are gathered: only numel(Y)
                                      elements of each table are read (a weight when it is an initializer)
    BiasSoftmax                       bias add (1) + softmax (5)
    BiasSplitGelu  X [N, S, 2D]       bias add on X + (gelu (8) + mul (1)) per output element
Fused GEMM/conv (MATRIX): the plain op's FLOPs plus the fused work per output element:
    FusedConv, NhwcFusedConv          Conv + activation (elementwise table) + 1 with the Z (sum) input
    NhwcConv                          Conv (2·numel(Y)·numel(W)/C_out is layout free)
    FusedMatMul, TransposeMatMul, FusedMatMulActivation   MatMul on the transposed shapes
                                      (transBatch*: perm [1, ..., r-2, 0, r-1]; trans*: swap the last two)
                                      + numel(Y) when alpha != 1 (+ activation for FusedMatMulActivation)
    FusedGemm                         Gemm + activation
    GemmFastGelu                      MatMul + bias (1) + FastGelu (13) per output element
    MoE  input [T, D] (or [B, S, D]), router_probs [T, E], fc1 [E, f·I, D], fc2 [E, D, I], fc3 [E, I, D]:
         FLOPs = 2·T·k·(numel(fc1) + numel(fc2) + numel(fc3)) / E + T·k·I·activation + T·E (top-k routing)
         bytes: expert weights (and biases) read in proportion min(1, T·k / E) — a decode step touches only
         the chosen experts.
    Inverse [..., n, n]               Gauss-Jordan 2·n³ per matrix (VECTOR)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.costs.conv import activation_flops, conv_cost
from planner.costs.elementwise import per_element
from planner.costs.linalg import gemm_cost, matmul_cost, matmul_dims
from planner.costs.movement import io_cost_reading
from planner.costs.norm import LAYERNORM, RMSNORM, SOFTMAX
from planner.costs.registry import OpClass, OpCost, attr_str, in_numel, io_cost, out_numel, register
from planner.model.ir import NodeInfo

MS = "com.microsoft"


# ---- normalisations --------------------------------------------------------------------------------------


@register("SkipLayerNormalization", domain=MS, op_class=OpClass.VECTOR)
def skip_layer_norm(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) * (LAYERNORM + 1 + (1 if node.has_input(4) else 0)))


@register("SkipSimplifiedLayerNormalization", domain=MS, op_class=OpClass.VECTOR)
def skip_simplified_layer_norm(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) * (RMSNORM + 1 + (1 if node.has_input(3) else 0)))


@register("SimplifiedLayerNormalization", op_class=OpClass.VECTOR)
@register("SimplifiedLayerNormalization", domain=MS, op_class=OpClass.VECTOR)
def simplified_layer_norm(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) * RMSNORM)


@register("GroupNorm", "SkipGroupNorm", domain=MS, op_class=OpClass.VECTOR)
def group_norm(node: NodeInfo) -> OpCost:
    k = LAYERNORM + (per_element("Swish") if node.attr("activation", 0) == 1 else 0)
    if node.op_type == "SkipGroupNorm":
        k += 1 + (1 if node.has_input(4) else 0)
    return io_cost(node, in_numel(node) * k)


@register("EmbedLayerNormalization", domain=MS, op_class=OpClass.VECTOR)
def embed_layer_norm(node: NodeInfo) -> OpCost:
    y = node.outputs[0] if node.outputs else None
    if y is None or y.shape is None:
        return io_cost(node)
    tables = [i for i in (2, 3, 4) if node.has_input(i)]
    flops = y.numel * (len(tables) - 1 + LAYERNORM)  # type: ignore[operator]
    return io_cost_reading(node, {i: y.nbytes for i in tables}, flops)


@register("BiasSoftmax", domain=MS, op_class=OpClass.VECTOR)
def bias_softmax(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) * (1 + SOFTMAX))


@register("BiasSplitGelu", domain=MS, op_class=OpClass.VECTOR)
def bias_split_gelu(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node) + out_numel(node) * (per_element("Gelu", domain=MS) + 1))


# ---- fused GEMM / conv -----------------------------------------------------------------------------------


@register("FusedConv", domain=MS, op_class=OpClass.MATRIX)
def fused_conv(node: NodeInfo) -> OpCost:
    return conv_cost(node, extra_per_out=activation_flops(node) + (1 if node.has_input(3) else 0))


@register("NhwcFusedConv", domain=MS, op_class=OpClass.MATRIX)
def nhwc_fused_conv(node: NodeInfo) -> OpCost:
    extra = activation_flops(node) + (1 if node.has_input(3) else 0)
    return conv_cost(node, extra_per_out=extra, channels_last=True)


@register("NhwcConv", domain=MS, op_class=OpClass.MATRIX)
def nhwc_conv(node: NodeInfo) -> OpCost:
    return conv_cost(node, channels_last=True)


def transposed(shape: Sequence[int], trans: bool, trans_batch: bool) -> tuple[int, ...]:
    s = tuple(shape)
    if trans_batch and len(s) >= 3:
        s = s[1:-1] + (s[0],) + s[-1:]
    if trans and len(s) >= 2:
        s = s[:-2] + (s[-1], s[-2])
    return s


@register("FusedMatMul", "TransposeMatMul", "FusedMatMulActivation", domain=MS, op_class=OpClass.MATRIX)
def fused_matmul(node: NodeInfo) -> OpCost:
    a, b = node.in_shape(0), node.in_shape(1)
    if a is None or b is None:
        return io_cost(node)
    a = transposed(a, bool(node.attr("transA", 0)), bool(node.attr("transBatchA", 0)))
    b = transposed(b, bool(node.attr("transB", 0)), bool(node.attr("transBatchB", 0)))
    dims = matmul_dims(a, b)
    if dims is None:
        return io_cost(node)
    batch, m, k, n = dims
    per_out = (1 if node.attr("alpha", 1.0) != 1.0 else 0) + activation_flops(node)
    return io_cost(node, batch * m * n * (2 * k + per_out))


@register("FusedGemm", domain=MS, op_class=OpClass.MATRIX)
def fused_gemm(node: NodeInfo) -> OpCost:
    return gemm_cost(node, extra_per_out=activation_flops(node))


@register("GemmFastGelu", domain=MS, op_class=OpClass.MATRIX)
def gemm_fast_gelu(node: NodeInfo) -> OpCost:
    gelu = 13 + (1 if node.has_input(2) else 0)
    return matmul_cost(node, extra_per_out=gelu)


# ---- mixture of experts ----------------------------------------------------------------------------------

MOE_ACTIVATION = {"relu": "Relu", "gelu": "Gelu", "silu": "Swish", "swiglu": "SwiGLU", "identity": ""}


@register("MoE", domain=MS, op_class=OpClass.MATRIX)
def moe(node: NodeInfo) -> OpCost:
    x, router, fc2 = node.in_shape(0), node.in_shape(1), node.in_shape(4)
    if x is None or router is None or fc2 is None or len(fc2) != 3 or not x or not router:
        return io_cost(node)
    tokens = math.prod(x) // x[-1] if x[-1] else 0
    experts, inter = router[-1], fc2[-1]
    k = node.attr("k", 1)
    k = k if isinstance(k, int) and k > 0 else 1
    if experts <= 0:
        return io_cost(node)
    weights = [i for i in (2, 4, 6) if node.has_input(i)]
    per_expert = sum(in_numel(node, i) for i in weights) // experts
    act_name = MOE_ACTIVATION.get(attr_str(node, "activation_type", "relu").lower(), "Relu")
    act = per_element(act_name, node) if act_name else 0
    flops = 2 * tokens * k * per_expert + tokens * k * inter * act + tokens * experts
    used = min(1.0, tokens * k / experts)
    reads = {}
    for i in (2, 3, 4, 5, 6, 7):
        t = node.inputs[i] if node.has_input(i) else None
        if t is not None and t.numel is not None:
            reads[i] = math.ceil(t.nbytes * used)
    return io_cost_reading(node, reads, flops)


@register("Inverse", domain=MS, op_class=OpClass.VECTOR)
def inverse(node: NodeInfo) -> OpCost:
    x = node.in_shape(0)
    if x is None or len(x) < 2:
        return io_cost(node)
    return io_cost(node, math.prod(x[:-2]) * 2 * x[-1] ** 3)
