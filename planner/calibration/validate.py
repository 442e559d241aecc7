"""`plan validate`: predict a model on this machine, then measure it with onnxruntime, and compare.

    predict   planner.ort.executed.predict_ort: the graph onnxruntime executes, timed by the host calibration.
              Nothing of the model runs for this, so nothing measured below can reach the prediction.
    measure   planner.ort.measure (a child process): end to end (median of --runs after warm-up, no profiler),
              per node (onnxruntime's profiler), resident memory and the arena's peak.
    compare   end to end: predicted / measured - 1. Per kernel: kernels are nodes of the executed graph, so
              they match by node name. A profiled node's duration includes the profiler's own bookkeeping
              (calibrated as `profiler_bias_s`: a tiny Relu's profiled duration); the measured time of a node is
              therefore  launch + (duration - bias), the same quantity a prediction gives per kernel. Per op
              type: sums over the matched kernels. Memory: predicted peak (weights + the runtime's spare copies
              of them + activation peak + workspace) against the resident high-water mark of the runs over
              the process before the session (planner.ort.measure), and the predicted activation peak against
              onnxruntime's arena peak.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from planner.atomic import write_atomic
from planner.calibration.host import predict_ort
from planner.errors import PlannerError
from planner.model.loader import load_model
from planner.ort.measure import measure

WORST = 8


@dataclass(frozen=True)
class KernelCheck:
    name: str
    op_type: str
    family: str
    predicted_us: float
    measured_us: float
    bound: str

    @property
    def error(self) -> float:
        return self.predicted_us / self.measured_us - 1 if self.measured_us > 0 else math.inf


@dataclass
class OpTypeCheck:
    op_type: str
    kernels: int
    predicted_ms: float
    measured_ms: float

    @property
    def error(self) -> float:
        return self.predicted_ms / self.measured_ms - 1 if self.measured_ms > 0 else math.inf


@dataclass
class Validation:
    model: str
    dims: dict[str, int]
    batch: int
    threads: int
    runs: int
    calibrated: bool
    calibration: str  # when and where, or why not
    predicted_ms: float
    measured_ms: float  # median end to end with the CPU to itself (planner.ort.measure.effective_seconds)
    measured_wall_ms: float  # median end to end, wall clock
    measured_best_ms: float  # the quickest run
    cpu_share: float  # share of the runs' wall time the model had a CPU (below 1: other processes took it)
    measured_runs_ms: list[float]
    predicted_peak_memory_bytes: int
    measured_rss_peak_bytes: int | None
    predicted_activation_bytes: int
    measured_arena_peak_bytes: int | None
    kernels: list[KernelCheck]
    op_types: list[OpTypeCheck]
    unmatched_predicted: list[str]
    unmatched_measured: list[str]
    profiler_bias_us: float
    notes: list[str] = field(default_factory=list)
    plot: str | None = None

    @property
    def error(self) -> float:
        return self.predicted_ms / self.measured_ms - 1 if self.measured_ms > 0 else math.inf

    @property
    def wall_error(self) -> float:
        return self.predicted_ms / self.measured_wall_ms - 1 if self.measured_wall_ms > 0 else math.inf

    @property
    def memory_error(self) -> float | None:
        m = self.measured_rss_peak_bytes
        return self.predicted_peak_memory_bytes / m - 1 if m else None

    def worst(self, n: int = WORST) -> list[KernelCheck]:
        """The kernels whose prediction is furthest off in time (µs), the ones that move the total."""
        return sorted(self.kernels, key=lambda k: -abs(k.predicted_us - k.measured_us))[:n]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error"] = self.error
        d["wall_error"] = self.wall_error
        d["memory_error"] = self.memory_error
        for k, src in zip(d["kernels"], self.kernels, strict=True):
            k["error"] = src.error
        for o, src in zip(d["op_types"], self.op_types, strict=True):
            o["error"] = src.error
        d["worst"] = [k.name for k in self.worst()]
        return _finite(d)


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def compare(pred, measurement, launch_s: float, bias_s: float) -> tuple[list[KernelCheck], list[OpTypeCheck],
                                                                        list[str], list[str]]:
    """Match predicted kernels to measured nodes by name (planner.ort.executed keeps onnxruntime's names)."""
    predicted = {k.kernel.name: k for k in pred.kernels}
    checks = []
    for name, kp in predicted.items():
        if name not in measurement.node_us:
            continue
        measured = launch_s * 1e6 + max(measurement.node_us[name] - bias_s * 1e6, 0.0)
        checks.append(KernelCheck(name, measurement.node_op.get(name, kp.kernel.op_types[0]), kp.kernel.family,
                                  kp.time.seconds * 1e6, measured, kp.time.bound))
    by_op: dict[str, list[KernelCheck]] = defaultdict(list)
    for c in checks:
        by_op[c.op_type].append(c)
    ops = [OpTypeCheck(op, len(cs), sum(c.predicted_us for c in cs) / 1e3, sum(c.measured_us for c in cs) / 1e3)
           for op, cs in by_op.items()]
    ops.sort(key=lambda o: -o.measured_ms)
    unmatched_p = sorted(set(predicted) - set(measurement.node_us))
    unmatched_m = sorted(set(measurement.node_us) - set(predicted))
    return checks, ops, unmatched_p, unmatched_m


def validate(path: str | Path, threads: int = 1, runs: int = 10, dims: dict[str, int] | None = None,
             batch: int | None = None, calibration_path: str | None = None, plot: str | None = None,
             warmup: int = 3, isolate: bool = True, values: dict[str, bool | int | float] | None = None
             ) -> Validation:

    if runs < 1:
        raise PlannerError("--runs must be at least 1")
    loaded = load_model(path)
    op = predict_ort(loaded, threads, dims, batch, calibration_path, values=values)
    p = op.prediction
    binding = op.analysis.binding
    cal = op.calibration
    m = measure(loaded.path, dict(binding.values), threads, runs, warmup, isolate=isolate,
                quiet_probe_s=cal.probe_s if cal else None, values=values,
                quiet_memory_probe_s=cal.probe_memory_s if cal else None)
    bias = cal.profiler_bias_s if cal else 0.0
    launch = op.target.launch_overhead_s if cal else 0.0
    kernels, op_types, un_p, un_m = compare(p, m, launch, bias)
    notes = list(op.notes) + list(m.notes)
    if cal is None:
        notes.append("uncalibrated: profiled node times are compared without removing the profiler's own cost")
    v = Validation(
        model=str(loaded.path), dims=dict(binding.values), batch=binding.batch, threads=threads, runs=m.runs,
        calibrated=cal is not None,
        calibration=f"{cal.created} ({'quick' if cal.quick else 'full'})" if cal else "none",
        predicted_ms=p.latency_s * 1e3, measured_ms=m.latency_s * 1e3, measured_wall_ms=m.latency_wall_s * 1e3,
        measured_best_ms=m.latency_best_s * 1e3,
        cpu_share=m.cpu_share,
        measured_runs_ms=[t * 1e3 for t in m.latency_runs_s],
        predicted_peak_memory_bytes=p.memory.total_bytes, measured_rss_peak_bytes=m.rss_peak_bytes,
        predicted_activation_bytes=p.memory.activation_bytes, measured_arena_peak_bytes=m.arena_peak_bytes,
        kernels=kernels, op_types=op_types, unmatched_predicted=un_p, unmatched_measured=un_m,
        profiler_bias_us=bias * 1e6, notes=notes,
    )
    if plot:
        v.plot = write_plot(v, plot)
    return v


def write_plot(v: Validation, path: str) -> str | None:
    """Predicted against measured per kernel, log-log, one colour per op type; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        v.notes.append("no plot: matplotlib is not installed (pip install 'onnx-planner[plot]')")
        return None
    import io

    fig, ax = plt.subplots(figsize=(7, 6))
    ops = sorted({k.op_type for k in v.kernels}, key=lambda o: -sum(k.measured_us for k in v.kernels
                                                                      if k.op_type == o))
    for op in ops[:12]:
        ks = [k for k in v.kernels if k.op_type == op]
        ax.scatter([k.measured_us for k in ks], [k.predicted_us for k in ks], s=14, label=op, alpha=0.8)
    rest = [k for k in v.kernels if k.op_type not in ops[:12]]
    if rest:
        ax.scatter([k.measured_us for k in rest], [k.predicted_us for k in rest], s=10, c="grey", label="other")
    values = [x for k in v.kernels for x in (k.measured_us, k.predicted_us) if x > 0]
    if values:
        lo, hi = min(values) / 1.5, max(values) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="k", alpha=0.08, label="±10%")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured per kernel (µs)")
    ax.set_ylabel("predicted per kernel (µs)")
    ax.set_title(f"{Path(v.model).name}: predicted {v.predicted_ms:.3g} ms, measured {v.measured_ms:.3g} ms "
                 f"({100 * v.error:+.1f}%)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue(), refuse={Path(v.model)})
    return str(path)
