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
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import onnx

from passes import get_pipeline, registered_pipelines
from passes.base import PassContext, Pipeline
from passes.runner import PipelineResult, Runner
from passes.verify import VERIFY_BATCH, Reference, generate_inputs, input_shapes, load_npz
from planner.calibration.host import predict_host
from planner.errors import PlannerError
from planner.model.analyze import Analyzer
from planner.model.limits import bounded_numel
from planner.model.loader import LoadedModel
from planner.predict.predictor import Predictor
from planner.search.sweep import Variant
from planner.targets.host import u8s8_saturates
from planner.targets.target import Target

DEFAULT_MAX_DRIFT = 0.01  # 1 - cosine similarity, and top-1 disagreement for classifier-like outputs
# Decoders are judged by generation (planner.llm.generation): teacher-forced token agreement >= 90%, per-step logit
# cosine >= 0.9, perplexity within +10%. One forward pass's 0.99 would refuse every int4 decoder: near-tied
# logits flip at some step of a 4 x 32-token generation even for quantizations that serve well.
DECODER_MAX_DRIFT = 0.1
AUTO_MAX_BYTES = 512 * 2**20  # auto mode does not run onnxruntime verification on bigger models
# ... nor the rewriters on bigger graphs (each variant also multiplies the search's work). 1,000 skipped every
# 12-layer encoder (a MiniLM-L12 export has 1,117 nodes), the models int8 helps most; a 24-layer one stays in
AUTO_MAX_NODES = 3000
AUTO_MAX_INPUT_BYTES = 256 * 2**20  # ... nor when the seeded verification inputs alone would be this big
HOST_MIN_ROUNDS, HOST_MAX_ROUNDS, HOST_BUDGET_S = 7, 40, 1.0  # timing the variants on this machine
HOST_SLOW_RUN_S = 0.03  # a first run slower than this: time the variants at batch 1
HOST_MIN_SPEEDUP = 1.05  # on host, a pipeline must measure this much faster than the stored model to be chosen
_REFERENCE, _HOST_MEASURED = "reference", "host-measured"  # a model's cache entry: inputs, host timings
_CACHE: dict[tuple, dict[str, tuple]] = {}  # (sha256, options, dims) -> pipeline -> (result, analyzer, digest)


@dataclass(frozen=True)
class PassOptions:
    mode: str = "auto"  # "auto", "none", or comma-separated pipeline names
    max_drift: float | None = None  # None: DEFAULT_MAX_DRIFT, or DECODER_MAX_DRIFT for decoders
    calibration: str | None = None  # .npz of inputs for int8-static and for measuring drift
    int4_block_size: int = 32
    fp16_keep_io: bool = True
    int4_symmetric: bool = True  # False: a uint8 zero point per block
    int4_lm_head: bool = True  # False: a decoder's lm_head stays float
    eval_text: str | None = None  # decoders: the text perplexity is measured on (None: the bundled one)
    gen_tokens: int = 32  # decoders: greedy tokens generated per seeded prompt to verify a pass

    def drift_limit(self, decoder: bool = False) -> float:
        """--max-drift as given, else the default for the kind of model."""
        if self.max_drift is not None:
            return self.max_drift
        return DECODER_MAX_DRIFT if decoder else DEFAULT_MAX_DRIFT

    def context_options(self) -> dict:
        """What the passes read from PassContext.options."""
        return {"int4_block_size": self.int4_block_size, "fp16_keep_io": self.fp16_keep_io,
                "int4_symmetric": self.int4_symmetric, "int4_lm_head": self.int4_lm_head,
                "int8_reduce_range": u8s8_saturates()}

    @property
    def explicit(self) -> bool:
        return self.mode not in ("auto", "none")

    def key(self) -> tuple:
        return (self.calibration, self.int4_block_size, self.fp16_keep_io, self.int4_symmetric, self.int4_lm_head,
                self.eval_text, self.gen_tokens, u8s8_saturates())


@dataclass
class Optimized:
    variants: list[Variant]
    models: dict[str, onnx.ModelProto]  # pipeline -> the model it plans (for --emit)
    reports: list[dict] = field(default_factory=list)  # per pipeline: passes, counts, drift, time, why rejected
    notes: list[str] = field(default_factory=list)


def pipeline_report(p: Pipeline, result: PipelineResult) -> dict:
    """A pipeline's entry in the plan's `pipelines`: what ran, its drift, and why it was dropped if it was (by
    its verification, or because no pass changed the model)."""
    report = {"pipeline": p.name, "precision": p.precision, "passes": result.applied,
              "steps": [s.to_dict() for s in result.steps],
              "drift": result.drift.to_dict() if result.drift else None, "rejected": result.rejected,
              "seconds": round(sum(s.seconds for s in result.steps), 4)}
    if not result.rejected and not result.applied:
        report["rejected"] = "no pass changed the model: same as 'none'"
    return report


def select_pipelines(mode: str, has_calibration: bool) -> list:

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


def _inputs_too_big(model: onnx.ModelProto, dims: dict[str, int]) -> str | None:
    """Verification feeds seeded inputs at its batch: an input dim of 2^31 would have numpy fill 16 GB first
    (found by the fuzzer: a minute of paging, then the OOM killer)."""

    try:
        shapes = input_shapes(model, VERIFY_BATCH, dims)
    except Exception:  # noqa: BLE001  the verification itself reports what it cannot bind
        return None
    total = 0
    for name, (shape, _) in shapes.items():
        n = bounded_numel(max(int(d), 0) for d in shape)
        total += AUTO_MAX_INPUT_BYTES + 1 if n is None else 8 * n  # 8: the widest element generated
        if total > AUTO_MAX_INPUT_BYTES:
            return (f"the seeded inputs verification needs (input '{name}' and before) pass "
                    f"{AUTO_MAX_INPUT_BYTES >> 20} MB: name pipelines with --passes to run them")
    return None


def optimize(loaded: LoadedModel, analyzer: Analyzer, dims: dict[str, int] | None, options: PassOptions,
             targets: Sequence[Target] = (), warn: Callable[[str], None] | None = None) -> Optimized:
    """Variants for the search: the model as stored, plus each selected pipeline that verified.

    When `host` is among the targets, each variant is also timed here (planner.search.variants.measure_on_host) and its
    host predictions are scaled so that, at the measured batch, its time relative to the stored model's is the
    measured one: the cost model's nominal host peaks cannot tell a CPU's int8 or int4 kernels from its fp32
    ones as well as running them can. A pipeline that does not measure at least HOST_MIN_SPEEDUP faster than
    the stored model is not chosen for host (the noise of a shared CPU is a few percent)."""
    warn = warn or (lambda m: print(f"plan: warning: {m}", file=sys.stderr))
    stored = Variant("none", analyzer)
    out = Optimized([stored], {"none": loaded.model})
    pipelines = select_pipelines(options.mode, options.calibration is not None)
    if all(p.name == "none" for p in pipelines):
        return out
    why = _why_not(loaded)
    if why is None and options.mode == "auto" and loaded.model.ByteSize() > AUTO_MAX_BYTES:
        why = f"model is over {AUTO_MAX_BYTES >> 20} MB: name pipelines with --passes to run them"
    if why is None and options.mode == "auto" and len(loaded.model.graph.node) > AUTO_MAX_NODES:
        why = (f"{len(loaded.model.graph.node)} nodes, over the {AUTO_MAX_NODES} auto runs passes on (planning time): "
               "name pipelines with --passes to run them")
    if why is None and options.mode == "auto":
        why = _inputs_too_big(loaded.model, {k: v for k, v in (dims or {}).items() if k != analyzer.spec.batch})
    if why:
        if options.explicit:
            raise PlannerError(f"--passes {options.mode}: {why}")
        out.notes.append(f"passes skipped: {why}")
        return out

    try:
        runs = _run_pipelines(loaded, pipelines, options, {k: v for k, v in (dims or {}).items()
                                                           if k != analyzer.spec.batch}, warn, analyzer)
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
        report = pipeline_report(p, result)
        out.reports.append(report)
        if report["rejected"]:
            continue
        if digest in seen:
            report["rejected"] = f"same model as '{seen[digest]}'"
            continue
        seen[digest] = p.name
        drift_reason = result.drift.violates(options.drift_limit()) if result.drift else None
        out.variants.append(Variant(p.name, sub_analyzer, p.precision, tuple(result.applied),
                                    result.drift.to_dict() if result.drift else None, drift_reason))
        out.models[p.name] = result.model
    host = next((t for t in targets if t.name == "host"), None)
    if host is not None and len(out.variants) > 1:
        _calibrate_on_host(out, loaded, host, dims, runs)
    return out


def _calibrate_on_host(out: Optimized, loaded: LoadedModel, host: Target, dims: dict[str, int] | None,
                       runs: dict[str, tuple]) -> None:
    """Time every variant on this machine and scale its host predictions to the measured ratio (see optimize)."""

    cached = runs.setdefault((_HOST_MEASURED, host.threads), {})
    names = [v.name for v in out.variants]
    base_analyzer = out.variants[0].analyzer
    sweepable = base_analyzer.batch_sweepable and base_analyzer.spec.batch is not None
    if any(n not in cached for n in names):
        feeds = runs[_REFERENCE][0].feeds[0]
        cached.clear()
        cached.update(measure_on_host({v.name: out.models[v.name] for v in out.variants}, feeds,
                                      shrink=sweepable, threads=host.threads))
    batch = cached["_batch"]
    predictor = Predictor()
    b = batch if sweepable else None
    try:
        predicted = {v.name: predict_host(predictor, v.analyzer, v.analyzer.analyze(dims, batch=b), host, dims, b,
                                          v.precision).latency_s for v in out.variants}
    except PlannerError:
        return
    none_s, none_pred = cached["none"][0], predicted["none"]
    for i, v in enumerate(out.variants):
        if v.name == "none":
            continue
        measured_s, rounds = cached[v.name]
        measured_speedup = none_s / measured_s
        predicted_speedup = none_pred / predicted[v.name]
        factor = predicted_speedup / measured_speedup
        report = next(r for r in out.reports if r["pipeline"] == v.name)
        report["host_measured"] = {"batch": batch, "median_ms": measured_s * 1e3, "original_median_ms": none_s * 1e3,
                                   "speedup": measured_speedup, "predicted_speedup": predicted_speedup,
                                   "scale": factor, "rounds": rounds}
        note = (f"host: measured x{measured_speedup:.2f} the stored model's speed on this machine (batch {batch}, "
                f"median of {rounds} interleaved onnxruntime runs), predicted x{predicted_speedup:.2f}: host kernel "
                f"times scaled by {factor:.2f}")
        slower = None
        if measured_speedup < HOST_MIN_SPEEDUP:
            slower = (f"measured on this machine: x{measured_speedup:.2f} the stored model's speed (batch {batch}), "
                      f"not measurably faster (needs x{HOST_MIN_SPEEDUP:g})")
            report["host_measured"]["rejected"] = slower
        out.variants[i] = replace(v, scale={host.name: (factor, note)},
                                  rejected_on={host.name: slower} if slower else {})


def measure_on_host(models: dict[str, onnx.ModelProto | os.PathLike], feeds: dict, budget_s: float = HOST_BUDGET_S,
                    shrink: bool = False, threads: int = 1) -> dict:
    """Median seconds per model over interleaved rounds (each round runs every model once, rotating the
    order), onnxruntime CPU with ORT_ENABLE_ALL and intra-op spinning off so that one session's idle threads do
    not steal the next one's cores. Other processes share the CPU: interleaving and medians keep the ratios
    fair. Stops after HOST_MAX_ROUNDS or when past the budget with at least HOST_MIN_ROUNDS. With `shrink`, a
    model whose first run takes over HOST_SLOW_RUN_S is timed at batch 1 (the first row of `feeds`) instead.
    `threads`: the intra-op threads the host is planned for, so that the ratio is the one the plan predicts.
    A model given as a path is read by onnxruntime from its file (external data beside it).
    Returns {name: (median seconds, rounds)} plus "_batch": the batch timed."""
    import onnxruntime as ort

    sessions = {}
    for name, m in models.items():
        so = ort.SessionOptions()
        so.log_severity_level = 4  # failures come back as exceptions with their reason; no log spew
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = str(m) if isinstance(m, os.PathLike) else m.SerializeToString()
        sessions[name] = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    # The batch is the leading dim of the first input that has one: a scalar input (an If's mode switch) has
    # none, and keeps its value when the batched inputs are cut to their first row.
    batch = next((v.shape[0] for v in feeds.values() if getattr(v, "ndim", 0)), 1)
    first = next(iter(sessions.values()))
    t0 = time.perf_counter()
    first.run(None, feeds)
    if shrink and batch > 1 and time.perf_counter() - t0 > HOST_SLOW_RUN_S:
        feeds = {k: v[:1] if getattr(v, "ndim", 0) and v.shape[0] == batch else v for k, v in feeds.items()}
        batch = 1
    for s in sessions.values():
        s.run(None, feeds)
    order = list(sessions)
    times: dict[str, list[float]] = {n: [] for n in order}
    start = time.perf_counter()
    rounds = 0
    while rounds < HOST_MAX_ROUNDS and (rounds < HOST_MIN_ROUNDS or time.perf_counter() - start < budget_s):
        k = rounds % len(order)
        for n in order[k:] + order[:k]:
            t0 = time.perf_counter()
            sessions[n].run(None, feeds)
            times[n].append(time.perf_counter() - t0)
        rounds += 1
    return {**{n: (statistics.median(ts), rounds) for n, ts in times.items()}, "_batch": batch}


class _NoReference(Exception):
    """onnxruntime cannot run the original model here, so no pass can be verified."""


def _run_pipelines(loaded: LoadedModel, pipelines: list, options: PassOptions, verify_dims: dict[str, int],
                   warn: Callable[[str], None], analyzer: Analyzer) -> dict[str, tuple]:
    """pipeline -> (PipelineResult, Analyzer of its model, its bytes' digest); cached per model and options, so
    a second plan of the same model (other targets, constraints or drift limit) runs no pass again."""
    key = (loaded.sha256, options.key(), tuple(sorted(verify_dims.items())), analyzer.loop_trips,
           tuple(sorted(analyzer.given.items())))  # each variant's Analyzer takes the stored model's bindings
    cached = _CACHE.setdefault(key, {})
    todo = [p for p in pipelines if p.name != "none" and p.name not in cached]
    if not todo:
        return cached

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
                      options=options.context_options(), warn=warn)
    runner = Runner(model, reference, ctx)
    cached[_REFERENCE] = (reference,)
    for p in todo:
        result = runner.run(p)
        sub = None
        digest = b""
        if result.model is not None and not result.rejected:
            digest = hashlib.sha256(result.model.SerializeToString(deterministic=True)).digest()
            sub = Analyzer(LoadedModel(model=result.model, path=loaded.path,
                                       sha256=f"{loaded.sha256}:{p.name}:{digest.hex()[:16]}"),
                           loop_trips=analyzer.loop_trips, values=analyzer.given)
        cached[p.name] = (result, sub, digest)
    return cached
