"""The CI gate: re-plan a model under a baseline plan's settings and decide whether it got more expensive.

Like for like: the model is re-planned with the baseline's constraints (targets, dims, batch limits, latency
limit) and the gated numbers are read at the baseline's chosen (target, batch), so a change in the model
shows up as a change in cost rather than as a different configuration being picked. Whether the cheapest
configuration itself changed is reported beside it, not gated.

    regression  <=>  (metric_now - metric_baseline) / metric_baseline > max_increase
                     or the pinned configuration no longer fits
                     or nothing meets the baseline's constraints any more
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner.api import plan
from planner.ci.compare import METRICS, Comparison, compare_configs, comparison_dict, config_label, relative_change
from planner.errors import PlannerError
from planner.model.loader import load_model
from planner.model.shapes import dim_spec
from planner.search.plan_types import CandidateReport, Plan
from planner.search.sweep import DEFAULT_MAX_BATCH
from planner.search.variants import PassOptions


@dataclass(frozen=True)
class Settings:
    """What the baseline was planned under, with its choice pinned."""

    targets: list[str]
    dims: dict[str, int]  # the baseline's bound dims, batch dim left out (the sweep binds it)
    batch: int | None  # the baseline's --batch (None: it swept)
    max_batch: int
    max_latency_ms: float | None
    pin_target: str
    pin_batch: int
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # other plan() keywords from the constraints (decoders,
    # pass search): every constraint named like a plan() parameter goes back to it


@dataclass(frozen=True)
class CheckResult:
    metric: str
    max_increase: float  # a fraction: 0.05 is 5%
    baseline: dict[str, Any]  # the baseline's chosen configuration
    current: dict[str, Any]  # the same (target, batch) planned now
    comparison: Comparison
    fresh: Plan  # the full re-plan under the baseline's constraints (what --update-baseline writes)
    regression: bool
    reasons: list[str]  # why it is a regression (empty when it is not)
    cheapest_before: str
    cheapest_now: str | None  # None: nothing meets the constraints any more
    notes: list[str]

    @property
    def change(self) -> float | None:
        key = METRICS[self.metric][0]
        return relative_change(self.baseline.get(key), self.current.get(key))

    @property
    def cheapest_changed(self) -> bool:
        return self.cheapest_now != self.cheapest_before

    def to_dict(self, baseline_model: dict[str, Any] | None = None) -> dict[str, Any]:
        """The verdict as JSON (`plan check --json`): what a script needs without parsing text."""
        change = self.change
        return {
            "verdict": "regression" if self.regression else "ok",
            "metric": self.metric, "metric_key": METRICS[self.metric][0], "max_increase": self.max_increase,
            "change": change if change is not None and math.isfinite(change) else None,
            "reasons": self.reasons,
            "model": {"path": self.fresh.model.path, "sha256": self.fresh.model.sha256,
                      "baseline_sha256": (baseline_model or {}).get("sha256")},
            "baseline_config": self.comparison.old_config, "current_config": self.comparison.new_config,
            "cheapest_before": self.cheapest_before, "cheapest_now": self.cheapest_now,
            "cheapest_changed": self.cheapest_changed,
            "comparison": comparison_dict(self.comparison), "notes": self.notes,
        }


def parse_increase(text: str) -> float:
    """'5%' or '5' -> 0.05: a percentage, with or without the sign; negative limits make no sense."""
    s = text.strip().removesuffix("%").strip()
    try:
        v = float(s)
    except ValueError:
        raise PlannerError(f"--max-increase {text!r}: expected a percentage such as 5% or 0.5%") from None
    if not 0 <= v < 1e6 or v != v:
        raise PlannerError(f"--max-increase {text!r}: must be a percentage of 0 or more")
    return v / 100.0


def baseline_settings(baseline: dict[str, Any], batch_dim: str | None) -> Settings:
    """The settings to re-plan under. A baseline without `constraints` (the stable core alone) is re-planned
    on its chosen target with a batch sweep reaching its chosen batch."""
    chosen = baseline["chosen"]
    cons = baseline.get("constraints") or {}
    notes = []
    targets = [t for t in cons.get("targets") or [] if isinstance(t, str)] or [chosen["target"]]
    if chosen["target"] not in targets:
        targets.append(chosen["target"])
    if not cons:
        notes.append("baseline has no 'constraints': re-planned on its chosen target only")
    dims = dict(baseline["model"].get("dims") or {})
    for name in (batch_dim, baseline["model"].get("batch_dim")):  # the sweep (or the pin) binds the batch
        if name:
            dims.pop(name, None)
    batch = cons.get("batch") if isinstance(cons.get("batch"), int) else None
    max_batch = cons.get("max_batch") if isinstance(cons.get("max_batch"), int) else DEFAULT_MAX_BATCH
    max_batch = max(max_batch, chosen["batch"]) if batch is None else max_batch
    lim = cons.get("max_latency_ms")
    return Settings(targets=targets, dims=dims, batch=batch, max_batch=max_batch,
                    max_latency_ms=lim if isinstance(lim, (int, float)) and lim > 0 else None,
                    pin_target=chosen["target"], pin_batch=chosen["batch"], notes=notes, extra=_extra_kwargs(cons))


_OWN = {"targets", "batch", "max_batch", "max_latency_ms", "dims", "target_files", "progress", "path"}


def _extra_kwargs(cons: dict[str, Any]) -> dict[str, Any]:
    """Constraints other than the ones handled here that name plan() parameters (prompt_len, gen_len, tp, ...),
    so that a plan is re-made the way it was made even for settings added after this module was written."""
    params = inspect.signature(plan).parameters
    out = {k: v for k, v in cons.items() if k in params and k not in _OWN and v is not None and k != "passes"}
    if isinstance(cons.get("passes"), str) and "passes" in params:  # the pass search's mode, as PassOptions
        opts = {"mode": cons["passes"]}
        if isinstance(cons.get("max_drift"), (int, float)):
            opts["max_drift"] = cons["max_drift"]
        out["passes"] = PassOptions(**opts)
    out.pop("max_drift", None)
    return out


def _model_dims(model_path: str | os.PathLike) -> tuple[str | None, dict[str, str]]:
    """The model's batch dim and its symbolic dims with their kinds, to map the baseline's dims onto it."""

    spec = dim_spec(load_model(model_path).model)
    return spec.batch, {n: spec.kinds.get(n, "other") for n in spec.names}


def _known_dims(kinds: dict[str, str], dims: dict[str, int], decoder: bool, notes: list[str]) -> dict[str, int]:
    """Drop baseline dims the model no longer has (renamed inputs), saying so, instead of refusing. A decoder's
    sequence/past/total dims were set by its prefill and decode phases (from prompt_len and gen_len, which are
    passed back), so they are not bound again."""
    gone = [k for k in dims if k not in kinds]
    if gone:
        notes.append(f"baseline dims not in the model any more (left to defaults): {', '.join(gone)}")
    phase = {"sequence", "past", "total"} if decoder else set()
    return {k: v for k, v in dims.items() if k in kinds and kinds[k] not in phase}


def _as_dict(c: CandidateReport, plan: Plan) -> dict[str, Any]:
    """One candidate as the JSON a plan would hold for `chosen` (all kernels, non-finite numbers as null)."""
    one = Plan(model=plan.model, chosen=c, candidates=[], constraints={}, best_per_target={})
    return one.to_dict()["chosen"]


IDENTITY = ("target", "batch", "precision", "passes", "devices")  # what makes a configuration the same one


def _same(a: dict[str, Any], b: dict[str, Any], keys: Sequence[str]) -> bool:
    return all(a.get(k) == b.get(k) for k in keys)


def _match(cands: list[dict[str, Any]], old: dict[str, Any], fixed: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """The candidate that is the baseline's configuration; failing that, the closest one and what differs."""
    keys = [k for k in IDENTITY if k in old and not (fixed and k == "batch")]
    for relax in range(len(keys) - 1, -1, -1):  # drop the least identifying keys first (devices, passes, ...)
        for c in cands:
            if _same(c, old, keys[: relax + 1]):
                return c, [k for k in keys[relax + 1:] if c.get(k) != old.get(k)]
    return None, keys


def _pinned(model_path: str | os.PathLike, fresh: Plan, s: Settings, old: dict[str, Any],
            target_files: Sequence[str], progress: Callable[[int, int], None] | None,
            notes: list[str]) -> dict[str, Any] | None:
    """The baseline's configuration planned now: from the sweep if it got there, else planned directly."""

    fixed = fresh.model.batch_dim is None
    cands = [_as_dict(c, fresh) for c in fresh.candidates]
    found, differs = _match(cands, old, fixed)
    if found is None or differs:
        p = plan(model_path, targets=[s.pin_target], dims=s.dims, batch=None if fixed else s.pin_batch,
                 target_files=target_files, max_batch=s.max_batch, progress=progress, **s.extra)
        again, differs_again = _match([_as_dict(c, p) for c in p.candidates], old, fixed)
        if again is not None and (found is None or len(differs_again) < len(differs)):
            found, differs = again, differs_again
    if found is not None and differs:
        notes.append("the baseline's exact configuration was not planned now; compared with the closest one, "
                     "which differs in " + ", ".join(f"{k} ({old.get(k)} -> {found.get(k)})" for k in differs))
    return found


def check(model_path: str | os.PathLike, baseline: dict[str, Any], metric: str = "cost",
          max_increase: float = 0.05, target_files: Sequence[str] = (),
          progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Re-plan `model_path` under `baseline`'s settings and judge the change in `metric` at its configuration."""

    if metric not in METRICS:
        raise PlannerError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    if baseline.get("chosen") is None:
        raise PlannerError("baseline has no chosen plan (nothing fitted when it was written); "
                           "write a new one with: plan MODEL --target T --out FILE")
    key, label, _ = METRICS[metric]
    old = baseline["chosen"]
    if old.get(key) is None:
        raise PlannerError(f"baseline has no {label} for {old['target']} (no price for this target?); "
                           "use --metric latency or --metric memory")
    batch_dim, kinds = _model_dims(model_path)
    s = baseline_settings(baseline, batch_dim)
    notes = list(s.notes)
    decoder = bool(baseline["model"].get("decoder")) or "prompt_len" in (baseline.get("constraints") or {})
    dims = _known_dims(kinds, s.dims, decoder, notes)
    s = Settings(**{**s.__dict__, "dims": dims, "notes": notes})
    fresh = plan(model_path, targets=s.targets, dims=s.dims, batch=s.batch, max_latency_ms=s.max_latency_ms,
                 target_files=target_files, max_batch=s.max_batch, progress=progress, **s.extra)
    current = _pinned(model_path, fresh, s, old, target_files, progress, notes)
    reasons: list[str] = []
    if current is None:
        raise PlannerError(f"cannot plan the model at the baseline's configuration ({config_label(old)})")
    if fresh.model.batch_dim is None and current.get("batch") != old.get("batch"):
        notes.append(f"the model's batch is fixed at {current.get('batch')}; the baseline ran batch "
                     f"{old.get('batch')}")
    comparison = compare_configs(old, current)
    change = relative_change(old.get(key), current.get(key))
    if current.get(key) is None:
        raise PlannerError(f"no {label} for {current['target']} now (no price for this target?); "
                           "use --metric latency or --metric memory")
    if change is not None and change > max_increase:
        reasons.append(f"{label} +{_pct(change)} exceeds the limit of +{_pct(max_increase)}")
    if old.get("fits", True) and current.get("fits") is False:
        reasons.append(f"{config_label(current)} no longer fits in memory")
    if fresh.chosen is None:
        reasons.append("no configuration meets the baseline's constraints any more")
    cheapest_now = config_label(_as_dict(fresh.chosen, fresh)) if fresh.chosen else None
    return CheckResult(metric=metric, max_increase=max_increase, baseline=old, current=current,
                       comparison=comparison, fresh=fresh, regression=bool(reasons), reasons=reasons,
                       cheapest_before=config_label(old), cheapest_now=cheapest_now, notes=notes)


def _pct(x: float) -> str:
    if x == float("inf"):
        return "inf%"
    v = 100 * x
    return f"{v:.3g}%" if abs(v) < 100 else f"{v:,.0f}%"
