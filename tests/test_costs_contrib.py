from costs_helpers import F16, W, cost

from planner.costs import OpClass, lookup

MS = "com.microsoft"


def test_skip_layer_normalization():
    b, s, h = 2, 128, 768
    gamma = ((h,), "float32", W)
    c = cost("SkipLayerNormalization", [(b, s, h), (b, s, h), gamma, gamma, gamma], [(b, s, h)], domain=MS)
    assert c.flops == b * s * h * (8 + 1 + 1)
    assert c.bytes_read == (2 * b * s * h + 3 * h) * 4
    c2 = cost("SkipSimplifiedLayerNormalization", [(b, s, h), (b, s, h), gamma], [(b, s, h)], domain=MS)
    assert c2.flops == b * s * h * (4 + 1)
    assert lookup(MS, "SkipLayerNormalization").op_class is OpClass.VECTOR


def test_simplified_layer_norm_both_domains():
    b, s, h = 1, 64, 4096
    for domain in ("", MS):
        assert cost("SimplifiedLayerNormalization", [((b, s, h), F16), ((h,), F16, W)], [((b, s, h), F16)],
                    domain=domain).flops == 4 * b * s * h


def test_fused_conv_activation_and_sum():
    n, c_in, c_out, k, h = 1, 32, 64, 3, 28
    inputs = [(n, c_in, h, h), ((c_out, c_in, k, k), "float32", W), ((c_out,), "float32", W)]
    conv = 2 * n * c_out * h * h * c_in * k * k + n * c_out * h * h
    out = n * c_out * h * h
    c = cost("FusedConv", inputs, [(n, c_out, h, h)], {"activation": b"Relu", "pads": [1, 1, 1, 1]}, domain=MS)
    assert c.flops == conv + out * 1
    c = cost("FusedConv", inputs + [(n, c_out, h, h)], [(n, c_out, h, h)], {"activation": "Sigmoid"},
             domain=MS)
    assert c.flops == conv + out * (4 + 1)


def test_nhwc_conv_layout_free():
    n, c_in, c_out, k, h = 2, 16, 32, 3, 14
    c = cost("NhwcConv", [(n, h, h, c_in), (c_out, k, k, c_in)], [(n, h, h, c_out)], domain=MS)
    assert c.flops == 2 * n * c_out * h * h * c_in * k * k
    derived = cost("NhwcConv", [(n, h, h, c_in), (c_out, k, k, c_in)], [None],
                   {"kernel_shape": [k, k], "pads": [1, 1, 1, 1]}, domain=MS)
    assert derived.flops == c.flops


def test_fused_matmul_transposes():
    b, m, k, n = 12, 128, 64, 128
    c = cost("FusedMatMul", [(b, m, k), (b, n, k)], [(b, m, n)], {"transB": 1, "alpha": 0.125}, domain=MS)
    assert c.flops == b * m * n * (2 * k + 1)
    # transBatchA: A [m, b, k] is read as [b, m, k]
    c = cost("FusedMatMul", [(m, b, k), (b, k, n)], [(b, m, n)], {"transBatchA": 1}, domain=MS)
    assert c.flops == 2 * b * m * k * n
    c = cost("TransposeMatMul", [(b, k, m), (b, k, n)], [(b, m, n)], {"transA": 1}, domain=MS)
    assert c.flops == 2 * b * m * k * n


def test_fused_gemm_and_gemm_fast_gelu():
    m, k, n = 64, 768, 3072
    c = cost("FusedGemm", [(m, k), (k, n), (n,)], [(m, n)], {"activation": "Tanh"}, domain=MS)
    assert c.flops == 2 * m * k * n + m * n + 5 * m * n
    c = cost("GemmFastGelu", [(m, k), (k, n), (n,)], [(m, n)], domain=MS)
    assert c.flops == 2 * m * k * n + 14 * m * n


def test_bias_softmax_and_split_gelu():
    b, h, s = 2, 12, 128
    assert cost("BiasSoftmax", [(b, h, s, s), (b, 1, s, s)], [(b, h, s, s)], domain=MS).flops \
        == b * h * s * s * 6
    n, hw, d = 2, 4096, 1280
    c = cost("BiasSplitGelu", [(n, hw, 2 * d), (2 * d,)], [(n, hw, d)], domain=MS)
    assert c.flops == n * hw * 2 * d + n * hw * d * 9


def test_embed_layer_norm_reads_gathered_rows():
    b, s, h, vocab, max_pos = 8, 128, 768, 30522, 512
    table = ((vocab, h), "float32", W)
    pos = ((max_pos, h), "float32", W)
    seg = ((2, h), "float32", W)
    gamma = ((h,), "float32", W)
    ids = ((b, s), "int32")
    c = cost("EmbedLayerNormalization", [ids, ids, table, pos, seg, gamma, gamma], [(b, s, h), ((b,), "int32")],
             domain=MS)
    out = b * s * h
    assert c.flops == out * (2 + 8)
    assert c.weight_bytes == out * 4 + max_pos * h * 4 + 2 * h * 4 + 2 * h * 4  # pos/seg tables are small


def test_moe_decode_touches_only_chosen_experts():
    tokens, hidden, inter, experts, k = 1, 1024, 4096, 8, 2
    fc1 = ((experts, inter, hidden), "float32", W)
    fc2 = ((experts, hidden, inter), "float32", W)
    c = cost("MoE", [(tokens, hidden), (tokens, experts), fc1, None, fc2], [(tokens, hidden)],
             {"k": k, "activation_type": "relu"}, domain=MS)
    assert c.flops == 2 * tokens * k * (2 * inter * hidden) + tokens * k * inter + tokens * experts
    all_weights = 2 * experts * inter * hidden * 4
    assert c.weight_bytes == all_weights * k // experts


def test_group_norm_silu():
    n, h, w, c = 2, 32, 32, 320
    got = cost("GroupNorm", [(n, h, w, c), (c,), (c,)], [(n, h, w, c)], {"activation": 1, "groups": 32},
               domain=MS)
    assert got.flops == n * h * w * c * (8 + 6)
