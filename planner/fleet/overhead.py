"""The serving stack's own cost: what a server pays per batch and per request beyond the model's run.

A plan times the model; a server also receives each request, wakes up, gathers a batch, copies inputs together,
replies. Those costs keep the model instance busy (so they lower the capacity of a replica) or delay a request
without keeping it busy (a client's send, the reply's way back). Counting neither, a fleet sized at 90% of the
model's capacity is a fleet past its real one, and its queues grow without bound. So:

    busy time of a batch of b  = (model latency(b) + per_batch_s + per_request_s x b
                                  + wake(gap since the instance's previous batch ended, that service time))
                                 x spread (a draw from how Runs spread around their median here: back to back,
                                 or after an idle gap)
    a request's latency        = its wait + that busy time + latency_s (drawn from its measured distribution)
    a batch leaving on the max queue delay leaves timer_late_s after it (a timer's wake-up)

Where the numbers come from: for `host`, a measurement of the very server that serves the model (its loop
around a model that does nothing, at several batch sizes; benchmarks/fleet_load.py --overhead), stored beside
the calibration (planner.fleet.overhead_store); for every other target, Triton's published perf_analyzer
figures in hwtargets/serving/triton.toml (each number with its source; weak, and marked so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

import numpy as np

from hwtargets import SERVING_DIR
from planner.errors import PlannerError

FIELDS = ("per_batch_s", "per_request_s", "latency_s", "timer_late_s")
DEFAULT_STACK = "triton"


class OverheadError(PlannerError):
    """A serving-overhead file or entry that is not one."""


@dataclass(frozen=True)
class ServingOverhead:
    """A serving stack's costs beyond the model (seconds), and where they come from."""

    per_batch_s: float = 0.0  # the instance's time per batch: wake, gather, concatenate, reply
    per_request_s: float = 0.0  # the instance's time per request in the batch: receive, decode, split
    latency_s: float = 0.0  # per request, outside the instance's busy time: the client's send, the reply's return
    timer_late_s: float = 0.0  # how late a batch leaving on the max queue delay leaves
    source: str = "none: the model's latency only"
    # Where measured: latency_s's distribution, its quantiles at probabilities evenly spaced from 0 to 1 (a
    # client's sleep and a wake-up have a tail that a p99 sees; a constant would show only their mean).
    latency_quantiles_s: tuple[float, ...] = ()
    # What a batch costs the instance beyond its steady-state time when the instance had been idle for a while
    # (the gap since its last batch ended): (gap s, extra s) points, ascending gaps. A CPU that slept runs its
    # first work slowly (clock, caches, the hypervisor's wake-up); a server's light load is all first work.
    wake_curve: tuple[tuple[float, float], ...] = ()
    # The same for work that takes a while: (steady run s, wake curve) of probe workloads, ascending runs. The
    # wake_curve above is a model that does nothing, so it holds the wake-up alone; a CPU that slept also runs
    # slowly for a while after (its clock ramps, its caches refill), which a longer Run pays more of, up to the
    # time that lasts. On a 2-vCPU EPYC VM after 10 ms asleep: a 1-node model +205 us, the shipped cnn (0.13 ms)
    # +273, the decoder (0.34 ms) +455, the encoder (1.4 ms) +363 (benchmarks/wake_after_idle.py).
    wake_runs: tuple[tuple[float, tuple[tuple[float, float], ...]], ...] = ()
    # How a Run's time spreads around its median on this machine: quantiles of (Run / median Run) of a probe
    # workload run back to back, at probabilities evenly spaced from 0 to 1. A shared VM's neighbours stretch
    # some Runs by tens of percent; at 70-90% load those stretches are what builds a queue's tail.
    run_spread_quantiles: tuple[float, ...] = ()
    # The same for a Run after the instance sat idle at least IDLE_SPREAD_GAP_S, over the median Run after that
    # gap: the wake-up varies too (the cnn at light load: p99 1.9-2.1x its median Run; back to back 1.5x).
    idle_spread_quantiles: tuple[float, ...] = ()

    def spread(self, n: int, seed: int = 1) -> Callable[[int, float], float] | None:
        """factor(k, gap): what the k-th batch's service time is multiplied by, given the idle gap before it: a
        seeded draw (n of each kind) from the back-to-back spread, or from the idle one after a gap of
        IDLE_SPREAD_GAP_S or more; None where neither was measured."""
        busy = _draws(self.run_spread_quantiles, n, seed)
        idle = _draws(self.idle_spread_quantiles, n, seed + 1)
        if busy is None and idle is None:
            return None

        def factor(k: int, gap_s: float) -> float:
            draws = idle if gap_s >= IDLE_SPREAD_GAP_S and idle is not None else busy
            return 1.0 if draws is None else float(draws[k % n])

        return factor

    def wake_s(self, idle_s: float, run_s: float = 0.0) -> float:
        """The extra time of a batch whose model time is `run_s`, starting `idle_s` after the instance's previous
        one ended. Each curve straight between its measured gaps (none at a gap of 0, the last point's beyond the
        last gap); between curves straight in the Run's length, from the do-nothing curve at 0 to each probe's
        at its steady run, the longest probe's beyond it."""
        runs = [(0.0, self.wake_curve), *self.wake_runs] if self.wake_curve else list(self.wake_runs)
        if not runs:
            return 0.0
        lengths = [r for r, _ in runs]
        extra = [_on_curve(curve, idle_s) for _, curve in runs]
        return float(np.interp(run_s, lengths, extra))

    def outside_s(self, n: int, seed: int = 0) -> float | np.ndarray:
        """The time outside the server of n requests: seeded draws from the measured distribution, or the
        constant latency_s where there is none."""
        draws = _draws(self.latency_quantiles_s, n, seed)
        return self.latency_s if draws is None else draws

    def busy_s(self, batch: int) -> float:
        """What a batch of `batch` costs the instance beyond the model's run."""
        return self.per_batch_s + self.per_request_s * batch

    def to_dict(self) -> dict[str, Any]:
        d = {**{f: getattr(self, f) for f in FIELDS}, "source": self.source}
        if self.latency_quantiles_s:
            d["latency_quantiles_s"] = list(self.latency_quantiles_s)
        if self.wake_curve:
            d["wake_curve"] = [list(p) for p in self.wake_curve]
        if self.wake_runs:
            d["wake_runs"] = [[r, [list(p) for p in curve]] for r, curve in self.wake_runs]
        if self.run_spread_quantiles:
            d["run_spread_quantiles"] = list(self.run_spread_quantiles)
        if self.idle_spread_quantiles:
            d["idle_spread_quantiles"] = list(self.idle_spread_quantiles)
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any], where: str = "serving overhead") -> ServingOverhead:
        try:
            values = {f: float(d.get(f, 0.0)) for f in FIELDS}
            quantiles = tuple(float(x) for x in d.get("latency_quantiles_s") or ())
            wake = _wake_points(d.get("wake_curve"))
            wake_runs = tuple((float(r), _wake_points(curve)) for r, curve in d.get("wake_runs") or ())
            spread = tuple(float(x) for x in d.get("run_spread_quantiles") or ())
            idle_spread = tuple(float(x) for x in d.get("idle_spread_quantiles") or ())
        except (TypeError, ValueError, AttributeError):
            raise OverheadError(f"{where}: not a serving overhead ({dict(d)!r:.80})") from None
        bad = [f for f, v in values.items() if not 0 <= v < 1]
        if bad:
            raise OverheadError(f"{where}: {bad[0]} must be between 0 and 1 s, not {values[bad[0]]!r}")
        ascending = all(0 <= a <= b < 1 for a, b in zip(quantiles, quantiles[1:], strict=False))
        if quantiles and (len(quantiles) < 2 or not ascending):
            raise OverheadError(f"{where}: latency_quantiles_s must be at least 2 ascending values between 0 and 1 s")
        if _bad_wake(wake) or any(_bad_wake(curve) for _, curve in wake_runs):
            raise OverheadError(f"{where}: wake_curve must be [gap s, extra s] points, gaps positive and ascending")
        runs = [r for r, _ in wake_runs]
        if any(not 0 < r < 1 for r in runs) or any(a >= b for a, b in zip(runs, runs[1:], strict=False)):
            raise OverheadError(f"{where}: wake_runs must be [run s, wake curve] with runs positive and ascending")
        for name, q in (("run_spread_quantiles", spread), ("idle_spread_quantiles", idle_spread)):
            if q and (len(q) < 2 or not all(0 < a <= b < 100 for a, b in zip(q, q[1:], strict=False))):
                raise OverheadError(f"{where}: {name} must be at least 2 ascending positive ratios")
        return ServingOverhead(**values, source=str(d.get("source", where)), latency_quantiles_s=quantiles,
                               wake_curve=wake, wake_runs=wake_runs, run_spread_quantiles=spread,
                               idle_spread_quantiles=idle_spread)


NONE = ServingOverhead()
IDLE_SPREAD_GAP_S = 0.5e-3  # a batch after this much idle time draws from idle_spread_quantiles


def _draws(q: Sequence[float], n: int, seed: int) -> np.ndarray | None:
    if len(q) < 2 or n < 1:
        return None
    u = np.random.default_rng(seed).random(n)
    return np.interp(u, np.linspace(0.0, 1.0, len(q)), q)


def _on_curve(curve: Sequence[tuple[float, float]], idle_s: float) -> float:
    if not curve:
        return 0.0
    gaps, extra = zip(*((0.0, 0.0), *curve), strict=True)
    return float(np.interp(idle_s, gaps, extra))


def _wake_points(raw: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(g), float(x)) for g, x in raw or ())


def _bad_wake(wake: Sequence[tuple[float, float]]) -> bool:
    return any(not (0 < g and 0 <= x < 1) for g, x in wake) or any(a[0] >= b[0] for a, b in zip(wake, wake[1:],
                                                                                                 strict=False))


def fit_line(batches: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least squares t = a + b x batch with a, b >= 0 (a cost is never negative: a line that would need one is
    refitted through the origin or flat). Returns (a, b)."""
    x, y = np.asarray(batches, float), np.asarray(seconds, float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("fitting a line needs at least two different batch sizes")
    b, a = np.polyfit(x, y, 1)
    if a < 0:
        a, b = 0.0, float(np.dot(x, y) / np.dot(x, x))
    if b < 0:
        a, b = float(np.mean(y)), 0.0
    return max(0.0, float(a)), max(0.0, float(b))


def published(stack: str = DEFAULT_STACK, folder: Path = SERVING_DIR) -> ServingOverhead:
    """A serving stack's published costs from its data file (hwtargets/serving/STACK.toml): every number a
    table with `value` and `source` (and `unconfirmed` where the source is weak)."""
    path = folder / f"{stack}.toml"
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        known = sorted(p.stem for p in folder.glob("*.toml"))
        raise OverheadError(f"no serving stack '{stack}' (known: {', '.join(known) or 'none'})") from None
    except tomllib.TOMLDecodeError as e:
        raise OverheadError(f"{path}: not TOML ({e})") from None
    values: dict[str, float] = {}
    for f in FIELDS:
        entry = data.get(f)
        if not isinstance(entry, dict) or "value" not in entry or not entry.get("source"):
            raise OverheadError(f"{path}: {f} needs a table with a value and its source")
        values[f] = entry["value"]
    weak = [f for f in FIELDS if data[f].get("unconfirmed")]
    note = f"{data.get('description', stack)} ({path.name}{'; unconfirmed: ' + ', '.join(weak) if weak else ''})"
    return ServingOverhead.from_dict({**values, "source": note}, str(path))
