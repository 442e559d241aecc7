"""Which kernels onnxruntime splits over its intra-op threads, so that an N-thread prediction times the others
as the single thread they run on.

A calibration at N threads fits each family's rate over intensity or working set from microbenchmarks that
are mostly large enough to split; a small kernel in a model is not, and ran at the N-thread rate it comes
out up to N times too fast (at 2 threads: the transformers' small vector ops half their time, issue #16).
onnxruntime decides in two places, both with fixed constants:

  matrix ops    MLAS (sgemm, qgemm, the im2col convolution) runs a GEMM of M·N·K multiply-adds on
                M·N·K / MLAS_THREAD_COMPLEXITY + 1 threads, MLAS_THREAD_COMPLEXITY = 64 x 1024
                (onnxruntime/core/mlas/lib/mlasi.h: MLAS_SGEMM/QGEMM_THREAD_COMPLEXITY)
  the rest      ThreadPool::TryParallelFor with a TensorOpCost per element goes through Eigen's
                TensorCostModel: cost = elements x (bytes loaded x 11/64 + bytes stored x 11/64 + compute
                cycles) device cycles, threads = (cost - 100,000) / 100,000 + 0.9, at least 1
                (Eigen/CXX11/src/Tensor/TensorCostModel.h: kStartupCycles = kPerThreadCycles = 100000,
                kLoadCycles = kStoreCycles = 1/64 x 11, a 64-byte line at 11 cycles of L2 latency)

Here a kernel's bytes and FLOPs stand for the per-element cost onnxruntime declares: loads and stores at
11/64 cycles a byte, one cycle a FLOP. At 2 threads that puts the split at about 210,000 cycles (an Add
of about 69 K floats a side), and a GEMM splits from 64 K multiply-adds.
"""

from __future__ import annotations

from planner.costs import OpClass, OpCost

MLAS_THREAD_COMPLEXITY = 64 * 1024  # multiply-adds per thread
EIGEN_STARTUP_CYCLES = 100_000
EIGEN_PER_THREAD_CYCLES = 100_000
EIGEN_BYTE_CYCLES = 11 / 64  # a load or a store, per byte


def eigen_cycles(cost: OpCost) -> float:
    """The cost Eigen's model gives a loop over the kernel's elements, in device cycles."""
    return cost.bytes * EIGEN_BYTE_CYCLES + cost.flops


def kernel_threads(cost: OpCost, op_class: OpClass, threads: int) -> int:
    """How many of `threads` onnxruntime runs this kernel on."""
    if threads <= 1:
        return 1
    if op_class == OpClass.MATRIX:
        want = int(cost.flops / 2 / MLAS_THREAD_COMPLEXITY) + 1
    else:
        want = int((eigen_cycles(cost) - EIGEN_STARTUP_CYCLES) / EIGEN_PER_THREAD_CYCLES + 0.9)
    return max(1, min(threads, want))
