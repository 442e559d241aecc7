"""Plan a decoder: prefill and decode per target, tensor-parallel degree and batch; the cheapest that fits.

    for target, degree N (1, 2, 4, 8 up to the devices in the target's priced instance), batch B:
        memory per device = weights / N + KV cache(P + G tokens, B) x ceil(kv_heads / N) / kv_heads
                            + activations(B) / N + workspace            ─▶ the largest B that fits
        TTFT  = prefill(B, P)                    TPOT = decode step(B, mean context P + G // 2)
        tokens/s = B / TPOT                      request latency = TTFT + (G - 1) x TPOT
        $ / 1M input tokens  = N x price/h / (3600 x B x P / TTFT) x 1e6
        $ / 1M output tokens = N x price/h / (3600 x B / TPOT) x 1e6
        $ / 1M requests      = N x price/h / (3600 x B / request latency) x 1e6 = P x $in + (G - 1) x $out
    choose the cheapest per request that fits and meets --max-ttft-ms / --max-tpot-ms / --max-latency-ms.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from planner.calibration.host import predict_host
from planner.costs import lookup
from planner.errors import DimError, PlannerError
from planner.llm.decoder import DECODE, PREFILL, DecoderInfo, mean_context, phase_dims, recognise
from planner.llm.phases import Phase, PhaseTime, build_phase
from planner.llm.variants import DecoderVariant, DecoderVariants
from planner.model.analyze import Analyzer
from planner.model.loader import LoadedModel
from planner.predict.predictor import SECONDS_PER_HOUR, Predictor, stored_precision
from planner.predict.roofline import MEMORY
from planner.predict.support import runtime_kernels
from planner.search.plan_types import CandidateReport, KernelReport, ModelSummary, Plan
from planner.targets.catalog import HOST
from planner.targets.target import Target
from planner.units import fmt_gb

DEFAULT_PROMPT_LEN = 512
DEFAULT_GEN_LEN = 128
TP_DEGREES = (1, 2, 4, 8)
TOP_KERNELS = 10


@dataclass
class _Config:
    target: Target
    devices: int
    batch: int
    prefill: PhaseTime
    decode: PhaseTime
    memory: dict[str, int]
    fits: bool
    max_batch_fits: int
    kv_cache_bytes: int  # the batch's whole cache at the longest context (all devices)
    rejected: str | None = None
    variant: str = "none"  # the pass pipeline whose model this configuration runs

    # ---- the economics ------------------------------------------------------------------------------------
    prompt_len: int = 0
    gen_len: int = 0

    @property
    def ttft_s(self) -> float:
        return self.prefill.seconds

    @property
    def tpot_s(self) -> float:
        return self.decode.seconds

    @property
    def latency_s(self) -> float:
        return self.ttft_s + (self.gen_len - 1) * self.tpot_s

    @property
    def price_per_hour(self) -> float | None:
        p = self.target.price_usd_per_hour
        return None if p is None else p * self.devices

    def _per_million(self, per_second: float) -> float | None:
        price = self.price_per_hour
        if price is None or per_second <= 0:
            return None
        return price / (per_second * SECONDS_PER_HOUR) * 1e6

    @property
    def tokens_per_s(self) -> float:
        return self.batch / self.tpot_s

    @property
    def cost_input(self) -> float | None:
        return self._per_million(self.batch * self.prompt_len / self.ttft_s)

    @property
    def cost_output(self) -> float | None:
        return self._per_million(self.tokens_per_s)

    @property
    def cost_request(self) -> float | None:
        return self._per_million(self.batch / self.latency_s)

    @property
    def admissible(self) -> bool:
        return self.rejected is None or self.rejected.startswith("lost:")


def _rank(c: _Config) -> tuple:
    cost = c.cost_request
    return (cost if cost is not None else math.inf, -c.tokens_per_s, c.devices, c.batch)


class DecoderPlanner:
    """Everything about one decoder that does not depend on the target: phases, KV cache, inferred structure."""

    def __init__(self, loaded: LoadedModel, info: DecoderInfo, prompt_len: int, gen_len: int,
                 dims: dict[str, int] | None = None, values: dict[str, bool | int | float] | None = None) -> None:
        self.loaded, self.info = loaded, info
        self.prompt_len, self.gen_len = prompt_len, gen_len
        self.analyzer = Analyzer(loaded, values=values)
        for d in info.past_dims:  # the prefill binds the past length to 0, which only "past" dims may take
            self.analyzer.spec.kinds[d] = "past"
        roles = {info.sequence_dim, *info.past_dims, *info.total_dims}
        clash = sorted(set(dims or {}) & roles)
        if clash:
            raise DimError(f"--dim {clash[0]}: a decoder's phases bind its sequence/past/total dims; "
                           "set the workload with --prompt-len / --gen-len")
        # The batch is the search's (plan() turns a --dim naming the batch dim into its --batch): the phases are
        # analysed at several batches, which a batch dim bound here would contradict.
        dims = {k: v for k, v in (dims or {}).items() if k != self.analyzer.spec.batch}
        self.dims = {phase: {**dims, **d} for phase, d in phase_dims(info, prompt_len, gen_len).items()}
        self.predictor = Predictor()
        self.excluded = frozenset(p.name for p in info.past) | frozenset(info.present)
        self._phases: dict[tuple, Phase] = {}
        self.scale: dict[tuple[str, str], float] = {}  # (target, phase) -> factor: measured over predicted
        self._host: dict[tuple, float | None] = {}
        self._unsupported: dict[tuple, str | None] = {}

    def phase(self, name: str, switches: tuple[bool, bool]) -> Phase:
        key = (name, switches)
        if key not in self._phases:
            self._phases[key] = build_phase(self.analyzer, self.predictor, name, self.dims[name], self.info.layers,
                                            switches, self.excluded)
        return self._phases[key]

    def host_seconds(self, name: str, batch: int, target: Target) -> float | None:
        """On `host`, a phase as onnxruntime runs it here: its optimized graph (fused kernels, layouts, every
        node dispatched) timed by the calibration, as `plan predict` and `plan validate` time a model, instead of
        the stored graph fused by rule (which had the prefill of models/decoder.onnx at 0.084 ms where
        onnxruntime takes 0.121, and `plan validate` predicts 0.123). None where onnxruntime cannot optimize the
        model here (external data over its limits): the rule-fused phases stand."""
        if target.name != HOST:
            return None
        key = (name, batch, target.threads)
        if key not in self._host:
            dims = self.dims[name]
            b = batch if self.analyzer.batch_sweepable else None
            p = predict_host(self.predictor, self.analyzer, self.analyzer.analyze(dims, batch=b), target, dims, b)
            stored = any(n.startswith("host: planned as stored") for n in p.notes)
            self._host[key] = None if stored else p.latency_s
        return self._host[key]

    def does_not_run(self, target: Target) -> str | None:
        """Why the target's runtime has no kernel for some node of the decode step (planner.predict.support: an
        int8-dynamic decoder's DynamicQuantizeMatMul, a float32 GroupQueryAttention on CUDA), else None."""
        key = (target.name, target.runtime, target.fuse_epilogue, target.fuse_elementwise)
        if key not in self._unsupported:
            a = self.analyzer.analyze(self.dims[DECODE], batch=self.anchor_batch)
            kernels, _ = self.predictor.kernels(a, target.fuse_epilogue, target.fuse_elementwise)
            reasons = runtime_kernels(kernels, a.graph, target)[2]
            self._unsupported[key] = reasons[0] if reasons else None
        return self._unsupported[key]

    @functools.cached_property
    def weight_bytes(self) -> int:
        return self.analyzer.analyze(self.dims[DECODE], batch=self.anchor_batch).graph.weight_bytes

    @property
    def anchor_batch(self) -> int | None:
        """The batch the phases are analysed at first: 1, or the model's own when its batch is fixed."""
        return 1 if self.analyzer.batch_sweepable else None

    @property
    def longest_context(self) -> int:
        return self.prompt_len + self.gen_len

    def kv_cache_bytes(self, batch: int, devices: int = 1) -> int:
        """2 x layers x kv_heads x head_dim x bytes x (P + G) x batch, each device holding its heads' share."""
        total = self.info.kv_cache_bytes(self.longest_context, batch)
        kv = self.info.kv_heads
        if devices == 1:
            return total
        if kv is None:
            return -(-total // devices)
        return total * (-(-kv // devices)) // kv

    def graph_kv_check(self) -> tuple[int, int]:
        """(formula, graph): KV bytes per request at the decode context, from the formula and from the graph's
        own present tensors at batch 1."""
        a = self.analyzer.analyze(self.dims[DECODE], batch=self.anchor_batch)
        graph = sum(a.graph.tensors[n].nbytes for n in self.info.present if n in a.graph.tensors)
        context = mean_context(self.prompt_len, self.gen_len)
        return self.info.kv_cache_bytes(context, a.binding.batch), graph

    # ---- one configuration ---------------------------------------------------------------------------------

    def memory(self, target: Target, devices: int, batch: int) -> dict[str, int]:
        switches = (target.fuse_epilogue, target.fuse_elementwise)
        wbytes = self.weight_bytes
        acts = max(self.phase(PREFILL, switches).activation_bytes(batch),
                   self.phase(DECODE, switches).activation_bytes(batch))
        return {"weights": -(-wbytes // devices), "activations": -(-acts // devices),
                "workspace": int(target.workspace_bytes), "kv_cache": self.kv_cache_bytes(batch, devices),
                "capacity": int(target.mem_capacity_bytes)}

    def fits(self, target: Target, devices: int, batch: int) -> bool:
        m = self.memory(target, devices, batch)
        return m["weights"] + m["activations"] + m["workspace"] + m["kv_cache"] <= m["capacity"]

    def max_batch(self, target: Target, devices: int, cap: int) -> int:
        """The largest batch (<= cap) whose memory fits; 0 when not even batch 1 does. Memory grows with batch."""
        if not self.analyzer.batch_sweepable:
            b = self.analyzer.spec.fixed_batch or 1
            return b if self.fits(target, devices, b) else 0
        if not self.fits(target, devices, 1):
            return 0
        lo, hi = 1, 2
        while hi <= cap and self.fits(target, devices, hi):
            lo, hi = hi, hi * 2
        hi = min(hi, cap + 1)
        while hi - lo > 1:  # fits(lo), not fits(hi) (or hi beyond the cap)
            mid = (lo + hi) // 2
            if self.fits(target, devices, mid):
                lo = mid
            else:
                hi = mid
        return lo

    def configure(self, target: Target, devices: int, batch: int, max_batch_fits: int) -> _Config:
        switches = (target.fuse_epilogue, target.fuse_elementwise)
        graph = target.cuda_graphs in ("decode", "all")
        prefill = self.phase(PREFILL, switches).time(batch, target, devices, graph_launch=target.cuda_graphs == "all")
        decode = self.phase(DECODE, switches).time(batch, target, devices, graph_launch=graph)
        if devices == 1:  # host: as onnxruntime runs it (the phases' kernels stay as the breakdown)
            ort = self.host_seconds(PREFILL, batch, target), self.host_seconds(DECODE, batch, target)
            if None not in ort:
                prefill, decode = replace(prefill, seconds=ort[0]), replace(decode, seconds=ort[1])
        if (target.name, PREFILL) in self.scale:
            prefill = replace(prefill, seconds=prefill.seconds * self.scale[(target.name, PREFILL)])
        if (target.name, DECODE) in self.scale:
            decode = replace(decode, seconds=decode.seconds * self.scale[(target.name, DECODE)])
        mem = self.memory(target, devices, batch)
        used = mem["weights"] + mem["activations"] + mem["workspace"] + mem["kv_cache"]
        return _Config(target, devices, batch, prefill, decode, mem, used <= mem["capacity"], max_batch_fits,
                       self.kv_cache_bytes(batch), prompt_len=self.prompt_len, gen_len=self.gen_len)


def _degrees(target: Target, tp: Sequence[int] | None, notes: list[str]) -> list[int]:
    wanted = list(tp) if tp else list(TP_DEGREES)
    out = []
    for n in wanted:
        if n == 1:
            out.append(1)
        elif n > target.max_devices:
            if tp or target.max_devices == 1:
                inst = target.price_instance or "its priced instance"
                if tp or n == 2:
                    notes.append(f"tensor parallelism not available on {target.name}: {inst} has "
                                 f"{target.max_devices} device{'s' if target.max_devices > 1 else ''} "
                                 f"(max_devices {target.max_devices})" + (f", --tp {n} skipped" if tp else ""))
        elif not target.interconnect_bytes_per_s:
            notes.append(f"tensor parallelism over {n} {target.name}: no interconnect bandwidth in its target file")
        else:
            out.append(n)
    return out


def _batches(fit: int, max_batch: int, batch: int | None) -> list[int]:
    if batch is not None:
        return [batch]
    top = min(fit, max_batch)
    out, b = [], 1
    while b <= top:
        out.append(b)
        b *= 2
    if top >= 1 and top not in out:
        out.append(top)  # the largest batch that fits: the most requests per weight read
    return out or [1]


def search_decoder(dp: DecoderPlanner, targets: Sequence[Target], batch: int | None, max_batch: int,
                   max_ttft_ms: float | None, max_tpot_ms: float | None, max_latency_ms: float | None,
                   tp: Sequence[int] | None, notes: list[str]) -> list[_Config]:
    configs: list[_Config] = []
    for t in targets:
        why_not = dp.does_not_run(t)
        for n in _degrees(t, tp, notes):
            fit = dp.max_batch(t, n, max(max_batch, batch or 0))
            for b in _batches(fit, max_batch, batch):
                c = dp.configure(t, n, b, fit)
                used = c.memory["weights"] + c.memory["activations"] + c.memory["workspace"] + c.memory["kv_cache"]
                if why_not:
                    c.rejected = f"does not run: {why_not}"
                elif not c.fits:
                    c.rejected = (f"does not fit: needs {fmt_gb(used)} per device at batch {b}"
                                  f"{'' if n == 1 else f' over {n} devices'}, {t.name} has "
                                  f"{fmt_gb(t.mem_capacity_bytes)}")
                elif max_ttft_ms is not None and c.ttft_s * 1e3 > max_ttft_ms:
                    c.rejected = f"TTFT {c.ttft_s * 1e3:.3g} ms exceeds --max-ttft-ms {max_ttft_ms:g}"
                elif max_tpot_ms is not None and c.tpot_s * 1e3 > max_tpot_ms:
                    c.rejected = f"TPOT {c.tpot_s * 1e3:.3g} ms exceeds --max-tpot-ms {max_tpot_ms:g}"
                elif max_latency_ms is not None and c.latency_s * 1e3 > max_latency_ms:
                    c.rejected = (f"request latency {c.latency_s * 1e3:.3g} ms exceeds --max-latency-ms "
                                  f"{max_latency_ms:g}")
                configs.append(c)
    mark_losers(configs)
    return configs


def mark_losers(configs: list[_Config]) -> None:
    """Every admissible configuration but the cheapest gets its reason: how much more it costs."""
    for c in configs:
        if c.rejected is not None and c.rejected.startswith("lost:"):
            c.rejected = None
    ok = [c for c in configs if c.rejected is None]
    if ok:
        chosen = min(ok, key=_rank)
        base = chosen.cost_request
        for c in ok:
            if c is chosen:
                continue
            cost = c.cost_request
            if cost is not None and base:
                c.rejected = (f"lost: ${cost:.4g} per 1M requests, {100 * (cost / base - 1):.0f}% more than the "
                              "chosen plan")
            else:
                c.rejected = "lost: no price for this target, ranked by tokens/s"


# ---- the document ----------------------------------------------------------------------------------------


def _phase_summary(p: PhaseTime) -> dict:
    return {"latency_ms": p.seconds * 1e3, "bound": p.bound, "roofline_ms": p.roofline_s * 1e3,
            "compute_ms": p.compute_s * 1e3, "memory_ms": p.memory_s * 1e3, "launch_ms": p.launch_s * 1e3,
            "eager_latency_ms": p.eager_seconds * 1e3, "comm_ms": p.comm_s * 1e3, "flops_per_device": p.flops,
            "bytes_per_device": p.bytes}


def _kernel_reports(p: PhaseTime, batch: int, devices: int, top: int) -> list[KernelReport]:
    ranked = sorted(p.groups, key=lambda gt: -gt.seconds)
    out: list[KernelReport] = []
    for gt in ranked:
        g, kt = gt.group, gt.time
        c = g.cost(batch, devices)
        for name in g.names:
            if len(out) == top:
                return out
            out.append(KernelReport(
                name=name, ops=g.label, op_class=g.op_class.value, dtype=g.dtype, flops=c.flops, bytes=c.bytes,
                time_ms=gt.seconds * 1e3, share=gt.seconds / p.seconds if p.seconds else 0.0, bound=kt.bound,
                intensity=kt.intensity, peak_used=kt.peak_used, unknown=g.unknown))
    return out


def _request_kernels(dp: DecoderPlanner, c: _Config) -> list[KernelReport]:
    """One request's kernels in execution order: prefill's once, each decode kernel G - 1 times (its time, FLOPs
    and bytes multiplied), plus the decode graph launches and the all-reduces; their times add up to latency_ms."""
    switches = (c.target.fuse_epilogue, c.target.fuse_elementwise)
    out: list[KernelReport] = []
    total = c.latency_s
    for name, pt, times in ((PREFILL, c.prefill, 1), (DECODE, c.decode, c.gen_len - 1)):
        by_name = {n: gt for gt in pt.groups for n in gt.group.names}
        for kname in dp.phase(name, switches).order:
            gt = by_name.get(kname)
            if gt is None:
                continue
            cost, kt = gt.group.cost(c.batch, c.devices), gt.time
            out.append(KernelReport(
                name=f"{name}:{kname}", ops=gt.group.label, op_class=gt.group.op_class.value, dtype=gt.group.dtype,
                flops=cost.flops * times, bytes=cost.bytes * times, time_ms=gt.seconds * times * 1e3,
                share=gt.seconds * times / total if total else 0.0, bound=kt.bound, intensity=kt.intensity,
                peak_used=kt.peak_used, unknown=gt.group.unknown))
        rest = pt.seconds - sum(gt.seconds * gt.group.count for gt in pt.groups)
        # Not kernels, but time the request spends: listed so that the times add up (the schema's bound is
        # compute or memory; these are neither, and their op_class says what they are).
        for label, seconds, op_class in (("AllReduce", pt.comm_s, "interconnect"),
                                         ("GraphLaunch", rest - pt.comm_s, "launch")):
            if seconds > 0:
                out.append(KernelReport(
                    name=f"{name}:{label}", ops=label, op_class=op_class, dtype="", flops=0, bytes=0,
                    time_ms=seconds * times * 1e3, share=seconds * times / total if total else 0.0,
                    bound=MEMORY, intensity=0.0, peak_used="none", unknown=False))
    return out


def _report(c: _Config, precision: str, top: int) -> CandidateReport:
    d = c.decode
    by_op: dict[str, float] = {}
    for gt in d.groups:
        op = gt.group.label.split("+")[0]
        by_op[op] = by_op.get(op, 0.0) + gt.seconds * gt.group.count * 1e3
    used = c.memory["weights"] + c.memory["activations"] + c.memory["workspace"] + c.memory["kv_cache"]
    return CandidateReport(
        target=c.target.name, precision=precision, passes=[], batch=c.batch, latency_ms=c.latency_s * 1e3,
        throughput_per_s=c.batch / c.latency_s, peak_memory_bytes=used, fits=c.fits,
        cost_per_million_usd=c.cost_request, bound=d.bound, drift=None,
        kernels=_kernel_reports(d, c.batch, c.devices, top), memory=dict(c.memory),
        price_usd_per_hour=c.price_per_hour, flops=d.flops * c.devices, bytes_moved=d.bytes * c.devices,
        time_by_op_type_ms=dict(sorted(by_op.items(), key=lambda kv: -kv[1])), rejected=c.rejected,
        ttft_ms=c.ttft_s * 1e3, tpot_ms=c.tpot_s * 1e3, tokens_per_s=c.tokens_per_s,
        kv_cache_bytes=c.kv_cache_bytes,
        cost_per_million_input_tokens_usd=c.cost_input, cost_per_million_output_tokens_usd=c.cost_output,
        devices=c.devices, max_batch_fits=c.max_batch_fits,
        phases={PREFILL: _phase_summary(c.prefill), DECODE: _phase_summary(d)},
    )


def _position_rows(graph) -> int | None:
    """Rows of the rotary/position table the positions index (Gather by position_ids, or GQA's cos_cache)."""
    rows = []
    for n in graph.nodes:
        if n.op_type == "Gather" and len(n.inputs) > 1 and n.inputs[1] is not None \
                and n.inputs[1].name == "position_ids" and n.inputs[0] is not None and n.inputs[0].shape:
            rows.append(n.inputs[0].shape[0])
        elif n.op_type == "GroupQueryAttention" and n.has_input(7) and n.in_shape(7):
            rows.append(n.in_shape(7)[0])
    return min(rows) if rows else None


def _unknown_ops(graph) -> list[str]:
    seen: list[str] = []
    for n in graph.nodes:
        if lookup(n.domain, n.op_type) is None:
            key = f"{n.domain}::{n.op_type}" if n.domain else n.op_type
            if key not in seen:
                seen.append(key)
    return seen


def plan_decoder(loaded: LoadedModel, info: DecoderInfo, targets: Sequence[Target], dims: dict[str, int] | None,
                 batch: int | None, max_latency_ms: float | None, max_batch: int, prompt_len: int | None,
                 gen_len: int | None, max_ttft_ms: float | None, max_tpot_ms: float | None,
                 tp: Sequence[int] | None, top: int = TOP_KERNELS, optimized: DecoderVariants | None = None,
                 values: dict[str, bool | int | float] | None = None) -> Plan:
    """The decoder's plan over precision (the stored model and each verified pass pipeline in `optimized`) x
    target x tensor-parallel degree x batch: the cheapest admissible configuration is chosen."""
    started = time.perf_counter()
    defaults = []
    if prompt_len is None:
        prompt_len = DEFAULT_PROMPT_LEN
        defaults.append(f"prompt_len={prompt_len} (decoder default; set --prompt-len)")
    if gen_len is None:
        gen_len = DEFAULT_GEN_LEN
        defaults.append(f"gen_len={gen_len} (decoder default; set --gen-len)")
    for n in tp or ():
        if n not in TP_DEGREES:
            raise PlannerError(f"--tp {n}: tensor-parallel degree must be one of {', '.join(map(str, TP_DEGREES))}")
    dp = DecoderPlanner(loaded, info, prompt_len, gen_len, dims, values)
    notes: list[str] = list(optimized.notes) if optimized else []
    variants = [v for v in (optimized.variants if optimized else []) if v.name != "none"]
    planners: dict[str, DecoderPlanner] = {"none": dp}
    for v in variants:
        v_info = recognise(v.model) or info
        planners[v.name] = DecoderPlanner(v.loaded, v_info, prompt_len, gen_len, dims, values)
    configs = search_decoder(dp, targets, batch, max_batch, max_ttft_ms, max_tpot_ms, max_latency_ms, tp, notes)
    for v in variants:
        vp = planners[v.name]
        _scale_to_host(dp, vp, v, targets, notes)
        more = search_decoder(vp, targets, batch, max_batch, max_ttft_ms, max_tpot_ms, max_latency_ms, tp, [])
        for c in more:
            c.variant = v.name
            if c.rejected is None or c.rejected.startswith("lost:"):
                host_no = (v.host or {}).get("rejected") if c.target.name == "host" else None
                c.rejected = v.rejected or host_no
        configs += more
    mark_losers(configs)
    decode1 = dp.analyzer.analyze(dp.dims[DECODE], batch=dp.anchor_batch)
    prefill1 = dp.analyzer.analyze(dp.dims[PREFILL], batch=dp.anchor_batch)
    precision = stored_precision(decode1)
    by_name = {v.name: v for v in variants}
    reports = {id(c): _variant_report(_report(c, precision, top), by_name.get(c.variant)) for c in configs}
    ok = [c for c in configs if c.admissible]
    chosen = min(ok, key=_rank) if ok else None
    if chosen is not None:  # only the chosen plan lists every kernel
        reports[id(chosen)] = replace(reports[id(chosen)], all_kernels=_request_kernels(planners[chosen.variant],
                                                                                         chosen))
    best: dict[str, CandidateReport] = {}
    for c in sorted(ok, key=_rank):
        best.setdefault(c.target.name, reports[id(c)])
    formula, graph_kv = dp.graph_kv_check()
    notes.append(f"KV cache check: formula {formula:,} B = graph's present tensors {graph_kv:,} B at the decode "
                 "context" if formula == graph_kv else
                 f"KV cache formula {formula:,} B differs from the graph's present tensors {graph_kv:,} B")
    for a in (prefill1, decode1):
        notes.extend(n for n in a.notes if n not in notes)
    rows = _position_rows(decode1.graph)
    if rows is not None and rows < dp.longest_context:
        notes.append(f"the model's position table has {rows} rows: a context of {dp.longest_context} tokens "
                     "(prompt + generated) indexes past it and fails at run time; planned anyway")
    tp_summary = _tensor_parallel(targets, [c for c in configs if c.variant == "none"], notes)
    notes.extend(precision_notes(configs, {"none": precision, **{v.name: v.precision for v in variants}}))
    wbytes = decode1.graph.weight_bytes
    decoder = _decoder_block(dp, info, targets, decode1, prefill1, (formula, graph_kv), tp_summary)
    decoder["precisions"] = {name: {"weight_bytes": p.weight_bytes} for name, p in planners.items()}
    decoder["planning_s"] = time.perf_counter() - started
    constraints = {"max_latency_ms": max_latency_ms, "batch": batch, "max_batch": max_batch,
                   "targets": [t.name for t in targets], "prompt_len": prompt_len, "gen_len": gen_len,
                   "max_ttft_ms": max_ttft_ms, "max_tpot_ms": max_tpot_ms, "tp": list(tp) if tp else None}
    summary = ModelSummary(
        path=str(loaded.path), sha256=loaded.sha256, dims=dict(dp.dims[DECODE]),
        defaults_used=defaults + list(decode1.binding.defaults_used),
        flops=decoder["decode_flops_per_token"], weight_bytes=wbytes, unknown_ops=_unknown_ops(decode1.graph),
        nodes=len(decode1.graph.nodes), opset=decode1.graph.opset, batch_dim=dp.analyzer.spec.batch,
        batch_fixed=None if dp.analyzer.spec.batch else dp.analyzer.spec.fixed_batch, notes=notes, decoder=decoder,
    )
    return Plan(model=summary, chosen=reports[id(chosen)] if chosen else None,
                candidates=[reports[id(c)] for c in configs], constraints=constraints, best_per_target=best,
                pipelines=list(optimized.reports) if optimized else [])


def _variant_report(r: CandidateReport, v: DecoderVariant | None) -> CandidateReport:
    if v is None:
        return r
    notes = list(r.notes)
    if v.projected:
        notes.append("int4 projected from shapes: weights never read, drift not measured, not emitted")
    if v.host and r.target == "host":
        notes.append(f"host: measured decode step x{v.host['decode_speedup']:.2f}, prefill "
                     f"x{v.host['prefill_speedup']:.2f} the stored model's speed (batch 1, interleaved)")
    return replace(r, precision=v.precision, passes=list(v.passes), drift=v.drift, pipeline=v.name, notes=notes)


def _scale_to_host(stored: DecoderPlanner, vp: DecoderPlanner, v: DecoderVariant, targets: Sequence[Target],
                   notes: list[str]) -> None:
    """On host, scale the variant's phases so that, at batch 1, its time relative to the stored model's is the
    measured one (the spec-sheet CPU peaks cannot tell its int8 / int4 kernels apart as well as running can)."""
    host = next((t for t in targets if t.name == HOST), None)
    if host is None or not v.host:
        return
    switches = (host.fuse_epilogue, host.fuse_elementwise)
    for phase, key in ((DECODE, "decode_speedup"), (PREFILL, "prefill_speedup")):
        before, after = stored.phase(phase, switches), vp.phase(phase, switches)
        ort = stored.host_seconds(phase, 1, host), vp.host_seconds(phase, 1, host)
        predicted = ort[0] / ort[1] if None not in ort else before.time(1, host).seconds / after.time(1, host).seconds
        vp.scale[(host.name, phase)] = predicted / v.host[key]
    notes.append(f"host: {v.name} measured x{v.host['decode_speedup']:.2f} per decode step and "
                 f"x{v.host['prefill_speedup']:.2f} per prefill against the stored model (batch 1, "
                 f"{v.host['rounds']} interleaved rounds); its host phases scaled to match")


def precision_notes(configs: list[_Config], precisions: dict[str, str]) -> list[str]:
    """Where a precision changes what fits: per target, the fewest devices each variant fits on."""
    fewest: dict[str, dict[str, int | None]] = {}
    for c in configs:
        per = fewest.setdefault(c.target.name, {})
        per.setdefault(c.variant, None)
        if c.fits and (per[c.variant] is None or c.devices < per[c.variant]):
            per[c.variant] = c.devices
    out = []
    for target, per in fewest.items():
        if len(per) < 2 or len(set(per.values())) < 2:
            continue
        parts = [f"{precisions.get(v, v)} ({v}) on {n} device{'s' if n > 1 else ''}" if n else
                 f"{precisions.get(v, v)} ({v}) does not fit" for v, n in per.items()]
        out.append(f"{target}: precision changes what fits: " + ", ".join(parts))
    return out


def _tensor_parallel(targets: Sequence[Target], configs: list[_Config], notes: list[str]) -> dict[str, dict]:
    """Per target, the best admissible configuration at each device count (else why none), and the cheapest
    count; a note per target that tried more than one."""
    tp_summary: dict[str, dict] = {}
    for t in targets:
        per: dict[str, object] = {}
        for c in configs:
            if c.target is not t:
                continue
            key = str(c.devices)
            prev = per.get(key)
            if c.admissible and (not isinstance(prev, dict) or _rank(c) < prev["_rank"]):
                per[key] = {"batch": c.batch, "cost_per_million_output_tokens_usd": c.cost_output,
                            "cost_per_million_usd": c.cost_request, "tpot_ms": c.tpot_s * 1e3,
                            "ttft_ms": c.ttft_s * 1e3, "max_batch_fits": c.max_batch_fits, "_rank": _rank(c)}
            elif prev is None:
                per[key] = c.rejected
        priced = {k: v for k, v in per.items() if isinstance(v, dict)}
        if priced:
            cheapest = min(priced, key=lambda k: priced[k]["_rank"])
            for v in priced.values():
                v.pop("_rank")
            tp_summary[t.name] = {"by_devices": per, "cheapest_devices": int(cheapest)}
            if len(per) > 1:
                notes.append(f"{t.name}: cheapest tensor-parallel degree is {cheapest} device"
                             f"{'s' if cheapest != '1' else ''}" + _why_degree(cheapest, per))
        else:
            tp_summary[t.name] = {"by_devices": per, "cheapest_devices": None}
    return tp_summary


def _why_degree(chosen: str, per: dict[str, object]) -> str:
    """Why not the other degrees: more devices buy less time per token than they cost (per-step collectives and
    latency stop the scaling), fewer do not fit or miss a limit."""
    best = per[chosen]
    assert isinstance(best, dict)
    parts = []
    for key in sorted(per, key=int):
        other = per[key]
        if key == chosen:
            continue
        if isinstance(other, dict):
            cost, base = other["cost_per_million_usd"], best["cost_per_million_usd"]
            price = f", {cost / base:.2f}x the cost per request" if cost and base else ""
            parts.append(f"TP{key}: TPOT {other['tpot_ms']:.3g} ms against {best['tpot_ms']:.3g} "
                         f"({best['tpot_ms'] / other['tpot_ms']:.2f}x as fast){price}")
        elif isinstance(other, str):
            parts.append(f"TP{key}: {other.removeprefix('lost: ')}")
    return "; " + "; ".join(parts) if parts else ""


def _decoder_block(dp: DecoderPlanner, info: DecoderInfo, targets: Sequence[Target], decode1, prefill1,
                   kv_check: tuple[int, int], tp_summary: dict[str, dict]) -> dict:
    """The plan's `decoder` block: what was inferred, the phases' settings and sizes, the KV cache check."""
    formula, graph_kv = kv_check
    prompt_len, gen_len = dp.prompt_len, dp.gen_len
    wbytes = decode1.graph.weight_bytes
    decoder = {
        "layers": info.layers, "kv_heads": info.kv_heads, "head_dim": info.head_dim, "kv_dtype": info.kv_dtype,
        "hidden_size": dp.phase(DECODE, (True, False)).hidden_size, "vocab_size": info.vocab_size,
        "attention": info.attention, "weights": info.weights, "inferred": dict(info.inferred),
        "prompt_len": prompt_len, "gen_len": gen_len, "decode_context": mean_context(prompt_len, gen_len),
        "context_rule": "decode step timed at the mean context P + G // 2 (decode cost is affine in the context)",
        "phase_dims": {k: dict(v) for k, v in dp.dims.items()},
        "kv_bytes_per_token": info.kv_bytes_per_token,
        "kv_cache_formula": "2 x layers x kv_heads x head_dim x bytes x (prompt_len + gen_len) x batch",
        "kv_cache_check": {"formula_bytes": formula, "graph_present_bytes": graph_kv},
        "decode_flops_per_token": sum(c.cost.flops for c in dp.predictor.costs(decode1)),
        "prefill_flops": sum(c.cost.flops for c in dp.predictor.costs(prefill1)),
        "weights_over_bandwidth_ms": {t.name: wbytes / t.mem_bw_bytes_per_s * 1e3 for t in targets},
        "launch": "prefill: one launch per kernel (target launch_overhead_s); decode on CUDA/ROCm runtimes: "
                  "captured-graph replay (15 us + 0.58 us per kernel), the eager figure in phases.decode",
        "tensor_parallel": tp_summary,
        "phases_affine_in_batch": all(p.affine for p in dp._phases.values()),
    }
    return decoder
