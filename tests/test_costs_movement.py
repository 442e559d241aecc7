import pytest
from costs_helpers import W, cost

from planner.costs import ZERO, OpClass, lookup

I64 = "int64"


@pytest.mark.parametrize("op", ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size",
                                "Constant", "Dropout", "Optional", "OptionalGetElement", "OptionalHasElement",
                                "BitCast"])
def test_view_ops_cost_zero(op):
    assert lookup("", op).op_class is OpClass.VIEW
    assert cost(op, [(64, 768), ((2,), I64)], [(64, 768)]) == ZERO


def test_shape_reads_nothing():
    assert cost("Shape", [(1 << 20, 1024)], [((2,), I64)]) == ZERO
    assert cost("ExpandDims", [(4, 4), ((), "int32")], [(4, 1, 4)], domain="com.microsoft") == ZERO


def test_gather_reads_only_gathered_rows():
    vocab, hidden, batch, seq = 50257, 768, 1, 128
    c = cost("Gather", [((vocab, hidden), "float32", W), ((batch, seq), I64)], [(batch, seq, hidden)])
    rows = batch * seq * hidden * 4
    assert c.bytes_read == batch * seq * 8 + rows
    assert c.weight_bytes == rows
    assert c.bytes_written == rows
    assert c.flops == 0
    assert lookup("", "Gather").op_class is OpClass.DATA


def test_gather_elements_and_nd():
    n, d = 1000, 64
    c = cost("GatherElements", [(n, d), ((n, 1), I64)], [(n, 1)])
    assert c.bytes_read == n * 8 + n * 4
    c = cost("GatherND", [((n, d), "float32", W), ((10, 1), I64)], [(10, d)])
    assert c.bytes_read == 10 * 8 + 10 * d * 4 and c.weight_bytes == 10 * d * 4


def test_gather_unknown_output_reads_everything():
    n, d = 100, 8
    c = cost("Gather", [(n, d), ((3,), I64)], [None])
    assert c.bytes_read == n * d * 4 + 3 * 8


def test_slice_reads_the_slice():
    b, s, h, keep = 1, 1024, 768, 512
    small = ((1,), I64, W)
    c = cost("Slice", [(b, s, h), small, small, small], [(b, keep, h)])
    assert c.bytes_read == b * keep * h * 4 + 3 * 8
    assert c.bytes_written == b * keep * h * 4
    assert c.weight_bytes == 3 * 8


def test_expand_and_tile_read_input_once():
    b, s, h = 8, 128, 768
    c = cost("Expand", [(1, h), ((3,), I64)], [(b, s, h)])
    assert c.bytes_read == h * 4 + 3 * 8 and c.bytes_written == b * s * h * 4
    c = cost("Tile", [(1, s, h), ((3,), I64)], [(b, s, h)])
    assert c.bytes_read == s * h * 4 + 3 * 8 and c.bytes_written == b * s * h * 4


@pytest.mark.parametrize("op", ["Concat", "Split", "Transpose", "Pad", "DepthToSpace", "SpaceToDepth",
                                "ScatterND", "ScatterElements", "Trilu", "OneHot", "NonZero", "Compress",
                                "ReverseSequence", "EyeLike", "CenterCropPad", "Unique", "Range",
                                "ConstantOfShape"])
def test_data_ops_io_bytes_no_flops(op):
    n = 4096
    c = cost(op, [(n,), (n,)], [(2 * n,)])
    assert lookup("", op).op_class is OpClass.DATA
    assert c.flops == 0 and c.bytes_read == 2 * n * 4 and c.bytes_written == 2 * n * 4


def test_tensor_scatter_updates_in_place():
    b, heads, max_len, d, new = 1, 8, 4096, 128, 1
    c = cost("TensorScatter", [((b, heads, max_len, d), "float16"), ((b, heads, new, d), "float16"),
                               ((b,), I64)], [((b, heads, max_len, d), "float16")])
    assert c.bytes_read == b * heads * new * d * 2 + b * 8
    assert c.bytes_written == b * heads * new * d * 2
