"""Which kernels onnxruntime splits over its threads (MLAS's and Eigen's constants), and an N-thread host
timing the rest with its 1-thread rates. Thresholds worked by hand from the constants."""

from __future__ import annotations

import pytest

from planner.calibration.rates import apply
from planner.calibration.store import Calibration
from planner.calibration.threads import kernel_threads
from planner.costs import OpClass, OpCost
from planner.predict.roofline import kernel_time
from planner.targets.host import detect_host, host_fingerprint

GB = 1e9


def _add(n: int) -> OpCost:
    return OpCost(flops=n, bytes_read=8 * n, bytes_written=4 * n)


def test_an_add_splits_from_about_69k_floats_a_side():
    # 69,000: 828,000 bytes x 11/64 + 69,000 = 211,312 cycles -> (211,312 - 100,000) / 100,000 + 0.9 = 2.01
    assert kernel_threads(_add(69_000), OpClass.VECTOR, 2) == 2
    # 68,000: 208,250 cycles -> 1.98: one thread; [64, 256] (16,384): 50,176 cycles, far below
    assert kernel_threads(_add(68_000), OpClass.VECTOR, 2) == 1
    assert kernel_threads(_add(64 * 256), OpClass.VECTOR, 2) == 1
    assert kernel_threads(_add(1024 * 512), OpClass.VECTOR, 8) == 8  # 1.6 M cycles: 15.5 threads' worth
    assert kernel_threads(_add(1 << 24), OpClass.VECTOR, 1) == 1


def test_a_gemm_splits_from_64k_multiply_adds():
    def gemm(m, k, n):
        return OpCost(flops=2 * m * k * n, bytes_read=4 * (m * k + k * n), bytes_written=4 * m * n)
    assert kernel_threads(gemm(32, 63, 32), OpClass.MATRIX, 2) == 1  # 64,512 multiply-adds
    assert kernel_threads(gemm(32, 64, 32), OpClass.MATRIX, 2) == 2  # 65,536: 65,536 / 65,536 + 1
    assert kernel_threads(gemm(64, 64, 64), OpClass.MATRIX, 8) == 5  # 262,144 / 65,536 + 1


def _cal(bw: float, threads: int) -> Calibration:
    return Calibration(
        fingerprint=host_fingerprint(), threads=threads, launch_overhead_s=0.5e-6, run_overhead_s=8e-6,
        run_overhead_per_io_s=0.0, profiler_bias_s=0.0, bandwidth_curve=((1e3, bw), (1e9, bw)),
        weight_bandwidth_curve=(), rate_curves={}, throughput_curves={}, kernel_fixed_s={"vector": 0.25e-6})


def test_two_threads_time_an_unsplit_kernel_at_the_one_thread_rates():
    two = apply(detect_host(), _cal(40 * GB, 2), _cal(20 * GB, 1))
    fixed = 0.5e-6 + 0.25e-6
    small, large = _add(16_384), _add(1 << 22)
    assert kernel_time(small, OpClass.VECTOR, "float32", two, "Add").seconds == pytest.approx(
        fixed + small.bytes / (20 * GB))  # one thread: 20 GB/s
    assert kernel_time(large, OpClass.VECTOR, "float32", two, "Add").seconds == pytest.approx(
        fixed + large.bytes / (40 * GB))  # split: what two threads measured
    alone = apply(detect_host(), _cal(40 * GB, 2))  # without a 1-thread calibration: the 2-thread rates
    assert kernel_time(small, OpClass.VECTOR, "float32", alone, "Add").seconds == pytest.approx(
        fixed + small.bytes / (40 * GB))
