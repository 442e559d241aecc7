from costs_helpers import W, cost

from planner.costs import OpClass, lookup


def test_conv_resnet_stem():
    n, c_in, c_out, k, h_out = 1, 3, 64, 7, 112
    x = (n, c_in, 224, 224)
    w = ((c_out, c_in, k, k), "float32", W)
    b = ((c_out,), "float32", W)
    attrs = {"strides": [2, 2], "pads": [3, 3, 3, 3], "kernel_shape": [k, k]}
    c = cost("Conv", [x, w, b], [(n, c_out, h_out, h_out)], attrs)
    expected = 2 * n * c_out * h_out * h_out * c_in * k * k + n * c_out * h_out * h_out
    assert c.flops == expected
    assert c.bytes_read == (n * c_in * 224 * 224 + c_out * c_in * k * k + c_out) * 4
    assert c.weight_bytes == (c_out * c_in * k * k + c_out) * 4
    assert c.bytes_written == n * c_out * h_out * h_out * 4
    # the output size is derived from the attributes when Y's shape is unknown
    assert cost("Conv", [x, w, b], [None], attrs).flops == expected
    assert lookup("", "Conv").op_class is OpClass.MATRIX


def test_conv_depthwise_strided():
    n, c, k, h_out = 2, 32, 3, 28
    attrs = {"group": c, "strides": [2, 2], "pads": [1, 1, 1, 1]}
    c_ = cost("Conv", [(n, c, 56, 56), (c, 1, k, k)], [None], attrs)
    assert c_.flops == 2 * n * c * h_out * h_out * 1 * k * k


def test_conv_grouped_dilated():
    n, c_in, c_out, group, k, dil, hw = 1, 16, 8, 4, 3, 2, 32
    attrs = {"group": group, "dilations": [dil, dil], "pads": [2, 2, 2, 2]}
    c = cost("Conv", [(n, c_in, hw, hw), (c_out, c_in // group, k, k)], [None], attrs)
    h_out = (hw + 2 + 2 - dil * (k - 1) - 1) // 1 + 1
    assert h_out == hw
    assert c.flops == 2 * n * c_out * h_out * h_out * (c_in // group) * k * k


def test_conv_auto_pad_same_and_valid():
    n, c_in, c_out, k, hw, s = 1, 4, 4, 3, 15, 2
    same = cost("Conv", [(n, c_in, hw, hw), (c_out, c_in, k, k)], [None],
                {"auto_pad": b"SAME_UPPER", "strides": [s, s]})
    h_same = -(-hw // s)  # 8
    assert same.flops == 2 * n * c_out * h_same * h_same * c_in * k * k
    valid = cost("Conv", [(n, c_in, hw, hw), (c_out, c_in, k, k)], [None], {"auto_pad": "VALID"})
    h_valid = hw - k + 1
    assert valid.flops == 2 * n * c_out * h_valid * h_valid * c_in * k * k


def test_conv1d():
    n, c_in, c_out, k, length = 4, 80, 256, 5, 100
    c = cost("Conv", [(n, c_in, length), (c_out, c_in, k)], [(n, c_out, length)], {"pads": [2, 2]})
    assert c.flops == 2 * n * c_out * length * c_in * k


def test_conv_transpose():
    n, c_in, c_out, k, hw, s = 1, 64, 32, 4, 16, 2
    h_out = s * (hw - 1) + k - 2  # pads 1 + 1
    attrs = {"strides": [s, s], "pads": [1, 1, 1, 1]}
    c = cost("ConvTranspose", [(n, c_in, hw, hw), (c_in, c_out, k, k), (c_out,)], [(n, c_out, h_out, h_out)],
             attrs)
    expected = 2 * n * c_in * hw * hw * c_out * k * k + n * c_out * h_out * h_out
    assert c.flops == expected
    assert cost("ConvTranspose", [(n, c_in, hw, hw), (c_in, c_out, k, k), (c_out,)], [None], attrs).flops \
        == expected


def test_conv_transpose_grouped():
    n, c_in, c_out, group, k, hw = 2, 64, 32, 2, 3, 10
    c = cost("ConvTranspose", [(n, c_in, hw, hw), (c_in, c_out // group, k, k)], [(n, c_out, hw + 2, hw + 2)],
             {"group": group})
    assert c.flops == 2 * n * c_in * hw * hw * (c_out // group) * k * k


def test_conv_unknown_weight_shape_costs_bytes_only():
    c = cost("Conv", [(1, 3, 8, 8), None], [(1, 4, 8, 8)])
    assert c.flops == 0 and c.bytes_read == 3 * 64 * 4


def test_deform_conv():
    n, c_in, c_out, k, h = 1, 8, 16, 3, 10
    offset = (n, 2 * k * k, h, h)
    c = cost("DeformConv", [(n, c_in, h, h), (c_out, c_in, k, k), offset], [(n, c_out, h, h)])
    taps = n * c_in * h * h * k * k
    assert c.flops == 2 * n * c_out * h * h * c_in * k * k + 8 * taps


def test_causal_conv_with_state():
    b, ch, length, k = 2, 1024, 64, 4
    c = cost("CausalConvWithState", [(b, ch, length), (ch, 1, k), (ch,), (b, ch, k - 1)],
             [(b, ch, length), (b, ch, k - 1)], {"activation": "silu"})
    assert c.flops == b * ch * length * (2 * k + 1 + 6)


def test_nchwc_conv_fused_activation():
    n, c_in, c_out, k, h = 1, 16, 32, 3, 20
    c = cost("Conv", [(n, c_in, h, h), (c_out, c_in, k, k), (c_out,)], [(n, c_out, h, h)],
             {"activation": "Relu"}, domain="com.microsoft.nchwc")
    assert c.flops == 2 * n * c_out * h * h * c_in * k * k + 2 * n * c_out * h * h
