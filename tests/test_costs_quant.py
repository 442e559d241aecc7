from costs_helpers import F16, W, cost

from planner.costs import OpClass, lookup

MS = "com.microsoft"
U8, I8 = "uint8", "int8"


def test_matmul_nbits_flops_and_quarter_byte_weights():
    m, k, n, bits, block = 1, 4096, 4096, 4, 32
    blocks = k // block
    packed = ((n, blocks, block * bits // 8), U8, W)
    scales = ((n * blocks,), F16, W)
    c = cost("MatMulNBits", [((1, m, k), F16), packed, scales], [((1, m, n), F16)],
             {"K": k, "N": n, "bits": bits, "block_size": block}, domain=MS)
    assert c.flops == 2 * m * k * n
    fp32_weights = k * n * 4
    packed_bytes = n * blocks * block * bits // 8
    assert packed_bytes * 8 == fp32_weights
    assert c.weight_bytes == packed_bytes + n * blocks * 2
    assert c.weight_bytes < 0.15 * fp32_weights
    assert c.bytes_read == m * k * 2 + c.weight_bytes
    assert lookup(MS, "MatMulNBits").op_class is OpClass.MATRIX


def test_matmul_nbits_with_bias_and_unknown_a():
    m, k, n = 8, 1024, 512
    c = cost("MatMulNBits", [None, ((n, k // 32, 16), U8, W), ((n * k // 32,), F16, W), None, None, ((n,), F16)],
             [((m, n), F16)], {"K": k, "N": n, "bits": 4, "block_size": 32}, domain=MS)
    assert c.flops == 2 * m * k * n + m * n


def test_qlinear_matmul_and_matmul_integer():
    m, k, n = 128, 768, 768
    scalar = ((), "float32", W)
    zp = ((), U8, W)
    c = cost("QLinearMatMul", [((m, k), U8), scalar, zp, ((k, n), I8, W), scalar, ((), I8, W), scalar, zp],
             [((m, n), U8)])
    assert c.flops == 2 * m * k * n
    assert c.bytes_written == m * n
    assert cost("MatMulInteger", [((m, k), U8), ((k, n), I8)], [((m, n), "int32")]).flops == 2 * m * k * n


def test_dynamic_quantize_matmul_adds_quantising_a():
    m, k, n = 64, 256, 128
    c = cost("DynamicQuantizeMatMul", [(m, k), ((k, n), I8, W), ((), "float32", W)], [(m, n)], domain=MS)
    assert c.flops == 2 * m * k * n + 4 * m * k


def test_qlinear_conv_and_conv_integer():
    n, c_in, c_out, k, h = 1, 64, 64, 3, 56
    s = ((), "float32", W)
    zp = ((), U8, W)
    inputs = [((n, c_in, h, h), U8), s, zp, ((c_out, c_in, k, k), I8, W), s, ((), I8, W), s, zp,
              ((c_out,), "int32", W)]
    c = cost("QLinearConv", inputs, [((n, c_out, h, h), U8)], {"pads": [1, 1, 1, 1]})
    assert c.flops == 2 * n * c_out * h * h * c_in * k * k + n * c_out * h * h
    ci = cost("ConvInteger", [((n, c_in, h, h), U8), ((c_out, c_in, k, k), U8)], [((n, c_out, h, h), "int32")],
              {"pads": [1, 1, 1, 1]})
    assert ci.flops == 2 * n * c_out * h * h * c_in * k * k


def test_qgemm():
    m, k, n = 32, 512, 1000
    s = ((), "float32")
    c = cost("QGemm", [((m, k), U8), s, ((), U8), ((n, k), I8), s, ((), I8), ((n,), "int32")], [(m, n)],
             {"transB": 1}, domain=MS)
    assert c.flops == 2 * m * k * n + m * n


def test_quantize_dequantize_dynamic():
    n = 1 << 16
    assert cost("QuantizeLinear", [(n,), ()], [((n,), U8)]).flops == 2 * n
    assert cost("DequantizeLinear", [((n,), I8), ()], [(n,)]).flops == 2 * n
    assert cost("DequantizeLinear", [((n,), I8), ()], [(n,)], domain=MS).flops == 2 * n
    c = cost("DynamicQuantizeLinear", [(n,)], [((n,), U8), (), ((), U8)])
    assert c.flops == 4 * n
    assert c.bytes_read == 4 * n and c.bytes_written == n + 4 + 1


def test_gather_block_quantized_reads_gathered_rows():
    vocab, hidden, seq, bits, block = 32000, 4096, 16, 4, 32
    data = ((vocab, hidden * bits // 8), U8, W)
    scales = ((vocab, hidden // block), F16, W)
    c = cost("GatherBlockQuantized", [data, ((1, seq), "int64"), scales], [((1, seq, hidden), F16)],
             {"bits": bits, "block_size": block}, domain=MS)
    out = seq * hidden
    assert c.weight_bytes == out * bits // 8 + out // block * 2
    assert c.flops == 2 * out


def test_qlinear_elementwise():
    n = 1000
    s = ((), "float32")
    zp = ((), U8)
    assert cost("QLinearAdd", [((n,), U8), s, zp, ((n,), U8), s, zp, s, zp], [((n,), U8)], domain=MS).flops \
        == 7 * n


def test_qattention_uses_attention_formula():
    b, s, hidden, heads = 1, 32, 256, 4
    d = hidden // heads
    c = cost("QAttention", [((b, s, hidden), U8), ((hidden, 3 * hidden), I8), ((3 * hidden,),), (), ()],
             [(b, s, hidden)], {"num_heads": heads}, domain=MS)
    sdpa = 2 * b * heads * s * s * d * 2 + 5 * b * heads * s * s
    assert c.flops == 2 * b * s * hidden * 3 * hidden + b * s * 3 * hidden + sdpa
