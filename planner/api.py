"""plan(): load, bind, analyze, predict per target and batch, choose. One readable top-to-bottom path."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from planner.calibration.host import resolve_targets
from planner.costs import lookup
from planner.errors import DimError, PlannerError
from planner.fleet.block import FleetRequest, plan_fleet
from planner.llm import DEFAULT_GEN_LEN, DEFAULT_PROMPT_LEN, plan_decoder
from planner.llm.decoder import recognise
from planner.llm.variants import DecoderVariants, optimize_decoder
from planner.model.analyze import Analysis, Analyzer
from planner.model.controlflow import iter_nodes
from planner.model.loader import LoadedModel, load_model
from planner.model.shapes import dim_spec
from planner.output.emit import emit_external, emit_model
from planner.predict.fusion import graph_costs
from planner.search.plan_types import ModelSummary, Plan, candidate_report
from planner.search.sweep import DEFAULT_MAX_BATCH, Candidate, search
from planner.search.variants import Optimized, PassOptions, optimize
from planner.targets.runtime import DEFAULT_GPU_PROFILE, apply_profile, get_profile


def _unknown_ops(analyzer_graph) -> list[str]:
    seen = []
    for n in iter_nodes(analyzer_graph):  # inside If/Loop/Scan bodies too
        if lookup(n.domain, n.op_type) is None:
            key = f"{n.domain}::{n.op_type}" if n.domain else n.op_type
            if key not in seen:
                seen.append(key)
    return seen


def plan(path: str | os.PathLike, targets: Sequence[str] | str = ("a10g",), dims: dict[str, int] | None = None,
         batch: int | None = None, max_latency_ms: float | None = None, target_files: Sequence[str] = (),
         max_batch: int = DEFAULT_MAX_BATCH, progress: Callable[[int, int], None] | None = None,
         prompt_len: int | None = None, gen_len: int | None = None, max_ttft_ms: float | None = None,
         max_tpot_ms: float | None = None, tp: Sequence[int] | None = None,
         passes: PassOptions | None = None, emit: str | os.PathLike | None = None,
         loop_trips: int | None = None, threads: int = 1, runtime: str | None = None,
         fleet: FleetRequest | None = None, values: dict[str, bool | int | float] | None = None) -> Plan:
    """Plan `path` on each target; the cheapest admissible (target, batch) is `Plan.chosen`.

    A decoder with a KV cache is planned by planner.llm instead (prefill and decode, tokens, tensor parallelism);
    `prompt_len`, `gen_len`, `max_ttft_ms`, `max_tpot_ms` and `tp` apply to decoders only.

    `progress(done, total)` hears about each batch size of the sweep (planner.output.progress draws it as a bar).

    `passes` picks the pass pipelines searched with targets and batches (planner.search.variants; default auto);
    `emit` writes the chosen candidate's model there (planner.output.emit).

    `loop_trips` counts each Loop whose trip count the model does not fix (planner.model.controlflow; default 1).
    `values` binds one-element inputs (a mode switch, a sample rate: `--value sr=16000`), so that an If they
    decide is costed by the branch that runs rather than the larger.

    `threads`: the intra-op threads a CPU deployment on `host` uses; host is calibrated for them where this
    machine has been (`plan calibrate --threads N`).

    `runtime`: the engine GPU targets serve with (a profile in hwtargets/runtimes/: ort-cuda, the default,
    ort-cuda-graph, tensorrt, llm-engine, framework-eager, framework-graph); CPU targets keep theirs.

    `fleet`: traffic and an SLO; the plan then carries a `fleet` block (planner.fleet: replicas, batching
    policy, simulated percentiles and $ a month per target, the cheapest)."""
    spec = targets if isinstance(targets, str) else ",".join(targets)
    resolved = resolve_targets(spec, target_files, threads)
    profile = get_profile(runtime or DEFAULT_GPU_PROFILE)
    if runtime is not None:
        resolved = [apply_profile(t, profile) for t in resolved]
    p = _plan(path, resolved, dims, batch, max_latency_ms, max_batch, progress, prompt_len, gen_len, max_ttft_ms,
              max_tpot_ms, tp, passes, emit, loop_trips, threads, values)
    p.constraints["runtime"] = runtime  # None: each GPU target with its default engine (ort-cuda)
    if runtime is not None and any(t.kind in profile.kinds for t in resolved):
        p.model.notes.append(f"GPU targets as {profile.name} runs them: {profile.description}")
    return p if fleet is None else replace(p, fleet=plan_fleet(p, fleet, resolved))


def batch_from_dims(batch_dim: str | None, dims: dict[str, int] | None, batch: int | None) -> int | None:
    """The batch to plan at: --batch, else the batch dim when --dim binds it by name (then no sweep).

    `--dim batch_size=4` names the batch as surely as `--batch 4`; sweeping 1, 2, 4, ... over it would bind the
    batch dim twice and refuse the model ("--batch 1 contradicts --dim batch_size=4") for an option the user
    never gave. A --batch that disagrees is still refused when the dims are bound."""
    if not (batch_dim and dims and batch_dim in dims):
        return batch
    if batch is not None and batch != dims[batch_dim]:
        raise DimError(f"--batch {batch} contradicts --dim {batch_dim}={dims[batch_dim]}")
    return dims[batch_dim]


def _plan(path: str | os.PathLike, resolved: list, dims: dict[str, int] | None, batch: int | None,
          max_latency_ms: float | None, max_batch: int, progress: Callable[[int, int], None] | None,
          prompt_len: int | None, gen_len: int | None, max_ttft_ms: float | None, max_tpot_ms: float | None,
          tp: Sequence[int] | None, passes: PassOptions | None, emit: str | os.PathLike | None,
          loop_trips: int | None, threads: int, values: dict[str, bool | int | float] | None = None) -> Plan:
    loaded = load_model(path)
    batch = batch_from_dims(dim_spec(loaded.model).batch, dims, batch)
    decoder = recognise(loaded.model)
    _check_options(path, decoder is not None, passes, emit, prompt_len, gen_len, max_ttft_ms, max_tpot_ms, tp)
    if decoder is not None:
        optimized = optimize_decoder(loaded, decoder, passes or PassOptions(), resolved,
                                     prompt_len or DEFAULT_PROMPT_LEN, gen_len or DEFAULT_GEN_LEN,
                                     scratch=_scratch(emit))
        try:
            result = plan_decoder(loaded, decoder, resolved, dims, batch, max_latency_ms, max_batch, prompt_len,
                                  gen_len, max_ttft_ms, max_tpot_ms, tp, optimized=optimized, values=values)
            result.constraints.update({"passes": (passes or PassOptions()).mode,
                                       "max_drift": (passes or PassOptions()).drift_limit(decoder=True)})
            if emit is not None and result.chosen is not None:
                result.model.notes.append(_emit_decoder(result.chosen.pipeline, optimized, emit, loaded))
        finally:
            optimized.close()  # rewrites written for an external-data decoder: emitted or not needed
        return result
    analyzer = Analyzer(loaded, loop_trips=loop_trips, values=values)
    base = analyzer.analyze(dims, batch=batch)
    passes = passes or PassOptions()
    optimized = optimize(loaded, analyzer, dims, passes, resolved)  # pass pipelines run, verified, drift measured
    result = search(analyzer, resolved, dims, batch=batch, max_latency_ms=max_latency_ms, max_batch=max_batch,
                    progress=progress, variants=optimized.variants)  # predict every candidate, choose
    notes = list(base.notes) + optimized.notes
    if emit is not None and result.chosen is not None:
        notes.append(_emit(result.chosen, optimized, emit, loaded))
    summary = _summary(loaded, analyzer, base, batch, max_batch, notes)
    reports = {id(c): _report(c) for c in result.candidates}
    return Plan(
        model=summary,
        chosen=reports[id(result.chosen)] if result.chosen else None,
        candidates=[reports[id(c)] for c in result.candidates],
        constraints={"max_latency_ms": max_latency_ms, "batch": batch, "max_batch": max_batch,
                     "targets": [t.name for t in resolved], "passes": passes.mode, "max_drift": passes.drift_limit(),
                     "threads": threads},
        best_per_target={k: reports[id(c)] for k, c in result.best_per_target.items()},
        pipelines=optimized.reports,
    )


def _check_options(path: str | os.PathLike, is_decoder: bool, passes: PassOptions | None,
                   emit: str | os.PathLike | None, *decoder_only: object) -> None:
    """Refuse options that do not apply to this kind of model, on one line."""
    if not is_decoder and any(x is not None for x in decoder_only):
        raise PlannerError(f"{path}: --prompt-len, --gen-len, --max-ttft-ms, --max-tpot-ms and --tp apply to "
                           "decoders only, and this model has no past key/value inputs and present outputs")


def _scratch(emit: str | os.PathLike | None) -> Path | None:
    """Where rewrites of an external-data decoder are written before one is chosen: beside --emit's target
    (emitting then links the data file instead of copying it), else the system's temporary folder."""
    if emit is None:
        return None
    folder = Path(emit).parent if str(Path(emit).parent) else Path(".")
    if not folder.is_dir():
        raise PlannerError(f"--emit {emit}: folder {folder} does not exist")
    return folder


def _emit(chosen: Candidate, optimized: Optimized, out: str | os.PathLike, loaded: LoadedModel) -> str:
    """Write the chosen candidate's model; the note that says so."""
    name = chosen.variant.name if chosen.variant else "none"
    emit_model(optimized.models[name], out, loaded.path, name, external=bool(loaded.external_files))
    return f"emitted the chosen candidate's model ({name}) to {out}"


def _emit_decoder(name: str, optimized: DecoderVariants, out: str | os.PathLike, loaded: LoadedModel) -> str:
    """Write the chosen decoder variant's model; a projected int4 (weights never read) cannot be written."""
    v = next(v for v in optimized.variants if v.name == name)
    if v.projected:
        raise PlannerError(f"--emit: the chosen plan is int4 projected from shapes ({loaded.path} keeps its weights "
                           "as external data, never read for planning): name the pipeline, --passes int4, to "
                           "quantize it one weight at a time and emit it")
    if name != "none" and v.loaded.external_files:  # written one weight at a time (planner.llm.external)
        emit_external(v.loaded, out, loaded)
        return f"emitted the chosen candidate's model ({name}) to {out} with its weights in {Path(out).name}.data"
    emit_model(v.model, out, loaded.path, name, external=bool(loaded.external_files))
    return f"emitted the chosen candidate's model ({name}) to {out}"


def _summary(loaded: LoadedModel, analyzer: Analyzer, base: Analysis, batch: int | None, max_batch: int,
             notes: list[str]) -> ModelSummary:
    """The model block of the plan: digest, bound dims and the defaults used, size, unknown ops, notes."""
    g = base.graph
    defaults = list(base.binding.defaults_used)
    swept = batch is None and analyzer.batch_sweepable and max_batch > 1
    if swept:  # the batch was searched, not defaulted
        defaults = [d for d in defaults if not d.startswith(f"{analyzer.spec.batch}=")]
        notes.append(f"batch swept over 1, 2, 4, ... up to {max_batch} or what fits")
    if loaded.converted_from_opset:
        notes.append(f"opset {loaded.converted_from_opset} upgraded to 7 for planning")
    if loaded.dynamic_dims:
        notes.append(f"{loaded.dynamic_dims} dims declared -1 (any size) planned as symbolic dims, as onnxruntime "
                     "reads them")
    if base.unknown_shapes:
        notes.append(f"{len(base.unknown_shapes)} tensor shapes stayed unknown (their bytes count as 0): "
                     + ", ".join(base.unknown_shapes[:5]))
    return ModelSummary(
        path=str(loaded.path), sha256=loaded.sha256, dims=dict(base.binding.values),
        defaults_used=defaults,
        flops=sum(c.cost.flops for c in graph_costs(g)), weight_bytes=g.weight_bytes,
        unknown_ops=_unknown_ops(g), nodes=len(g.nodes), opset=g.opset, batch_dim=analyzer.spec.batch,
        batch_fixed=None if analyzer.spec.batch else analyzer.spec.fixed_batch, notes=notes,
    )


def _report(c):
    v = c.variant
    if v is None:
        return candidate_report(c.prediction, c.rejected)
    return candidate_report(c.prediction, c.rejected, passes=list(v.passes), drift=v.drift, pipeline=v.name)
