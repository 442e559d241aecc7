"""The decoder's pass pipelines: run them, verify each by generation, time each phase on this host.

The same named pipelines as other models (passes.pipelines: fused, int8-dynamic, int4, fp16), run by the same
runner, but judged the way decoders are (planner.llm.generation: greedy tokens with the cache fed back, logit
cosine per step, perplexity, the cache contract) instead of one forward pass. Each surviving pipeline becomes
a DecoderVariant that the decoder search plans beside the stored model (precision x target x devices x batch).

On `host`, each variant's decode step (batch 1 at the mean context) and prefill (batch 1, the prompt) are
timed interleaved with the stored model's (planner.search.variants.measure_on_host): the plan scales its host
predictions to the measured ratios, as for other models, and prints them.

A decoder whose weights are external data is never read for planning: with `auto`, its int4 variant is
projected from shapes (passes.projection) and marked so: planned, not emitted, drift not measured. Named
weight-only pipelines (`--passes int4`, `int8-weight`) do run on it, one weight at a time, written with
external data under a scratch folder and verified by generation from the files (planner.llm.external).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from passes.base import PassContext
from passes.projection import project_int4
from passes.runner import PipelineResult, Runner
from planner.errors import PlannerError
from planner.llm.decoder import DECODE, PREFILL, DecoderInfo, phase_dims, phase_feeds
from planner.llm.external import run_external
from planner.llm.generation import EVAL_TEXT, GenerationReference, position_limit
from planner.model.loader import LoadedModel
from planner.search.variants import (
    AUTO_MAX_BYTES,
    HOST_MIN_SPEEDUP,
    PassOptions,
    measure_on_host,
    pipeline_report,
    select_pipelines,
)
from planner.targets.target import Target

DECODER_PIPELINES = ("fused", "int8-dynamic", "int8-weight", "int4", "fp16")  # what `auto` runs on a decoder
HOST_PHASE_BUDGET_S = 1.0
# Decode is also timed at this batch where the stored model's step at batch 1 is quicker than the limit: a fused
# attention (kv-attention) saves the cache's copies, which grow with the batch, and is no faster at batch 1
# when the weights' read dominates the step.
HOST_WIDE_BATCH, HOST_WIDE_MAX_STEP_S = 8, 0.03
_RUNS: dict[tuple, dict[str, object]] = {}  # (sha256, pass options) -> pipeline -> its PipelineResult


@dataclass
class DecoderVariant:
    name: str  # the pipeline ("none": the model as stored)
    precision: str
    loaded: LoadedModel
    passes: tuple[str, ...] = ()
    drift: dict | None = None
    rejected: str | None = None  # why no candidate of it may be chosen (drift over the limit), else None
    host: dict | None = None  # measured here: decode_ms, prefill_ms, their speedups over the stored model
    projected: bool = False  # shapes only (external data): not emitted, drift not measured

    @property
    def model(self) -> onnx.ModelProto:
        return self.loaded.model


@dataclass
class DecoderVariants:
    variants: list[DecoderVariant]
    reports: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scratch: Path | None = None  # where rewrites of an external-data decoder lie until planned and emitted

    def close(self) -> None:
        """Remove the scratch folder (emitted files are links or copies: they outlive it)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _pipelines(options: PassOptions) -> list:
    if options.mode == "auto":
        return select_pipelines(",".join(DECODER_PIPELINES), False)
    chosen = select_pipelines(options.mode, False)
    if any(p.name == "int8-static" for p in chosen):
        raise PlannerError(f"--passes {options.mode}: int8-static does not apply to decoders (static activation "
                           "ranges would need calibration feeds for every cache input): use int8-dynamic or int4")
    return chosen


def _eval_text(options: PassOptions) -> str:
    if options.eval_text is None:
        return EVAL_TEXT
    try:
        with open(options.eval_text, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise PlannerError(f"--eval-text {options.eval_text}: {e.strerror or e}") from None


def optimize_decoder(loaded: LoadedModel, info: DecoderInfo, options: PassOptions, targets: Sequence[Target],
                     prompt_len: int, gen_len: int, warn: Callable[[str], None] | None = None,
                     scratch: Path | None = None) -> DecoderVariants:
    """The stored decoder plus each selected pipeline that verified by generation (see the module docstring).
    `scratch`: the folder under which rewrites of an external-data decoder are written (where --emit goes, so
    that emitting links them instead of copying; default the system's temporary folder)."""
    warn = warn or (lambda m: print(f"plan: warning: {m}", file=sys.stderr))
    stored = DecoderVariant("none", _stored_precision(info), loaded)
    out = DecoderVariants([stored])
    pipelines = [p for p in _pipelines(options) if p.name != "none"]
    if not pipelines:
        return out
    if loaded.external_files:
        if options.explicit:
            _external(out, loaded, options, pipelines, scratch)
            host = next((t for t in targets if t.name == "host"), None)
            if host is not None and len(out.variants) > 1:
                _time_on_host(out, info, host, prompt_len, gen_len)
        elif any(p.name == "int4" for p in pipelines):
            _project(out, loaded, options)
        return out
    why = None
    if loaded.converted_from_opset:
        why = f"opset {loaded.converted_from_opset} is upgraded for planning only; passes need opset >= 7"
    elif loaded.model.ByteSize() >= 2**31:
        why = "model is over protobuf's 2 GB limit"
    elif options.mode == "auto" and loaded.model.ByteSize() > AUTO_MAX_BYTES:
        why = f"model is over {AUTO_MAX_BYTES >> 20} MB: name pipelines with --passes to run them"
    runs = _RUNS.setdefault((loaded.sha256, options.key()), {})
    if why is None and any(p.name not in runs for p in pipelines):
        try:
            reference = GenerationReference(loaded.model, tokens=options.gen_tokens, text=_eval_text(options))
        except PlannerError as e:
            if options.explicit or options.eval_text is not None:
                raise
            why = str(e)
        except Exception as e:  # onnxruntime cannot run the original: nothing to compare against
            why = f"onnxruntime cannot run the original here ({str(e).splitlines()[0][:160] if str(e) else e!r})"
    if why:
        if options.explicit:
            raise PlannerError(f"--passes {options.mode}: {why}")
        out.notes.append(f"passes skipped: {why}")
        return out
    if any(p.name not in runs for p in pipelines):  # a second plan of the same model runs no pass again
        runner = Runner(loaded.model, reference, PassContext(options=decoder_pass_options(options), warn=warn))
        runs.update({p.name: runner.run(p) for p in pipelines if p.name not in runs})
        runs["_cache_note"] = reference.cache_note
    if runs.get("_cache_note"):
        out.notes.append(f"the stored model itself fails the cache check ({runs['_cache_note']}): rewrites are "
                         "judged by generation only")
    seen: dict[bytes, str] = {}
    out.reports.append({"pipeline": "none", "precision": None, "passes": [], "steps": [], "drift": None,
                        "rejected": None, "note": "the model as stored"})
    for p in pipelines:
        result = runs[p.name]
        report = pipeline_report(p, result)
        out.reports.append(report)
        if report["rejected"]:
            continue
        digest = hashlib.sha256(result.model.SerializeToString(deterministic=True)).digest()
        if digest in seen:
            report["rejected"] = f"same model as '{seen[digest]}'"
            continue
        seen[digest] = p.name
        sub = LoadedModel(model=result.model, path=loaded.path,
                          sha256=f"{loaded.sha256}:{p.name}:{digest.hex()[:16]}")
        _add_variant(out, p.name, p.precision, sub, result, options)
    host = next((t for t in targets if t.name == "host"), None)
    if host is not None and len(out.variants) > 1:
        _time_on_host(out, info, host, prompt_len, gen_len)
    return out


def decoder_pass_options(options: PassOptions) -> dict:
    """What the passes read on a decoder: the user's options, and int8-dynamic quantizing the token embedding
    too (passes.quantize: on a decoder it is a large share of the weights, and a lookup, not a GEMM)."""
    return {**options.context_options(), "int8_gather": True}


def _add_variant(out: DecoderVariants, name: str, precision: str, sub: LoadedModel, result: PipelineResult,
                 options: PassOptions) -> None:
    drift = result.drift.to_dict() if result.drift else None
    too_far = result.drift.violates(options.drift_limit(decoder=True)) if result.drift else None
    out.variants.append(DecoderVariant(name, precision, sub, tuple(result.applied), drift, too_far))


def _external(out: DecoderVariants, loaded: LoadedModel, options: PassOptions, pipelines: list,
              scratch: Path | None) -> None:
    """Named pipelines on an external-data decoder: the weight-only ones written one weight at a time and
    verified by generation from the files (planner.llm.external); the others refused, saying why."""
    try:
        reference = GenerationReference(loaded.model, tokens=options.gen_tokens, text=_eval_text(options),
                                        source=loaded.path)
    except PlannerError:
        raise
    except Exception as e:  # onnxruntime cannot run the original: nothing to compare against
        raise PlannerError(f"--passes {options.mode}: onnxruntime cannot run the original here "
                           f"({str(e).splitlines()[0][:160] if str(e) else e!r})") from None
    out.scratch = Path(tempfile.mkdtemp(prefix=".plan-passes-", dir=scratch))
    try:
        runs = run_external(loaded, reference, pipelines, options.context_options(), out.scratch)
    except BaseException:
        out.close()
        raise
    if reference.cache_note:
        out.notes.append(f"the stored model itself fails the cache check ({reference.cache_note}): rewrites are "
                         "judged by generation only")
    out.reports.append({"pipeline": "none", "precision": None, "passes": [], "steps": [], "drift": None,
                        "rejected": None, "note": "the model as stored"})
    for p in pipelines:
        run = runs[p.name]
        report = pipeline_report(p, run.result)
        out.reports.append(report)
        if report["rejected"] or run.written is None:
            continue
        w = run.written
        sub = LoadedModel(model=w.model, path=w.path, sha256=f"{loaded.sha256}:{p.name}:external",
                          external_files={w.data_path.name: w.data_path.stat().st_size})
        _add_variant(out, p.name, p.precision, sub, run.result, options)
    out.notes.append("weights are external data: weight-only pipelines written one weight at a time, verified by "
                     "generation from the files; graph rewrites skipped")


def _stored_precision(info: DecoderInfo) -> str:
    if info.weights.startswith("MatMulNBits"):
        return info.weights.rsplit(" ", 1)[-1]  # "int4", "int8"
    return "fp16" if info.kv_dtype == "float16" else "fp32"


def _project(out: DecoderVariants, loaded: LoadedModel, options: PassOptions) -> None:
    model, rewritten = project_int4(loaded.model, options.int4_block_size, options.int4_symmetric)
    if not rewritten:
        out.notes.append("int4 not projected: no MatMul with a constant 2-D float weight of K >= 16")
        return
    sub = LoadedModel(model=model, path=loaded.path, sha256=f"{loaded.sha256}:int4-projected",
                      external_files=loaded.external_files)
    why = "projected from shapes (external-data weights are never read for planning): drift not measured"
    out.variants.append(DecoderVariant("int4", "int4", sub, ("int4 (projected)",), None, None, None, True))
    out.reports.append({"pipeline": "none", "precision": None, "passes": [], "steps": [], "drift": None,
                        "rejected": None, "note": "the model as stored"})
    out.reports.append({"pipeline": "int4", "precision": "int4", "passes": ["int4 (projected)"], "steps": [],
                        "drift": None, "rejected": None, "projected": True, "matmuls": rewritten, "note": why})
    out.notes.append(f"int4 planned from shapes: {rewritten} MatMuls as MatMulNBits (block "
                     f"{options.int4_block_size}); not emitted (name it, --passes int4, to quantize and verify it)")


def _time_on_host(out: DecoderVariants, info: DecoderInfo, host: Target, prompt_len: int, gen_len: int) -> None:
    """Decode step and prefill of every variant, batch 1, timed interleaved, and the decode step at
    HOST_WIDE_BATCH too where it is quick; a variant that is measurably faster per decode step than the stored
    model at neither batch is not chosen for host."""
    rows = position_limit(out.variants[0].model)
    if rows is not None and prompt_len + gen_len > rows:  # time what the model can run: contexts inside its table
        prompt_len, gen_len = max(1, rows // 2), max(1, rows // 4)
    dims = phase_dims(info, prompt_len, gen_len)
    models = {v.name: v.loaded.path if v.loaded.external_files else v.model for v in out.variants
              if v.rejected is None}
    if len(models) < 2:
        return
    stored = out.variants[0].model
    try:
        measured = {phase: measure_on_host(models, phase_feeds(stored, dims[phase], 1), HOST_PHASE_BUDGET_S,
                                           threads=host.threads) for phase in (DECODE, PREFILL)}
        wide = None
        if measured[DECODE]["none"][0] < HOST_WIDE_MAX_STEP_S:
            wide = measure_on_host(models, phase_feeds(stored, dims[DECODE], HOST_WIDE_BATCH), HOST_PHASE_BUDGET_S,
                                   threads=host.threads)
    except Exception as e:  # a variant onnxruntime verified but cannot time at these sizes: say so, plan on
        out.notes.append(f"host timing of the variants failed ({str(e).splitlines()[0][:160]})")
        return
    none_d, none_p = measured[DECODE]["none"][0], measured[PREFILL]["none"][0]
    for v in out.variants:
        if v.name == "none" or v.name not in models:
            continue
        d, rounds = measured[DECODE][v.name]
        p, _ = measured[PREFILL][v.name]
        v.host = {"decode_ms": d * 1e3, "prefill_ms": p * 1e3, "original_decode_ms": none_d * 1e3,
                  "original_prefill_ms": none_p * 1e3, "decode_speedup": none_d / d, "prefill_speedup": none_p / p,
                  "rounds": rounds, "threads": host.threads, "prompt_len": prompt_len,
                  "decode_context": dims[DECODE].get(info.past_dims[0], 0) + 1 if info.past_dims else None}
        if wide is not None:
            v.host["wide_batch"] = HOST_WIDE_BATCH
            v.host["wide_decode_speedup"] = wide["none"][0] / wide[v.name][0]
        best = max(none_d / d, v.host.get("wide_decode_speedup", 0.0))
        if best < HOST_MIN_SPEEDUP:
            at_wide = (f", x{v.host['wide_decode_speedup']:.2f} at batch {HOST_WIDE_BATCH}" if wide is not None
                       else "")
            v.host["rejected"] = (f"measured on this machine: decode step x{none_d / d:.2f} the stored model's "
                                  f"speed{at_wide}, not measurably faster (needs x{HOST_MIN_SPEEDUP:g})")
        report = next((r for r in out.reports if r["pipeline"] == v.name), None)
        if report is not None:
            report["host_measured"] = dict(v.host)
