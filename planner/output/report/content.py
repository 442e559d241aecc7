"""What a report says, as data: sections of cards, tables, a chart. HTML and markdown render the same content.

Built from the plan's JSON dict (not the typed Plan) so that keys other parts of the planner add (decoder
phases, passes, drift) show up here without this module changing, and a missing key is simply not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.output.report.roofline_svg import memory_roof, points, roofline_svg
from planner.targets.target import Target
from planner.units import fmt_bytes, fmt_flops, fmt_num

TOP_KERNELS = 15


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = ""  # "warn" for something the reader must not miss


@dataclass(frozen=True)
class Cards:
    items: list[tuple[str, str, str]]  # (label, value, small print)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    right: frozenset[int] = frozenset()
    bars: dict[int, list[float]] = field(default_factory=dict)  # column -> fraction (0..1) per row, drawn as a bar
    highlight: int | None = None  # row index to emphasise (the chosen configuration)


@dataclass(frozen=True)
class Chart:
    svg: str
    caption: str
    name: str = "roofline"


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: list[Any]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Any]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: list[str]
    sections: list[Section]
    footer: str


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{fmt_num(v)} ms"


def _usd(v: float | None) -> str:
    return "-" if v is None else "$" + fmt_num(v, 4)


def _num(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _summary(doc: dict[str, Any], c: dict[str, Any] | None) -> Section:
    if c is None:
        why = sorted({x.get("rejected") or "" for x in doc.get("candidates") or []
                      if x.get("rejected") and not str(x.get("rejected")).startswith("lost")})
        return Section("summary", "Chosen plan", [Para("No plan: no configuration fits and meets the constraints"
                                                      + (" (" + "; ".join(why[:3]) + ")" if why else "") + ".",
                                                      "warn")])
    mem = c.get("memory") or {}
    cap = mem.get("capacity")
    items = [
        ("configuration", f"{c.get('target')} · batch {c.get('batch')}",
         " · ".join(x for x in [str(c.get("precision") or ""), ", ".join(map(str, c.get("passes") or []))] if x)),
        ("cost per 1M inferences", _usd(_num(c, "cost_per_million_usd")),
         f"at ${fmt_num(_num(c, 'price_usd_per_hour'), 4)}/hour" if _num(c, "price_usd_per_hour") else "no price"),
        ("latency per batch", _ms(_num(c, "latency_ms")), f"{c.get('bound', '?')}-bound"),
        ("throughput", f"{fmt_num(_num(c, 'throughput_per_s'))}/s", "inferences per second"),
        ("peak memory", fmt_bytes(_num(c, "peak_memory_bytes")),
         (f"of {fmt_bytes(cap)} · " if cap else "") + ("fits" if c.get("fits") else "DOES NOT FIT")),
    ]
    return Section("summary", "Chosen plan", [Cards(items)])


def _decoder(c: dict[str, Any] | None) -> Section | None:
    """Prefill / decode split, when the plan is a decoder's (keys added by planner.llm)."""
    if c is None or (c.get("ttft_ms") is None and c.get("tpot_ms") is None and not c.get("phases")):
        return None
    items = [(label, fmt(c.get(key)), note) for key, label, fmt, note in (
        ("ttft_ms", "time to first token", _ms, "prefill"),
        ("tpot_ms", "time per output token", _ms, "decode"),
        ("tokens_per_s", "output tokens per second", lambda v: f"{fmt_num(v)}/s", "whole batch"),
        ("kv_cache_bytes", "KV cache", fmt_bytes, "at the longest context"),
        ("cost_per_million_input_tokens_usd", "cost per 1M input tokens", _usd, ""),
        ("cost_per_million_output_tokens_usd", "cost per 1M output tokens", _usd, ""),
        ("devices", "devices", lambda v: str(v), "tensor parallel" if (c.get("devices") or 1) > 1 else ""),
    ) if c.get(key) is not None]
    blocks: list[Any] = [Cards(items)] if items else []
    phases = c.get("phases")
    if isinstance(phases, dict) and phases and all(isinstance(v, dict) for v in phases.values()):
        # one column per phase, one row per figure: phases have many figures and few members
        keys = list(dict.fromkeys(k for v in phases.values() for k in v))

        def cell(v: Any, k: str) -> str:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return fmt_bytes(v) if "bytes" in k else fmt_flops(v) if "flops" in k else fmt_num(v)
            return "-" if v is None else str(v)

        def label(k: str) -> str:
            for suffix, unit in (("_ms", " (ms)"), ("_per_device", " per device")):
                if k.endswith(suffix):
                    return k[: -len(suffix)].replace("_", " ") + unit
            return k.replace("_", " ")

        rows = [[label(k)] + [cell(v.get(k), k) for v in phases.values()] for k in keys]
        blocks.append(Table(["per phase"] + list(phases), rows, right=frozenset(range(1, len(phases) + 1))))
    return Section("decoder", "Prefill and decode", blocks)


def _roofline(c: dict[str, Any], target: Target | None) -> Section:
    kernels = c.get("all_kernels") or c.get("kernels") or []
    if target is None:
        return Section("roofline", "Roofline", [Para(f"Target {c.get('target')!r} is not known here: no chart.")])
    drawn, skipped = points(kernels)
    lat = _num(c, "latency_ms") or 0.0
    skipped_ms = sum(_num(k, "time_ms") or 0.0 for k in skipped)
    cap = [f"{len(drawn)} kernels on {target.name} at batch {c.get('batch')}: each at its arithmetic intensity and the "
           f"FLOP/s it achieves in its predicted time; lines are the attainable ceilings (peak × efficiency) and "
           f"the memory roof ({fmt_num(memory_roof(target) / 1e9)} GB/s)."]
    if skipped:
        ops = sorted({str(k.get("ops", "?")).split("+")[0] for k in skipped})
        cap.append(f"{len(skipped)} kernels do no arithmetic ({', '.join(ops[:6])}{', ...' if len(ops) > 6 else ''})"
                   f" and cannot sit on a FLOP/s axis: {100 * skipped_ms / lat if lat else 0:.1f}% of the latency.")
    if not c.get("all_kernels"):
        cap.append(f"Only the plan's top {len(kernels)} kernels are listed in it, so only those are drawn.")
    if not drawn:
        return Section("roofline", f"Roofline on {target.full_name or target.name}", [Para(" ".join(cap))])
    return Section("roofline", f"Roofline on {target.full_name or target.name}",
                   [Chart(roofline_svg(kernels, target), " ".join(cap))])


def _op_types(c: dict[str, Any]) -> Section | None:
    by_op = c.get("time_by_op_type_ms") or {}
    total = sum(v for v in by_op.values() if isinstance(v, (int, float)))
    if not by_op or not total:
        return None
    items = sorted(by_op.items(), key=lambda kv: -kv[1])
    rows = [[op, fmt_num(ms), f"{100 * ms / total:.1f}%", ""] for op, ms in items]
    return Section("op-types", "Time by op type", [
        Para("Each kernel counted under its first op (a MatMul with a fused bias Add is a MatMul)."),
        Table(["op type", "time ms", "share", ""], rows, right=frozenset({1, 2}),
              bars={3: [ms / items[0][1] for _, ms in items]})])


def _kernel_rows(kernels: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for k in kernels:
        ms, flops = _num(k, "time_ms"), _num(k, "flops") or 0
        achieved = flops / (ms / 1e3) if ms else None
        rows.append([str(k.get("name", "")), str(k.get("ops", "")), str(k.get("dtype", "")), fmt_num(ms),
                     f"{100 * (_num(k, 'share') or 0):.1f}%", str(k.get("bound", "")), fmt_num(_num(k, "intensity")),
                     "-" if not achieved else f"{achieved / 1e12:.3g} T"])
    return rows


KERNEL_HEADERS = ["node", "ops", "dtype", "time ms", "share", "bound", "FLOP/byte", "FLOP/s"]


def _kernels(c: dict[str, Any]) -> Section | None:
    every = c.get("all_kernels") or []
    ranked = sorted(every, key=lambda k: -(k.get("time_ms") or 0))[:TOP_KERNELS] if every else c.get("kernels") or []
    if not ranked:
        return None
    blocks: list[Any] = [Table(KERNEL_HEADERS, _kernel_rows(ranked), right=frozenset({3, 4, 6, 7}))]
    if len(every) > len(ranked):
        blocks.append(Details(f"all {len(every)} kernels in execution order",
                              [Table(KERNEL_HEADERS, _kernel_rows(every), right=frozenset({3, 4, 6, 7}))]))
    return Section("kernels", f"Slowest kernels (of {len(every) or len(ranked)})", blocks)


def _memory(c: dict[str, Any]) -> Section | None:
    mem = c.get("memory") or {}
    cap = mem.get("capacity")
    parts = [(k, v) for k, v in mem.items() if k != "capacity" and isinstance(v, (int, float)) and v]
    if not parts:
        return None
    rows = [[k.replace("_", " "), fmt_bytes(v), f"{100 * v / cap:.1f}%" if cap else "-", ""] for k, v in parts]
    return Section("memory", "Memory", [Table(["part", "bytes", "of capacity", ""], rows, right=frozenset({1, 2}),
                                              bars={3: [v / cap if cap else 0.0 for _, v in parts]})])


def _config_row(c: dict[str, Any], chosen_cost: float | None) -> list[str]:
    cost = _num(c, "cost_per_million_usd")
    vs = "chosen" if c.get("rejected") is None else (
        f"{100 * (cost / chosen_cost - 1):+.0f}%" if cost is not None and chosen_cost else "-")
    return [str(c.get("target")), str(c.get("batch")), str(c.get("precision", "")), fmt_num(_num(c, "latency_ms")),
            fmt_num(_num(c, "throughput_per_s")), fmt_bytes(_num(c, "peak_memory_bytes")), _usd(cost), vs]


def _alternatives(doc: dict[str, Any], c: dict[str, Any] | None) -> Section | None:
    best = doc.get("best_per_target") or {}
    cands = doc.get("candidates") or []
    if not best and not cands:
        return None
    chosen_cost = _num(c, "cost_per_million_usd") if c else None
    headers = ["target", "batch", "precision", "latency ms", "throughput/s", "peak memory", "$ per 1M", "vs chosen"]
    blocks: list[Any] = []
    if best:
        ranked = sorted(best.values(), key=lambda x: (_num(x, "cost_per_million_usd") is None,
                                                       _num(x, "cost_per_million_usd") or 0.0))
        rows = [_config_row(x, chosen_cost) for x in ranked]
        hi = next((i for i, x in enumerate(ranked) if c and (x.get("target"), x.get("batch")) ==
                   (c.get("target"), c.get("batch"))), None)
        blocks += [Para("The cheapest configuration on each target that fits and meets the constraints."),
                   Table(headers, rows, right=frozenset({1, 3, 4, 5, 6, 7}), highlight=hi)]
    if cands:
        rows = [[str(x.get("target")), str(x.get("batch")), fmt_num(_num(x, "latency_ms")),
                 _usd(_num(x, "cost_per_million_usd")), str(x.get("rejected") or "chosen")] for x in cands]
        blocks.append(Details(f"every configuration tried ({len(cands)}) and why each lost",
                              [Table(["target", "batch", "latency ms", "$ per 1M", "why not chosen"], rows,
                                     right=frozenset({1, 2, 3}))]))
    return Section("alternatives", "Alternatives", blocks)


def _model_notes(doc: dict[str, Any]) -> Section | None:
    m = doc.get("model") or {}
    lines = []
    if m.get("defaults_used"):
        lines.append("Dims left to defaults: " + "; ".join(m["defaults_used"]) + " (bind with --dim NAME=VALUE).")
    if m.get("unknown_ops"):
        lines.append("Ops without a cost formula, planned by bytes alone: " + ", ".join(m["unknown_ops"]) + ".")
    lines += [str(n) for n in m.get("notes") or []]
    return Section("notes", "Notes", [Para(x, "warn" if "unknown" in x.lower() else "") for x in lines]) if lines \
        else None


def build_report(doc: dict[str, Any], target: Target | None, version: str = "") -> Report:
    """The report for plan `doc`; `target` is the chosen configuration's target (its ceilings), if known."""
    m = doc.get("model") or {}
    c = doc.get("chosen")
    dims = ", ".join(f"{k}={v}" for k, v in (m.get("dims") or {}).items()) or "all fixed"
    sub = [f"{m.get('path', '?')} · sha256 {str(m.get('sha256', ''))[:12]}",
           " · ".join(x for x in [f"{m['nodes']} nodes" if "nodes" in m else "",
                                  f"opset {m['opset']}" if "opset" in m else "",
                                  f"weights {fmt_bytes(m.get('weight_bytes'))}",
                                  f"{fmt_flops(m.get('flops') or 0)} per run", f"dims {dims}"] if x)]
    sections = [_summary(doc, c), _decoder(c)]
    if c is not None:
        sections += [_roofline(c, target), _op_types(c), _kernels(c), _memory(c)]
    sections += [_alternatives(doc, c), _model_notes(doc)]
    where = f" on {c.get('target')}" if c else ""
    return Report(title=f"{Path(str(m.get('path', 'model'))).name}{where}", subtitle=sub,
                  sections=[s for s in sections if s is not None],
                  footer=f"onnx-planner {version}: predicted by a roofline model per kernel, not measured.")
