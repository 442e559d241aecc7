"""Calibrations on disk: one entry per machine and thread count, in a JSON file (the fit: planner.calibration.fit).

A calibration file is JSON (schema_version 1) holding one entry per (host fingerprint, intra-op threads):

    {"schema_version": 1,
     "calibrations": {"<fingerprint> | threads=1": {
         "fingerprint", "threads", "created", "onnxruntime", "quick", "seconds",
         "launch_overhead_s", "run_overhead_s", "run_overhead_per_io_s", "profiler_bias_s",
         "bandwidth_curve":   [[working-set bytes, bytes/s], ...],          streaming (Add of two tensors)
         "weight_bandwidth_curve": [[working-set bytes, bytes/s], ...],     reading weights (chains of GEMVs)
         "int8_weight_bandwidth_curve": [[...], ...]   one-row int8 GEMMs' weights, arithmetic in (their chains)
         "int8_rows_weight_curve": [[...], ...]   several-row int8 GEMMs' weight reads, beside their arithmetic
         "fp32_rows_weight_curve": [[...], ...]   several-row float GEMMs' weight reads, likewise
         "rate_curves":       {"gemm.fp32": [[FLOPs per byte, FLOP/s], ...], ...}      matrix families
         "recurrent_costs":   {"gru.fp32": {"call": s, "step": s, "weights": s, ...}}  recurrent layers
         "throughput_curves": {"Softmax": [[working-set bytes, bytes/s], ...], ...}    every other family
         "kernel_fixed_s":    {"gemm": s, "vector": s, ...}                 per kernel, beyond the launch
         "run_s":             {"Pad": s}     per contiguous run a data kernel copies, beyond its bytes
         "workspace_bytes":   resident memory of a session running a tiny model (thread pool, arena, registry)
         "weight_residency":  {"gemm": x, "conv": x}   resident bytes per weight byte of 16 MiB of such weights
         "probe_s":           planner.ort.quiet's probe kernel on the quiet machine (validate waits for this speed)
         "probe_memory_s":    its streaming probe (past the LLC) then: validate waits for the memory bus too
         "noise":             {"benches", "unconfirmed", "median_spread", "p90_spread"}: how repeatable the
                              microbenchmarks were (planner.calibration.samples.Noise)
         "samples": [[family, op_class, peak, flops, bytes, seconds, label, source, steps, weight bytes,
                      working set, recurrent shape [gates, batch, inputs, hidden, directions] or [],
                      contiguous runs (families.contiguous_runs; absent in older files)], ...]
     }}}

The default file lives in the user cache folder ($XDG_CACHE_HOME/onnx-planner/calibration.json, else
~/.cache/onnx-planner/calibration.json); planner.calibration.host applies the entry for this machine (the
fingerprint must match) and the thread count asked for (1 unless told). A file from another machine, or for
other threads, changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.atomic import write_atomic
from planner.errors import PlannerError
from planner.targets.host import host_fingerprint

SCHEMA_VERSION = 1
RECURRENT = ("lstm", "gru", "rnn")  # families timed as layers (planner.model.recurrent, Target.recurrent_costs)
DEFAULT_THREADS = 1
Curve = tuple[tuple[float, float], ...]


class CalibrationFileError(PlannerError):
    """A calibration file that cannot be read or is not one."""


@dataclass(frozen=True)
class Calibration:
    fingerprint: str
    threads: int
    launch_overhead_s: float
    run_overhead_s: float
    run_overhead_per_io_s: float
    profiler_bias_s: float
    bandwidth_curve: Curve
    weight_bandwidth_curve: Curve
    rate_curves: Mapping[str, Curve]
    throughput_curves: Mapping[str, Curve]
    kernel_fixed_s: Mapping[str, float]
    workspace_bytes: float | None = None
    recurrent_costs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # planner.model.recurrent.fit
    weight_residency: Mapping[str, float] = field(default_factory=dict)  # planner.calibration.suite.weight_residency
    probe_s: float | None = None  # planner.ort.quiet's probe when the machine was quiet: what validate waits for
    probe_memory_s: float | None = None  # its streaming probe then: validate waits for the memory bus too
    graph_node_overhead_s: float = 0.0  # per node of a graph of mixed small nodes, beyond its family's costs
    weight_rows_curve: Curve = ()  # (rows, time / one row's) of few-row GEMMs over weights in DRAM
    int8_weight_bandwidth_curve: Curve = ()  # one-row int8 GEMMs' weights (chains of DynamicQuantizeMatMul)
    int8_rows_weight_curve: Curve = ()  # several-row int8 GEMMs' weight reads (fit.fit_row_weight_chains)
    fp32_rows_weight_curve: Curve = ()  # several-row float GEMMs' weight reads (fit.fit_row_weight_chains)
    cold_kind_curve: Curve = ()  # (weight bytes since a kind last ran, seconds it pays): planner.calibration.cold
    epilogue_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # int8 family: s per output, per
    #   staged element, per matrix, beyond the GEMM it wraps (planner.calibration.fit.fit_epilogues)
    run_s: Mapping[str, float] = field(default_factory=dict)  # data family: s per contiguous run it copies, beyond
    #   its bytes at the streaming bandwidth (planner.calibration.fit.fit_run_costs)
    noise: Mapping[str, float] = field(default_factory=dict)  # planner.calibration.samples.Noise, as numbers
    created: str = ""
    onnxruntime: str = ""
    quick: bool = False
    seconds: float = 0.0
    samples: tuple[tuple, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return entry_key(self.fingerprint, self.threads)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["bandwidth_curve"] = [list(p) for p in self.bandwidth_curve]
        d["weight_bandwidth_curve"] = [list(p) for p in self.weight_bandwidth_curve]
        d["weight_rows_curve"] = [list(p) for p in self.weight_rows_curve]
        d["int8_weight_bandwidth_curve"] = [list(p) for p in self.int8_weight_bandwidth_curve]
        d["int8_rows_weight_curve"] = [list(p) for p in self.int8_rows_weight_curve]
        d["fp32_rows_weight_curve"] = [list(p) for p in self.fp32_rows_weight_curve]
        d["cold_kind_curve"] = [list(p) for p in self.cold_kind_curve]
        d["epilogue_s"] = {k: list(v) for k, v in self.epilogue_s.items()}
        d["rate_curves"] = {k: [list(p) for p in v] for k, v in self.rate_curves.items()}
        d["recurrent_costs"] = {k: dict(v) for k, v in self.recurrent_costs.items()}
        d["weight_residency"] = dict(self.weight_residency)
        d["throughput_curves"] = {k: [list(p) for p in v] for k, v in self.throughput_curves.items()}
        d["samples"] = [list(s) for s in self.samples]
        d["notes"] = list(self.notes)
        d["noise"] = dict(self.noise)
        d["run_s"] = dict(self.run_s)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "calibration") -> Calibration:
        try:
            def curve(v) -> Curve:
                pts = tuple((float(x), float(y)) for x, y in v)
                if not pts or any(x <= 0 or y <= 0 for x, y in pts) or any(
                        a[0] >= b[0] for a, b in zip(pts, pts[1:], strict=False)):
                    raise ValueError("a curve needs ascending positive points")
                return pts

            return cls(
                fingerprint=str(d["fingerprint"]), threads=int(d["threads"]),
                launch_overhead_s=_nonneg(d["launch_overhead_s"]), run_overhead_s=_nonneg(d["run_overhead_s"]),
                run_overhead_per_io_s=_nonneg(d.get("run_overhead_per_io_s", 0.0)),
                profiler_bias_s=_nonneg(d.get("profiler_bias_s", 0.0)),
                bandwidth_curve=curve(d["bandwidth_curve"]),
                weight_bandwidth_curve=curve(d["weight_bandwidth_curve"]) if d.get("weight_bandwidth_curve") else (),
                weight_rows_curve=curve(d["weight_rows_curve"]) if d.get("weight_rows_curve") else (),
                int8_weight_bandwidth_curve=curve(d["int8_weight_bandwidth_curve"])
                if d.get("int8_weight_bandwidth_curve") else (),
                int8_rows_weight_curve=curve(d["int8_rows_weight_curve"]) if d.get("int8_rows_weight_curve") else (),
                fp32_rows_weight_curve=curve(d["fp32_rows_weight_curve"]) if d.get("fp32_rows_weight_curve") else (),
                cold_kind_curve=curve(d["cold_kind_curve"]) if d.get("cold_kind_curve") else (),
                rate_curves={str(k): curve(v) for k, v in dict(d.get("rate_curves", {})).items()},
                epilogue_s={str(k): tuple(_nonneg(c) for c in v) for k, v in dict(d.get("epilogue_s", {})).items()},
                recurrent_costs={str(k): {str(t): _nonneg(c) for t, c in dict(v).items()}
                                 for k, v in dict(d.get("recurrent_costs", {})).items()},
                weight_residency={str(k): _nonneg(v) for k, v in dict(d.get("weight_residency", {})).items()},
                throughput_curves={str(k): curve(v) for k, v in dict(d.get("throughput_curves", {})).items()},
                kernel_fixed_s={str(k): _nonneg(v) for k, v in dict(d.get("kernel_fixed_s", {})).items()},
                workspace_bytes=None if d.get("workspace_bytes") is None else _nonneg(d["workspace_bytes"]),
                probe_s=None if d.get("probe_s") is None else _nonneg(d["probe_s"]),
                probe_memory_s=None if d.get("probe_memory_s") is None else _nonneg(d["probe_memory_s"]),
                graph_node_overhead_s=_nonneg(d.get("graph_node_overhead_s", 0.0)),
                run_s={str(k): _nonneg(v) for k, v in dict(d.get("run_s", {})).items()},
                noise={str(k): _nonneg(v) for k, v in dict(d.get("noise", {})).items()},
                created=str(d.get("created", "")), onnxruntime=str(d.get("onnxruntime", "")),
                quick=bool(d.get("quick", False)), seconds=float(d.get("seconds", 0.0)),
                samples=tuple(tuple(s) for s in d.get("samples", [])), notes=tuple(d.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationFileError(f"{where}: not a valid calibration entry ({type(e).__name__}: {e})") from None


def _nonneg(x: Any) -> float:
    v = float(x)
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"{x!r} is not a non-negative number")
    return v


def entry_key(fingerprint: str, threads: int) -> str:
    return f"{fingerprint} | threads={threads}"


# ---- files ----------------------------------------------------------------------------------------------


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onnx-planner" / "calibration.json"


def read_table(path: str | os.PathLike, key: str, version: int, error: type[PlannerError], what: str) -> dict:
    """The `key` table of one of our JSON files (`{"schema_version": version, key: {...}}`); {} when the file is
    missing; `error`, one line naming the file, when it is unreadable or not `what`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise error(f"{p}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != version or not isinstance(doc.get(key), dict):
        raise error(f"{p}: not an onnx-planner {what} file (schema_version {version})")
    return doc[key]


def read_file(path: str | os.PathLike) -> dict[str, Calibration]:
    table = read_table(path, "calibrations", SCHEMA_VERSION, CalibrationFileError, "calibration")
    return {k: Calibration.from_dict(v, f"{Path(path)} [{k}]") for k, v in table.items()}


def save(cal: Calibration, path: str | os.PathLike | None = None) -> Path:
    """Add or replace this machine's entry for its thread count; other entries in the file stay."""
    p = Path(path) if path is not None else default_path()
    if path is None:
        p.parent.mkdir(parents=True, exist_ok=True)
    entries = read_file(p) if p.exists() else {}
    entries[cal.key] = cal
    doc = {"schema_version": SCHEMA_VERSION,
           "calibrations": {k: v.to_dict() for k, v in sorted(entries.items())}}
    return write_atomic(p, json.dumps(doc, indent=1) + "\n")


@dataclass
class Lookup:
    calibration: Calibration | None
    path: Path
    why: str = ""  # when None: why not


_CACHE: dict[tuple[str, int, float], Lookup] = {}


def find(threads: int = DEFAULT_THREADS, path: str | os.PathLike | None = None) -> Lookup:
    """This machine's calibration for `threads` in `path` (default: the user cache file)."""

    p = Path(path) if path is not None else default_path()
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return Lookup(None, p, f"no calibration file at {p} (run: plan calibrate --threads {threads})")
    key = (str(p), threads, mtime)
    if key not in _CACHE:
        entries = read_file(p)
        cal = entries.get(entry_key(host_fingerprint(), threads))
        others = sorted({e.fingerprint for e in entries.values() if e.fingerprint != host_fingerprint()})
        elsewhere = f"; it holds calibrations of other CPUs ({'; '.join(others)}), which never serve this one" \
            if others else ""
        why = "" if cal else (f"{p} has no entry for this machine ({host_fingerprint()}) at {threads} thread(s)"
                              f"{elsewhere} (run: plan calibrate --threads {threads})")
        _CACHE[key] = Lookup(cal, p, why)
    return _CACHE[key]
