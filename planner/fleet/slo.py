"""Service-level objectives: a limit in ms on a percentile of request latency, TTFT or TPOT."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from planner.errors import PlannerError

PERCENTILES = (50, 95, 99)
METRICS = ("latency", "ttft", "tpot")  # request latency; decoders: time to first token, time per output token


class SloError(PlannerError):
    """An SLO that cannot apply: a metric or percentile we do not report, a limit that is not positive."""


@dataclass(frozen=True)
class Slo:
    limits_ms: tuple[tuple[str, int, float], ...]  # (metric, percentile, limit in ms)

    @staticmethod
    def of(limits: Mapping[tuple[str, int], float | None]) -> Slo:
        out = []
        for (metric, q), ms in limits.items():
            if ms is None:
                continue
            if metric not in METRICS or q not in PERCENTILES:
                raise SloError(f"no SLO on {metric} p{q}: metrics are {', '.join(METRICS)}, percentiles 50, 95, 99")
            if not ms > 0:
                raise SloError(f"the {metric} p{q} limit must be positive, not {ms:g}")
            out.append((metric, q, float(ms)))
        return Slo(tuple(out))

    def __bool__(self) -> bool:
        return bool(self.limits_ms)

    def metrics(self) -> set[str]:
        return {m for m, _, _ in self.limits_ms}

    def tightest_ms(self, metric: str) -> float | None:
        values = [ms for m, _, ms in self.limits_ms if m == metric]
        return min(values) if values else None

    def violation(self, measured_s: Mapping[tuple[str, int], float]) -> str | None:
        """The first limit the measured percentiles break, in words; None when all are met."""
        for metric, q, ms in self.limits_ms:
            got = measured_s[(metric, q)] * 1e3
            if got > ms:
                return f"{metric} p{q} {got:.3g} ms over {ms:g} ms"
        return None

    def describe(self) -> str:
        return ", ".join(f"{m} p{q} <= {ms:g} ms" for m, q, ms in self.limits_ms) or "none"

    def to_dict(self) -> dict:
        return {f"{m}_p{q}_ms": ms for m, q, ms in self.limits_ms}

    @staticmethod
    def from_dict(d: dict) -> Slo:
        """The inverse of to_dict ("latency_p99_ms": 80); SloError on a key it does not write."""
        limits: dict[tuple[str, int], float] = {}
        for key, ms in d.items():
            metric, _, rest = key.partition("_p")
            q = rest.removesuffix("_ms")
            if not q.isdigit() or not isinstance(ms, (int, float)):
                raise SloError(f"the baseline's SLO key {key!r} is not one this planner writes")
            limits[(metric, int(q))] = float(ms)
        return Slo.of(limits)
