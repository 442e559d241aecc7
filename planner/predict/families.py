"""What kind of kernel a node runs, as calibrations name them: its family, its precision, its steps.

A calibrated host measures a rate per family (planner.calibration.rates); every other target ignores the name."""

from __future__ import annotations

import math

from planner.costs import OpClass
from planner.costs.registry import attr_str
from planner.model.ir import NodeInfo
from planner.model.recurrent import GATES
from planner.targets.host import nchwc_block_size
from planner.targets.rates import WEIGHT_BITS_SEP

_INT8_MATRIX = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                "QGemm", "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"}


def compute_dtype(node: NodeInfo) -> str:
    """The precision a node's arithmetic runs at, which picks the target's peak."""
    if node.op_type in _INT8_MATRIX:
        return "int8"
    for t in node.inputs:
        if t is not None and not t.is_weight:
            return t.dtype
    for t in node.inputs:
        if t is not None:
            return t.dtype
    return "float32"


_GEMM_LIKE = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "TransposeMatMul", "FusedMatMulActivation",
              "GemmFastGelu", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
              "QGemm", "MatMulInteger16", "Einsum"}


_CONV_LIKE = {"Conv", "FusedConv", "NhwcConv", "NhwcFusedConv", "QLinearConv", "ConvInteger", "ConvTranspose"}


_RNN_LIKE = frozenset(GATES)  # LSTM, GRU, RNN and the quantized LSTM

U8U8 = ":u8u8"
"""The suffix of an int8 GEMM whose B is unsigned as well as A (weights quantized to uint8, or two quantized
activations: QDQ attention). VNNI's and AMX's int8 instructions multiply unsigned by signed bytes; u8 x u8 takes
another, slower path (on an AVX-512 VNNI EPYC a DynamicQuantizeMatMul with u8 weights ran at 162 G op/s in a
model, with s8 weights 407 G op/s): its own family, calibrated apart."""
_B_INPUT = {"MatMulInteger": 1, "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1, "QLinearMatMul": 3,
            "MatMul": 1, "FusedMatMul": 1, "TransposeMatMul": 1}


INT8_EPILOGUE = {"QLinearMatMul": ":q", "DynamicQuantizeMatMul": ":dq", "MatMulIntegerToFloat": ":tofloat"}
"""The suffix of an int8 GEMM by what it does around MLAS's u8 GEMM, which MatMulInteger (int32 out) runs alone:
QLinearMatMul requantizes every int32 output to 8 bits, DynamicQuantizeMatMul first finds A's range and quantizes
it, MatMulIntegerToFloat scales every output to float. Measured on a Zen 4 EPYC at [1500, 192] x [192, 768]:
MatMulInteger 438 G op/s, DynamicQuantizeMatMul 377, QLinearMatMul 360; at 128^3 DynamicQuantizeMatMul ran at 70% of
MatMulInteger. One curve over all of them kept the fastest (its fit is non-decreasing), so each is a family."""

IM2COL = ":im2col"
"""The suffix of a ConvInteger that is not 1x1 at stride 1 unpadded, nor depthwise: onnxruntime copies its input,
byte by byte with the padding checks, into a column buffer of (C/group·kh·kw) x output pixels per image and
group, which one u8 GEMM a group then packs; a pointwise one multiplies the input in place. Measured on a Zen 4
EPYC: 0.15-0.35 ns a column element beside 152 G op/s of arithmetic, so a 32->32 3x3 on 320x320 (29 M columns)
ran at 92 G op/s where 128->128 on 80x80 (7 M) ran at 147. It is the same GEMM with an epilogue-like cost per
column and per group (fit.fit_epilogues)."""

FED = ":fed"
"""The suffix of an int8 GEMM whose B is an activation (QDQ attention's QKᵀ and scores·V): MLAS packs a constant
B once, at session start, but a fed one on every call, head by head. Measured on a Zen 4 EPYC: QLinearMatMul of
two u8 activations 107-141 G op/s where the same shapes with B a u8 initializer ran 165-172, and a decode step's
[8, 1, 64] x [8, 64, 65] 7 us where its FLOPs at that rate take 0.4; so it is calibrated apart.

A float GEMM whose B is an activation is "gemm:fed" for the same reason: attention's QKᵀ and scores·V, and every
MatMul of a QDQ or fp16 model whose weight comes out of a DequantizeLinear or Cast on each run. Measured on a Zen 4
EPYC (1 thread): [128, 768] x [768, 768] 1346 us prepacked, 1668 fed; [4, 512] x [512, 512] 27 and 57 us; on the
dev zoo the fed MatMuls ran at 0.85-0.93 of the prepacked curve's time, the others at 1.02."""

WIDE = ":wide"
WIDE_B_BYTES = 512 * 1024
"""The suffix of a float "gemm:fed" of more than one row whose B (per matrix) is WIDE_B_BYTES or more: a weight
that a QDQ or fp16 model dequantizes or casts on every run, where attention's fed B (a head's keys or values,
64 x 1500 floats at most in the zoo) is a few hundred KiB at most. MLAS packs a fed B on every call, reading it
panel by panel out of whatever level of cache holds it; a weight-sized B is read from past the L2 once per call
and that cost is shared by A's rows, so a few rows run far below the rate their intensity would give an
attention product. Measured on a Xeon with AMX (1 thread, 2 MiB L2): [32, 768] x [768, 768] fed ran at 90
GFLOP/s where attention's [4, 128, 32] x [4, 32, 128] (a lower intensity) ran at 126, and a Llama prefill's
[32, 512] x [512, 1408] (fed from a DequantizeLinear) at 78 where one curve over both gave it 131. Benched
apart (suite.FED_GEMM's weight-sized shapes); a calibration from before the split times it by the fed curve."""

STRIDED = ":strided"
"""The suffix of a float depthwise convolution at a stride above 1. A plain (not blocked) one runs as MLAS's
im2col and a one-row GEMM per channel, and that im2col copies 4 floats at a time where the stride is 1 but
gathers one element at a time, with its bounds checks, where it is not (MlasConvIm2Col); with one row of
arithmetic per column element the gather is most of the work. Measured on a Zen 4 EPYC (1 thread, fed weights
as an fp16 or QDQ model feeds them, 3x3): [1, 96, 112, 112] at stride 2 10.4 ns an output, [1, 144, 56, 56] at
stride 1 3.5 ns, at batches 1-16 alike. A blocked one reads four input pixels per output instead of one: in
cache that is another FLOP rate per byte, and in DRAM another bytes/s (rates.DRAM_TIMED): [8, 96, 56, 56] at
stride 2 streamed 30-43 GB/s where stride-1 ones of its working set streamed 20-25."""


SILU = ":silu"
"""The suffix of a com.microsoft QuickGelu, x·sigmoid(αx), whose α is 1: SiLU (Swish), which onnxruntime makes of
x·Sigmoid(x) in EfficientNets and in Llama-style MLPs. Its kernel hands the input straight to MLAS's vectorized
logistic; any other α (CLIP's 1.702, the attribute's default) first scales every element in a scalar loop.
Measured on a Zen 4 EPYC (1 thread): [1024, 512] 182 us at α = 1, 393 at 1.702; [1, 32, 112, 112] 143 and 314."""
QUICK_GELU_DEFAULT_ALPHA = 1.702  # onnxruntime's default for QuickGelu's alpha


NO_GEMV = ":nogemv"
"""The suffix of a fed float GEMM of one row that MLAS cannot hand to its GEMV kernel: that shortcut takes alpha = 1
only, so a decode step's QKᵀ with the attention scale folded in (FusedMatMul, alpha = 1/√d) packs B as a GEMM
does. Measured on a Zen 4 EPYC: [3, 1, 64] x [3, 64, 1500] 18.8 us at alpha 1, 42.5 at alpha 0.125."""


ALIASED = ":aliased"
ALIAS_BYTES = 4096  # the size of one way of an x86 L1 data cache (32 KiB 8-way, 48 KiB 12-way): the set period
ALIAS_ROWS = 12  # the rows of A that MLAS's AVX-512 SGEMM kernel reads at once, more than those caches' 8 ways
"""The suffix of a float GEMM whose A rows lie a multiple of ALIAS_BYTES apart (K = 1024, 2048,
3072 floats...) with ALIAS_ROWS rows or more: the rows the kernel reads together all map to the same L1 sets,
more of them than the cache has ways, and evict one another. Measured on a Zen 4 EPYC (1 thread, MatMul, N =
768): 128 rows at K = 1024, 2048, 3072, 4096 ran at 101-104 GFLOP/s, at 1152, 1280, 1536, 2304, 2560 at 113-116;
at K = 1024 against 1152, 12 to 32 rows 100-105 against 112-114, 10 rows and fewer alike. A BERT-base FFN's
down projection (K = 3072) ran at 0.89 of the time its up projection (K = 768, the same FLOPs and bytes) predicted
it; fed the same weights (an fp16 ALBERT casts them on each run) 0.85. A calibration times the aliased shapes
apart (suite), and one from before the split by the plain curve."""
_FLOAT_GEMM = frozenset({"MatMul", "Gemm", "FusedMatMul", "FusedGemm"})


def aliased(node: NodeInfo) -> bool:
    """A float GEMM whose A rows alias in the L1 (see ALIASED). MLAS runs a batched one (B of more than two dims)
    matrix by matrix, so its rows are A's last but one dim; against a 2-D B, all of A's leading dims."""
    if node.op_type not in _FLOAT_GEMM or node.attr("transA", 0) or node.attr("transBatchA", 0):
        return False
    a, b = node.in_shape(0), node.in_shape(1)
    if a is None or len(a) < 2 or b is None or not all(isinstance(d, int) for d in a):
        return False
    rows = a[-2]
    if len(b) <= 2:
        for d in a[:-2]:
            rows *= d
    return a[-1] > 0 and (4 * a[-1]) % ALIAS_BYTES == 0 and rows >= ALIAS_ROWS


TRANSPOSED_A = ":transA"
TRANSPOSED_A_ROWS = 16
"""The suffix of a float GEMM that reads A transposed (FusedMatMul's transA, onnxruntime's fusion of a Transpose
into the MatMul after it: x.flatten(2).transpose(1, 2) then a Linear, as SegFormer's decode head does), of
TRANSPOSED_A_ROWS rows or more: MLAS first copies A into row order, gathering each row's K elements a whole
column (M floats) apart. Measured on a Zen 4 EPYC (1 thread, in a SegFormer at 512 px): [32, 16384]ᵀ x [32, 128]
2300 us where the plain GEMM curve gave its FLOPs 1152, [64, 4096]ᵀ 912 against 577, [160, 1024]ᵀ 511 against
362, [256, 256]ᵀ 165 against 146: the longer the columns, the slower. Benched apart (suite)."""


def transposed_a(node: NodeInfo) -> bool:
    """A float GEMM reading A transposed, of TRANSPOSED_A_ROWS rows or more (see TRANSPOSED_A)."""
    if node.op_type not in _FLOAT_GEMM or not (node.attr("transA", 0) or node.attr("transBatchA", 0)):
        return False
    a = node.in_shape(0)
    return a is not None and len(a) >= 2 and isinstance(a[-1], int) and a[-1] >= TRANSPOSED_A_ROWS


def _a_layout(node: NodeInfo) -> str:
    """ALIASED or TRANSPOSED_A for a float GEMM whose A is read that way, else ""."""
    return ALIASED if aliased(node) else TRANSPOSED_A if transposed_a(node) else ""


def _b_input(node: NodeInfo):
    i = _B_INPUT.get(node.op_type)
    return node.inputs[i] if i is not None and i < len(node.inputs) else None


def _unsigned_b(node: NodeInfo) -> bool:
    b = _b_input(node)
    return b is not None and b.dtype == "uint8"


def _fed_suffix(node: NodeInfo) -> str:
    """FED for a GEMM whose B is not a weight (and NO_GEMV for a float one that cannot take the GEMV shortcut),
    else ""."""
    b = _b_input(node)
    if b is None or b.is_weight:
        return ""
    if node.op_type in _INT8_MATRIX:
        return FED
    a = node.in_shape(0)
    row = a is not None and len(a) > 0 and (a[-2] if len(a) > 1 else 1) == 1
    scaled = node.attr("alpha", 1.0) != 1.0 or node.attr("transA", 0)
    if row:
        return FED + (NO_GEMV if scaled else "")
    b_shape = node.in_shape(1)
    wide = b_shape is not None and len(b_shape) >= 2 and all(isinstance(d, int) for d in b_shape[-2:]) \
        and 4 * b_shape[-1] * b_shape[-2] >= WIDE_B_BYTES
    return FED + (WIDE if wide else "")


def epilogue_counts(family: str, flops: float, grid: tuple[int, int, int]) -> tuple[float, float, float]:
    """(output elements, staged elements, matrices) of an int8 kernel with an epilogue: what it does per output
    (requantize, scale), per element it re-lays out before the GEMM (A quantized by DynamicQuantizeMatMul: M·K,
    K from its FLOPs 2·M·N·K + 4·M·K; the im2col columns of IM2COL: C/g·kh·kw a pixel of every group) and per
    matrix it runs (a group of a convolution). `grid` is families.gemm_grid's (rows, columns, matrices).

    A FED GEMM keeps a curve of its own: timed as the constant-B GEMM plus its requantization, K·N a matrix
    packed and a cost per matrix, QDQ attention on the dev zoo came out at 0.59 of measured against 0.68."""
    rows, cols, mats = grid
    outputs = rows * cols * mats
    if family.endswith(IM2COL):
        return 0.0, flops / (2 * cols) if cols else 0.0, mats
    if family.endswith(INT8_EPILOGUE["DynamicQuantizeMatMul"]):
        m = rows * mats
        return outputs, m * flops / (2 * outputs + 4 * m) if outputs else 0.0, mats
    return outputs, 0.0, mats


EPILOGUE_SUFFIXES = (*INT8_EPILOGUE.values(), IM2COL)


_DOMAIN_TAG = {"": "", "com.microsoft": "ms.", "com.microsoft.nchwc": "nchwc."}


def group_width(channels: int) -> str:
    """The suffix of an NHWC int8 grouped convolution by the input channels of a group (4, 8 or 16 and more):
    onnxruntime's kernel runs at a rate set by them, not by its intensity. On a Zen 4 EPYC, 3x3 groups of 4
    channels ran at 7 G op/s, of 8 at 26, of 16 at 94-95, whatever the image; by intensity RegNet's stride-2
    groups of 8 read the 4-channel rate and came out 3.5x slow, its stride-1 ones 2.4x fast."""
    width = 4 if channels < 8 else 8 if channels < 16 else 16
    return f":w{width}"


NHWC_INT8 = "nhwc."  # the family prefix of com.microsoft QLinearConv, which onnxruntime's NHWC transformer makes


_ROW_WISE = {"Softmax", "LogSoftmax", "LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
             "SkipSimplifiedLayerNormalization", "RMSNormalization", "ReduceMean", "ReduceSum", "ReduceMax"}


SHORT_ROWS = 128  # a row-wise op over rows shorter than this is its own family ("Softmax:short")


LONG_RUN = 64  # a Transpose whose output keeps runs of this many input elements in order is "Transpose:long"
BLOCK_RUN = 8  # below this, "Transpose:element": every element moves alone
ELEMENT_RUNS, NARROW = ":element", ":narrow"
WIDE_ROWS = 1024  # an element Transpose writing output rows shorter than this (written_rows) is ":narrow"
"""A Transpose that moves single elements (the last axis moves: [b, c, n] -> [b, n, c], NCHW <-> NHWC) costs
per element, about twice what one of 32-element runs does, and more once it leaves the caches (Zen 4 EPYC,
1 thread, fp32: [1, 128, 16384] -> [1, 16384, 128] 0.82 ns an element at 16 MiB in play, 1.5 at 64 MiB; runs of
32: 0.33 at 4 MiB). A Transpose of 8-bit elements (QOperator models switch layouts in uint8) costs per element
nearly what an fp32 one does, 0.15-0.50 ns: two to four times fp32's time per byte. Which way the rows run
matters as much: writing short output rows (NCHW -> NHWC writes rows of C) from reads strided by a long axis
cost 0.47-0.50 ns an 8-bit element where writing long rows (NHWC -> NCHW, rows of W·H) cost 0.19-0.21, and
1.0-1.1 against 0.4-0.9 in fp32. Families of their own (":element", ":narrow" below WIDE_ROWS, ":u8"), each
timed by its own benches up to DRAM-sized working sets."""


def contiguous_run(node: NodeInfo) -> int:
    """How many consecutive input elements a Transpose moves together: the product of the trailing dims its
    permutation leaves in place (ShuffleNet's channel shuffle [1, g, c, h, w] -> [1, c, g, h, w] moves h·w at a
    time; attention's [b, s, h, d] -> [b, h, s, d] moves d). Measured here, a Transpose of 784-element runs
    streams 3x faster than one of 32-element runs. 1 when the shape or permutation is unknown."""
    x = node.in_shape(0)
    if not x:
        return 1
    perm = list(node.attr("perm") or range(len(x) - 1, -1, -1))
    if sorted(perm) != list(range(len(x))):  # not a permutation of this rank: the model is wrong, not us
        return 1
    run, i = 1, len(x) - 1
    while i >= 0 and perm[i] == i:
        run *= x[i]
        i -= 1
    return run


def written_rows(node: NodeInfo) -> int:
    """How many output elements a Transpose writes in order while stepping through its input's innermost axis
    with a stride: the output dims after the one that axis became (NCHW -> NHWC: C; NHWC -> NCHW: H·W;
    [b, m, n] -> [b, n, m]: m). 0 when the shape is unknown."""
    x, y = node.in_shape(0), node.out_shape(0)
    if not x or not y or len(x) != len(y):
        return 0
    perm = list(node.attr("perm") or range(len(x) - 1, -1, -1))
    if sorted(perm) != list(range(len(x))):
        return 0
    return math.prod(y[perm.index(len(x) - 1) + 1:])


RUN_TIMED = frozenset({"Pad", "Gather", "ScatterND"})
"""Data-movement families whose cost is per contiguous run they copy as well as per byte (contiguous_runs):
onnxruntime's Pad copies the input one run at a time and writes the padding around each, and a run costs
about 13 ns beyond its bytes. Measured on a Zen 4 EPYC (1 thread, pads of 1 on H and W): [1, 960, 7, 7] took
1.18 ns an output element, [1, 192, 28, 28] 0.41, [1, 32, 112, 112] 0.21: 13-14 ns a row of 7 and of 28
alike. A Gather copies one run per index (an embedding row, or a single element when it gathers along the
last axis), a ScatterND one per update: BEiT's relative-position tables gather and scatter 38,416 single int64
elements at 8-18 ns each (320-700 us a node where their 0.3-2.5 MB would stream in 10-35). A bytes/s curve over
working set cannot see row length; the calibration fits seconds a run (planner.calibration.fit.fit_run_costs)
beyond the bytes at the streaming bandwidth."""


def contiguous_runs(node: NodeInfo) -> int:
    """The contiguous runs of input a RUN_TIMED kernel copies, 0 for any other kernel or an unknown shape. A Pad
    copies, for every index of the axes before its innermost padded axis, one block of everything from there on
    (an NCHW image padded on H and W: N·C·H rows of W; padded on C only: N blocks of C·H·W). The padded axes are
    those whose size changes: the pads themselves are an input the graph may compute. A Gather copies one block
    per index and per index of the axes before its own; a ScatterND one per update (all but the last axis of
    its indices)."""
    if node.op_type not in RUN_TIMED:
        return 0
    x, y = node.in_shape(0), node.out_shape(0)
    if node.op_type == "Gather":
        idx = node.in_shape(1)
        if not x or idx is None:
            return 0
        axis = int(node.attr("axis", 0) or 0) % len(x)
        return math.prod(x[:axis]) * math.prod(idx)
    if node.op_type == "ScatterND":
        idx = node.in_shape(1)
        return math.prod(idx[:-1]) if idx else 0
    if not x or not y or len(x) != len(y) or not all(isinstance(d, int) for d in (*x, *y)):
        return 0
    padded = [i for i in range(len(x)) if x[i] != y[i]]
    runs = 1
    for d in x[:max(padded)] if padded else ():  # nothing padded: one copy
        runs *= d
    return runs


RESIZE_COPY, NEAREST_2X, EIGHT_BIT, CHANNELS_LAST = ":copy", ":nearest2x", ":u8", ":nhwc"
"""onnxruntime's plain Resize runs one of several loops, per output element far apart (Zen 4 EPYC, 1 thread,
[1, 64, 80, 80] -> [1, 64, 160, 160] unless said): a resize to the input's own shape is a copy (0.16 ns an
element, fp32; a SegFormer head and DPT's position embeddings have one); a nearest 2x of H and W with asymmetric
coordinates and floor rounding (what PyTorch exports for F.interpolate(scale_factor=2)) takes a 2x loop of its
own, 0.10 ns an element against 1.0 for the generic nearest loop (any other scale, rounding or axes); 8-bit
tensors (QOperator models resize uint8 activations, channels last after their NHWC QLinearConvs) take the
generic loop at 0.9-1.6 ns an element, not a quarter of fp32's time as their bytes would say; linear
interpolation of a channels-last tensor ([1, H, W, C], scales on H and W) runs a loop of its own, 0.48 ns an
element in fp32 and 2.3 in uint8, against 1.55 and 4.6 over NCHW. Each is a family the calibration times."""


def _eight_bit(node: NodeInfo) -> bool:
    """Whether the node's data input holds 8-bit integers (a QOperator model's activations)."""
    return node.has_input(0) and node.inputs[0].dtype in ("uint8", "int8")


def resize_family(node: NodeInfo) -> str:
    """The loop a plain (not NCHWc) Resize or Upsample runs: see RESIZE_COPY."""
    x, y = node.in_shape(0), node.out_shape(0)
    known = x is not None and y is not None and len(x) == len(y)
    if known and tuple(x) == tuple(y):
        return node.op_type + RESIZE_COPY
    mode = attr_str(node, "mode", "nearest") or "nearest"
    if mode == "nearest":
        two_x = known and len(x) == 4 and x[:2] == y[:2] and y[2] == 2 * x[2] and y[3] == 2 * x[3]
        legacy = node.op_type == "Upsample"  # before opset 11: no coordinate mode, the 2x loop always applies
        if two_x and (legacy or (attr_str(node, "coordinate_transformation_mode", "half_pixel") == "asymmetric"
                                 and attr_str(node, "nearest_mode", "round_prefer_floor") == "floor")):
            return node.op_type + NEAREST_2X
    family = node.op_type + ("" if mode == "nearest" else ":interpolated")
    if _eight_bit(node):
        family += EIGHT_BIT
    if mode != "nearest" and known and len(x) == 4 and x[0] == y[0] and x[3] == y[3]:
        family += CHANNELS_LAST
    return family


def kernel_family(node: NodeInfo, op_class: OpClass) -> str:
    """The kind of kernel a node runs, as calibrations name them.

    Matrix ops group by algorithm: "gemm" (MatMul-like; an int8 one with an unsigned B "gemm:u8u8", see U8U8, then
    by what it does besides the GEMM, see INT8_EPILOGUE, and one whose B is an activation suffixed ":fed", see
    FED: "gemm:u8u8:q:fed"; a float one whose B is an activation "gemm:fed", see FED, NO_GEMV and WIDE),
    "gemm_bias" (Gemm); a float one whose A rows alias in the L1 suffixed ":aliased" (see ALIASED:
    "gemm:aliased", "gemm:fed:aliased", "gemm_bias:aliased"), one reading A transposed ":transA" (see
    TRANSPOSED_A); "conv" (a plain float one of few output channels suffixed ":narrow", see NARROW),
    "conv:transpose" (ConvTranspose, see TRANSPOSED), "conv_dw" (depthwise: one input channel per group; a float
    one at a stride
    above 1 suffixed ":strided", see STRIDED), "conv_dw_1x1" (a depthwise 1x1: a per-channel scale, which
    onnxruntime's blocked layout makes of a BatchNormalization; a calibration times it by its bytes),
    "conv_grouped_1x1" (other groups, a 1x1 stride-1 kernel: one GEMM per group straight off the input),
    "conv_grouped" (other groups:
    im2col per group first, several times slower than the 1x1 case at the same intensity), "lstm", "gru", "rnn",
    prefixed "nchwc." for onnxruntime's blocked-layout kernels ("nchwc.conv_nchw": a blocked conv reading a
    plain NCHW input, as first layers do) and "nhwc." for its NHWC int8 QLinearConv (on an AVX2 EPYC a
    4-channel-group 3x3 ran at 5 G op/s there against 94-144 G op/s for dense ones), a dense one whose output is
    one channel block suffixed ":1block"
    (see ONE_BLOCK); every other op is its own family, its op type with the domain
    tagged ("Softmax", "ms.BiasGelu", "nchwc.MaxPool"); row-wise ops (softmax, normalisations, reductions) over
    rows shorter than SHORT_ROWS are a family of their own ("Softmax:short"), their cost being mostly per row;
    a Transpose that moves runs of LONG_RUN or more elements is "Transpose:long" (contiguous_run), one that moves
    single elements "Transpose:element" (":narrow" where it writes short rows, see ELEMENT_RUNS), an 8-bit one
    suffixed ":u8"; a plain
    Resize is a family per loop onnxruntime runs for it (resize_family: "Resize:copy", "Resize:nearest2x",
    "Resize:interpolated:u8:nhwc", ...); a
    QuickGelu at α = 1 is "ms.QuickGelu:silu" (see SILU).
    """
    tag = _DOMAIN_TAG.get(node.domain, node.domain + ".")
    if op_class == OpClass.MATRIX:
        if node.op_type in ("Gemm", "FusedGemm", "QGemm"):
            # y = A·B + C: the bias initialises the output, B is usually transposed
            return "gemm_bias" + _a_layout(node)
        if node.op_type in _GEMM_LIKE:
            return ("gemm" + (U8U8 if _unsigned_b(node) else "") + INT8_EPILOGUE.get(node.op_type, "")
                    + _fed_suffix(node) + _a_layout(node))
        if node.op_type in _RNN_LIKE:
            return "gru" if node.op_type == "GRU" else "rnn" if node.op_type == "RNN" else "lstm"
        if node.op_type == "ConvTranspose":
            return tag + "conv" + TRANSPOSED
        if node.op_type in _CONV_LIKE:
            w = node.in_shape(3 if node.op_type in ("QLinearConv",) else 1)
            group = node.attr("group", 1) or 1
            depthwise = group > 1 and w is not None and len(w) > 1 and w[1] == 1
            grouped = group > 1 and not depthwise
            if node.op_type == "QLinearConv" and node.domain == "com.microsoft":
                tag = NHWC_INT8  # onnxruntime's NHWC int8 kernels (direct, depthwise, grouped), not ConvInteger's
            elif tag == "ms.":  # FusedConv runs the plain Conv kernel (im2col + GEMM per group), then its activation
                tag = ""
            if depthwise:
                if _pointwise(node, w):
                    return tag + "conv_dw_1x1"
                float_conv = tag in ("", "nchwc.") and node.op_type in ("Conv", "FusedConv")
                return tag + "conv_dw" + (STRIDED if _strided(node) and float_conv else "")
            if node.op_type == "ConvInteger" and not _pointwise(node, w):
                return tag + "conv" + IM2COL  # dense or grouped: columns and a GEMM per group
            if grouped:
                if tag == NHWC_INT8 and w is not None and len(w) > 1 and not _pointwise(node, w):
                    return tag + "conv_grouped" + group_width(w[1])
                return tag + ("conv_grouped_1x1" if _pointwise(node, w) else "conv_grouped")
            x = node.in_shape(0)
            first_layer = tag == "nchwc." and x is not None and len(x) > 1 and x[1] % 8  # plain NCHW input
            family = "nchwc.conv_nchw" if first_layer else tag + "conv"
            if tag == "nchwc." and w is not None and 0 < w[0] <= nchwc_block_size():
                family += ONE_BLOCK
            elif tag == "" and node.op_type in ("Conv", "FusedConv") and w is not None and 0 < w[0] <= NARROW_ROWS:
                family += NARROW + (STRIDED if _strided(node) else "")
            return family
    if node.op_type in ("MatMulNBits", "MatMulBnb4"):  # weight-only: what it costs to dequantize depends on bits
        return f"{tag}{node.op_type}{WEIGHT_BITS_SEP}{node.attr('bits', 4) if node.op_type == 'MatMulNBits' else 4}"
    if node.op_type in ("Resize", "Upsample"):
        if not tag:
            return resize_family(node)
        interpolated = (attr_str(node, "mode", "nearest") or "nearest") != "nearest"  # the blocked layout's loops
        return f"{tag}{node.op_type}{':interpolated' if interpolated else ''}"
    if node.op_type == "QuickGelu" and float(node.attr("alpha", QUICK_GELU_DEFAULT_ALPHA)) == 1.0:
        return f"{tag}QuickGelu{SILU}"  # no scalar pre-scaling pass
    if node.op_type == "Transpose":
        run = contiguous_run(node)
        if run >= LONG_RUN:
            return f"{tag}Transpose:long"  # whole rows move: a copy of long runs, not a gather of single elements
        narrow = run < BLOCK_RUN and written_rows(node) < WIDE_ROWS
        return (f"{tag}Transpose{ELEMENT_RUNS if run < BLOCK_RUN else ''}{NARROW if narrow else ''}"
                f"{EIGHT_BIT if _eight_bit(node) else ''}")
    if node.op_type in _ROW_WISE:
        x = node.in_shape(0)
        if x and x[-1] < SHORT_ROWS:
            return f"{tag}{node.op_type}:short"  # per-row overheads dominate short rows
    return tag + node.op_type


def gemm_grid(node: NodeInfo) -> tuple[int, int, int] | None:
    """A matrix node's output as the GEMM a GPU runs: (rows, columns, independent matrices). A MatMul against a
    2-D weight is one GEMM over all leading dims (cuBLAS folds [batch, seq] into rows); one of two activations
    is a batch of GEMMs (attention); a convolution is an implicit GEMM of output pixels x output channels per
    group. None where the output shape is not known."""
    y = node.outputs[0] if node.outputs else None
    shape = y.shape if y is not None else None
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        return None
    if node.op_type in _CONV_LIKE:
        if len(shape) < 3:
            return None
        group = node.attr("group", 1) or 1
        pixels = shape[0]
        for d in shape[2:]:
            pixels *= d
        return pixels, max(shape[1] // group, 1), group
    if node.op_type not in _GEMM_LIKE and node.op_type not in ("MatMulNBits", "MatMulBnb4"):
        return None
    b = node.inputs[1] if len(node.inputs) > 1 else None
    cols = shape[-1]
    lead = 1
    for d in shape[:-1]:
        lead *= d
    if len(shape) <= 2 or b is None or b.is_weight or (b.shape is not None and len(b.shape) <= 2):
        return lead, cols, 1
    return shape[-2], cols, lead // shape[-2]


ONE_BLOCK = ":1block"

TRANSPOSED = ":transpose"
"""The suffix of a ConvTranspose: onnxruntime multiplies Wᵀ by the input into a column buffer of
(C_out/group·kh·kw) x input pixels, then adds the columns into the output one element at a time (Col2im, scalar
loops); with few channels that scatter, not the GEMM, is the kernel. Measured on a Zen 4 EPYC (1 thread, in a DB
text detector at 640 px): 16 -> 16 2x2/s2 on 160 x 160 1456 us where the convolution curve gave its FLOPs 563,
16 -> 1 on 320 x 320 584 against 141; DPT's 4x4/s4 reassembly 736 against 356. Benched apart (suite)."""

NARROW = ":narrow"
NARROW_ROWS = 32
"""The suffix of a plain NCHW float convolution (weights fed: an fp16 model's Cast, a QDQ model's
DequantizeLinear) of NARROW_ROWS output channels or fewer, which are the rows of its GEMM: MLAS builds and packs
the same columns whatever the rows, so few rows run far below the rate of wide convolutions at any intensity. On
a Zen 4 EPYC (1 thread, fed weights) a 3 -> 32 7x7 stride-2 stem ran at 59-60 GFLOP/s at 160, 320 and 640 px,
32 -> 32 3x3 at 69-81, where 64 -> 64 and wider ran at 95-101. A strided one is suffixed STRIDED: its columns
are gathered element by element, and its rate is set by that, not by its intensity (the two stems at 59-61,
under the stride-1 narrow convolutions of lower intensity at 67-83)."""


def _strided(node: NodeInfo) -> bool:
    """A convolution that steps more than one pixel along some axis."""
    return any(v > 1 for v in (node.attr("strides") or [1]))


def _pointwise(node: NodeInfo, w: tuple | None) -> bool:
    """A 1x1 kernel at stride 1 and no padding: every output pixel reads exactly its own input pixel."""
    kernel = node.attr("kernel_shape") or (list(w[2:]) if w is not None and len(w) > 2 else None)
    if not kernel or any(k != 1 for k in kernel):
        return False
    return not _strided(node) and not any(node.attr("pads") or [0])


def kernel_steps(node: NodeInfo) -> int:
    """Sequential steps inside one kernel: an RNN runs its sequence one time step after another."""
    if node.op_type not in _RNN_LIKE:
        return 1
    x = node.in_shape(0)
    if x is None or len(x) != 3:
        return 1
    return max(1, x[1] if node.attr("layout", 0) == 1 else x[0])
