"""Search over (target, batch) for the cheapest configuration that fits and meets the latency limit.

Larger batches read the weights once for more requests, so cost per inference falls until compute saturates
or memory runs out; the sweep doubles the batch until nothing fits or the cap is reached. Every candidate is
kept with the reason it lost, so a plan can explain its choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from planner.calibration.host import predict_host
from planner.errors import DimError
from planner.model.analyze import Analyzer
from planner.predict.predictor import Prediction, Predictor
from planner.targets.target import Target
from planner.units import fmt_gb

DEFAULT_MAX_BATCH = 256
HOST = "host"  # planned as onnxruntime runs it here (planner.ort.executed.predict_host)


@dataclass(frozen=True)
class Variant:
    """One way to run the model: a pass pipeline's verified result (planner.search.variants), or the model as stored."""

    name: str  # the pipeline: "none" is the model as stored
    analyzer: Analyzer
    precision: str | None = None  # None: the precision the weights are stored at
    passes: tuple[str, ...] = ()  # the passes that changed the model, in order
    drift: dict | None = None  # passes.verify.Drift.to_dict() against the original
    rejected: str | None = None  # e.g. drift over --max-drift: predicted and listed, never chosen
    scale: Mapping[str, tuple[float, str]] = field(default_factory=dict)  # target -> (time factor, why): host
    #   predictions corrected by timing this variant against the stored model on this machine (planner.search.variants)
    rejected_on: Mapping[str, str] = field(default_factory=dict)  # target -> why this variant cannot win there


@dataclass
class Candidate:
    prediction: Prediction
    rejected: str | None = None  # None: admissible; else why it cannot be chosen or why it lost
    variant: Variant | None = None  # None: the model as stored

    @property
    def admissible(self) -> bool:
        return self.rejected is None or self.rejected.startswith("lost:")


@dataclass
class SearchResult:
    candidates: list[Candidate]
    chosen: Candidate | None
    best_per_target: dict[str, Candidate]


def batch_sizes(max_batch: int) -> list[int]:
    out, b = [], 1
    while b <= max_batch:
        out.append(b)
        b *= 2
    return out


def _rank_key(c: Candidate) -> tuple:
    cost = c.prediction.cost_per_million_usd
    return (cost if cost is not None else float("inf"), -c.prediction.throughput_per_s, c.prediction.batch)


def _sweep_sizes(analyzer: Analyzer, dims: dict[str, int] | None, batch: int | None,
                 max_batch: int) -> list[int | None]:
    """The batches to try; a graph that pins its fixed batch (reshapes to it) is planned at that batch alone."""
    if batch is not None or not analyzer.batch_sweepable:
        return [batch]  # None: the model's own batch
    sizes: list[int | None] = list(batch_sizes(max_batch))
    if analyzer.spec.batch is None:
        try:
            analyzer.analyze(dims, batch=sizes[0])
        except DimError:
            return [None]
    return sizes


def search(analyzer: Analyzer, targets: list[Target], dims: dict[str, int] | None = None,
           batch: int | None = None, max_latency_ms: float | None = None,
           max_batch: int = DEFAULT_MAX_BATCH, progress: Callable[[int, int], None] | None = None,
           variants: Sequence[Variant] | None = None) -> SearchResult:
    """`progress(done, total)` is called after each batch size (batch sizes planned so far, sizes in the sweep).

    `variants`: the pipelines to plan (target x precision/pipeline x batch); default the model as stored."""
    predictor = Predictor()
    variants = list(variants) if variants else [Variant("none", analyzer)]
    sweeps = [(v, _sweep_sizes(v.analyzer, dims, batch, max_batch)) for v in variants]
    total, done = sum(len(sizes) for _, sizes in sweeps), 0
    candidates: list[Candidate] = []
    for v, sizes in sweeps:
        candidates += _sweep(predictor, v, sizes, targets, dims, max_latency_ms)
        done += len(sizes)
        if progress is not None:
            progress(done, total)
    return _choose(candidates)


def _sweep(predictor: Predictor, v: Variant, sizes: list[int | None], targets: list[Target],
           dims: dict[str, int] | None, max_latency_ms: float | None) -> list[Candidate]:
    candidates: list[Candidate] = []
    out_of_memory: set[str] = set()  # targets done with: out of memory (or, for this variant, unable to run it)
    for b in sizes:
        if len(out_of_memory) == len(targets):
            break
        try:
            analysis = v.analyzer.analyze(dims, batch=b)
        except DimError:
            if b == sizes[0]:
                raise
            break  # a fixed-batch model: the sweep ends at the batches its graph allows
        for t in targets:
            if t.name in out_of_memory:
                continue
            p = _predict(predictor, v, analysis, t, dims, b)
            if t.name in v.scale:
                p = _scaled(p, *v.scale[t.name])
            c = Candidate(p, variant=v)
            if v.rejected or t.name in v.rejected_on:
                c.rejected = v.rejected or v.rejected_on[t.name]
                if not p.fits:
                    out_of_memory.add(t.name)
            elif p.unsupported:
                c.rejected = f"does not run: {p.unsupported[0]}"
                out_of_memory.add(t.name)  # no batch makes it run: stop sweeping this target
            elif not p.fits:
                c.rejected = (f"does not fit: needs {fmt_gb(p.memory.total_bytes)}, "
                              f"{t.name} has {fmt_gb(t.mem_capacity_bytes)}")
                out_of_memory.add(t.name)
            elif max_latency_ms is not None and p.latency_s * 1e3 > max_latency_ms:
                c.rejected = f"latency {p.latency_s * 1e3:.3g} ms exceeds --max-latency-ms {max_latency_ms:g}"
            candidates.append(c)
    return candidates


def _predict(predictor: Predictor, v: Variant, analysis, t: Target, dims: dict[str, int] | None,
             batch: int | None) -> Prediction:
    if t.name != HOST or t.path:  # a target file named host is somebody's own machine, not this one
        return predictor.predict(analysis, t, v.precision)

    return predict_host(predictor, v.analyzer, analysis, t, dims, batch, v.precision)


def _scaled(p: Prediction, factor: float, why: str) -> Prediction:
    """Every kernel's time times `factor` (the latency with them), and the reason among the notes."""
    def times(t):
        return replace(t, seconds=t.seconds * factor, compute_s=t.compute_s * factor, memory_s=t.memory_s * factor)

    kernels = tuple(replace(k, time=times(k.time)) for k in p.kernels)
    before = sum(k.time.seconds for k in p.kernels)
    return replace(p, kernels=kernels, latency_s=p.latency_s + before * (factor - 1), notes=p.notes + (why,))


def _choose(candidates: list[Candidate]) -> SearchResult:
    ok = [c for c in candidates if c.rejected is None]
    best: dict[str, Candidate] = {}
    for c in sorted(ok, key=_rank_key):
        best.setdefault(c.prediction.target.name, c)
    chosen = min(ok, key=_rank_key) if ok else None
    if chosen is not None:
        base = chosen.prediction.cost_per_million_usd
        for c in ok:
            if c is chosen:
                continue
            cost = c.prediction.cost_per_million_usd
            if cost is not None and base:
                c.rejected = f"lost: ${cost:.4g}/1M, {100 * (cost / base - 1):.0f}% more than the chosen plan"
            else:
                c.rejected = "lost: no price for this target, ranked by throughput"
    return SearchResult(candidates=candidates, chosen=chosen, best_per_target=best)
