"""The plan's `fleet` block: service curves read from the plan's candidates, a fleet per target, the choice.

A non-decoder's curve is, per target, the latency at each batch the sweep planned for the pipeline that won on
that target (batches that fit; a --max-latency-ms limit does not remove a point: the SLO decides), with the
serving stack's own costs on top (planner.fleet.overhead: host's measured server where it was measured, else
Triton's published figures); the block says which it assumed. A decoder's is,
per target and tensor-parallel degree, TTFT and TPOT at each batch that fits (planner.fleet.llm).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from planner.fleet.llm import DecoderCurve, scheduler, size_decoder
from planner.fleet.overhead import NONE, ServingOverhead
from planner.fleet.overhead_store import for_target
from planner.fleet.search import DEFAULT_SEED, FleetOption, ServiceCurve, choose, size_target
from planner.fleet.slo import Slo, SloError
from planner.fleet.traffic import Traffic
from planner.search.plan_types import CandidateReport, Plan
from planner.targets.target import Target


@dataclass(frozen=True)
class FleetRequest:
    traffic: Traffic
    slo: Slo
    seed: int = DEFAULT_SEED
    chunked_prefill: int | None = None  # decoders: tokens an iteration (planner.fleet.llm), else prefill first


def _usable(c: CandidateReport) -> bool:
    return c.fits and (c.rejected is None or c.rejected.startswith(("lost:", "latency ", "TTFT ", "TPOT ",
                                                                    "request latency ")))


def service_curves(plan: Plan, overheads: Mapping[str, ServingOverhead] | None = None) -> list[ServiceCurve]:
    """Per target, the plan's latency by batch; `overheads` (by target; default none) the server's costs."""
    curves = []
    for target, best in plan.best_per_target.items():
        points = sorted({c.batch: c.latency_ms / 1e3 for c in plan.candidates
                         if c.target == target and c.pipeline == best.pipeline and _usable(c)}.items())
        if points:
            curves.append(ServiceCurve(target, best.pipeline, tuple(b for b, _ in points),
                                       tuple(s for _, s in points), best.price_usd_per_hour,
                                       overhead=(overheads or {}).get(target, NONE)))
    return curves


def decoder_curves(plan: Plan, prompt_len: int, gen_len: int, targets: Sequence[Target] = ()) -> list[DecoderCurve]:
    """Per target and tensor-parallel degree; with the target (its bandwidth), a decode step also follows the
    contexts in flight (planner.fleet.llm)."""
    kv_per_token = (plan.model.decoder or {}).get("kv_bytes_per_token") or 0
    bandwidth = {t.name: t.mem_bw_bytes_per_s * t.memory_efficiency for t in targets}
    groups: dict[tuple[str, int], list[CandidateReport]] = {}
    best = {t: c.pipeline for t, c in plan.best_per_target.items()}
    for c in plan.candidates:  # the pipeline that won on each target: one curve, not every variant's points mixed
        if _usable(c) and c.ttft_ms is not None and c.pipeline == best.get(c.target, c.pipeline):
            groups.setdefault((c.target, c.devices or 1), []).append(c)
    curves = []
    for (target, devices), cs in groups.items():
        cs = sorted(cs, key=lambda c: c.batch)
        kv_s = kv_per_token / bandwidth[target] / devices if target in bandwidth else 0.0
        curves.append(DecoderCurve(target, devices, tuple(c.batch for c in cs), tuple(c.ttft_ms / 1e3 for c in cs),
                                   tuple(c.tpot_ms / 1e3 for c in cs), max(c.max_batch_fits or c.batch for c in cs),
                                   prompt_len, gen_len, cs[0].price_usd_per_hour, kv_s))
    return curves


def plan_fleet(plan: Plan, request: FleetRequest, targets: Sequence[Target] = ()) -> dict:
    """Size a fleet on every target the plan covers; the cheapest meeting the SLO, with every loser's reason.
    `targets` (the plan's) give each its kind and instance type, which a deployment needs."""
    started = time.perf_counter()
    decoder = plan.model.decoder
    if decoder is None and request.slo.metrics() - {"latency"}:
        raise SloError("--ttft-p95-ms and --tpot-p95-ms apply to decoders only; use --p50/--p95/--p99-ms")
    if decoder is None and request.chunked_prefill:
        raise SloError("--chunked-prefill applies to decoders only")
    if decoder is not None:
        options = [size_decoder(c, request.traffic, request.slo, request.seed, chunk=request.chunked_prefill)
                   for c in decoder_curves(plan, decoder["prompt_len"], decoder["gen_len"], targets)]
        options = _best_degree(options)
        overheads: dict[str, ServingOverhead] = {}
    else:
        threads = int(plan.constraints.get("threads") or 1)
        overheads = {t: for_target(t, threads) for t in plan.best_per_target}
        options = [size_target(c, request.traffic, request.slo, request.seed)
                   for c in service_curves(plan, overheads)]
    covered = {o.target for o in options}
    for t in plan.constraints.get("targets", []):
        if t not in covered:
            options.append(FleetOption(t, "none", 1, None, None, None, None,
                                       rejected="no configuration of this target fits or runs the model"))
    chosen = choose(options)
    return {
        "traffic": request.traffic.to_dict(), "slo": request.slo.to_dict(), "seed": request.seed,
        "method": "discrete-event simulation (SimPy) of one replica's share of the traffic, split at random; "
                  + (scheduler(request.chunked_prefill) if decoder is not None else
                     "dynamic batching with max batch and max queue delay"),
        "chosen": chosen.to_dict() if chosen else None,
        "per_target": [o.to_dict() for o in sorted(options, key=lambda o: o.target)],
        "serving_overhead": {t: o.to_dict() for t, o in sorted(overheads.items())},
        "target_kinds": {t.name: t.kind for t in targets},
        "instance_types": {t.name: _instance_type(t.price_instance) for t in targets
                           if _instance_type(t.price_instance)},
        "search_s": time.perf_counter() - started,
    }


def _monthly_rank(o: FleetOption) -> tuple:
    cost = o.monthly_cost_at_traffic_usd
    return (cost if cost is not None else float("inf"), o.replicas * o.devices_per_replica)


def _instance_type(priced: str) -> str | None:
    """The cloud instance type a target's price names ("g5.xlarge (1x A10G, ...)" -> "g5.xlarge"), as a
    Kubernetes node selector takes it; None where the price names no such type (Lambda, Vultr, a TPU pod)."""
    head = priced.split(" ")[0] if priced else ""
    return head if re.fullmatch(r"[a-z][a-z0-9-]*\.[0-9]*[a-z]+", head) else None


def _best_degree(options: list[FleetOption]) -> list[FleetOption]:
    """A decoder target's fleet at its cheapest tensor-parallel degree; the other degrees listed in its policies."""
    by_target: dict[str, list[FleetOption]] = {}
    for o in options:
        by_target.setdefault(o.target, []).append(o)
    out = []
    for group in by_target.values():
        ok = [o for o in group if o.rejected is None]
        best = min(ok, key=_monthly_rank) if ok else group[0]
        for o in group:
            if o is not best:
                best.policies.append({"devices": o.devices_per_replica, "replicas": o.replicas,
                                      "monthly_cost_usd": o.monthly_cost_usd,
                                      "rejected": o.rejected or f"lost: {o.devices_per_replica} devices per replica "
                                                                f"cost more a month"})
        out.append(best)
    return out
