"""What a calibration measures: one sample per timed node or chain, and the measurements of a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.errors import PlannerError


class CalibrationError(PlannerError):
    """The microbenchmarks could not run (onnxruntime missing or refusing a kernel)."""


INT8_ROWS = "int8 rows"  # a Sample's source: per node of a chain of several-row int8 GEMMs (fit_row_weight_chains)
FP32_ROWS = "fp32 rows"  # the same for float GEMMs of more than FEW_ROWS rows (fit_row_weight_chains)
FEW_ROWS = 16  # the most rows of a float "rows" chain (suite.ROW_CHAINS, fit_row_chains): a decoder's step


@dataclass(frozen=True)
class Sample:
    family: str  # planner.predict.families.kernel_family of the node
    op_class: str  # "matrix", "vector", "data"
    peak_key: str  # "fp32", "int8", "vector"
    flops: int
    bytes: int
    seconds: float  # time beyond a tiny Relu node's (which is the launch overhead): see the module docstring
    label: str  # the microbenchmark it came from
    source: str = "profile"  # "profile": one node, profiled; "chain": per node of a chain of tiny ones, no
    #   profiler; "weights": per node of a chain of GEMVs with weights of their own (weight_chain), no profiler;
    #   "series": per node of a chain of small matrix nodes (activation_chain), no profiler; "mixed": a whole
    #   mixed_graph end to end (steps: its blocks); "subgraph": an If or Loop bench end to end (steps: its runs)
    steps: int = 1  # sequential steps (RNN time steps): flops and bytes are per step, seconds for all of them
    weight_bytes: int = 0  # of `bytes`, those of initializers (weights), read once per step
    working_set: int = 0  # weights in play around this node (a weight chain's total); 0: its own bytes
    shape: tuple[int, ...] = ()  # a recurrent layer's planner.model.recurrent.RecurrentShape, as_list()
    runs: int = 0  # contiguous runs a data kernel copies (planner.predict.families.contiguous_runs)

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class Noise:
    """How repeatable a calibration's microbenchmarks were (planner.calibration.run.confirm): per microbenchmark,
    its second-quickest pass over its quickest, less one."""
    benches: int = 0
    unconfirmed: int = 0  # no second pass within planner.calibration.run.CONFIRM of the quickest
    median_spread: float = 0.0
    p90_spread: float = 0.0


@dataclass
class Measurements:
    threads: int
    launch_overhead_s: float
    run_overhead_s: float
    run_overhead_per_io_s: float
    profiler_bias_s: float
    samples: list[Sample] = field(default_factory=list)
    workspace_bytes: int | None = None  # resident memory of a session running a tiny model (threads, arena)
    weight_residency: dict[str, float] = field(default_factory=dict)  # weight_residency()
    seconds: float = 0.0  # wall time the calibration took
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    probe_s: float | None = None  # planner.ort.quiet's probe on the quiet machine
    probe_memory_s: float | None = None  # planner.ort.quiet's streaming probe, the quickest of the calibration's
    busy: int = 0  # microbenchmarks that ran after planner.ort.quiet gave up waiting for a quiet moment
    noise: Noise = field(default_factory=Noise)
