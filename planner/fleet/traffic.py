"""Traffic as the fleet search reads it: a rate to size for, and a seeded stream of arrivals at any rate.

Forms (`--qps RATE`, or `--traffic SPEC`):

    poisson:RATE            open-loop Poisson arrivals (exponential gaps), RATE requests/s; `--qps RATE` is this
    bursty:RATE[:CV]        gaps drawn from a gamma distribution with mean 1/RATE and coefficient of variation CV
                            (default 2; 1 is Poisson): the same mean rate arriving in clumps
    diurnal:PEAK[:TROUGH]   a day whose hourly rate follows a cosine from TROUGH (default PEAK / 4) at 04:00 to
                            PEAK at 16:00; the fleet is sized for PEAK (Poisson at the peak hour)
    FILE.csv                a recorded trace: a header naming `arrival_s` and, for decoders, `prompt_tokens` and
                            `output_tokens`; one request a row

Why a stream "at any rate": a fleet of N replicas behind a load balancer that picks a replica at random gives each
replica 1/N of the traffic, and thinning a Poisson stream leaves a Poisson stream, so one replica's share is
simulated directly (planner.fleet.search). Gamma gaps are kept gamma at the replica (a conservative reading:
thinning would smooth the bursts).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.errors import PlannerError

SECONDS_PER_HOUR = 3600.0
HOURS_PER_MONTH = 730.0  # 8760 / 12: how cloud price lists turn an hourly price into a monthly one
DEFAULT_CV = 2.0
PEAK_HOUR = 16


class TrafficError(PlannerError):
    """A malformed --qps / --traffic value or trace file."""


@dataclass(frozen=True)
class Trace:
    """A recorded stream: arrival times (s from the first) and, where the file has them, token lengths."""

    arrivals_s: np.ndarray
    prompt_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None


@dataclass(frozen=True)
class Traffic:
    kind: str  # poisson, bursty, diurnal, trace
    rate_per_s: float  # mean over the day (or the trace)
    peak_per_s: float  # what the fleet is sized for
    cv: float = 1.0  # coefficient of variation of the gaps between arrivals
    hourly_per_s: tuple[float, ...] = ()  # diurnal: the rate in each hour of the day
    trace: Trace | None = field(default=None, compare=False)
    source: str = ""

    def describe(self) -> str:
        if self.kind == "poisson":
            return f"Poisson, {self.rate_per_s:g} req/s"
        if self.kind == "bursty":
            return f"bursty (gamma gaps, CV {self.cv:g}), {self.rate_per_s:g} req/s"
        if self.kind == "diurnal":
            return f"diurnal, peak {self.peak_per_s:g} req/s, mean {self.rate_per_s:.4g} req/s"
        return f"trace {self.source}: {len(self.trace.arrivals_s)} requests, {self.rate_per_s:.4g} req/s"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rate_per_s": self.rate_per_s, "peak_per_s": self.peak_per_s, "cv": self.cv,
                "hourly_per_s": list(self.hourly_per_s) or None, "source": self.source or None,
                "description": self.describe()}

    def arrivals(self, share: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One replica's arrivals (s) when `share` replicas split the peak traffic at random, and the index of
        each into the trace (or -1). Seeded: the same uniforms at every share, so a larger fleet sees the same
        stream stretched, and percentiles fall smoothly as replicas are added."""
        rng = np.random.default_rng(seed)
        if self.trace is not None:
            idx = np.arange(len(self.trace.arrivals_s))
            if share > 1:
                idx = idx[rng.integers(0, share, size=len(idx)) == 0]
                idx = idx if len(idx) else np.arange(1)  # a share so thin it holds nobody: one request
            return self.trace.arrivals_s[idx] - (self.trace.arrivals_s[idx[0]] if len(idx) else 0.0), idx
        rate = self.peak_per_s / share
        if self.cv == 1.0:
            gaps = rng.exponential(1.0 / rate, size=n)
        else:
            shape = 1.0 / (self.cv * self.cv)
            gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n)
        return np.cumsum(gaps), np.full(n, -1)

    def replicas_by_hour(self, replicas_at_peak: int) -> list[int]:
        """Replicas an autoscaler runs each hour: each keeps at most its peak-hour share of the traffic, so the
        latency met at the peak is met every hour (flat traffic: the peak fleet all day)."""
        rates = self.hourly_per_s or (self.peak_per_s,)
        return [max(1, math.ceil(replicas_at_peak * r / self.peak_per_s - 1e-9)) for r in rates]


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise TrafficError(f"{what}: '{text}' is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise TrafficError(f"{what}: '{text}' must be a positive number")
    return v


def poisson(rate: float) -> Traffic:
    return Traffic("poisson", rate, rate)


def diurnal(peak: float, trough: float) -> Traffic:
    hourly = tuple(trough + (peak - trough) * (1 + math.cos(2 * math.pi * (h - PEAK_HOUR) / 24)) / 2
                   for h in range(24))
    return Traffic("diurnal", sum(hourly) / 24, peak, hourly_per_s=hourly)


def parse_traffic(qps: float | None = None, spec: str | None = None) -> Traffic | None:
    """--qps and --traffic to a Traffic (None when neither is given); a bad value raises TrafficError."""
    if qps is not None and spec is not None:
        raise TrafficError("give --qps or --traffic, not both")
    if qps is not None:
        return poisson(_number(str(qps), "--qps"))
    if spec is None:
        return None
    kind, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    if kind == "poisson" and len(args) == 1:
        return poisson(_number(args[0], "--traffic poisson:RATE"))
    if kind == "bursty" and len(args) in (1, 2):
        rate = _number(args[0], "--traffic bursty:RATE[:CV]")
        cv = _number(args[1], "--traffic bursty:RATE[:CV]") if len(args) == 2 else DEFAULT_CV
        return Traffic("bursty", rate, rate, cv=cv)
    if kind == "diurnal" and len(args) in (1, 2):
        peak = _number(args[0], "--traffic diurnal:PEAK[:TROUGH]")
        trough = _number(args[1], "--traffic diurnal:PEAK[:TROUGH]") if len(args) == 2 else peak / 4
        if trough > peak:
            raise TrafficError(f"--traffic {spec}: the trough {trough:g} is above the peak {peak:g}")
        return diurnal(peak, trough)
    if spec.lower().endswith(".csv"):
        return read_trace(spec)
    raise TrafficError(f"--traffic '{spec}': expected poisson:RATE, bursty:RATE[:CV], diurnal:PEAK[:TROUGH] "
                       "or a .csv file")


def read_trace(path: str) -> Traffic:
    """A CSV trace: `arrival_s` (seconds, any origin, sorted here), optional `prompt_tokens`, `output_tokens`."""
    p = Path(path)
    if not p.is_file():
        raise TrafficError(f"--traffic {path}: no such file")
    try:
        with p.open(newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (UnicodeDecodeError, csv.Error) as e:
        raise TrafficError(f"--traffic {path}: not a readable CSV ({e})") from None
    if "arrival_s" not in header:
        raise TrafficError(f"--traffic {path}: needs a header with an arrival_s column")
    if len(rows) < 2:
        raise TrafficError(f"--traffic {path}: needs at least 2 requests")
    cols = {}
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        if name not in header:
            continue
        values = []
        for i, r in enumerate(rows, start=2):
            try:
                v = float(r[name])
            except (TypeError, ValueError):
                raise TrafficError(f"--traffic {path}: line {i}: {name} '{r[name]}' is not a number") from None
            if not math.isfinite(v) or v < 0 or (name != "arrival_s" and (v < 1 or v != int(v))):
                raise TrafficError(f"--traffic {path}: line {i}: {name} '{r[name]}' is out of range")
            values.append(v)
        cols[name] = np.asarray(values)
    order = np.argsort(cols["arrival_s"], kind="stable")
    t = cols["arrival_s"][order]
    t = t - t[0]
    span = t[-1]
    if span <= 0:
        raise TrafficError(f"--traffic {path}: every request arrives at the same instant")
    rate = (len(t) - 1) / span
    lengths = {k: cols[k][order].astype(int) if k in cols else None for k in ("prompt_tokens", "output_tokens")}
    return Traffic("trace", rate, rate, trace=Trace(t, **lengths), source=str(path))


def traffic_from_dict(d: dict) -> Traffic:
    """The traffic a plan's fleet block was sized for (`plan check` re-sizes under it); TrafficError if the block
    is not one this planner writes."""
    try:
        kind, rate, peak = d["kind"], float(d["rate_per_s"]), float(d["peak_per_s"])
        if kind == "poisson":
            return poisson(rate)
        if kind == "bursty":
            return Traffic("bursty", rate, rate, cv=float(d["cv"]))
        if kind == "diurnal":
            return diurnal(peak, float(min(d["hourly_per_s"])))
        if kind == "trace":
            return read_trace(str(d["source"]))
    except (KeyError, TypeError, ValueError):
        pass
    raise TrafficError(f"the baseline's fleet traffic {d!r} is not one this planner reads")
