"""`plan check --metric monthly-cost`: fail CI when serving a model at a stated traffic got dearer a month.

The model is re-planned under the baseline plan's settings with a fleet sized for the traffic and SLO (the ones
given on the command line, else those of the baseline's own `fleet` block), and the cheapest fleet's cost a
month at that traffic is compared with the baseline's:

    regression  <=>  (cost_now - cost_baseline) / cost_baseline > max_increase
                     or cost_now > --max-monthly-usd
                     or no fleet meets the SLO any more

Unlike the per-inference gate, the fleet is not pinned to the baseline's target: the question is what the
traffic costs to serve, and a change of target is reported beside the verdict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from planner.api import plan
from planner.ci.gate import baseline_settings
from planner.errors import PlannerError
from planner.fleet.block import FleetRequest
from planner.fleet.slo import Slo
from planner.fleet.traffic import traffic_from_dict
from planner.model.loader import load_model
from planner.model.shapes import dim_spec
from planner.search.plan_types import Plan

PHASE_KINDS = ("sequence", "past", "total")  # a decoder's phases bind these from prompt_len and gen_len


@dataclass(frozen=True)
class FleetCheck:
    max_increase: float
    max_monthly_usd: float | None
    baseline_fleet: dict[str, Any] | None  # the baseline's chosen fleet (None: it has no fleet block)
    current_fleet: dict[str, Any] | None  # the cheapest fleet now (None: none meets the SLO)
    fresh: Plan
    regression: bool
    reasons: list[str]
    baseline_why: str = ""  # why there is no baseline fleet to compare with

    @property
    def change(self) -> float | None:
        old = (self.baseline_fleet or {}).get("monthly_cost_at_traffic_usd")
        new = (self.current_fleet or {}).get("monthly_cost_at_traffic_usd")
        return None if not old or new is None else new / old - 1

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": "regression" if self.regression else "ok", "metric": "monthly-cost",
                "metric_key": "monthly_cost_at_traffic_usd", "max_increase": self.max_increase,
                "max_monthly_usd": self.max_monthly_usd, "change": self.change, "reasons": self.reasons,
                "baseline_fleet": self.baseline_fleet, "current_fleet": self.current_fleet,
                "traffic": self.fresh.fleet["traffic"], "slo": self.fresh.fleet["slo"]}

    def text(self) -> str:
        def line(label: str, f: dict[str, Any] | None, why: str = "no fleet meets the SLO") -> str:
            if f is None:
                return f"{label:9} {why}"
            cost = f["monthly_cost_at_traffic_usd"]
            return (f"{label:9} {f['target']}: {f['replicas']} replica(s) x {f['devices_per_replica']}, max batch "
                    f"{f['max_batch']}, " + ("no price" if cost is None else f"${cost:,.0f}/month"))

        fleet = self.fresh.fleet
        change = self.change
        head = ("REGRESSION: " + "; ".join(self.reasons) if self.regression else
                "ok: monthly cost " + ("unchanged" if change is None or change == 0 else f"{100 * change:+.1f}%")
                + f" (limit +{100 * self.max_increase:g}%)")
        return "\n".join([head, f"traffic   {fleet['traffic']['description']}; SLO "
                          + ", ".join(f"{k} {v:g}" for k, v in fleet["slo"].items()),
                          line("baseline", self.baseline_fleet, self.baseline_why or "no fleet meets the SLO"),
                          line("now", self.current_fleet)])


def request_from_baseline(baseline: dict[str, Any]) -> FleetRequest:
    """The traffic and SLO the baseline's fleet was sized for; PlannerError if it was planned without traffic."""
    fleet = baseline.get("fleet")
    if not isinstance(fleet, dict):
        raise PlannerError("--metric monthly-cost: the baseline has no fleet block; give --qps/--traffic and an SLO, "
                           "or write the baseline with them (plan MODEL --qps 300 --p99-ms 80 --out FILE)")
    return FleetRequest(traffic_from_dict(fleet.get("traffic") or {}), Slo.from_dict(fleet.get("slo") or {}),
                        int(fleet.get("seed", 0)))


def check_fleet(model_path: str | os.PathLike, baseline: dict[str, Any], request: FleetRequest | None,
                max_increase: float = 0.05, max_monthly_usd: float | None = None, target_files: Sequence[str] = (),
                progress: Callable[[int, int], None] | None = None) -> FleetCheck:
    """Re-plan `model_path` under `baseline`'s settings with a fleet for `request` (default: the baseline's) and
    judge the monthly cost."""
    if baseline.get("chosen") is None:
        raise PlannerError("baseline has no chosen plan; write a new one with: plan MODEL --qps ... --out FILE")
    request = request or request_from_baseline(baseline)
    spec = dim_spec(load_model(model_path).model)
    s = baseline_settings(baseline, spec.batch)
    decoder = bool(baseline["model"].get("decoder"))
    dims = {k: v for k, v in s.dims.items() if k in spec.names
            and not (decoder and spec.kinds.get(k) in PHASE_KINDS)}
    fresh = plan(model_path, targets=s.targets, dims=dims, batch=s.batch, max_latency_ms=s.max_latency_ms,
                 target_files=target_files, max_batch=s.max_batch, progress=progress, fleet=request, **s.extra)
    old = (baseline.get("fleet") or {}).get("chosen")
    why = "" if baseline.get("fleet") else "planned without traffic (not compared)"
    if baseline.get("fleet") and (baseline["fleet"].get("traffic") != fresh.fleet["traffic"]
                                  or baseline["fleet"].get("slo") != fresh.fleet["slo"]):
        old, why = None, "sized for other traffic or another SLO (not compared; --max-monthly-usd still gates)"
    new = fresh.fleet["chosen"]
    reasons = []
    if new is None:
        reasons.append("no fleet meets the SLO at this traffic any more")
    else:
        cost = new["monthly_cost_at_traffic_usd"]
        before = (old or {}).get("monthly_cost_at_traffic_usd")
        if cost is not None and before and cost / before - 1 > max_increase:
            reasons.append(f"monthly cost +{100 * (cost / before - 1):.3g}% exceeds the limit of "
                           f"+{100 * max_increase:g}%")
        if max_monthly_usd is not None and (cost is None or cost > max_monthly_usd):
            reasons.append("no price for the chosen fleet" if cost is None else
                           f"monthly cost ${cost:,.0f} exceeds --max-monthly-usd {max_monthly_usd:,.0f}")
    return FleetCheck(max_increase, max_monthly_usd, old, new, fresh, bool(reasons), reasons, why)
