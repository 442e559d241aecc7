from costs_helpers import F16, W, cost

from planner.costs import OpClass, lookup

MS = "com.microsoft"
SOFTMAX = 5


def sdpa(b, h, s, t, d, d_v=None):
    d_v = d if d_v is None else d_v
    return 2 * b * h * s * t * d + SOFTMAX * b * h * s * t + 2 * b * h * s * t * d_v


def test_ms_attention_with_past():
    b, s, hidden, heads, past = 2, 1, 768, 12, 31
    d = hidden // heads
    t = past + s
    inputs = [(b, s, hidden), ((hidden, 3 * hidden), "float32", W), ((3 * hidden,), "float32", W),
              ((b,), "int32"), (2, b, heads, past, d)]
    c = cost("Attention", inputs, [(b, s, hidden), None], {"num_heads": heads}, domain=MS)
    projection = 2 * b * s * hidden * 3 * hidden + b * s * 3 * hidden
    assert c.flops == projection + sdpa(b, heads, s, t, d)
    assert c.weight_bytes == (hidden * 3 * hidden + 3 * hidden) * 4
    assert lookup(MS, "Attention").op_class is OpClass.MATRIX
    # the present output, when its shape is known, gives T directly
    c2 = cost("Attention", inputs, [(b, s, hidden), (2, b, heads, t, d)], {"num_heads": heads}, domain=MS)
    assert c2.flops == c.flops


def test_ms_attention_qkv_hidden_sizes():
    b, s, d_in, heads, dq, dv = 1, 64, 512, 8, 256, 512
    c = cost("Attention", [(b, s, d_in), (d_in, dq + dq + dv)], [(b, s, dv)],
             {"num_heads": heads, "qkv_hidden_sizes": [dq, dq, dv]}, domain=MS)
    assert c.flops == 2 * b * s * d_in * (2 * dq + dv) + sdpa(b, heads, s, s, dq // heads, dv // heads)


def test_multi_head_attention_self_with_past():
    b, s, heads, d, past = 4, 1, 16, 64, 99
    hidden = heads * d
    inputs = [(b, s, hidden), (b, s, hidden), (b, s, hidden), None, None, None, (b, heads, past, d),
              (b, heads, past, d)]
    c = cost("MultiHeadAttention", inputs, [(b, s, hidden)], {"num_heads": heads}, domain=MS)
    assert c.flops == sdpa(b, heads, s, past + s, d)


def test_multi_head_attention_cross_and_packed():
    b, s, heads, d, enc = 2, 10, 8, 64, 1500
    cross = cost("MultiHeadAttention", [(b, s, heads * d), (b, heads, enc, d), (b, heads, enc, d)],
                 [(b, s, heads * d)], {"num_heads": heads}, domain=MS)
    assert cross.flops == sdpa(b, heads, s, enc, d)
    packed = cost("MultiHeadAttention", [(b, s, heads, 3, d)], [(b, s, heads * d)], {"num_heads": heads},
                  domain=MS)
    assert packed.flops == sdpa(b, heads, s, s, d)


def test_group_query_attention_decode():
    b, s, heads, kv, d, past = 1, 1, 32, 8, 128, 511
    t = past + s
    inputs = [((b, s, heads * d), F16), ((b, s, kv * d), F16), ((b, s, kv * d), F16),
              ((b, kv, past, d), F16), ((b, kv, past, d), F16), ((b,), "int32"), ((1,), "int32")]
    c = cost("GroupQueryAttention", inputs, [((b, s, heads * d), F16), None, None],
             {"num_heads": heads, "kv_num_heads": kv}, domain=MS)
    assert c.flops == sdpa(b, heads, s, t, d)
    kv_cache_bytes = 2 * b * kv * past * d * 2
    assert c.bytes_read >= kv_cache_bytes


def test_group_query_attention_present_shape_packed_and_rotary():
    b, s, heads, kv, d, max_len = 1, 16, 32, 8, 128, 4096
    present = ((b, kv, max_len, d), F16)
    inputs = [((b, s, (heads + 2 * kv) * d), F16), None, None, None, None, ((b,), "int32"), ((1,), "int32")]
    c = cost("GroupQueryAttention", inputs, [((b, s, heads * d), F16), present, present],
             {"num_heads": heads, "kv_num_heads": kv}, domain=MS)
    assert c.flops == sdpa(b, heads, s, max_len, d)
    cache = ((max_len, d // 2), F16, W)
    rot = cost("GroupQueryAttention", inputs + [cache, cache], [((b, s, heads * d), F16), present, present],
               {"num_heads": heads, "kv_num_heads": kv, "do_rotary": 1}, domain=MS)
    assert rot.flops == c.flops + 3 * b * s * (heads + kv) * d
    assert rot.weight_bytes == 2 * b * s * (d // 2) * 2  # only the used rows of cos/sin


def test_group_query_attention_local_window():
    b, s, heads, kv, d, past, window = 1, 1, 8, 2, 64, 8191, 4096
    inputs = [(b, s, heads * d), (b, s, kv * d), (b, s, kv * d), (b, kv, past, d), (b, kv, past, d)]
    c = cost("GroupQueryAttention", inputs, [(b, s, heads * d)],
             {"num_heads": heads, "kv_num_heads": kv, "local_window_size": window}, domain=MS)
    assert c.flops == sdpa(b, heads, s, window, d)


def test_onnx_attention_4d_and_3d():
    b, heads, kv, s, past, d = 2, 16, 4, 1, 63, 64
    q = (b, heads, s, d)
    k = (b, kv, s, d)
    c = cost("Attention", [q, k, k, None, (b, kv, past, d), (b, kv, past, d)], [q])
    assert c.flops == sdpa(b, heads, s, past + s, d)
    c3 = cost("Attention", [(b, s, heads * d), (b, s, kv * d), (b, s, kv * d)], [(b, s, heads * d)],
              {"q_num_heads": heads, "kv_num_heads": kv})
    assert c3.flops == sdpa(b, heads, s, s, d)


def test_rotary_embedding_partial_and_cache_rows():
    b, s, heads, head, rot, max_pos = 2, 16, 32, 128, 64, 8192
    hidden = heads * head
    cache = ((max_pos, rot // 2), "float32", W)
    c = cost("RotaryEmbedding", [(b, s, hidden), ((b, s), "int64"), cache, cache], [(b, s, hidden)],
             {"num_heads": heads, "rotary_embedding_dim": rot}, domain=MS)
    assert c.flops == 3 * b * s * hidden * rot // head
    rows = b * s * (rot // 2) * 4
    assert c.weight_bytes == 2 * rows
    assert c.bytes_read == b * s * hidden * 4 + b * s * 8 + 2 * rows
    full = cost("RotaryEmbedding", [(b, heads, s, head), ((max_pos, head // 2),), ((max_pos, head // 2),),
                                    ((b, s), "int64")], [(b, heads, s, head)])
    assert full.flops == 3 * b * heads * s * head


def test_linear_attention():
    b, t, h, kv, dk, dv = 1, 1, 16, 16, 128, 128
    c = cost("LinearAttention", [(b, t, h * dk), (b, t, kv * dk), (b, t, kv * dv), (b, kv, dk, dv)],
             [(b, t, h * dv), (b, kv, dk, dv)], {"q_num_heads": h, "kv_num_heads": kv})
    assert c.flops == b * t * dk * dv * (kv * 5 + h * 2)  # gated_delta update + readout
