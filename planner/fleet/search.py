"""Per target, the cheapest fleet (replicas x batching policy) whose simulated percentiles meet the SLO.

    s(B) = the plan's latency at B + the server's own cost of a batch of B (per batch + per request x B)
    for each max batch B the plan swept (s(B) + the per-request latency outside the server no longer than the
    tightest limit), max delay d in {0, (limit - s(B) - that latency) / 4}:
        capacity per replica = B / s(B)            a replica at full batches, never idle
        N0 = floor(peak / capacity) + 1            fewer replicas cannot keep up (utilization >= 1)
        skip if N0 replicas already cost at least the best fleet found    ("lost": the reason says so)
        simulate one replica's share (peak / N) at N = N0, growing by 25% until the SLO holds, then bisect
    the target's fleet: the cheapest policy (fewest replicas, then the largest batch); every other its reason

Replicas split the traffic at random (planner.fleet.traffic), so each is one batcher (planner.fleet.batcher)
over one model instance. All simulations of one search share a seed and their uniforms: a fleet one replica
larger sees the same arrivals stretched, so the percentiles move smoothly and the search is repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planner.fleet.batcher import Stats, simulate
from planner.fleet.overhead import NONE, ServingOverhead
from planner.fleet.slo import PERCENTILES, Slo
from planner.fleet.traffic import HOURS_PER_MONTH, Traffic

DEFAULT_REQUESTS = 4000  # per simulation: p99 from ~36 requests past it, after the warm-up
DEFAULT_SEED = 0
MAX_REPLICAS = 10_000
GROWTH = 1.25


@dataclass(frozen=True)
class Policy:
    max_batch: int
    max_delay_s: float


@dataclass(frozen=True)
class ServiceCurve:
    """What one replica takes per batch: the plan's latency at each batch size it swept (fits in memory), and
    the serving stack's own cost around it."""

    target: str
    pipeline: str
    batches: tuple[int, ...]
    latency_s: tuple[float, ...]
    price_usd_per_hour: float | None  # per replica, all its devices
    devices: int = 1
    overhead: ServingOverhead = NONE

    def model_s(self, b: int) -> float:
        """The plan's latency at b, straight between the batches it swept (exact at those; a runtime runs any b)."""
        return float(np.interp(b, self.batches, self.latency_s))

    def service_s(self, b: int) -> float:
        """How long a batch of b keeps the instance busy: the model and the server's own cost of the batch."""
        return self.model_s(b) + self.overhead.busy_s(b)

    def alone_s(self, b: int) -> float:
        """A batch of b's latency with no queue: its busy time and the time spent outside the server."""
        return self.service_s(b) + self.overhead.latency_s

    def capacity_per_s(self, b: int) -> float:
        return b / self.service_s(b)

    def simulate(self, arrivals_s: np.ndarray, policy: Policy) -> Stats:
        """One replica of this curve under `policy`, the server's costs included."""
        return simulate(arrivals_s, self.service_s, policy.max_batch, policy.max_delay_s,
                        extra_latency_s=self.overhead.outside_s(len(arrivals_s)),
                        timer_late_s=self.overhead.timer_late_s,
                        wake_s=self.overhead.wake_s if self.overhead.wake_curve or self.overhead.wake_runs else None,
                        spread=self.overhead.spread(len(arrivals_s)))


@dataclass
class Sized:
    """One policy's smallest fleet meeting the SLO (or why none)."""

    policy: Policy
    replicas: int | None
    stats: Stats | None
    rejected: str | None = None
    simulations: int = 0


@dataclass
class FleetOption:
    """A target's fleet: the policy chosen, what it measures in simulation, what it costs; or why there is none."""

    target: str
    pipeline: str
    devices_per_replica: int
    replicas: int | None
    max_batch: int | None
    max_queue_delay_ms: float | None
    utilization: float | None
    latency_ms: dict[str, float] = field(default_factory=dict)  # "p50", "p95", "p99" (and ttft_/tpot_ for LLMs)
    capacity_per_replica_per_s: float | None = None
    price_usd_per_hour: float | None = None
    monthly_cost_usd: float | None = None  # the fleet sized for the peak, all month
    monthly_cost_at_traffic_usd: float | None = None  # scaled hour by hour with the traffic (diurnal), else same
    rejected: str | None = None
    policies: list[dict] = field(default_factory=list)  # every policy tried, its replicas or why not
    extra: dict = field(default_factory=dict)  # decoders: tokens/s, $ per 1M tokens, KV capacity

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


def monthly(traffic: Traffic, replicas: int, price: float | None) -> tuple[float | None, float | None]:
    """(peak fleet all month, fleet scaled hour by hour) in $; None without a price."""
    if price is None:
        return None, None
    hourly = traffic.replicas_by_hour(replicas)
    return replicas * price * HOURS_PER_MONTH, sum(hourly) / len(hourly) * price * HOURS_PER_MONTH


def smallest_fleet(evaluate: Callable[[int], tuple[str | None, object]], n0: int,
                   limit: int = MAX_REPLICAS) -> tuple[int | None, object, str | None, int]:
    """The fewest replicas n >= n0 for which `evaluate(n)` returns no violation, assuming more replicas never
    hurt: grow by 25% until one passes, then bisect. Returns (n, its result, the last violation, evaluations)."""
    calls = 0
    lo, n, why = n0 - 1, n0, None  # every n <= lo fails
    found: tuple[int, object] | None = None
    while n <= limit:
        why_n, result = evaluate(n)
        calls += 1
        if why_n is None:
            found = (n, result)
            break
        lo, why = n, why_n
        n = max(n + 1, math.ceil(n * GROWTH))
    if found is None:
        return None, None, why, calls
    hi, best = found
    while hi - lo > 1:
        mid = (lo + hi) // 2
        why_m, result = evaluate(mid)
        calls += 1
        if why_m is None:
            hi, best = mid, result
        else:
            lo = mid
    return hi, best, why, calls


def policies(curve: ServiceCurve, tightest_s: float) -> tuple[list[Policy], list[dict]]:
    """Batching policies worth simulating, largest batch first, and the batches skipped with why."""
    out, skipped = [], []
    for b in sorted(curve.batches, reverse=True):
        s = curve.alone_s(b)
        if s > tightest_s:
            skipped.append({"max_batch": b, "rejected": f"batch {b} alone takes {s * 1e3:.3g} ms, over the "
                                                        f"tightest limit {tightest_s * 1e3:g} ms"})
            continue
        out.append(Policy(b, 0.0))
        if b > 1 and math.isfinite(tightest_s):  # no latency limit: nothing to spend on waiting
            out.append(Policy(b, (tightest_s - s) / 4))
    return out, skipped


def size_target(curve: ServiceCurve, traffic: Traffic, slo: Slo, seed: int = DEFAULT_SEED,
                requests: int = DEFAULT_REQUESTS) -> FleetOption:
    """The cheapest fleet of `curve`'s target meeting `slo` at `traffic`'s peak."""
    tightest = slo.tightest_ms("latency")
    tightest_s = tightest / 1e3 if tightest is not None else math.inf
    tried, skipped = policies(curve, tightest_s)
    option = FleetOption(curve.target, curve.pipeline, curve.devices, None, None, None, None,
                         price_usd_per_hour=curve.price_usd_per_hour)
    results: list[Sized] = []
    best: Sized | None = None
    for pol in tried:
        cap = curve.capacity_per_s(pol.max_batch)
        n0 = math.floor(traffic.peak_per_s / cap) + 1
        if best is not None and n0 >= best.replicas:
            results.append(Sized(pol, None, None, f"lost: needs at least {n0} replicas to keep up "
                                                  f"({cap:.4g} req/s each), the best needs {best.replicas}"))
            continue

        def evaluate(n: int, pol: Policy = pol) -> tuple[str | None, Stats]:
            arrivals, _ = traffic.arrivals(n, requests, seed)
            stats = curve.simulate(arrivals, pol)
            return slo.violation({("latency", q): stats.percentile_s(q) for q in PERCENTILES}), stats

        n, stats, why, calls = smallest_fleet(evaluate, n0)
        sized = Sized(pol, n, stats, None if n else f"no fleet up to {MAX_REPLICAS} replicas: {why}", calls)
        results.append(sized)
        if n is not None and (best is None or n < best.replicas):
            best = sized
    option.policies = skipped + [_policy_row(r, best) for r in results]
    if best is None:
        option.rejected = (skipped[-1]["rejected"] if not tried else
                           next((r.rejected for r in results if r.rejected), "no policy meets the SLO"))
        return option
    s = best.stats
    option.replicas, option.max_batch = best.replicas, best.policy.max_batch
    option.max_queue_delay_ms = best.policy.max_delay_s * 1e3
    option.utilization = s.utilization
    option.latency_ms = {"p50": s.p50_s * 1e3, "p95": s.p95_s * 1e3, "p99": s.p99_s * 1e3}
    option.extra = {"mean_batch": s.mean_batch}
    option.capacity_per_replica_per_s = curve.capacity_per_s(best.policy.max_batch)
    option.monthly_cost_usd, option.monthly_cost_at_traffic_usd = monthly(
        traffic, best.replicas, curve.price_usd_per_hour)
    return option


def _policy_row(r: Sized, best: Sized | None) -> dict:
    row = {"max_batch": r.policy.max_batch, "max_queue_delay_ms": r.policy.max_delay_s * 1e3,
           "replicas": r.replicas, "simulations": r.simulations}
    if r.stats is not None:
        row.update(p99_ms=r.stats.p99_s * 1e3, utilization=r.stats.utilization)
    if r is best:
        row["rejected"] = None
    elif r.rejected:
        row["rejected"] = r.rejected
    else:
        row["rejected"] = f"lost: {r.replicas} replicas, the chosen policy needs {best.replicas}"
    return row


def choose(options: list[FleetOption]) -> FleetOption | None:
    """The cheapest fleet a month at the traffic (a diurnal day's fleet scaled hour by hour; flat traffic: the
    peak fleet all month) across targets, unpriced ones by fewest devices after the priced; every other
    option's reason."""
    ok = [o for o in options if o.rejected is None]
    if not ok:
        return None

    def rank(o: FleetOption) -> tuple:
        cost = o.monthly_cost_at_traffic_usd
        return (cost if cost is not None else math.inf, o.replicas * o.devices_per_replica, o.target)

    chosen = min(ok, key=rank)
    for o in ok:
        if o is chosen:
            continue
        mine, best = o.monthly_cost_at_traffic_usd, chosen.monthly_cost_at_traffic_usd
        if mine is not None and best:
            o.rejected = f"lost: ${mine:,.0f}/month, {100 * (mine / best - 1):.0f}% more than the chosen fleet"
        else:
            o.rejected = "lost: no price for this target, ranked by devices"
    return chosen
