"""The 'candidates' step of plan(): run the pass pipelines on the model, verify them, measure their drift.

Each pipeline (passes.pipelines) runs once per model on this host: every pass is verified with onnxruntime
against the original's outputs on the same seeded inputs (or the user's .npz), and the drift of the result is a
property of the transformed model, not of the target, so it is measured once, cached, and reported in every
candidate that uses the pipeline. Each surviving pipeline becomes a search Variant with its own Analyzer, so the
cost model sees what the passes did (fused kernels, int8 / int4 / fp16 weights).

Planning time: the cost is onnxruntime sessions on the host (one per pass that changed the model, plus one for
the original), about 0.5 to 1.5 s for the shipped models. `--passes none` skips it all.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from planner.analyze import Analyzer
from planner.errors import PlannerError
from planner.loader import LoadedModel
from planner.search import Variant

DEFAULT_MAX_DRIFT = 0.01  # 1 - cosine similarity, and top-1 disagreement for classifier-like outputs
AUTO_MAX_BYTES = 512 * 2**20  # auto mode does not run onnxruntime verification on bigger models
_CACHE: dict[tuple, dict[str, tuple]] = {}  # (sha256, options, dims) -> pipeline -> (result, analyzer, digest)


@dataclass(frozen=True)
class PassOptions:
    mode: str = "auto"  # "auto", "none", or comma-separated pipeline names
    max_drift: float = DEFAULT_MAX_DRIFT
    calibration: str | None = None  # .npz of inputs for int8-static and for measuring drift
    int4_block_size: int = 32
    fp16_keep_io: bool = True

    @property
    def explicit(self) -> bool:
        return self.mode not in ("auto", "none")

    def key(self) -> tuple:
        return (self.calibration, self.int4_block_size, self.fp16_keep_io)


@dataclass
class Optimized:
    variants: list[Variant]
    models: dict[str, onnx.ModelProto]  # pipeline -> the model it plans (for --emit)
    reports: list[dict] = field(default_factory=list)  # per pipeline: passes, counts, drift, time, why rejected
    notes: list[str] = field(default_factory=list)


def select_pipelines(mode: str, has_calibration: bool) -> list:
    from passes import get_pipeline, registered_pipelines

    if mode == "none":
        return [get_pipeline("none")]
    if mode == "auto":
        return [p for p in registered_pipelines().values()
                if p.auto or (p.name == "int8-static" and has_calibration)]
    names = [n.strip() for n in mode.split(",") if n.strip()]
    if not names:
        raise PlannerError("--passes: expected auto, none, or pipeline names")
    out = [get_pipeline("none")]  # the as-stored model is always a candidate
    for n in names:
        p = get_pipeline(n)
        if p not in out:
            out.append(p)
    return out


def _why_not(loaded: LoadedModel) -> str | None:
    if loaded.external_files:
        return "weights are stored as external data (passes rewrite self-contained models only)"
    if loaded.converted_from_opset:
        return f"opset {loaded.converted_from_opset} is upgraded for planning only; passes need opset >= 7"
    size = loaded.model.ByteSize()
    if size >= 2**31:
        return "model is over protobuf's 2 GB limit"
    return None


def optimize(loaded: LoadedModel, analyzer: Analyzer, dims: dict[str, int] | None, options: PassOptions,
             warn: Callable[[str], None] | None = None) -> Optimized:
    """Variants for the search: the model as stored, plus each selected pipeline that verified."""
    warn = warn or (lambda m: print(f"plan: warning: {m}", file=sys.stderr))
    stored = Variant("none", analyzer)
    out = Optimized([stored], {"none": loaded.model})
    pipelines = select_pipelines(options.mode, options.calibration is not None)
    if all(p.name == "none" for p in pipelines):
        return out
    why = _why_not(loaded)
    if why is None and options.mode == "auto" and loaded.model.ByteSize() > AUTO_MAX_BYTES:
        why = f"model is over {AUTO_MAX_BYTES >> 20} MB: name pipelines with --passes to run them"
    if why:
        if options.explicit:
            raise PlannerError(f"--passes {options.mode}: {why}")
        out.notes.append(f"passes skipped: {why}")
        return out

    try:
        runs = _run_pipelines(loaded, pipelines, options, {k: v for k, v in (dims or {}).items()
                                                           if k != analyzer.spec.batch}, warn)
    except _NoReference as e:
        if options.explicit:
            raise PlannerError(f"--passes {options.mode}: {e}") from None
        out.notes.append(f"passes skipped: {e}")
        return out
    seen: dict[bytes, str] = {}
    for p in pipelines:
        if p.name == "none":
            out.reports.append({"pipeline": "none", "precision": None, "passes": [], "steps": [], "drift": None,
                                "rejected": None, "note": "the model as stored"})
            continue
        result, sub_analyzer, digest = runs[p.name]
        report = {"pipeline": p.name, "precision": p.precision, "passes": result.applied,
                  "steps": [s.to_dict() for s in result.steps],
                  "drift": result.drift.to_dict() if result.drift else None, "rejected": result.rejected,
                  "seconds": round(sum(s.seconds for s in result.steps), 4)}
        out.reports.append(report)
        if result.rejected:
            continue
        if not result.applied:
            report["rejected"] = "no pass changed the model: same as 'none'"
            continue
        if digest in seen:
            report["rejected"] = f"same model as '{seen[digest]}'"
            continue
        seen[digest] = p.name
        drift_reason = result.drift.violates(options.max_drift) if result.drift else None
        out.variants.append(Variant(p.name, sub_analyzer, p.precision, tuple(result.applied),
                                    result.drift.to_dict() if result.drift else None, drift_reason))
        out.models[p.name] = result.model
    return out


class _NoReference(Exception):
    """onnxruntime cannot run the original model here, so no pass can be verified."""


def _run_pipelines(loaded: LoadedModel, pipelines: list, options: PassOptions, verify_dims: dict[str, int],
                   warn: Callable[[str], None]) -> dict[str, tuple]:
    """pipeline -> (PipelineResult, Analyzer of its model, its bytes' digest); cached per model and options, so
    a second plan of the same model (other targets, constraints or drift limit) runs no pass again."""
    key = (loaded.sha256, options.key(), tuple(sorted(verify_dims.items())))
    cached = _CACHE.setdefault(key, {})
    todo = [p for p in pipelines if p.name != "none" and p.name not in cached]
    if not todo:
        return cached

    from passes.base import PassContext
    from passes.runner import Runner
    from passes.verify import Reference, generate_inputs, load_npz

    model = loaded.model
    user_feeds = load_npz(options.calibration, model) if options.calibration else None
    try:
        reference = Reference.build(model, user_feeds, verify_dims)
    except PlannerError:
        raise
    except Exception as e:  # onnxruntime cannot run the original here: nothing to compare passes against
        raise _NoReference(f"onnxruntime cannot run the original on this host "
                           f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
    calibration, generated = user_feeds, False
    if calibration is None and any(p.name == "int8-static" for p in todo):
        calibration = [generate_inputs(model, seed=s, dims=verify_dims) for s in (101, 102, 103, 104)]
        generated = True
    ctx = PassContext(calibration=calibration, calibration_generated=generated,
                      options={"int4_block_size": options.int4_block_size, "fp16_keep_io": options.fp16_keep_io},
                      warn=warn)
    runner = Runner(model, reference, ctx)
    for p in todo:
        result = runner.run(p)
        sub = None
        digest = b""
        if result.model is not None and not result.rejected:
            digest = hashlib.sha256(result.model.SerializeToString(deterministic=True)).digest()
            sub = Analyzer(LoadedModel(model=result.model, path=loaded.path,
                                       sha256=f"{loaded.sha256}:{p.name}"))
        cached[p.name] = (result, sub, digest)
    return cached
