"""What a target's hardware reaches: the terms the roofline adds up, from the spec sheet or from measurement.

The roofline (planner.predict.roofline) is one formula over a kernel's terms:

    t = max(compute_s, memory_s - serial_s) + serial_s + fixed_s

and a `Rates` object says what the terms are for one kernel. Every target carries one. `SPEC` is the spec
sheet: FLOPs at peak x compute efficiency, bytes at bandwidth x memory efficiency, the launch overhead, no
serial part. A calibrated host carries planner.calibration.rates.CalibratedRates instead, which answers the
same questions from what `plan calibrate` measured (rates by kernel family and intensity, bandwidth by working
set, fixed costs per family, weights read serially, GEMVs and recurrent layers as they were timed). Whatever
is calibrated lives there; the roofline never asks which kind it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from planner.costs import OpClass, OpCost
from planner.model.recurrent import RecurrentShape

if TYPE_CHECKING:  # target.py holds a Rates; a Rates reads a Target's numbers
    from planner.targets.target import Target


WEIGHT_BITS_SEP = ":w"  # a weight-only kernel's family carries its weights' bits: "ms.MatMulNBits:w4"


def weight_bits(family: str) -> int | None:
    """The weight bits of a weight-only kernel's family ("ms.MatMulNBits:w4" -> 4); None for any other."""
    _, sep, bits = family.rpartition(WEIGHT_BITS_SEP)
    return int(bits) if sep and bits.isdigit() else None


# Output tiles a GPU GEMM kernel assigns to its streaming multiprocessors, and the share of a big tile's
# per-SM rate a smaller tile reaches (half the operand reuse): [D-WAVES] docs/hwtargets-reference.md section 7.
TILES = ((128, 128, 1.0), (64, 64, 0.5))
SPLIT_K = (1, 2, 4, 8)  # slices of K a GEMM with too few output tiles splits into (cuBLAS's split-K)
MIN_SPLIT_K = 256


def wave_utilization(grid: tuple[int, int, int], units: int, flops: int = 0) -> float:
    """The share of the GPU a GEMM keeps busy: its output tiles run in waves of `units` (one tile per SM at a
    time), and the last wave is partly empty; the kernel picks the tile size, and where the output has fewer
    tiles than SMs a split of K into up to 8 slices of at least MIN_SPLIT_K (its depth, from the FLOPs), that
    finishes first. A BERT-base projection at 384 tokens has 3 x 6 = 18 tiles of 128 x 128 for 108 SMs."""
    rows, cols, mats = grid
    depth = flops // (2 * rows * cols * mats) if flops else 0
    best = 0.0
    for tr, tc, rate in TILES:
        tiles = -(-rows // tr) * -(-cols // tc) * mats
        for split in SPLIT_K:
            if split > 1 and (tiles >= units or depth < split * MIN_SPLIT_K):
                break
            n = tiles * split
            waves = -(-n // units)
            best = max(best, rate * n / (waves * units))
    return min(best, 1.0)


def dequant_seconds(work: Work, target: Target) -> float:
    """What a weight-only kernel spends turning its packed weights back into floats on the vector units.

    A batch-1 GEMV over int4 weights moves a quarter of the fp16 bytes but converts every weight (extract, an
    int-to-float conversion at a quarter of the FMA rate, the scale) before its FMA: on the engines measured this
    work, not the bytes, bounds the kernel (published int4 decode is 1.5-2x fp16, not 3-4x). Weights are counted
    as weight bytes x 8 / bits (block scales included: 1/8 more at block 32 with fp16 scales)."""
    bits = weight_bits(work.family)
    per_weight = target.dequant_flops_per_weight.get(bits, 0.0) if bits else 0.0
    if not per_weight or not work.cost.weight_bytes:
        return 0.0
    return work.cost.weight_bytes * 8 / bits * per_weight / target.vector_flops_per_s


@dataclass(frozen=True)
class Work:
    """One kernel as the rates see it."""

    cost: OpCost
    op_class: OpClass
    family: str  # which calibrated rate times it (planner.predict.families.kernel_family), "" when none applies
    peak_key: str  # the peak its arithmetic runs at ("fp32", "int8", "vector", ...)
    peak_flops_per_s: float
    intensity: float  # FLOPs per byte
    resident_bytes: float = 0.0  # what its weights share the memory hierarchy with (the model's weights)
    steps: int = 1  # > 1: this is one step of a kernel that runs that many (an RNN's time steps)
    grid: tuple[int, int, int] | None = None  # a GEMM's output: (rows, columns, independent matrices)
    runs: int = 0  # contiguous runs a data kernel copies (planner.predict.families.contiguous_runs)
    reads: tuple[tuple[int, int], ...] = ()  # (bytes, stack distance) per activation it reads (predict.reuse)


@dataclass(frozen=True)
class Terms:
    """A kernel's time in parts. `serial_s` is the part of `memory_s` that does not hide under the arithmetic
    (a CPU reads a GEMM's packed weights between bursts of FMAs); `arithmetic_hidden`: the measured memory
    term already holds the arithmetic (a GEMV timed whole), so compute_s is reported but not added."""

    compute_s: float
    memory_s: float
    fixed_s: float  # per kernel: the launch and the family's own cost
    serial_s: float = 0.0
    arithmetic_hidden: bool = False


class Rates(Protocol):
    reads_matter: bool  # whether terms() uses Work.reads (what the predictor need not work out otherwise)

    def terms(self, work: Work, target: Target) -> Terms:
        """The roofline's terms for `work` on `target`."""
        ...

    def layer_seconds(self, work: Work, shape: RecurrentShape, steps: int) -> float | None:
        """A recurrent layer's time beyond its launch, where these rates know it whole; None otherwise."""
        ...

    def subgraph_run_s(self, op_type: str, target: Target) -> float:
        """What one run of an If / Loop / Scan (`op_type`) body costs beyond its own kernels."""
        ...

    def cold_kind_s(self, streamed_bytes: float) -> float:
        """What a kernel pays when `streamed_bytes` of weights went by since its kind last ran
        (planner.predict.cold)."""
        ...


class SpecRates:
    """The spec sheet: peak x compute efficiency, bandwidth x memory efficiency, the launch overhead."""

    reads_matter = False  # one bandwidth for everything: where an input was last used changes nothing

    def terms(self, work: Work, target: Target) -> Terms:
        cost = work.cost
        bandwidth = target.mem_bw_bytes_per_s * target.memory_efficiency
        weights = min(cost.weight_bytes, cost.bytes)
        # weights and the rest as two terms, as the calibrated rates take them (at two bandwidths there): one
        # bandwidth here, but the same sum keeps every plan the same to the last bit
        memory_s = (cost.bytes - weights) / bandwidth if cost.bytes else 0.0
        if weights:
            memory_s += weights / bandwidth
        compute_s = cost.flops / (work.peak_flops_per_s * target.compute_efficiency) if cost.flops else 0.0
        if compute_s and work.grid and target.compute_units:
            compute_s /= wave_utilization(work.grid, target.compute_units, cost.flops)
        return Terms(compute_s + dequant_seconds(work, target), memory_s, target.launch_overhead_s)

    def layer_seconds(self, work: Work, shape: RecurrentShape, steps: int) -> float | None:
        return None

    def subgraph_run_s(self, op_type: str, target: Target) -> float:
        return 0.0  # no spec sheet says; a body's kernels each carry their launch

    def cold_kind_s(self, streamed_bytes: float) -> float:
        return 0.0  # no spec sheet says


SPEC = SpecRates()
