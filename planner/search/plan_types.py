"""The plan as typed objects and as the versioned JSON document scripts and CI rely on.

Keys in DESIGN.md's stable core are never renamed; new keys may be added. Bump SCHEMA_VERSION only for a
change an old reader cannot ignore.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from planner.predict.predictor import Prediction

SCHEMA_VERSION = 1
TOP_KERNELS = 10


@dataclass(frozen=True)
class KernelReport:
    name: str
    ops: str  # fused op types, "Conv+BatchNormalization+Relu"
    op_class: str
    dtype: str
    flops: int
    bytes: int
    time_ms: float
    share: float  # of the plan's latency
    bound: str
    intensity: float
    peak_used: str
    unknown: bool


@dataclass(frozen=True)
class CandidateReport:
    target: str
    precision: str
    passes: list[str]
    batch: int
    latency_ms: float
    throughput_per_s: float
    peak_memory_bytes: int
    fits: bool
    cost_per_million_usd: float | None
    bound: str
    drift: dict | None
    kernels: list[KernelReport]
    memory: dict[str, int]
    price_usd_per_hour: float | None
    flops: int
    bytes_moved: int
    time_by_op_type_ms: dict[str, float]
    rejected: str | None = None
    # Every kernel in execution order: `plan check` matches kernels between two plans by node name, and the
    # report draws each one on the roofline; top-N alone cannot say which kernel grew. Only `chosen` keeps it.
    all_kernels: list[KernelReport] = field(default_factory=list)
    # Decoders only (planner.llm), None otherwise: time to first token, time per output token (at the mean
    # context), output tokens/s, the batch's KV cache at the longest context, $ per million input / output
    # tokens, the devices of a tensor-parallel plan, the largest batch that fits, and per-phase figures.
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    tokens_per_s: float | None = None
    kv_cache_bytes: int | None = None
    cost_per_million_input_tokens_usd: float | None = None
    cost_per_million_output_tokens_usd: float | None = None
    devices: int | None = None
    max_batch_fits: int | None = None
    phases: dict | None = None
    # Pass pipelines (planner.search.variants): which pipeline produced the planned model ("none": as stored), and what
    # the target's runtime really runs where it differs from the model's precision (planner.predict.support).
    pipeline: str = "none"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelSummary:
    path: str
    sha256: str
    dims: dict[str, int]
    defaults_used: list[str]
    flops: int  # per run at the bound dims and the model's batch
    weight_bytes: int
    unknown_ops: list[str]  # "domain::Op" without a cost formula: planned by bytes alone
    nodes: int
    opset: int
    batch_dim: str | None
    batch_fixed: int | None
    notes: list[str] = field(default_factory=list)
    decoder: dict | None = None  # decoders only: inferred structure, workload, phases, TP summary (planner.llm)


@dataclass(frozen=True)
class Plan:
    model: ModelSummary
    chosen: CandidateReport | None  # None: nothing fits / meets the constraints
    candidates: list[CandidateReport]
    constraints: dict[str, Any]
    best_per_target: dict[str, CandidateReport]
    # Per pass pipeline tried: its passes with counts, time and drift after each, the final drift, why rejected.
    pipelines: list[dict] = field(default_factory=list)
    # Traffic and an SLO in (planner.fleet): replicas, batching policy, percentiles and $ a month per target.
    fleet: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        def clean(x: Any) -> Any:
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return clean({
            "schema_version": SCHEMA_VERSION,
            "model": asdict(self.model),
            "constraints": self.constraints,
            "chosen": asdict(self.chosen) if self.chosen else None,
            "best_per_target": {k: _brief(v) for k, v in self.best_per_target.items()},
            "candidates": [_brief(c) for c in self.candidates],
            "pipelines": self.pipelines,
            **({"fleet": self.fleet} if self.fleet is not None else {}),
        })


def _brief(c: CandidateReport) -> dict[str, Any]:
    """Candidates keep every chosen-plan key but only their top 3 kernels, to keep documents small."""
    d = asdict(c)
    d["kernels"] = d["kernels"][:3]
    d.pop("all_kernels", None)
    return d


def candidate_report(p: Prediction, rejected: str | None = None, passes: list[str] | None = None,
                     drift: dict | None = None, top: int = TOP_KERNELS, pipeline: str = "none") -> CandidateReport:
    latency = p.latency_s
    by_op: dict[str, float] = defaultdict(float)
    for k in p.kernels:
        by_op[k.kernel.op_types[0]] += k.time.seconds * 1e3
    every = [KernelReport(
        name=k.kernel.name, ops=k.kernel.label, op_class=k.kernel.op_class.value, dtype=k.kernel.dtype,
        flops=k.kernel.cost.flops, bytes=k.kernel.cost.bytes, time_ms=k.time.seconds * 1e3,
        share=(k.time.seconds / latency) if latency else 0.0, bound=k.time.bound,
        intensity=k.time.intensity, peak_used=k.time.peak_used, unknown=k.kernel.unknown,
    ) for k in p.kernels]
    kernels = sorted(every, key=lambda k: -k.time_ms)[:top]
    m = p.memory
    return CandidateReport(
        target=p.target.name, precision=p.precision, passes=list(passes or []), batch=p.batch,
        latency_ms=latency * 1e3, throughput_per_s=p.throughput_per_s, peak_memory_bytes=m.total_bytes,
        fits=p.fits, cost_per_million_usd=p.cost_per_million_usd, bound=p.bound, drift=drift, kernels=kernels,
        memory={"weights": m.weight_bytes, "activations": m.activation_bytes, "workspace": m.workspace_bytes,
                "kv_cache": m.kv_cache_bytes, "runtime_copies": m.runtime_copy_bytes, "arena": m.arena_bytes,
                "capacity": int(p.target.mem_capacity_bytes)},
        price_usd_per_hour=p.target.price_usd_per_hour, flops=p.flops, bytes_moved=p.bytes_moved,
        time_by_op_type_ms=dict(sorted(by_op.items(), key=lambda kv: -kv[1])), rejected=rejected,
        all_kernels=every, pipeline=pipeline, notes=list(p.notes) + [f"does not run: {u}" for u in p.unsupported],
    )
