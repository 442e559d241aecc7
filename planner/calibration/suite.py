"""The calibration suite: which microbenchmarks `plan calibrate` runs, and at what sizes.

    streaming bandwidth         Add of two same-shape tensors at working sets from 16 KiB to 256 MiB (L1,
                                L2, L3, DRAM on a typical server): bytes (io_cost) / kernel time.
    reading weights             chains of GEMVs, each node with weights of its own, 128 KiB to 256 MiB of
                                weights in all (weight_chain): end to end per node, no profiler.
    matrix families             MatMul / Gemm (weights and activations as B), batched MatMul, Conv
                                (onnxruntime turns most into com.microsoft.nchwc::Conv), depthwise and grouped
                                Conv, Conv whose weights are fed (fp16 and QDQ models: the plain NCHW kernel),
                                int8 MatMulInteger / QLinearMatMul / DynamicQuantizeMatMul with signed and
                                unsigned B, ConvInteger (depthwise too), QLinearConv, LSTM / GRU:
                                fused attention over a KV cache (MultiHeadAttention, GroupQueryAttention as
                                passes.fusion.kv_attention writes them: decode steps and prefills):
                                achieved FLOP/s against arithmetic intensity (FLOPs per byte), which is what
                                separates a GEMV from a square GEMM.
    graph node overhead         a transformer-like block of small nodes, 4 and 24 times (mixed_graph): what
                                each node costs beyond what its family's chain says.
    vector and data families    each op type on its own (Softmax, LayerNormalization, BiasGelu, MaxPool,
                                Transpose, Concat, QuantizeLinear, QLinearSoftmax, ...) at working sets in L2
                                and beyond: achieved bytes/s
                                against working set, the same quantity as the streaming curve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from planner.calibration.benches import MS, Bench, F, make, rand, scalar, single, vi, weight
from planner.calibration.rates import IN_DRAM

# float GEMMs whose A rows alias in the L1 (families.ALIASED: K a multiple of 1024 floats, 12 rows or more) and
# plain ones at the same intensities: a BERT-base FFN's down projection (aliased) and up projection (plain), one
# more aliased at K = 2048, and a plain one at the intensity of 512 x 1024 x 1024. With (32 | 512, 1024, 1024)
# (aliased too) the aliased family has a curve of its own from 15 to 128 FLOPs a byte, and the plain one keeps
# points up there.
ALIASING_GEMM = [(128, 3072, 768), (64, 2048, 512), (128, 768, 3072), (512, 1152, 1024)]


# float GEMMs reading A transposed (families.TRANSPOSED_A: FusedMatMul transA, a Transpose fused into the MatMul),
# (K, M, N) for A [1, K, M]ᵀ and a weight [K, N]: a segmentation head's per-stage projections, columns of 256 to
# 8192 floats, and a ViT-sized one
TRANSPOSED_A_GEMM = [(32, 8192, 256), (64, 4096, 64), (128, 1024, 256), (256, 256, 128), (768, 196, 768)]


def _transposed_a_benches(quick: bool) -> list[Bench]:
    return [single(f"FusedMatMul transA {k}x{m}x{n}", "FusedMatMul", [("a", [1, k, m], F)], [1, m, n],
                   [weight("b", [k, n])], {"transA": 1}, domain=MS)
            for k, m, n in ([] if quick else TRANSPOSED_A_GEMM)]


def _gemm_benches(quick: bool) -> list[Bench]:
    out = []
    # (M, K, N) with B a weight (prepacked by onnxruntime): GEMV through square GEMM
    shapes = [(1, 512, 512), (1, 2048, 1024), (4, 1024, 1024), (16, 256, 256), (32, 1024, 1024), (64, 64, 64),
              (128, 128, 128), (128, 64, 256), (256, 512, 512), (512, 1024, 1024), (48, 384, 1536), (200, 96, 96),
              *ALIASING_GEMM]
    if quick:
        shapes = [(1, 512, 512), (128, 128, 128), (256, 512, 512)]
    for m, k, n in shapes:
        out.append(single(f"MatMul {m}x{k}x{n}", "MatMul", [("a", [m, k], F)], [m, n], [weight("b", [k, n])]))
    if not quick:
        for m, k, n in [(1, 1024, 512), (64, 512, 256), (16, 1024, 512), (128, 256, 512), (256, 768, 192),
                        (4, 512, 1000), (128, 3072, 768)]:
            out.append(single(f"Gemm {m}x{k}x{n} bias", "Gemm", [("a", [m, k], F)], [m, n],
                              [weight("b", [n, k]), weight("c", [n], 2)], {"transB": 1}))
    return out + _fed_gemm_benches(quick) + _transposed_a_benches(quick)


# float GEMMs whose B is fed at run time, packed on every call (families.FED): (heads, M, K, N). Attention's
# products from an encoder's 1024 positions to Swin's 49-token windows and a decode step's one row over its cache,
# and weights that a QDQ or fp16 model dequantizes or casts on each run (families.WIDE), at a few rows to many;
# three of them with A rows 4 KiB apart or a multiple (families.ALIASED: K = 1024, 2048, 3072)
FED_GEMM = [(4, 128, 32, 128), (4, 128, 128, 32), (8, 64, 64, 64), (12, 256, 64, 256), (2, 1024, 32, 1024),
            (1, 4096, 32, 256), (128, 49, 32, 49), (32, 49, 49, 32), (8, 1, 64, 128), (8, 1, 128, 64),
            (3, 1, 1500, 64), (1, 4, 512, 512), (1, 32, 768, 768), (1, 128, 512, 512), (1, 128, 512, 2048),
            (1, 128, 2048, 512), (1, 512, 768, 768), (1, 128, 3072, 768), (1, 32, 1024, 768), (1, 16, 512, 1408),
            (1, 64, 768, 2048)]
# ... and a decode step's QKᵀ with the scale folded in (FusedMatMul, alpha 1/8, B transposed): no GEMV shortcut
# (families.NO_GEMV)
FED_SCALED_ROW = [(8, 1, 64, 17), (8, 1, 64, 128), (16, 1, 64, 256), (3, 1, 64, 1500)]


def _fed_gemm_benches(quick: bool) -> list[Bench]:
    out = []
    for h, m, k, n in FED_GEMM[:2] if quick else FED_GEMM:
        out.append(single(f"fed MatMul {h}x{m}x{k}x{n}", "MatMul", [("a", [h, m, k], F), ("b", [h, k, n], F)],
                          [h, m, n]))
    for h, m, k, n in [] if quick else FED_SCALED_ROW:
        out.append(single(f"fed FusedMatMul scaled {h}x{m}x{k}x{n}", "FusedMatMul",
                          [("a", [h, m, k], F), ("b", [h, n, k], F)], [h, m, n], domain=MS,
                          attrs={"alpha": 0.125, "transB": 1}))
    return out


# GEMV chains (k, length): every working set from 128 KiB to 256 MiB (VGG's fully connected layers read 400 MiB
# from DRAM once per run; a shared L3 makes 64 MiB look faster than DRAM), and at 128 KiB to 8 MiB two node
# sizes each, whose difference separates a GEMV's fixed cost from its bytes (fit_weight_chains)
WEIGHT_CHAINS = [(64, 8), (128, 2), (64, 32), (128, 8), (128, 32), (256, 8), (256, 32), (512, 8), (512, 16),
                 (1024, 8), (1024, 16), (2048, 8), (4096, 4)]


GEMM_WEIGHT_CHAINS = [(64, 32), (128, 8), (1024, 8)]  # transposed B, as Linear layers export


# one-row int8 GEMMs (DynamicQuantizeMatMul, int8 weights: a quantize_dynamic decoder's step), (k, length): 1, 4
# and 16 MiB of weights in all at two node sizes each, and 64 MiB. onnxruntime's u8 kernel reads weights that
# are not in cache far slower than a float GEMV does: on a Zen 4 EPYC 12-15 GB/s at 16-256 MiB where fp32 GEMVs
# read 22-35, 41-61 GB/s in cache (benchmarks/int8_weight_streams.py)
INT8_WEIGHT_CHAINS = [(512, 4), (1024, 1), (512, 16), (1024, 4), (512, 64), (1024, 16), (1024, 64)]


# int8 GEMMs of several rows (a quantize_dynamic encoder's or a prefill's DynamicQuantizeMatMul), (k, length,
# rows): 256 KiB of weights a node, 0.25 (in cache: the anchor), 4, 16 and 64 MiB in all. Out of L2 onnxruntime's
# u8 kernel reads its packed weights at 10-18 GB/s whether they sit in L3 or DRAM (Zen 4 EPYC, 32 x 512 x 1408:
# 156 us alone, 190-225 us with 11 MiB of such weights in play), where the one-row kernel reads L3 at 50-64
INT8_ROW_CHAINS = [(512, 1, 32), (512, 16, 32), (512, 64, 32), (512, 256, 32)]


# float GEMMs of several rows (an encoder's or a prefill's MatMul), (k, length, rows): 1 MiB of weights a node,
# 1 (the anchor), 4, 16 and 64 MiB in all. MLAS reads a prepacked B between bursts of FMAs, and out of the
# caches it reads it far slower than a GEMV streams weights: on a Zen 4 EPYC (1 thread) a 32 x 512 x 512 Gemm
# took 150 us alone, 172 with 12 MiB of such weights in play and 189 with 48 (27 GB/s for the weights beyond
# the arithmetic), 128 x 512 x 512 587, 624 and 625, where GEMV chains read 12 MiB at 70 GB/s. At 32 rows and
# at 128: on a Xeon with AMX (2 MiB L2) 32 rows hid the read from L3 (+10 us a node at 16 MiB in play) where 128
# rows, an encoder's, paid 47 (fit_row_weight_chains keeps the slower)
FP32_ROW_CHAINS = [(512, 1, 32), (512, 4, 32), (512, 16, 32), (512, 64, 32), (512, 1, 128), (512, 4, 128),
                   (512, 16, 128), (512, 64, 128)]


QUICK_WEIGHT_CHAINS = [(64, 32), (128, 8), (512, 16)]


# small attention products [h, m, k] x [h, k, k] (a decoder's few heads over a short context): a microsecond or
# less each, so timed as chains end to end like the GEMVs
ACTIVATION_CHAINS = [(2, 16, 16), (8, 16, 32), (4, 64, 32), (8, 32, 64)]


# GEMMs of a few rows over weights in DRAM (a decoder's step at a batch of that many sequences): 24 layers of
# 1024 x 1024 (96 MiB), at 1, 2, 4, 8 and 16 rows. Their time against the one-row chain's is how much of the
# arithmetic the weight stream does not hide (fit_row_chains); a cache-resident GEMM of those rows cannot say.
ROW_CHAINS = [(1024, 24, r) for r in (1, 2, 4, 8, 16)]


def weight_chains(quick: bool) -> list[tuple[int, int, bool, int, bool]]:
    """(k, length, transposed B, rows, int8) of every weight chain the suite times."""
    return ([(k, n, t, 1, False) for k, n, t in _gemv_chains(quick)]
            + ([] if quick else [(k, n, False, r, False) for k, n, r in ROW_CHAINS])
            + [(k, n, False, 1, True) for k, n in (INT8_WEIGHT_CHAINS[2:4] if quick else INT8_WEIGHT_CHAINS)]
            + ([] if quick else [(k, n, False, r, True) for k, n, r in INT8_ROW_CHAINS])
            + ([] if quick else [(k, n, False, r, False) for k, n, r in FP32_ROW_CHAINS]))


def _gemv_chains(quick: bool) -> list[tuple[int, int, bool]]:
    if quick:
        return [(k, n, False) for k, n in QUICK_WEIGHT_CHAINS]
    return [(k, n, False) for k, n in WEIGHT_CHAINS] + [(k, n, True) for k, n in GEMM_WEIGHT_CHAINS]


# depthwise convolutions in the blocked layout whose input and output no longer fit in cache (channels, image
# side, kernel side, stride, batch): working sets of 7-46 MiB (12-46 at stride 2), as batch-8 MobileNets and
# detection-sized maps have them (rates.DRAM_TIMED)
DEPTHWISE_IN_DRAM = [(144, 56, 3, 1, 2), (144, 56, 3, 1, 4), (32, 112, 3, 1, 8), (96, 112, 3, 2, 2),
                     (96, 112, 3, 2, 4), (144, 56, 3, 1, 8), (96, 112, 3, 2, 8), (240, 28, 5, 1, 8)]


def _depthwise_in_dram_benches(quick: bool) -> list[Bench]:
    out = []
    for c, hw, k, s, b in DEPTHWISE_IN_DRAM[4:5] if quick else DEPTHWISE_IN_DRAM:
        pad = k // 2
        ho = (hw + 2 * pad - k) // s + 1
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": c}
        out.append(single(f"Conv depthwise {IN_DRAM} {b}x{c} {hw}x{hw} k{k} s{s}", "Conv",
                          [("x", [b, c, hw, hw], F)], [b, c, ho, ho], [weight("w", [c, 1, k, k]), weight("b", [c], 2)],
                          attrs))
    return out


def _conv_benches(quick: bool) -> list[Bench]:
    out = []
    # (C_in, C_out, HW, kernel, stride, group)
    shapes = [(3, 32, 96, 3, 2, 1), (3, 16, 64, 3, 1, 1), (3, 64, 160, 7, 2, 1), (3, 96, 160, 11, 4, 1),
              (16, 32, 64, 3, 1, 1), (32, 32, 56, 3, 1, 1), (64, 128, 28, 3, 1, 1),
              (64, 256, 28, 1, 1, 1), (256, 64, 28, 1, 1, 1), (128, 128, 14, 3, 1, 1), (256, 512, 7, 3, 1, 1),
              (512, 1024, 7, 1, 1, 1), (96, 96, 28, 5, 1, 1), (3, 48, 112, 7, 2, 1), (32, 64, 40, 1, 1, 1),
              (64, 64, 28, 3, 1, 64), (128, 128, 14, 3, 1, 128), (32, 32, 56, 3, 2, 32),
              (60, 60, 28, 1, 1, 3), (24, 24, 28, 3, 1, 24), (20, 40, 28, 3, 1, 1),
              # grouped 1x1 convolutions (ShuffleNet, ResNeXt), which onnxruntime runs as one GEMM per group
              (240, 240, 28, 1, 1, 3), (480, 480, 14, 1, 1, 3), (960, 960, 7, 1, 1, 3), (128, 256, 28, 1, 1, 4),
              (64, 64, 56, 3, 1, 2),
              # ... and with channels a group that onnxruntime's blocked layout does not take (plain Conv)
              (132, 132, 28, 1, 1, 4), (264, 264, 14, 1, 1, 4), (520, 520, 7, 1, 1, 4), (120, 240, 28, 1, 1, 2),
              (200, 200, 28, 1, 1, 8),
              # grouped 3x3 with few channels a group (ResNeXt's 32x4d), im2col per group
              (128, 128, 28, 3, 1, 32), (120, 120, 14, 3, 1, 6),
              # depthwise at stride 2 (families.STRIDED), as MobileNetV2's and EfficientNet's downsampling blocks
              (96, 96, 56, 3, 2, 96), (144, 144, 56, 3, 2, 144), (240, 240, 28, 5, 2, 240), (672, 672, 14, 5, 2, 672),
              # depthwise 3x3 at more sizes, and depthwise 1x1 (a BatchNormalization in the blocked layout)
              (256, 256, 14, 3, 1, 256), (144, 144, 28, 3, 1, 144), (512, 512, 7, 3, 1, 512),
              (48, 48, 28, 1, 1, 48), (160, 160, 28, 1, 1, 160), (128, 128, 56, 1, 1, 128), (320, 320, 56, 1, 1, 320),
              (512, 512, 7, 1, 1, 512),
              # one block of output channels (families.ONE_BLOCK; 8 is one block on every x86 CPU, 16 with AVX-512)
              (3, 16, 112, 3, 2, 1), (3, 8, 64, 3, 1, 1), (16, 16, 32, 3, 1, 1), (64, 16, 28, 1, 1, 1),
              (128, 16, 56, 1, 1, 1), (32, 8, 28, 3, 1, 1), (96, 16, 14, 3, 1, 1)]
    if quick:
        shapes = [(32, 32, 56, 3, 1, 1), (64, 256, 28, 1, 1, 1), (64, 64, 28, 3, 1, 64)]
    for cin, cout, hw, k, s, g in shapes:
        pad = k // 2
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": g}
        ho = (hw + 2 * pad - k) // s + 1
        out.append(single(f"Conv {cin}->{cout} {hw}x{hw} k{k} s{s} g{g}", "Conv", [("x", [1, cin, hw, hw], F)],
                          [1, cout, ho, ho], [weight("w", [cout, cin // g, k, k]), weight("b", [cout], 2)], attrs))
    return out


# int8 GEMMs beyond the three timed through every operator: the fp32 GEMM shapes (GEMV through square), as
# MatMulInteger and as DynamicQuantizeMatMul (what dynamic quantization ships), so that the int8 rate curve
# covers the same intensities the fp32 one does
INT8_GEMM_EXTRA = [(1, 512, 512), (1, 2048, 1024), (4, 1024, 1024), (16, 256, 256), (32, 1024, 1024),
                   (128, 128, 128), (128, 64, 256), (256, 512, 512), (48, 384, 1536), (200, 96, 96)]


# QLinearMatMul over narrow weights (K, N of 32-160) and many rows, as a small vision transformer at detection
# sizes runs it (a SegFormer-B0 stage: 16384 positions of 32 channels): its time goes by its outputs, not its
# multiply-adds. On a Xeon with AMX (2026-12-08, end to end) 256 x 32 x 32 took 16 us, 16384 x 32 x 128 1.26 ms
# (106 G op/s) where the square shapes ran at 1.3-1.5 T op/s; the epilogue fit (fit.fit_epilogues) takes them as
# a cost per output (0.33-0.58 ns each beyond their GEMM, profiled)
QLINEAR_NARROW = [(256, 32, 32), (1024, 64, 64), (4096, 32, 128), (4096, 128, 32), (1024, 160, 160)]


def _qlinear_matmul(label: str, m: int, k: int, n: int, weights: TensorProto, zb) -> Bench:
    u8 = TensorProto.UINT8
    qparams = [scalar("sa", 0.02, np.float32), scalar("za", 3, np.uint8), weights, scalar("sb", 0.01, np.float32),
               scalar("zb", zb, _weights_dtype(weights)), scalar("sy", 0.05, np.float32), scalar("zy", 5, np.uint8)]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["out0"], name="bench")
    return Bench(f"QLinearMatMul {label}{m}x{k}x{n}",
                 make([node], [vi("a", [m, k], u8)], [vi("out0", [m, n], u8)], qparams),
                 {"a": rand([m, k], 3, np.uint8)})


def _dynamic_quantize_matmul(label: str, m: int, k: int, n: int, weights: TensorProto, zb) -> Bench:
    node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "sb", "zb"], ["out0"], name="bench", domain=MS)
    return Bench(f"DynamicQuantizeMatMul {label}{m}x{k}x{n}",
                 make([node], [vi("a", [m, k])], [vi("out0", [m, n])],
                      [weights, scalar("sb", [0.01], np.float32), scalar("zb", [zb], _weights_dtype(weights))],
                      ms=True),
                 {"a": rand([m, k], 4)})


def _matmul_integer_to_float(label: str, m: int, k: int, n: int, weights: TensorProto, zb) -> Bench:
    """As onnxruntime fuses quantize_dynamic's MatMulInteger + Cast + Mul (the scales) on CPU."""
    u8 = TensorProto.UINT8
    node = helper.make_node("MatMulIntegerToFloat", ["a", "b", "sa", "sb", "za", "zb"], ["out0"], name="bench",
                            domain=MS)
    inits = [weights, scalar("sa", [0.02], np.float32), scalar("sb", [0.01], np.float32), scalar("za", [3], np.uint8),
             scalar("zb", [zb], _weights_dtype(weights))]
    return Bench(f"MatMulIntegerToFloat {label}{m}x{k}x{n}",
                 make([node], [vi("a", [m, k], u8)], [vi("out0", [m, n])], inits, ms=True),
                 {"a": rand([m, k], 3, np.uint8)})


def _weights_dtype(weights: TensorProto):
    return helper.tensor_dtype_to_np_dtype(weights.data_type)


INT8_GEMM_OPS = (_qlinear_matmul, _dynamic_quantize_matmul, _matmul_integer_to_float)


def _int8_benches(quick: bool) -> list[Bench]:
    """u8 x s8 GEMMs through the four ways onnxruntime runs them (all MLAS QGEMM underneath, each with its own work
    around it: families.INT8_EPILOGUE), at the same shapes."""
    u8 = TensorProto.UINT8
    shapes = [(1, 1024, 1024), (64, 512, 512), (256, 1024, 1024)] if not quick else [(64, 512, 512)]
    out = []
    for m, k, n in shapes + ([] if quick else INT8_GEMM_EXTRA):
        weights = weight("b", [k, n], 1, np.int8)
        out.append(single(f"MatMulInteger {m}x{k}x{n}", "MatMulInteger", [("a", [m, k], u8)], [m, n],
                          [weights, scalar("za", 3, np.uint8)], out_elem=TensorProto.INT32))
        if not quick:
            out += [op("", m, k, n, weights, 0) for op in INT8_GEMM_OPS]
    for m, k, n in ([] if quick else QLINEAR_NARROW):
        out.append(_qlinear_matmul("narrow ", m, k, n, weight("b", [k, n], 5, np.int8), 0))
    return out


# int8 GEMMs with an unsigned B (families.U8U8): uint8 weights, as quantize_dynamic(weight_type=QUInt8) writes
# them, and two quantized activations (QDQ attention: scores and context, B fed at run time, not prepacked)
U8U8_GEMM = [(1, 1024, 1024), (4, 1024, 1024), (16, 256, 256), (64, 512, 512), (48, 384, 1536), (128, 128, 128),
             (200, 96, 96), (256, 1024, 1024)]
# B fed (families.FED): batched as attention runs them, from a decode step's one row over a 65-token cache to
# an encoder's 1024 positions
U8U8_BATCHED = [(8, 1, 64, 65), (8, 1, 65, 64), (16, 1, 64, 256), (16, 1, 256, 64), (4, 128, 32, 128),
                (4, 128, 128, 32), (8, 64, 64, 64), (12, 128, 64, 128), (6, 256, 64, 256), (2, 1024, 64, 1024),
                (4, 1024, 32, 1024), (4, 1024, 1024, 32), (1, 4096, 32, 256)]  # heads of 32: ViT-small, SegFormer


def _u8u8_benches(quick: bool) -> list[Bench]:
    u8 = TensorProto.UINT8
    out = []
    for m, k, n in U8U8_GEMM[3:5] if quick else U8U8_GEMM:
        weights = weight("b", [k, n], 1, np.uint8)
        out.append(single(f"MatMulInteger u8 weights {m}x{k}x{n}", "MatMulInteger", [("a", [m, k], u8)], [m, n],
                          [weights, scalar("za", 3, np.uint8), scalar("zb", 128, np.uint8)],
                          out_elem=TensorProto.INT32))
        if quick:
            continue
        out += [op("u8 weights ", m, k, n, weights, 128) for op in INT8_GEMM_OPS]
    for h, m, k, n in [] if quick else U8U8_BATCHED:
        qparams = [scalar("sa", 0.02, np.float32), scalar("za", 3, np.uint8), scalar("sb", 0.01, np.float32),
                   scalar("zb", 128, np.uint8), scalar("sy", 0.05, np.float32), scalar("zy", 5, np.uint8)]
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["out0"],
                                name="bench")
        out.append(Bench(f"QLinearMatMul activations {h}x{m}x{k}x{n}",
                         make([node], [vi("a", [h, m, k], u8), vi("b", [h, k, n], u8)], [vi("out0", [h, m, n], u8)],
                              qparams),
                         {"a": rand([h, m, k], 3, np.uint8), "b": rand([h, k, n], 5, np.uint8)}))
    return out


# ConvInteger as onnxruntime's dynamic quantization ships a CNN (u8 activations and weights): (input channels,
# output channels, image side, kernel side); onnxruntime runs it as im2col + a u8 GEMM, not the blocked layout
CONV_INTEGER = [(64, 64, 56, 3), (64, 256, 56, 1), (256, 64, 56, 1), (128, 128, 28, 3), (512, 128, 28, 1),
                (256, 256, 14, 3), (1024, 256, 14, 1), (512, 512, 7, 3), (16, 32, 32, 3), (3, 32, 112, 3),
                (64, 16, 160, 3), (32, 32, 192, 3), (256, 64, 96, 1)]  # and detector heads' few outputs, many pixels


def _conv_integer_benches(quick: bool) -> list[Bench]:
    u8 = TensorProto.UINT8
    out = []
    for cin, cout, side, k in CONV_INTEGER[:2] if quick else CONV_INTEGER:
        w = weight("w", [cout, cin, k, k], 1, np.uint8)
        pads = [k // 2] * 4
        out.append(single(f"ConvInteger {cin}->{cout} {side}x{side} k{k}", "ConvInteger",
                          [("x", [1, cin, side, side], u8)], [1, cout, side, side],
                          [w, scalar("xz", 3, np.uint8), scalar("wz", 128, np.uint8)], attrs={"pads": pads},
                          out_elem=TensorProto.INT32))
    # grouped (RegNet's 8-channel groups): one im2col and one small GEMM per group, a cost per group
    for c, width, side in [] if quick else GROUPED_CONV_INTEGER:
        out.append(single(f"ConvInteger {c}->{c} {side}x{side} k3 g{c // width}", "ConvInteger",
                          [("x", [1, c, side, side], u8)], [1, c, side, side],
                          [weight("w", [c, width, 3, 3], 1, np.uint8), scalar("xz", 3, np.uint8),
                           scalar("wz", 128, np.uint8)], attrs={"pads": [1] * 4, "group": c // width},
                          out_elem=TensorProto.INT32))
    # depthwise (MobileNet's, ConvNeXt's 7x7): one im2col and a one-row u8 GEMM per channel, far below the rate of
    # dense ones (on an AVX-512 EPYC a MobileNet's 3x3 depthwise ConvIntegers took 250-550 us for 1-3 M MACs)
    for c, side, k in [] if quick else DEPTHWISE:
        out.append(single(f"ConvInteger depthwise {c} {side}x{side} k{k}", "ConvInteger",
                          [("x", [1, c, side, side], u8)], [1, c, side, side],
                          [weight("w", [c, 1, k, k], 1, np.uint8), scalar("xz", 3, np.uint8),
                           scalar("wz", 128, np.uint8)], attrs={"pads": [k // 2] * 4, "group": c},
                          out_elem=TensorProto.INT32))
    return out


# grouped 3x3 convolutions (channels, channels a group, image side), as RegNet's stages run them
GROUPED_CONV_INTEGER = [(48, 8, 56), (104, 8, 28), (208, 8, 14), (440, 8, 7)]

# depthwise convolutions (channels, image side, kernel side): MobileNet's 3x3 and ConvNeXt's 7x7
DEPTHWISE = [(32, 112, 3), (64, 56, 3), (128, 28, 3), (256, 14, 3), (48, 56, 7), (192, 14, 7)]
# ... and at stride 2 (channels, input side, kernel side), as MobileNetV2's and EfficientNet's downsampling blocks
DEPTHWISE_STRIDED = [(32, 112, 3), (96, 112, 3), (144, 56, 3), (144, 56, 5), (240, 28, 5), (672, 14, 5)]
# dense convolutions (C_in, C_out, side, kernel, stride) whose weights are computed, not stored
PLAIN_CONV = [(3, 32, 224, 3, 2), (32, 64, 112, 3, 1), (64, 64, 56, 3, 1), (128, 128, 28, 3, 1),
              (64, 256, 56, 1, 1), (256, 256, 14, 3, 1), (512, 512, 7, 3, 1),
              # ... of few output channels (families.NARROW): stems and the first stages of detectors
              (3, 32, 320, 7, 2), (3, 16, 224, 3, 1), (32, 32, 112, 3, 1), (16, 32, 160, 3, 1), (32, 16, 56, 1, 1),
              (16, 32, 160, 3, 2)]


def _plain_conv_benches(quick: bool) -> list[Bench]:
    """Convolutions onnxruntime cannot reorder into its blocked layout because their weights arrive at run time
    (a Cast of fp16 weights, a DequantizeLinear of QDQ ones, both left in the graph): the plain NCHW kernels,
    im2col + GEMM per group; a depthwise one is one GEMM row per channel (a ConvNeXt 7x7 depthwise ran 10x
    slower so than in the blocked layout). The weights are fed, as in those models."""
    out = []
    for c, side, k in DEPTHWISE[1:2] if quick else DEPTHWISE:
        out.append(single(f"Conv depthwise, fed weights {c} {side}x{side} k{k}", "Conv",
                          [("x", [1, c, side, side], F), ("w", [c, 1, k, k], F)], [1, c, side, side],
                          attrs={"kernel_shape": [k, k], "pads": [k // 2] * 4, "group": c}))
    for c, side, k in DEPTHWISE_STRIDED[1:2] if quick else DEPTHWISE_STRIDED:  # families.STRIDED
        ho = (side + 2 * (k // 2) - k) // 2 + 1
        out.append(single(f"Conv depthwise stride 2, fed weights {c} {side}x{side} k{k}", "Conv",
                          [("x", [1, c, side, side], F), ("w", [c, 1, k, k], F)], [1, c, ho, ho],
                          attrs={"kernel_shape": [k, k], "pads": [k // 2] * 4, "strides": [2, 2], "group": c}))
    for cin, cout, side, k, s in [] if quick else PLAIN_CONV:
        ho = (side + 2 * (k // 2) - k) // s + 1
        out.append(single(f"Conv fed weights {cin}->{cout} {side}x{side} k{k} s{s}", "Conv",
                          [("x", [1, cin, side, side], F), ("w", [cout, cin, k, k], F)], [1, cout, ho, ho],
                          attrs={"kernel_shape": [k, k], "pads": [k // 2] * 4, "strides": [s, s]}))
    return out


# ConvTranspose (families.TRANSPOSED), (input channels, output channels, input side, kernel side, stride): a DB
# text detector's head (2x2/s2 at few channels, up to 640 px), DPT's reassembly (4x4/s4, 2x2/s2), a U-Net
# decoder's wider ones, and an overlapping 4x4/s2
CONV_TRANSPOSE = [(16, 16, 160, 2, 2), (16, 1, 320, 2, 2), (64, 64, 80, 2, 2), (256, 128, 32, 2, 2),
                  (96, 96, 32, 4, 4), (32, 32, 64, 4, 2)]


def _conv_transpose_benches(quick: bool) -> list[Bench]:
    out = []
    for cin, cout, side, k, s in CONV_TRANSPOSE[:1] if quick else CONV_TRANSPOSE:
        pad = (k - s) // 2
        ho = (side - 1) * s - 2 * pad + k
        out.append(single(f"ConvTranspose {cin}->{cout} {side}x{side} k{k} s{s}", "ConvTranspose",
                          [("x", [1, cin, side, side], F)], [1, cout, ho, ho], [weight("w", [cin, cout, k, k])],
                          {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4}))
    return out


# QLinearConv as static quantization ships a CNN (QOperator: u8 activations, s8 weights); onnxruntime runs it in
# NHWC (com.microsoft QLinearConv, channels_last) with its own direct, depthwise and grouped kernels, which are
# not ConvInteger's im2col + GEMM: (input channels, output channels, image side, kernel side, stride, group)
QLINEAR_CONV = [(3, 32, 112, 3, 2, 1), (32, 32, 56, 3, 1, 1), (64, 256, 28, 1, 1, 1), (256, 64, 28, 1, 1, 1),
                (128, 128, 14, 3, 1, 1), (512, 512, 7, 1, 1, 1), (64, 64, 56, 3, 1, 64), (144, 144, 28, 3, 1, 144),
                (256, 256, 14, 3, 1, 256), (512, 512, 7, 3, 2, 512), (128, 128, 28, 3, 1, 32), (240, 240, 28, 1, 1, 3),
                # grouped 3x3 at 8 and 16 channels a group (RegNet's): the rate grows with the group's width
                (96, 96, 56, 3, 1, 12), (128, 128, 28, 3, 1, 16), (240, 240, 14, 3, 1, 15), (448, 448, 7, 3, 1, 28)]


def _qlinear_conv_benches(quick: bool) -> list[Bench]:
    u8 = TensorProto.UINT8
    out = []
    for cin, cout, side, k, st, g in QLINEAR_CONV[:2] if quick else QLINEAR_CONV:
        pad = k // 2
        ho = (side + 2 * pad - k) // st + 1
        inits = [scalar("xs", 0.02, np.float32), scalar("xz", 3, np.uint8),
                 weight("w", [cout, cin // g, k, k], 1, np.int8), scalar("ws", 0.01, np.float32),
                 scalar("wz", 0, np.int8), scalar("ys", 0.05, np.float32),
                 scalar("yz", 5, np.uint8), weight("b", [cout], 2, np.int32)]
        out.append(single(f"QLinearConv {cin}->{cout} {side}x{side} k{k} s{st} g{g}", "QLinearConv",
                          [("x", [1, cin, side, side], u8)], [1, cout, ho, ho], inits,
                          attrs={"kernel_shape": [k, k], "strides": [st, st], "pads": [pad] * 4, "group": g},
                          out_elem=u8))
    return out


def _rnn_benches(quick: bool) -> list[Bench]:
    # (op, sequence, batch, input, hidden): per family, enough layers to fit planner.model.recurrent's seven costs apart
    # (batch 1 to 64, hidden 32 to 256, input a quarter to four times the hidden size, 8 to 64 steps)
    shapes = [("LSTM", 16, 1, 64, 64), ("LSTM", 32, 4, 128, 128), ("LSTM", 48, 8, 256, 256), ("GRU", 32, 1, 64, 128),
              ("GRU", 16, 16, 256, 256), ("LSTM", 8, 32, 32, 32), ("LSTM", 24, 1, 128, 192), ("GRU", 24, 4, 96, 64),
              ("LSTM", 16, 64, 64, 128), ("GRU", 12, 2, 32, 48), ("GRU", 20, 32, 64, 96), ("GRU", 16, 1, 160, 160),
              ("LSTM", 16, 1, 32, 128), ("LSTM", 16, 1, 128, 96),  # batch 1, the common serving case
              ("LSTM", 40, 1, 48, 48), ("LSTM", 12, 2, 256, 64), ("LSTM", 8, 1, 256, 256), ("LSTM", 20, 8, 96, 112),
              ("GRU", 40, 1, 32, 64), ("GRU", 24, 1, 128, 96), ("GRU", 16, 8, 160, 120), ("GRU", 48, 1, 96, 48),
              ("GRU", 8, 4, 192, 192), ("GRU", 12, 64, 32, 64),
              # batches 2 to 16, where the per-row cost (planner.model.recurrent's `rows`) tells apart from the rest
              ("LSTM", 24, 16, 48, 64), ("LSTM", 16, 2, 64, 128), ("LSTM", 32, 4, 32, 48), ("LSTM", 12, 16, 128, 160),
              ("GRU", 24, 16, 40, 64), ("GRU", 16, 2, 96, 96), ("GRU", 32, 4, 64, 128), ("GRU", 12, 16, 128, 160)]
    if quick:
        shapes = shapes[1:2]
    out = []
    for op, seq, b, inp, h in shapes:
        g = 4 if op == "LSTM" else 3
        inits = [weight("W", [1, g * h, inp]), weight("R", [1, g * h, h], 2), weight("B", [1, 2 * g * h], 3)]
        node = helper.make_node(op, ["x", "W", "R", "B"], ["y"], name="bench", hidden_size=h)
        out.append(Bench(f"{op} seq{seq} b{b} in{inp} h{h}",
                         make([node], [vi("x", [seq, b, inp])], [vi("y", [seq, 1, b, h])], inits),
                         {"x": rand([seq, b, inp], 5)}))
    if not quick:
        out += [_quantized_lstm(seq, b, inp, h) for op, seq, b, inp, h in shapes if op == "LSTM"]
    return out


def _quantized_lstm(seq: int, b: int, inp: int, h: int) -> Bench:
    """onnxruntime's DynamicQuantizeLSTM (what quantize_dynamic makes of an LSTM: int8 W [1, in, 4h] and R
    [1, h, 4h], per-tensor scales): each step quantizes the hidden state and runs an int8 GEMM, a different
    kernel from the float LSTM's, so it is a family apart ("lstm" at the int8 peak) with the same shapes."""
    inits = [weight("W", [1, inp, 4 * h], dtype=np.int8), weight("R", [1, h, 4 * h], 2, np.int8),
             weight("B", [1, 8 * h], 3), numpy_helper.from_array(np.array([0.01], np.float32), "w_scale"),
             numpy_helper.from_array(np.array([0], np.int8), "w_zero"),
             numpy_helper.from_array(np.array([0.01], np.float32), "r_scale"),
             numpy_helper.from_array(np.array([0], np.int8), "r_zero")]
    node = helper.make_node("DynamicQuantizeLSTM", ["x", "W", "R", "B", "", "", "", "", "w_scale", "w_zero",
                                                    "r_scale", "r_zero"], ["y"], name="bench", domain=MS,
                            hidden_size=h)
    return Bench(f"DynamicQuantizeLSTM seq{seq} b{b} in{inp} h{h}",
                 make([node], [vi("x", [seq, b, inp])], [vi("y", [seq, 1, b, h])], inits, ms=True),
                 {"x": rand([seq, b, inp], 5)})


STREAM_SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]  # floats per input


def _stream_benches(quick: bool) -> list[Bench]:
    sizes = STREAM_SIZES if not quick else [16 << 10, 1 << 20]
    out = []
    for n in sizes:
        shape = [n // 1024, 1024]  # 2-D: onnx's data propagation walks every element of a 1-D tensor
        out.append(single(f"Add stream {n * 12 >> 10} KiB", "Add", [("a", shape, F), ("b", shape, F)], shape))
    return out


def _dynamic_quantize(shape: list[int]) -> Bench:
    """DynamicQuantizeLinear: a pass for the range, a pass to quantize (dynamic int8 runs one before every
    quantized MatMul or Conv); its scale and zero point are outputs nobody here reads."""
    node = helper.make_node("DynamicQuantizeLinear", ["a"], ["out0", "scale", "zero"], name="bench")
    return Bench(f"DynamicQuantizeLinear {shape}",
                 make([node], [vi("a", shape)], [vi("out0", shape, TensorProto.UINT8)]), {"a": rand(shape, 10)})


def _vector_benches(quick: bool) -> list[Bench]:
    """Each op at two working sets: one inside L2, one well beyond it."""
    rows = []
    for rows_, cols in ([(64, 256), (1024, 512)] if not quick else [(64, 256)]):
        shape = [rows_, cols]
        n = rows_ * cols
        rows += [
            single(f"Mul {shape}", "Mul", [("a", shape, F), ("b", shape, F)], shape),
            single(f"Add bias {shape}", "Add", [("a", shape, F)], shape, [weight("c", [cols])]),
            single(f"Relu {shape}", "Relu", [("a", shape, F)], shape),
            single(f"Sigmoid {shape}", "Sigmoid", [("a", shape, F)], shape),
            single(f"Tanh {shape}", "Tanh", [("a", shape, F)], shape),
            single(f"Erf {shape}", "Erf", [("a", shape, F)], shape),
            single(f"Exp {shape}", "Exp", [("a", shape, F)], shape),
            single(f"Div {shape}", "Div", [("a", shape, F)], shape, [weight("c", [cols])]),
            single(f"Sub {shape}", "Sub", [("a", shape, F), ("b", shape, F)], shape),
            single(f"Pow {shape}", "Pow", [("a", shape, F)], shape, [scalar("p", 2.0, np.float32)]),
            single(f"Sqrt {shape}", "Sqrt", [("a", shape, F)], shape),
            single(f"Reciprocal {shape}", "Reciprocal", [("a", shape, F)], shape),
            single(f"Softmax {shape}", "Softmax", [("a", shape, F)], shape, attrs={"axis": -1}),
            single(f"LayerNormalization {shape}", "LayerNormalization", [("a", shape, F)], shape,
                   [weight("g", [cols]), weight("bb", [cols], 2)], {"axis": -1}),
            single(f"ReduceMean {shape}", "ReduceMean", [("a", shape, F)], [rows_, 1], attrs={"axes": [-1]}),
            single(f"Cast {shape}", "Cast", [("a", shape, F)], shape, attrs={"to": TensorProto.FLOAT16},
                   out_elem=TensorProto.FLOAT16),
            single(f"Transpose {shape}", "Transpose", [("a", [rows_ // 16, 16, cols // 32, 32], F)],
                   [rows_ // 16, cols // 32, 16, 32], attrs={"perm": [0, 2, 1, 3]}),
            single(f"Transpose long rows {shape}", "Transpose", [("a", [4, rows_ // 4, cols], F)],
                   [rows_ // 4, 4, cols], attrs={"perm": [1, 0, 2]}),
            single(f"Concat {shape}", "Concat", [("a", shape, F), ("b", shape, F)], [rows_, 2 * cols],
                   attrs={"axis": 1}),
            single(f"Where {shape}", "Where", [("c", shape, TensorProto.BOOL), ("a", shape, F), ("b", shape, F)],
                   shape),
            single(f"Gather {shape}", "Gather", [("i", [rows_ // 4, 4], TensorProto.INT64)], [rows_ // 4, 4, cols],
                   [weight("tab", shape)], attrs={"axis": 0}, order=["tab", "i"]),
            single(f"Slice {shape}", "Slice", [("a", shape, F)], [rows_, cols // 2],
                   [numpy_helper.from_array(np.array([0], np.int64), "st"),
                    numpy_helper.from_array(np.array([cols // 2], np.int64), "en"),
                    numpy_helper.from_array(np.array([1], np.int64), "ax")]),
            single(f"Expand {shape}", "Expand", [("a", [1, cols], F)], shape,
                   [numpy_helper.from_array(np.array(shape, np.int64), "sh")]),
            single(f"BiasGelu {shape}", "BiasGelu", [("a", shape, F)], shape, [weight("c", [cols])], domain=MS),
            single(f"QuickGelu {shape}", "QuickGelu", [("a", shape, F)], shape, attrs={"alpha": 1.702}, domain=MS),
            single(f"QuickGelu silu {shape}", "QuickGelu", [("a", shape, F)], shape, attrs={"alpha": 1.0}, domain=MS),
            single(f"FastGelu {shape}", "FastGelu", [("a", shape, F)], shape, [weight("c", [cols])], domain=MS),
            single(f"SkipLayerNormalization {shape}", "SkipLayerNormalization", [("a", shape, F), ("s", shape, F)],
                   shape, [weight("g", [cols]), weight("bb", [cols], 2)], domain=MS),
            _dynamic_quantize(shape),
        ]
        short = [rows_ * cols // 32, 32]  # the same elements in rows of 32: attention over a short context
        rows += [
            single(f"Softmax {short}", "Softmax", [("a", short, F)], short, attrs={"axis": -1}),
            single(f"LayerNormalization {short}", "LayerNormalization", [("a", short, F)], short,
                   [weight("g", [32]), weight("bb", [32], 2)], {"axis": -1}),
            single(f"ReduceMean {short}", "ReduceMean", [("a", short, F)], [short[0], 1], attrs={"axes": [-1]}),
            single(f"SkipLayerNormalization {short}", "SkipLayerNormalization", [("a", short, F), ("s", short, F)],
                   short, [weight("g", [32]), weight("bb", [32], 2)], domain=MS),
        ]
        c = max(16, cols // 16)
        hw = max(4, int((n / c) ** 0.5))
        img = [1, c, hw, hw]
        odd = [1, c + 1, hw, hw]  # channels in no NCHWc block: onnxruntime keeps the plain kernel (RegNet's 232)
        rows += [
            single(f"MaxPool {img}", "MaxPool", [("a", img, F)], None, attrs={"kernel_shape": [3, 3], "strides": [2, 2],
                                                                               "pads": [1, 1, 1, 1]}),
            single(f"AveragePool {img}", "AveragePool", [("a", img, F)], None,
                   attrs={"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
            single(f"GlobalAveragePool {img}", "GlobalAveragePool", [("a", img, F)], [1, c, 1, 1]),
            single(f"GlobalAveragePool plain {odd}", "GlobalAveragePool", [("a", odd, F)], [1, odd[1], 1, 1]),
            single(f"LRN {img}", "LRN", [("a", img, F)], img, attrs={"size": 5, "alpha": 1e-4, "beta": 0.75}),
            single(f"BatchNormalization {img}", "BatchNormalization", [("a", img, F)], img,
                   [weight("s", [c]), weight("bb", [c], 2), weight("mu", [c], 3),
                    numpy_helper.from_array(np.ones(c, np.float32), "var")]),
            *_resize_benches(img),
        ]
    return rows


def _pad_benches(quick: bool) -> list[Bench]:
    """Pad of 1 on H and W over images of like working sets and rows of 7 to 112: the runs it copies, not its
    bytes, set its time (families.RUN_TIMED)."""
    images = [[1, 960, 7, 7], [1, 192, 28, 28], [1, 32, 112, 112]] + ([] if quick else [[1, 1536, 14, 14]])
    out = []
    for img in images:
        padded = [img[0], img[1], img[2] + 2, img[3] + 2]
        pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
        out.append(single(f"Pad {img}", "Pad", [("a", img, F)], padded, [pads], attrs={"mode": "constant"},
                          order=["a", "pads"]))
    return out


def _gather_scatter_benches(quick: bool) -> list[Bench]:
    """Gathers and a ScatterND of single elements and of short and long rows (families.RUN_TIMED): a gather
    along the last axis of [196, 196, 2] int64, as BEiT's relative-position index takes its coordinates, copies
    38,416 runs of one element, a gather of 9,604 rows of 12 floats (a relative-position bias table's) as many
    short runs; the vector benches' Gather copies rows of 256-512 floats."""
    i64 = TensorProto.INT64
    grid = [196, 196, 2]
    flat = np.stack(np.meshgrid(np.arange(196), np.arange(196), indexing="ij"), -1).reshape(196, 196, 1, 2)
    coords = np.concatenate([flat, np.zeros((196, 196, 1, 1), np.int64)], -1)  # [i, j, 0] per update
    rows = np.arange(64, dtype=np.int64).reshape(64, 1) * 4
    scatter = helper.make_node("ScatterND", ["a", "idx", "upd"], ["out0"], name="bench")
    out = [
        single(f"Gather single elements {grid}", "Gather", [("a", grid, i64)], grid[:2],
               [numpy_helper.from_array(np.array(0, np.int64), "i")], attrs={"axis": 2}, out_elem=i64),
        single("Gather rows of 12 [732, 12]", "Gather", [("i", [9604], i64)], [9604, 12],
               [weight("tab", [732, 12])], attrs={"axis": 0}, order=["tab", "i"]),
        Bench(f"ScatterND single elements {grid}",
              make([scatter], [vi("a", grid, i64), vi("upd", [196, 196, 1], i64)], [vi("out0", grid, i64)],
                   [numpy_helper.from_array(coords, "idx")]),
              {"a": np.zeros(grid, np.int64), "upd": np.ones([196, 196, 1], np.int64)}),
        Bench("ScatterND rows [256, 512]",
              make([scatter], [vi("a", [256, 512]), vi("upd", [64, 512])], [vi("out0", [256, 512])],
                   [numpy_helper.from_array(rows, "idx")]),
              {"a": rand([256, 512], 3), "upd": rand([64, 512], 4)}),
    ]
    return out[:1] if quick else out


def _qlinear_binary(op: str, shape: list[int]) -> Bench:
    u8 = TensorProto.UINT8
    q = [scalar("sa", 0.02, np.float32), scalar("za", 3, np.uint8), scalar("sb", 0.03, np.float32),
         scalar("zb", 7, np.uint8), scalar("sc", 0.05, np.float32), scalar("zc", 5, np.uint8)]
    node = helper.make_node(op, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["out0"], name="bench", domain=MS)
    return Bench(f"{op} {shape}", make([node], [vi("a", shape, u8), vi("b", shape, u8)], [vi("out0", shape, u8)], q,
                                       ms=True),
                 {"a": rand(shape, 3, np.uint8), "b": rand(shape, 4, np.uint8)})


def _resize(img: list[int], mode: str, scales: Sequence[float] = (1, 1, 2, 2), elem: int = F, what: str = "",
            **attrs) -> Bench:
    """A resize of `img` by `scales`, as detectors' and segmenters' necks and heads run them (FPN: nearest 2x;
    DPT, SegFormer: linear), in one of the loops onnxruntime picks by shape, mode and type
    (families.resize_family)."""
    out = [int(d * f) for d, f in zip(img, scales, strict=True)]
    node = helper.make_node("Resize", ["a", "", "sc"], ["out0"], name="bench", mode=mode, **attrs)
    return Bench(f"Resize {mode}{what} {img}", make([node], [vi("a", img, elem)], [vi("out0", out, elem)],
                                                    [numpy_helper.from_array(np.array(scales, np.float32), "sc")]),
                 {"a": rand(img, 7, helper.tensor_dtype_to_np_dtype(elem))})


def _resize_benches(img: list[int]) -> list[Bench]:
    """One per loop (families.RESIZE_COPY): NCHW fp32 nearest and linear, the copy, the nearest 2x loop, and
    uint8 and channels-last tensors as QOperator models resize them."""
    u8 = TensorProto.UINT8
    nhwc, last = [img[0], img[2], img[3], img[1]], (1, 2, 2, 1)
    return [_resize(img, "nearest"), _resize(img, "linear"), _resize(img, "linear", (1, 1, 1, 1), what=" same"),
            _resize(img, "nearest", what=" 2x", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            _resize(nhwc, "nearest", last, u8, " uint8"), _resize(img, "linear", elem=u8, what=" uint8"),
            _resize(nhwc, "linear", last, what=" nhwc"), _resize(nhwc, "linear", last, u8, " uint8 nhwc")]


TRANSPOSES = [  # (label, shape, perm, uint8): single elements written in short rows and in long ones, runs of 32,
    # in cache and out (families.ELEMENT_RUNS)
    ("narrow", [1, 64, 1024], [0, 2, 1], False), ("narrow", [1, 128, 4096], [0, 2, 1], False),
    ("narrow", [1, 128, 32768], [0, 2, 1], False), ("wide", [1, 1024, 64], [0, 2, 1], False),
    ("wide", [1, 4096, 128], [0, 2, 1], False), ("wide", [1, 32768, 128], [0, 2, 1], False),
    ("runs of 32", [512, 16, 16, 32], [0, 2, 1, 3], False),
    ("narrow", [1, 64, 32, 32], [0, 2, 3, 1], True), ("narrow", [1, 128, 128, 128], [0, 2, 3, 1], True),
    ("narrow", [1, 512, 128, 128], [0, 2, 3, 1], True), ("wide", [1, 32, 32, 64], [0, 3, 1, 2], True),
    ("wide", [1, 128, 128, 128], [0, 3, 1, 2], True), ("wide", [1, 128, 128, 512], [0, 3, 1, 2], True),
    ("runs of 32", [64, 16, 16, 32], [0, 2, 1, 3], True), ("runs of 32", [1024, 16, 16, 32], [0, 2, 1, 3], True)]


def _transpose_benches(quick: bool) -> list[Bench]:
    """Transposes the vector benches' one (runs of 32, fp32, up to 4 MiB) does not time: single elements, 8-bit
    elements, and working sets past the caches (families.ELEMENT_RUNS)."""
    out = []
    for what, shape, perm, u8 in TRANSPOSES[1:2] if quick else TRANSPOSES:
        elem = TensorProto.UINT8 if u8 else F
        y = [shape[p] for p in perm]
        out.append(single(f"Transpose {what}{' uint8' if u8 else ''} {shape}", "Transpose", [("a", shape, elem)], y,
                          attrs={"perm": perm}, out_elem=elem))
    return out


def _quantize_dequantize(shape: list[int]) -> list[Bench]:
    u8 = TensorProto.UINT8
    return [single(f"QuantizeLinear {shape}", "QuantizeLinear", [("a", shape, F)], shape,
                   [scalar("s", 0.02, np.float32), scalar("z", 3, np.uint8)], out_elem=u8),
            single(f"DequantizeLinear {shape}", "DequantizeLinear", [("a", shape, u8)], shape,
                   [scalar("s", 0.02, np.float32), scalar("z", 3, np.uint8)])]


# QDQ models (de)quantize whole activations: attention scores of segmenters and depth models at 512 px are 4-16 M
# elements, 20-80 MB with their float side, past this VM's 32 MiB L3; a 4 M-element DequantizeLinear ran at
# 0.13-0.25 ns an element against 0.11 that the largest cache-resident bench extended to
QDQ_DRAM = [[4096, 1024], [16384, 1024]]


def _quantized_vector_benches(quick: bool) -> list[Bench]:
    """The elementwise ops of quantized models (QDQ's QuantizeLinear / DequantizeLinear, QOperator's QLinearAdd,
    QLinearMul and QLinearSoftmax, a table lookup per element): at the vector benches' two working sets."""
    u8 = TensorProto.UINT8
    out = []
    for rows_, cols in [(64, 256), (1024, 512)] if not quick else []:
        shape = [rows_, cols]
        out += [
            *_quantize_dequantize(shape),
            _qlinear_binary("QLinearAdd", shape),
            _qlinear_binary("QLinearMul", shape),
            single(f"QLinearSoftmax {shape}", "QLinearSoftmax", [("a", shape, u8)], shape,
                   [scalar("s", 0.02, np.float32), scalar("z", 3, np.uint8), scalar("sy", 1 / 256, np.float32),
                    scalar("zy", 0, np.uint8)], attrs={"axis": -1, "opset": 13}, domain=MS, out_elem=u8),
        ]
    for shape in [] if quick else QDQ_DRAM:
        out += _quantize_dequantize(shape)
    return out


ATTENTION_HEADS, ATTENTION_KV_HEADS, ATTENTION_HEAD_SIZE = 8, 2, 64
ATTENTION_SHAPES = [(1, 1, 255), (8, 1, 255), (1, 1, 2047), (8, 1, 2047), (1, 128, 0), (1, 512, 0)]  # B, S, past


def _attention(op: str, b: int, s: int, past: int) -> Bench:
    """One fused attention over a cache as passes.fusion.kv_attention writes it (a mask as attention_bias;
    GroupQueryAttention's seqlens_k, total length and query_seqlens): decode steps over short and long caches
    at batch 1 and 8, and prefills."""
    h, d = ATTENTION_HEADS, ATTENTION_HEAD_SIZE
    kv = ATTENTION_KV_HEADS if op == "GroupQueryAttention" else h
    t = past + s
    i32 = TensorProto.INT32
    ins = [vi("q", [b, s, h * d]), vi("k", [b, s, kv * d]), vi("v", [b, s, kv * d]), vi("pk", [b, kv, past, d]),
           vi("pv", [b, kv, past, d]), vi("bias", [b, 1, s, t])]
    feeds = {"q": rand([b, s, h * d], 1), "k": rand([b, s, kv * d], 2), "v": rand([b, s, kv * d], 3),
             "pk": rand([b, kv, past, d], 4), "pv": rand([b, kv, past, d], 5),
             "bias": np.zeros([b, 1, s, t], np.float32)}
    outs = [vi("out0", [b, s, h * d]), vi("present_k", [b, kv, t, d]), vi("present_v", [b, kv, t, d])]
    if op == "MultiHeadAttention":
        node = helper.make_node(op, ["q", "k", "v", "", "", "bias", "pk", "pv"], ["out0", "present_k", "present_v"],
                                name="bench", domain=MS, num_heads=h)
    else:
        ins += [vi("seqlens", [b], i32), vi("total", [], i32), vi("qlens", [b], i32)]
        feeds.update(seqlens=np.full(b, t - 1, np.int32), total=np.array(t, np.int32), qlens=np.full(b, s, np.int32))
        node = helper.make_node(op, ["q", "k", "v", "pk", "pv", "seqlens", "total", "", "", "", "bias", "", "", "", "",
                                     "", "qlens"], ["out0", "present_k", "present_v"], name="bench", domain=MS,
                                num_heads=h, kv_num_heads=kv)
    return Bench(f"{op} b={b} s={s} past={past}", make([node], ins, outs, ms=True), feeds)


def _attention_benches(quick: bool) -> list[Bench]:
    if quick:
        return []
    return [_attention(op, b, s, past) for op in ("MultiHeadAttention", "GroupQueryAttention")
            for b, s, past in ATTENTION_SHAPES]


def suite(quick: bool = False) -> list[Bench]:
    return (_stream_benches(quick) + _gemm_benches(quick) + _conv_benches(quick) + _depthwise_in_dram_benches(quick)
            + _plain_conv_benches(quick) + _conv_transpose_benches(quick)
            + _int8_benches(quick) + _u8u8_benches(quick) + _conv_integer_benches(quick)
            + _qlinear_conv_benches(quick) + _rnn_benches(quick) + _vector_benches(quick) + _transpose_benches(quick)
            + _pad_benches(quick) + _gather_scatter_benches(quick)
            + _quantized_vector_benches(quick) + _attention_benches(quick))
