"""Read onnxruntime's profiling output: per-node kernel times and the arena's memory high-water mark.

A session built with `SessionOptions.enable_profiling` writes, at `end_profiling()`, a JSON array of Chrome
trace events. The ones we read:

    {"cat": "Session", "name": "model_run", "ts": µs, "dur": µs}              one per InferenceSession.run
    {"cat": "Node", "name": "<node name>_kernel_time", "ts": µs, "dur": µs,
     "args": {"op_name": "Conv", "provider": "CPUExecutionProvider",
              "mem_in_use_peak": "12451856", ...}}                           one per node per run

A node event belongs to the run whose [ts, ts + dur] window holds its start. The node name is the name in the
optimized graph onnxruntime executes (planner.ort.executed gives the planner the same graph), so kernels match by
name. Other suffixes (`_fence_before`, `_fence_after`) are synchronisation markers with no kernel work.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import PlannerError

_KERNEL_SUFFIX = "_kernel_time"
QUIET_SHARE = 0.95  # a run that had a CPU for this share of its wall time was not disturbed


class ProfileError(PlannerError):
    """A profile file that is missing or not onnxruntime's trace format."""


@dataclass(frozen=True)
class NodeRun:
    name: str  # node name in the executed graph
    op_type: str  # args.op_name
    provider: str
    run: int  # index of the model_run it belongs to (-1: outside every run)
    dur_us: float
    mem_in_use_peak: int | None = None  # arena bytes in use at most, as the profiler recorded after this node


@dataclass
class Profile:
    runs_us: list[float]  # model_run durations, in order
    nodes: list[NodeRun] = field(default_factory=list)

    def node_times_us(self, skip_runs: int = 0, scale: Mapping[int, float] | None = None,
                      quantile: float = 0.5) -> dict[str, float]:
        """Median kernel time per node over the runs from `skip_runs` on (warm-ups excluded).

        A node that ran in only some of those runs (a branch of an If) gets the median of the runs it ran in;
        a node that ran several times in one run (inside a Loop) adds up within that run. `scale` multiplies
        the durations of run i by scale[i] (planner.ort.measure: the share of the run the thread had a CPU); when
        at least three runs had QUIET_SHARE or more, only those runs count, unscaled. `quantile` 0.5 is the
        median; calibration takes a lower one (noise from other processes only ever adds time).
        """
        runs = None
        if scale:  # enough runs that had a CPU to themselves: use those as they are, scale nothing
            quiet = {r for r, f in scale.items() if f >= QUIET_SHARE and r >= skip_runs}
            if len(quiet) >= 3:
                runs, scale = quiet, None
        per_run: dict[str, dict[int, float]] = {}
        for n in self.nodes:
            if n.run < skip_runs or (runs is not None and n.run not in runs):
                continue
            f = scale.get(n.run, 1.0) if scale else 1.0
            per_run.setdefault(n.name, {})
            per_run[n.name][n.run] = per_run[n.name].get(n.run, 0.0) + n.dur_us * f
        return {name: quantile_of(list(v.values()), quantile) for name, v in per_run.items()}

    def op_types(self) -> dict[str, str]:
        return {n.name: n.op_type for n in self.nodes}

    def arena_peak_bytes(self) -> int | None:
        peaks = [n.mem_in_use_peak for n in self.nodes if n.mem_in_use_peak is not None]
        return max(peaks) if peaks else None

    def kernel_sum_us(self, run: int) -> float:
        return sum(n.dur_us for n in self.nodes if n.run == run)


def quantile_of(xs: list[float], q: float) -> float:
    """Linear-interpolated quantile; q = 0.5 is the median."""
    if q == 0.5:
        return statistics.median(xs)
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _int(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def parse_events(events: Sequence[dict]) -> Profile:
    if not isinstance(events, list):
        raise ProfileError("profile is not a JSON array of trace events")
    runs = sorted((float(e["ts"]), float(e["dur"])) for e in events
                  if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run"
                  and "ts" in e and "dur" in e)
    nodes = []
    for e in events:
        if not isinstance(e, dict) or e.get("cat") != "Node":
            continue
        name = str(e.get("name", ""))
        if not name.endswith(_KERNEL_SUFFIX):
            continue
        try:
            ts, dur = float(e["ts"]), float(e["dur"])
        except (KeyError, TypeError, ValueError):
            raise ProfileError(f"node event {name!r} has no numeric ts/dur") from None
        args = e.get("args") or {}
        run = next((i for i, (start, length) in enumerate(runs) if start <= ts <= start + length), -1)
        nodes.append(NodeRun(name=name[: -len(_KERNEL_SUFFIX)], op_type=str(args.get("op_name", "")),
                             provider=str(args.get("provider", "")), run=run, dur_us=dur,
                             mem_in_use_peak=_int(args.get("mem_in_use_peak"))))
    return Profile(runs_us=[d for _, d in runs], nodes=nodes)


def load_profile(path: str | Path) -> Profile:
    p = Path(path)
    try:
        events = json.loads(p.read_text())
    except OSError as e:
        raise ProfileError(f"{p}: cannot read profile ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{p}: not a JSON profile ({e.msg} at line {e.lineno})") from None
    return parse_events(events)
