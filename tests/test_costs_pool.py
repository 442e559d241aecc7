from costs_helpers import cost


def test_maxpool_window_taps():
    n, c, k, h_out = 1, 64, 3, 56
    attrs = {"kernel_shape": [k, k], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    c_ = cost("MaxPool", [(n, c, 112, 112)], [(n, c, h_out, h_out)], attrs)
    # per axis: the first window starts on the pad (2 taps on X), the other 55 hold 3
    assert c_.flops == n * c * (2 + 55 * 3) ** 2
    assert c_.bytes_read == n * c * 112 * 112 * 4
    assert cost("MaxPool", [(n, c, 112, 112)], [None], attrs).flops == c_.flops  # derived output size


def test_window_clipped_to_input():
    # Hugging Face's EfficientNet pooler: AvgPool2d(1280, ceil_mode=True) over a 7x7 map is one window per
    # channel that covers the 49 positions there are, not 1280 x 1280 taps
    attrs = {"kernel_shape": [1280, 1280], "strides": [1280, 1280], "pads": [0, 0, 0, 0], "ceil_mode": 1,
             "count_include_pad": 1}
    assert cost("AveragePool", [(1, 1280, 7, 7)], [(1, 1280, 1, 1)], attrs).flops == 1280 * 49
    # dilation 2, kernel 3, pad 2 on a length-5 axis: 5 outputs whose windows hold 2, 2, 3, 2, 2 taps on X
    attrs = {"kernel_shape": [3], "dilations": [2], "pads": [2, 2]}
    assert cost("MaxPool", [(1, 1, 5)], [(1, 1, 5)], attrs).flops == 11
    # SAME_UPPER on 6 with kernel 3 stride 2: 3 outputs, total pad 1 at the end; windows 0-2, 2-4, 4-5
    attrs = {"kernel_shape": [3], "strides": [2], "auto_pad": "SAME_UPPER"}
    assert cost("MaxPool", [(1, 1, 6)], [None], attrs).flops == 3 + 3 + 2


def test_average_and_lp_pool():
    n, c, k, h_out = 2, 16, 2, 8
    attrs = {"kernel_shape": [k, k], "strides": [k, k]}
    for op in ("AveragePool", "LpPool"):
        assert cost(op, [(n, c, 16, 16)], [(n, c, h_out, h_out)], attrs).flops == n * c * h_out * h_out * k * k


def test_global_pools_read_everything_once():
    n, c, h, w = 8, 2048, 7, 7
    for op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"):
        c_ = cost(op, [(n, c, h, w)], [(n, c, 1, 1)])
        assert c_.flops == n * c * h * w


def test_resize_modes():
    n, c, h, w = 1, 3, 64, 64
    x, y = (n, c, h, w), (n, c, 2 * h, 2 * w)
    out = n * c * 4 * h * w
    assert cost("Resize", [x, None, (4,)], [y]).flops == out  # nearest (default)
    assert cost("Resize", [x, None, (4,)], [y], {"mode": b"linear"}).flops == out * 2**2
    assert cost("Resize", [x, None, (4,)], [y], {"mode": "cubic"}).flops == out * 4**2
    # only the width is resized: d = 1
    y_w = (n, c, h, 2 * w)
    assert cost("Resize", [x, None, (4,)], [y_w], {"mode": "linear"}).flops == n * c * h * 2 * w * 2
    assert cost("Upsample", [x, (4,)], [y], {"mode": "nearest"}).flops == out


def test_grid_sample_bilinear():
    n, c, h, w = 2, 8, 32, 32
    c_ = cost("GridSample", [(n, c, 64, 64), (n, h, w, 2)], [(n, c, h, w)])
    assert c_.flops == n * c * h * w * 4


def test_roi_align_and_affine_grid():
    rois, c, oh, ow, s = 100, 256, 7, 7, 2
    c_ = cost("RoiAlign", [(1, c, 50, 50), (rois, 4), ((rois,), "int64")], [(rois, c, oh, ow)],
              {"sampling_ratio": s, "output_height": oh, "output_width": ow})
    assert c_.flops == rois * c * oh * ow * s * s * 8
    n, h, w, d = 4, 16, 16, 2
    grid = n * h * w * d
    assert cost("AffineGrid", [(n, 2, 3), ((4,), "int64")], [(n, h, w, d)]).flops == grid * 2 * d


def test_max_roi_pool_bounded_by_map():
    rois, c, ph, pw, h, w = 10, 32, 6, 6, 20, 30
    assert cost("MaxRoiPool", [(1, c, h, w), (rois, 5)], [(rois, c, ph, pw)]).flops == rois * c * h * w
