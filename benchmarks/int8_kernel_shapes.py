"""What an int8 kernel costs beyond its multiply-adds, measured here: the evidence for the int8 families'
epilogues (planner.calibration.fit.fit_epilogues) and ConvInteger's im2col columns (families.IM2COL).

    python benchmarks/int8_kernel_shapes.py [--runs 20]

Part 1, int8 GEMMs at M = N = 512 over K = 32 to 2048: MatMulInteger (the u8 GEMM alone, int32 out),
QLinearMatMul (requantizes every output), DynamicQuantizeMatMul (quantizes A first) and MatMulIntegerToFloat
(scales every output to float), with the time each takes beyond MatMulInteger. A cost per output shows as a
difference that stays put while K grows; a cost per A element as one that grows with K.

Part 2, ConvInteger 3x3 (same padding) at shapes of equal FLOPs and different column counts, and pointwise:
the time against a line fitted over all of them, FLOPs at one rate plus a cost per im2col column element.

One thread, the quickest of --runs after a warm-up, each kernel alone in its session (the calibration's
benches, planner.calibration.suite). Run it on a quiet machine; it prints what it measured, nothing is stored.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto  # noqa: E402

from planner.calibration.benches import Bench, scalar, single, weight  # noqa: E402
from planner.calibration.suite import INT8_GEMM_OPS  # noqa: E402

KS = [32, 64, 128, 256, 512, 1024, 2048]
CONVS = [(64, 64, 56, 3), (128, 128, 80, 3), (32, 32, 320, 3), (64, 64, 224, 3), (64, 16, 160, 3),
         (64, 64, 224, 1), (256, 64, 160, 1)]


def quickest_us(bench: Bench, runs: int) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(bench.model, so, providers=["CPUExecutionProvider"])
    for _ in range(3):
        s.run(None, bench.feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, bench.feeds)
        times.append(time.perf_counter() - t)
    return min(times) * 1e6


def gemms(runs: int) -> None:
    m = n = 512
    print(f"int8 GEMMs, M = N = {m}: microseconds (G op/s), and beyond MatMulInteger")
    print(f"{'K':>5} {'MatMulInteger':>16} {'QLinearMatMul':>22} {'DynamicQuantizeMatMul':>24} "
          f"{'MatMulIntegerToFloat':>24}")
    for k in KS:
        w = weight("b", [k, n], 1, np.int8)
        alone = single("MatMulInteger", "MatMulInteger", [("a", [m, k], TensorProto.UINT8)], [m, n],
                       [w, scalar("za", 3, np.uint8)], out_elem=TensorProto.INT32)
        base = quickest_us(alone, runs)
        ops = 2 * m * n * k / 1e3
        cells = [f"{base:8.0f} ({ops / base:4.0f})"]
        for make in INT8_GEMM_OPS:
            t = quickest_us(make("", m, k, n, w, 0), runs)
            cells.append(f"{t:8.0f} ({ops / t:4.0f}) {t - base:+6.0f}")
        print(f"{k:5d} {cells[0]:>16} {cells[1]:>22} {cells[2]:>24} {cells[3]:>24}")


def convs(runs: int) -> None:
    rows = []
    for cin, cout, side, k in CONVS:
        bench = single(f"ConvInteger {cin}->{cout} {side}x{side} k{k}", "ConvInteger",
                       [("x", [1, cin, side, side], TensorProto.UINT8)], [1, cout, side, side],
                       [weight("w", [cout, cin, k, k], 1, np.uint8), scalar("xz", 3, np.uint8),
                        scalar("wz", 128, np.uint8)], attrs={"pads": [k // 2] * 4}, out_elem=TensorProto.INT32)
        columns = 0 if k == 1 else cin * k * k * side * side  # a pointwise one multiplies its input in place
        rows.append((bench.label, 2 * cout * cin * k * k * side * side, columns, quickest_us(bench, runs)))
    a = np.array([[flops, cols] for _, flops, cols, _ in rows], float)
    t = np.array([us for *_, us in rows])
    coef, *_ = np.linalg.lstsq(a / t[:, None], np.ones(len(t)), rcond=None)  # relative least squares
    print(f"\nConvInteger: a line of FLOPs at {1e-3 / coef[0]:.0f} G op/s + {coef[1] * 1e3:.3f} ns a column element")
    print(f"{'':36} {'M columns':>10} {'us':>8} {'G op/s':>7} {'line':>8} {'error':>7}")
    for (label, flops, cols, us), fit in zip(rows, a @ coef, strict=True):
        print(f"{label:36} {cols / 1e6:10.1f} {us:8.0f} {flops / us / 1e3:7.0f} {fit:8.0f} {fit / us - 1:+7.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    gemms(args.runs)
    convs(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
