"""Attention and rotary embeddings.  A multiply-add counts 2.

Scaled dot-product attention, B batch, H query heads, S new (query) tokens, T attended (key) tokens,
d query/key head size, d_v value head size:

    sdpa = 2·B·H·S·T·d        scores  Q·Kᵀ
         + 5·B·H·S·T          softmax (max, sub, exp, sum, div; norm.SOFTMAX)
         + 2·B·H·S·T·d_v      context P·V
         (+ 7·B·H·S·T with a logit softcap: div, tanh, mul)
    Masks, causality and attention biases are not subtracted: kernels compute whole tiles.
    T is the attended length: the key/present-key output's sequence dim when Y's present is known (with a
    shared past/present buffer that is the buffer length, an upper bound), else past length + new length.
    Grouped-query attention (kv heads < H) costs the same FLOPs per query head; it only shrinks K/V bytes.

com.microsoft::Attention   input [B, S, D_in], weights [D_in, D_q + D_k + D_v] (qkv_hidden_sizes, else equal
                           thirds), bias, past [2, B, H, P, d]; attr num_heads:
                           2·B·S·D_in·(D_q + D_k + D_v) + B·S·(D_q + D_k + D_v) with bias + sdpa(T = P + S)
                           (QAttention and DecoderMaskedSelfAttention the same)
com.microsoft::MultiHeadAttention   Q/K/V already projected: sdpa only.  query [B, S, D] or packed QKV
                           [B, S, H, 3, d]; key [B, L, D], packed KV [B, L, H, 2, d] or already-split heads
                           [B, H, L, d] (cross attention: no past); past_key [B, H, P, d]; T = P + L.
                           (DecoderMaskedMultiHeadAttention the same.)
com.microsoft::GroupQueryAttention  query [B, S, H·d] (packed [B, S, (H + 2·kv)·d] without key),
                           past_key [B, kv, P, d]: sdpa(T = present or P + S, min local_window_size)
                           + rotary 3·(numel(Q) + numel(K)) with do_rotary
ai.onnx::Attention (23+)   Q [B, H, S, d] or [B, S, H·d] (q_num_heads), K/V [B, kv, L, d] or [B, L, kv·d],
                           past_key [B, kv, P, d]: sdpa(T = P + L)
RotaryEmbedding (ai.onnx and com.microsoft, MRotaryEmbedding)   3 per rotated element (x·cos + rot(x)·sin):
                           3 · numel(X) · rotary_dim / head_size.  cos/sin caches are gathered by position:
                           only B·S rows of them are read.
LinearAttention (ai.onnx and com.microsoft)   recurrent state [d_k, d_v] per kv head per token:
                           B·T·d_k·d_v·(kv·u + H·2), u = 2 linear, 3 gated, 4 delta, 5 gated_delta
                           (state update), 2 for the readout per query head.
Bytes: io_cost (Q/K/V, weights, past caches and masks read once; output and presents written once), except
the rotary caches above.
"""

from __future__ import annotations

import math

from planner.costs.movement import io_cost_reading
from planner.costs.norm import SOFTMAX
from planner.costs.registry import OpClass, OpCost, attr_str, io_cost, register
from planner.model.ir import DTYPE_BITS, NodeInfo

MS = "com.microsoft"


def sdpa_flops(b: int, h: int, s: int, t: int, d: int, d_v: int, softcap: bool = False) -> int:
    per_score = 2 * d + SOFTMAX + 2 * d_v + (7 if softcap else 0)
    return b * h * s * t * per_score


def _heads(node: NodeInfo, name: str = "num_heads") -> int:
    h = node.attr(name, 0)
    return h if isinstance(h, int) and h > 0 else 0


def _present_len(node: NodeInfo, out: int, axis: int) -> int | None:
    y = node.out_shape(out)
    if y is not None and len(y) > axis:
        return y[axis]
    return None


# ---- com.microsoft::Attention (+ QAttention, DecoderMaskedSelfAttention) --------------------------------


def ms_attention_cost(node: NodeInfo, iw: int = 1, ib: int = 2, ipast: int = 4) -> OpCost:
    x, w = node.in_shape(0), node.in_shape(iw)
    h = _heads(node)
    if x is None or len(x) != 3 or w is None or len(w) != 2 or h == 0:
        return io_cost(node)
    b, s, d_in = x
    sizes = node.attr("qkv_hidden_sizes", None)
    if isinstance(sizes, (list, tuple)) and len(sizes) == 3:
        dq, dk, dv = (int(v) for v in sizes)
    else:
        dq = dk = dv = w[1] // 3
    total = dq + dk + dv
    flops = 2 * b * s * d_in * total + (b * s * total if node.has_input(ib) else 0)
    past = node.in_shape(ipast)
    p = past[3] if past is not None and len(past) == 5 else 0
    t = _present_len(node, 1, 3)
    if t is None:
        t = p if node.attr("past_present_share_buffer", 0) and p else p + s
    flops += sdpa_flops(b, h, s, t, dq // h, dv // h)
    return io_cost(node, flops)


@register("Attention", domain=MS, op_class=OpClass.MATRIX)
@register("DecoderMaskedSelfAttention", domain=MS, op_class=OpClass.MATRIX)
def ms_attention(node: NodeInfo) -> OpCost:
    return ms_attention_cost(node)


# ---- com.microsoft::MultiHeadAttention (+ DecoderMaskedMultiHeadAttention) -------------------------------


def mha_cost(node: NodeInfo, ipast_key: int) -> OpCost:
    q = node.in_shape(0)
    h = _heads(node)
    if q is None or h == 0 or len(q) not in (3, 5):
        return io_cost(node)
    if len(q) == 5:  # packed QKV [B, S, H, 3, d]
        b, s, d = q[0], q[1], q[4]
    else:
        b, s, d = q[0], q[1], q[2] // h
    d_v, length, has_past = d, s, True
    k = node.in_shape(1) if len(q) == 3 else None
    if k is not None:
        if len(k) == 3:
            length = k[1]
        elif len(k) == 4:  # [B, H, L, d]: projected cross-attention keys, no past
            length, has_past = k[2], False
        elif len(k) == 5:  # packed KV [B, L, H, 2, d]
            length, d_v = k[1], k[4]
    v = node.in_shape(2) if len(q) == 3 else None
    if v is not None:
        if len(v) == 3:
            d_v = v[2] // h
        elif len(v) == 4:
            d_v = v[3]
    past = node.in_shape(ipast_key)
    p = past[2] if has_past and past is not None and len(past) == 4 else 0
    t = _present_len(node, 1, 2)
    if t is None:
        t = p + length
    return io_cost(node, sdpa_flops(b, h, s, t, d, d_v))


@register("MultiHeadAttention", domain=MS, op_class=OpClass.MATRIX)
def multi_head_attention(node: NodeInfo) -> OpCost:
    return mha_cost(node, ipast_key=6)


@register("DecoderMaskedMultiHeadAttention", domain=MS, op_class=OpClass.MATRIX)
def decoder_masked_mha(node: NodeInfo) -> OpCost:
    return mha_cost(node, ipast_key=5)


# ---- com.microsoft::GroupQueryAttention ------------------------------------------------------------------


def _cache_rows_reads(node: NodeInfo, cache_inputs: tuple[int, ...], rows: int) -> dict[int, int]:
    """Bytes of cos/sin caches touched when `rows` positions are gathered from them."""
    reads = {}
    for i in cache_inputs:
        t = node.inputs[i] if node.has_input(i) else None
        if t is not None and t.shape:
            reads[i] = (rows * t.shape[-1] * DTYPE_BITS.get(t.dtype, 32) + 7) // 8
    return reads


@register("GroupQueryAttention", domain=MS, op_class=OpClass.MATRIX)
def group_query_attention(node: NodeInfo) -> OpCost:
    q = node.in_shape(0)
    h = _heads(node)
    kv = _heads(node, "kv_num_heads") or h
    if q is None or len(q) != 3 or h == 0:
        return io_cost(node)
    b, s, width = q
    d = width // h if node.has_input(1) else width // (h + 2 * kv)
    past = node.in_shape(3)
    p = past[2] if past is not None and len(past) == 4 else 0
    t = _present_len(node, 1, 2)
    if t is None:
        t = p + s
    window = node.attr("local_window_size", -1)
    if isinstance(window, int) and window > 0:
        t = min(t, window)
    softcap = node.attr("softcap", 0.0)
    flops = sdpa_flops(b, h, s, t, d, d, softcap=bool(softcap))
    reads: dict[int, int] = {}
    if node.attr("do_rotary", 0):
        flops += 3 * b * s * (h + kv) * d
        reads = _cache_rows_reads(node, (7, 8), b * s)
    return io_cost_reading(node, reads, flops)


# ---- ai.onnx::Attention (opset 23+) ----------------------------------------------------------------------


@register("Attention", op_class=OpClass.MATRIX)
def onnx_attention(node: NodeInfo) -> OpCost:
    q, k, v = node.in_shape(0), node.in_shape(1), node.in_shape(2)
    if q is None or k is None or len(q) not in (3, 4) or len(k) != len(q):
        return io_cost(node)
    if len(q) == 4:
        b, h, s, d = q
        length = k[2]
        d_v = v[3] if v is not None and len(v) == 4 else d
    else:
        h, kv = _heads(node, "q_num_heads"), _heads(node, "kv_num_heads")
        if h == 0 or kv == 0:
            return io_cost(node)
        b, s, d = q[0], q[1], q[2] // h
        length = k[1]
        d_v = v[2] // kv if v is not None and len(v) == 3 else d
    past = node.in_shape(4)
    p = past[2] if past is not None and len(past) == 4 else 0
    t = _present_len(node, 1, 2)
    if t is None:
        t = p + length
    softcap = node.attr("softcap", 0.0)
    return io_cost(node, sdpa_flops(b, h, s, t, d, d_v, softcap=bool(softcap)))


# ---- rotary embeddings -----------------------------------------------------------------------------------


def rotary_cost(node: NodeInfo, cache_inputs: tuple[int, int]) -> OpCost:
    x = node.in_shape(0)
    if x is None or len(x) not in (3, 4):
        return io_cost(node)
    numel = math.prod(x)
    rot = node.attr("rotary_embedding_dim", 0)
    rotated = numel
    if isinstance(rot, int) and rot > 0:
        heads = _heads(node)
        head = x[-1] if len(x) == 4 else (x[-1] // heads if heads else 0)
        if head > 0:
            rotated = numel * min(rot, head) // head
    rows = x[0] * (x[1] if len(x) == 3 else x[2])  # B·S positions gathered from the caches
    return io_cost_reading(node, _cache_rows_reads(node, cache_inputs, rows), 3 * rotated)


@register("RotaryEmbedding", op_class=OpClass.VECTOR)
def onnx_rotary_embedding(node: NodeInfo) -> OpCost:
    return rotary_cost(node, (1, 2))


@register("RotaryEmbedding", "MRotaryEmbedding", domain=MS, op_class=OpClass.VECTOR)
def ms_rotary_embedding(node: NodeInfo) -> OpCost:
    return rotary_cost(node, (2, 3))


@register("GemmaRotaryEmbedding", domain=MS, op_class=OpClass.VECTOR)
def gemma_rotary_embedding(node: NodeInfo) -> OpCost:
    """emb -> sin, cos (2 per element); q·cos + q_rot·sin and the same for k (3 per element)."""
    emb = node.inputs[0].numel if node.has_input(0) else None  # type: ignore[union-attr]
    q = node.inputs[1].numel if node.has_input(1) else None  # type: ignore[union-attr]
    k = node.inputs[3].numel if node.has_input(3) else None  # type: ignore[union-attr]
    return io_cost(node, 2 * (emb or 0) + 3 * ((q or 0) + (k or 0)))


# ---- linear attention ------------------------------------------------------------------------------------

LINEAR_UPDATE = {"linear": 2, "gated": 3, "delta": 4, "gated_delta": 5}


@register("LinearAttention", op_class=OpClass.MATRIX)
@register("LinearAttention", domain=MS, op_class=OpClass.MATRIX)
def linear_attention(node: NodeInfo) -> OpCost:
    q, v = node.in_shape(0), node.in_shape(2)
    h, kv = _heads(node, "q_num_heads"), _heads(node, "kv_num_heads")
    if q is None or v is None or len(q) != 3 or len(v) != 3 or h == 0 or kv == 0:
        return io_cost(node)
    b, t = q[0], q[1]
    dk, dv = q[2] // h, v[2] // kv
    update = LINEAR_UPDATE.get(attr_str(node, "update_rule", "gated_delta"), 5)
    return io_cost(node, b * t * dk * dv * (kv * update + h * 2))
