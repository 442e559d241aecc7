"""Run a pipeline with verification after every pass.

Each pass gets its own copy of the model and is verified against the original's outputs (passes.verify): a
float-exact pass whose result fails is dropped with its reason and the pipeline goes on without it; a
precision pass that fails rejects the pipeline. Prefixes shared by several pipelines (cleanup + fusion) run
once per model: `Runner` caches them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from passes.base import PassContext, PassRejected, Pipeline, get_pass
from passes.verify import ZERO_DRIFT, Drift, Reference, verify


@dataclass(frozen=True)
class StepReport:
    name: str
    applied: bool  # False: skipped (precondition) or dropped (failed verification); `reason` says why
    changed: bool
    counts: dict[str, int]
    seconds: float
    drift: Drift | None
    reason: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "applied": self.applied, "changed": self.changed, "counts": dict(self.counts),
                "seconds": round(self.seconds, 4), "drift": self.drift.to_dict() if self.drift else None,
                "reason": self.reason, "notes": list(self.notes)}


@dataclass
class PipelineResult:
    pipeline: Pipeline
    model: onnx.ModelProto | None  # None when rejected
    steps: list[StepReport] = field(default_factory=list)
    drift: Drift | None = None
    rejected: str | None = None  # why the pipeline cannot be a candidate

    @property
    def applied(self) -> list[str]:
        return [s.name for s in self.steps if s.applied and s.changed]

    @property
    def precision(self) -> str:
        return self.pipeline.precision


class Runner:
    """Runs pipelines on one model, sharing verified prefixes between pipelines."""

    def __init__(self, model: onnx.ModelProto, reference: Reference, ctx: PassContext | None = None,
                 check: bool = True) -> None:
        self.model = model
        self.reference = reference
        self.ctx = ctx or PassContext()
        self.check = check
        self._prefix: dict[tuple[str, ...], tuple[onnx.ModelProto, list[StepReport], Drift, str | None]] = {
            (): (model, [], ZERO_DRIFT, None)}

    def _step(self, prefix: tuple[str, ...], name: str):
        key = prefix + (name,)
        if key in self._prefix:
            return self._prefix[key]
        model, steps, drift, rejected = self._prefix[prefix]
        if rejected:
            self._prefix[key] = (model, steps, drift, rejected)
            return self._prefix[key]
        p = get_pass(name)
        try:
            r = p.apply(model, self.ctx)
        except Exception as e:  # PassRejected (a precondition), or a wrapped tool's failure on this graph
            why = str(e).split(": ", 1)[-1] if isinstance(e, PassRejected) else \
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            rep = StepReport(name, False, False, {}, 0.0, None, why)
            # a precision pass that cannot apply leaves nothing to plan; an exact one is simply skipped
            out = (model, steps + [rep], drift, f"{name}: {why}" if p.precision else None)
            self._prefix[key] = out
            return out
        if not r.changed:
            rep = StepReport(name, True, False, dict(r.counts), r.seconds, drift, None, r.notes)
            self._prefix[key] = (model, steps + [rep], drift, None)
            return self._prefix[key]
        new_drift, reason = verify(r.model, self.reference, p.exact) if self.check else (None, None)
        if reason:
            rep = StepReport(name, False, True, dict(r.counts), r.seconds, new_drift,
                             f"failed verification: {reason}", r.notes)
            out = (model, steps + [rep], drift, f"{name} failed verification: {reason}" if p.precision else None)
        else:
            rep = StepReport(name, True, True, dict(r.counts), r.seconds, new_drift, None, r.notes)
            out = (r.model, steps + [rep], new_drift or drift, None)
        self._prefix[key] = out
        return out

    def run(self, pipeline: Pipeline) -> PipelineResult:
        pipeline.validate()
        prefix: tuple[str, ...] = ()
        for name in pipeline.passes:
            self._step(prefix, name)
            prefix += (name,)
        model, steps, drift, rejected = self._prefix[prefix]
        if rejected:
            return PipelineResult(pipeline, None, steps, None, rejected)
        return PipelineResult(pipeline, model, steps, drift, None)


def run_pipeline(model: onnx.ModelProto, pipeline: Pipeline, reference: Reference | None = None,
                 ctx: PassContext | None = None) -> PipelineResult:
    """One pipeline on one model, verified after every pass."""
    return Runner(model, reference or Reference.build(model), ctx).run(pipeline)
