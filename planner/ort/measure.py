"""measure"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from planner.errors import PlannerError
from planner.ort.clock import cpu_shares, effective_seconds, timed_run, timed_runs, warm_up
from planner.ort.profile import load_profile
from planner.ort.quiet import QuietGate
from planner.ort.session import make_session, session_options

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
}


QUIET_WAIT_S = 5.0  # how long a measurement waits for the machine to be as quiet as at calibration


PROFILED_WARMUP_MAX = 200


class MeasureError(PlannerError):
    """The model could not be run (bad dims, unsupported inputs) or the measuring process failed."""


@dataclass
class Measurement:
    latency_s: float  # median end to end, effective_seconds: contention removed where it can be (one thread)
    latency_wall_s: float  # median end to end, wall clock
    latency_best_s: float  # the quickest run (effective seconds): what the model takes when nothing disturbs it
    cpu_share: float  # median share of a run's wall time the computing thread had a CPU (1: nobody else ran)
    latency_runs_s: list[float]  # effective seconds per run
    node_us: dict[str, float]  # median kernel time per node of the executed graph
    node_op: dict[str, str]  # node -> op type as onnxruntime names it
    kernel_sum_s: float  # sum of the per-node medians
    profiled_run_s: float  # median model_run duration of the profiled session
    rss_peak_bytes: int | None
    arena_peak_bytes: int | None
    threads: int
    runs: int
    notes: list[str] = field(default_factory=list)
    busy: bool = False  # planner.ort.quiet waited in vain for the machine to be as quiet as at calibration

    def to_dict(self) -> dict:
        return asdict(self)


def _rss_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def synthetic_feeds(session, dims: dict[str, int], seed: int = 0,
                    values: dict[str, bool | int | float] | None = None) -> dict:
    """Inputs for `session` with symbolic dims bound from `dims` (name -> value); an input named in `values`
    is filled with its value (`--value`: a mode switch, a sample rate), others are drawn (floats) or fixed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        shape = []
        for axis, d in enumerate(i.shape):
            if isinstance(d, int) and d >= 0:
                shape.append(d)
                continue
            key = d if isinstance(d, str) and d else f"{i.name}:{axis}"
            if key not in dims:
                raise MeasureError(f"input {i.name!r}: dim {key!r} is not bound (use --dim {key}=N)")
            shape.append(dims[key])
        dtype = _ORT_TYPES.get(i.type)
        if dtype is None:
            raise MeasureError(f"input {i.name!r} has type {i.type}, which validate cannot synthesise")
        if values and i.name in values:
            feeds[i.name] = np.full(shape, values[i.name], dtype=dtype)
        elif dtype.startswith("float"):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[i.name] = np.full(shape, fixed_fill(i.name, dtype), dtype=dtype)
    return feeds


def fixed_fill(name: str, dtype: str) -> bool | int:
    """What a non-float input is filled with: true for a bool (a flag that is set), 1 for a mask (attend
    everywhere), 0 for other integers (token ids, positions, an empty cache length)."""
    if dtype == "bool":
        return True
    return 1 if "mask" in name.lower() else 0


def one_element_feeds(model) -> dict[str, bool | int]:
    """The values synthetic_feeds gives the model's one-element non-float inputs (a mode switch, a sample
    rate): stated to the predictor (`values`), they decide the If branches the measured run takes."""
    from onnx import helper

    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        tt = vi.type.tensor_type
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        if any(not d.HasField("dim_value") or d.dim_value > 1 for d in tt.shape.dim):
            continue
        try:
            dtype = str(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except (KeyError, TypeError, ValueError):
            continue
        if dtype == "bool" or dtype.startswith(("int", "uint")):
            out[vi.name] = fixed_fill(vi.name, dtype)
    return out


def measure_here(model_path: str, dims: dict[str, int], threads: int = 1, runs: int = 10,
                 warmup: int = 3, quiet_probe_s: float | None = None,
                 values: dict[str, bool | int | float] | None = None,
                 quiet_memory_probe_s: float | None = None) -> Measurement:
    """Measure in this process (see the module docstring); `measure` runs this in a child. With
    `quiet_probe_s` (the calibration's), first wait up to QUIET_WAIT_S for the machine to be as quiet as it
    was then (planner.ort.quiet); with `quiet_memory_probe_s` too, for the memory bus to be as quiet."""
    import onnxruntime  # noqa: F401  (loaded before the baseline: its library is not the model's memory)

    notes = []
    rss_before = _rss_kb("VmRSS")
    session = make_session(model_path, session_options(threads))
    try:
        feeds = synthetic_feeds(session, dims, values=values)
    except MeasureError:
        raise
    reset = _reset_peak()
    warm_up(session, feeds, warmup)  # the peak is reached in the first runs: the arena grows, then is reused
    hwm = _rss_kb("VmHWM")
    rss_peak = (hwm - rss_before) * 1024 if reset and hwm is not None and rss_before is not None else None
    busy = False
    if quiet_probe_s:
        # the quiet gate's probe is a session of its own (a thread pool, an arena): made after the peak is read,
        # so that waiting for a quiet machine does not add its memory to the model's
        gate = QuietGate(threads, reference_s=quiet_probe_s, budget_s=QUIET_WAIT_S,
                         memory=quiet_memory_probe_s is not None, reference_memory_s=quiet_memory_probe_s)
        busy = not gate.wait(QUIET_WAIT_S)
        if busy:
            notes.append(f"the machine stayed busy: its probe ran {gate.probe() / quiet_probe_s:.2f}x the "
                         "calibration's")
        warm_up(session, feeds, 1)  # the probe evicted the model's weights from the caches
    timed = timed_runs(session, feeds, runs)
    times = [effective_seconds(w, c, threads) for w, c in timed]
    if not reset:
        notes.append("resident peak not measured: /proc/self/clear_refs is not writable here")
    del session

    with tempfile.TemporaryDirectory(prefix="planner-profile-") as tmp:
        prof = make_session(model_path, session_options(threads, profile_prefix=str(Path(tmp) / "ort")))
        warmup = warm_up(prof, feeds, warmup, max_runs=PROFILED_WARMUP_MAX)  # each run lands in the profile
        profiled_timed = [timed_run(prof, feeds) for _ in range(runs)]
        profile = load_profile(prof.end_profiling())
    node_us = profile.node_times_us(skip_runs=warmup, scale=cpu_shares(profiled_timed, threads, warmup))
    measured_runs = profile.runs_us[warmup:]
    shares = [e / w for e, (w, _) in zip(times, timed, strict=True) if w > 0]
    return Measurement(
        latency_s=statistics.median(times), latency_wall_s=statistics.median(w for w, _ in timed),
        latency_best_s=min(times),
        cpu_share=statistics.median(shares) if shares else 1.0, latency_runs_s=times, node_us=node_us,
        node_op=profile.op_types(),
        kernel_sum_s=sum(node_us.values()) * 1e-6,
        profiled_run_s=(statistics.median(measured_runs) * 1e-6) if measured_runs else 0.0,
        rss_peak_bytes=rss_peak, arena_peak_bytes=profile.arena_peak_bytes(), threads=threads, runs=len(times),
        notes=notes, busy=busy,
    )


def measure(model_path: str | os.PathLike, dims: dict[str, int], threads: int = 1, runs: int = 10,
            warmup: int = 3, isolate: bool = True, timeout_s: float = 1800,
            quiet_probe_s: float | None = None, values: dict[str, bool | int | float] | None = None,
            quiet_memory_probe_s: float | None = None) -> Measurement:
    """Measure `model_path` at `dims` (every symbolic input dim bound); in a fresh process when `isolate`."""
    if not isolate:
        return measure_here(str(model_path), dims, threads, runs, warmup, quiet_probe_s, values, quiet_memory_probe_s)
    request = json.dumps({"model": str(model_path), "dims": dims, "threads": threads, "runs": runs,
                          "warmup": warmup, "quiet_probe_s": quiet_probe_s, "values": values,
                          "quiet_memory_probe_s": quiet_memory_probe_s})
    try:
        done = subprocess.run([sys.executable, "-m", "planner.ort.measure"], input=request, capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MeasureError(f"measuring {model_path} took longer than {timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = [x for x in (done.stdout + done.stderr).strip().splitlines() if x.strip()]
        raise MeasureError(f"measuring {model_path} failed: {lines[-1] if lines else 'no output'}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(**data)


def _main() -> int:
    req = json.loads(sys.stdin.read())
    try:
        m = measure_here(req["model"], req["dims"], req["threads"], req["runs"], req["warmup"],
                         req.get("quiet_probe_s"), req.get("values"), req.get("quiet_memory_probe_s"))
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(m.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
