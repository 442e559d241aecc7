"""A comparison of two plans as text (terminal, CI log) and as markdown (job summary, PR comment).

Pure functions from planner.ci.compare / planner.ci.gate results to strings; the table function is passed in so
the terminal gets rich tables and everything else plain columns (planner.output.console).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from planner.ci.compare import MEMORY_PARTS, METRICS, Change, Comparison, KernelChange, config_label, relative_change
from planner.ci.gate import CheckResult
from planner.output.text import md_escape, md_table, render_table
from planner.units import fmt_bytes, fmt_num

LABELS = {
    "cost_per_million_usd": "cost per 1M inferences",
    "latency_ms": "latency per batch",
    "throughput_per_s": "throughput",
    "peak_memory_bytes": "peak memory",
    "ttft_ms": "time to first token",
    "tpot_ms": "time per output token",
    "tokens_per_s": "tokens per second",
    "kv_cache_bytes": "KV cache",
    "cost_per_million_input_tokens_usd": "cost per 1M input tokens",
    "cost_per_million_output_tokens_usd": "cost per 1M output tokens",
    "weights": "weights", "activations": "activations", "workspace": "workspace", "kv_cache": "KV cache",
    "runtime_copies": "runtime's weight copies", "arena": "arena beyond the live peak",
}


def fmt_value(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    if key.endswith("bytes") or key in MEMORY_PARTS:
        return fmt_bytes(v)
    if key.endswith("_usd"):
        return "$" + fmt_num(v, 4)
    if key.endswith("_ms"):
        return fmt_num(v) + " ms"
    if key.endswith("_per_s"):
        return fmt_num(v) + "/s"
    return fmt_num(v)


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if math.isinf(r):
        return "new" if r > 0 else "gone"
    if r == 0:
        return "0%"
    v = 100 * r
    s = f"{v:+.3g}%" if abs(v) < 1000 else f"{v:+,.0f}%"
    return s


def fmt_delta_ms(d: float) -> str:
    return f"{d:+.3g}" if d else "0"


def _change_rows(changes: Sequence[Change]) -> list[list[str]]:
    return [[LABELS.get(c.key, c.key), fmt_value(c.key, c.old), fmt_value(c.key, c.new), fmt_ratio(c.ratio)]
            for c in changes]


def _kernel_rows(kernels: Sequence[KernelChange], total_ms: float, width: int = 40) -> list[list[str]]:
    rows = []
    for k in kernels:
        ops = k.new_ops if k.new_ops is not None else k.old_ops or "?"
        if k.status == "changed":
            ops = f"{k.old_ops} -> {k.new_ops}"
        share = f"{100 * k.delta_ms / total_ms:.0f}%" if total_ms else "-"
        rows.append([_cut(k.name, width), _cut(ops, 32), "" if k.status == "same" else k.status,
                     "-" if k.old_ms is None else fmt_num(k.old_ms), "-" if k.new_ms is None else fmt_num(k.new_ms),
                     fmt_delta_ms(k.delta_ms), share])
    return rows


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else "..." + s[-(n - 3):]  # node names differ at the end: keep the tail


KERNEL_HEADERS = ["kernel (node)", "ops", "status", "before ms", "now ms", "change ms", "of change"]


def latency_delta(c: Comparison) -> float:
    ch = c.change("latency_ms")
    return ch.delta or 0.0


def comparison_text(c: Comparison, table=render_table, verbose: bool = False, limit: int = 5,
                    headers: Sequence[str] = ("", "baseline", "now", "change")) -> list[str]:
    """The headline table, then the kernels that account for most of the latency change."""
    out = [table(list(headers), _change_rows(c.headline + c.decoder), right={1, 2, 3})]
    total = latency_delta(c)
    kernels = [k for k in c.kernels if k.delta_ms or k.status != "same"] if verbose else c.top_kernels(limit)
    if kernels:
        out += ["", f"kernels accounting for most of the change (latency per batch {fmt_delta_ms(total)} ms):"
                if not verbose else f"every kernel that changed (latency per batch {fmt_delta_ms(total)} ms):",
                table(KERNEL_HEADERS, _kernel_rows(kernels, total), right={3, 4, 5, 6})]
    if verbose or not c.kernels_complete:
        ops = [x for x in c.by_op_type if x.delta]
        if ops:
            out += ["", "time by op type (ms):",
                    table(["op type", "before", "now", "change"],
                          [[x.key, fmt_num(x.old), fmt_num(x.new), fmt_ratio(x.ratio)] for x in ops], right={1, 2, 3})]
    if verbose and c.memory_parts:
        out += ["", "memory:", table(["part", "before", "now", "change"], _change_rows(c.memory_parts),
                                     right={1, 2, 3})]
    return out


def verdict_line(r: CheckResult) -> str:
    key, label, _ = METRICS[r.metric]
    change = fmt_ratio(r.change)
    limit = f"limit +{100 * r.max_increase:g}%"
    where = r.comparison.new_config
    head = f"{label} {change} on {where} ({limit})"
    if r.regression:
        others = [x for x in r.reasons if not x.startswith(label)]
        return "REGRESSION: " + "; ".join([head] + others)
    return f"OK: {head}"


def check_text(r: CheckResult, baseline_model: dict[str, Any], table=render_table, verbose: bool = False,
               quiet: bool = False) -> str:
    out = [verdict_line(r)]
    if quiet:
        return out[0]
    sha_now, sha_then = r.fresh.model.sha256, str(baseline_model.get("sha256") or "")
    same = "unchanged" if sha_now == sha_then else f"was {sha_then[:12] or '?'}"
    out.append(f"model     {r.fresh.model.path}  sha256 {sha_now[:12]} ({same})")
    out.append(f"compared  {r.comparison.old_config} (baseline) with {r.comparison.new_config} (now)")
    out.append("")
    out += comparison_text(r.comparison, table, verbose=verbose)
    out.append("")
    if r.cheapest_now is None:
        out.append("cheapest  nothing meets the baseline's constraints any more")
    elif r.cheapest_changed:
        out.append(f"cheapest  changed: {r.cheapest_before} -> {r.cheapest_now}")
    else:
        out.append(f"cheapest  unchanged: {r.cheapest_now}")
    for n in r.notes + r.comparison.notes:
        out.append(f"note      {n}")
    return "\n".join(out)


# ---- markdown ---------------------------------------------------------------------------------------------

def comparison_markdown(c: Comparison, headers: Sequence[str] = ("", "baseline", "now", "change"),
                        limit: int = 5) -> list[str]:
    out = [md_table(headers, _change_rows(c.headline + c.decoder), right={1, 2, 3})]
    total = latency_delta(c)
    kernels = c.top_kernels(limit)
    if kernels:
        out += ["", f"**Kernels accounting for most of the change** (latency per batch {fmt_delta_ms(total)} ms)",
                "", md_table(KERNEL_HEADERS, _kernel_rows(kernels, total, width=60), right={3, 4, 5, 6})]
    if not c.kernels_complete:
        ops = [x for x in c.by_op_type if x.delta][:8]
        if ops:
            out += ["", "**Time by op type (ms)**", "",
                    md_table(["op type", "before", "now", "change"],
                             [[x.key, fmt_num(x.old), fmt_num(x.new), fmt_ratio(x.ratio)] for x in ops],
                             right={1, 2, 3})]
    return out


def check_markdown(r: CheckResult, baseline_path: str) -> str:
    icon = "\u274c" if r.regression else "\u2705"  # shown as emoji in job summaries and PR comments
    _, label, _ = METRICS[r.metric]
    out = [f"### {icon} plan check `{md_escape(r.fresh.model.path)}`: {label} {fmt_ratio(r.change)} "
           f"(limit +{100 * r.max_increase:g}%)", ""]
    if r.regression:
        out += ["**Regression:** " + md_escape("; ".join(r.reasons)), ""]
    out += [f"Baseline `{md_escape(baseline_path)}`, compared at **{md_escape(r.comparison.new_config)}**.", ""]
    out += comparison_markdown(r.comparison)
    out.append("")
    if r.cheapest_now is None:
        out.append("Cheapest configuration: nothing meets the baseline's constraints any more.")
    elif r.cheapest_changed:
        out.append(f"Cheapest configuration changed: {md_escape(r.cheapest_before)} → {md_escape(r.cheapest_now)}.")
    else:
        out.append(f"Cheapest configuration unchanged: {md_escape(r.cheapest_now)}.")
    notes = r.notes + r.comparison.notes
    if notes:
        out += [""] + [f"- {md_escape(n)}" for n in notes]
    return "\n".join(out)


# ---- plan diff --------------------------------------------------------------------------------------------

def _dims(doc: dict[str, Any]) -> str:
    dims = (doc.get("model") or {}).get("dims") or {}
    return ", ".join(f"{k}={v}" for k, v in dims.items()) or "all fixed"


def _targets(doc: dict[str, Any]) -> str:
    return ", ".join((doc.get("constraints") or {}).get("targets") or []) or "-"


def diff_context_rows(a: dict[str, Any], b: dict[str, Any], a_cfg: dict[str, Any] | None,
                      b_cfg: dict[str, Any] | None) -> list[list[str]]:
    """What the two plans were made from and what each chose, side by side."""

    ma, mb = a.get("model") or {}, b.get("model") or {}
    sha_a, sha_b = str(ma.get("sha256") or "?"), str(mb.get("sha256") or "?")
    rows = [["model", f"{ma.get('path', '?')} {sha_a[:12]}", f"{mb.get('path', '?')} {sha_b[:12]}",
             "same" if sha_a == sha_b else "changed"],
            ["dims", _dims(a), _dims(b), "same" if _dims(a) == _dims(b) else "changed"],
            ["targets", _targets(a), _targets(b), "same" if _targets(a) == _targets(b) else "changed"]]
    la = config_label(a_cfg) if a_cfg else "nothing fits"
    lb = config_label(b_cfg) if b_cfg else "nothing fits"
    rows.append(["compared", la, lb, "same" if la == lb else "changed"])
    return rows


def best_per_target_rows(a: dict[str, Any], b: dict[str, Any]) -> list[list[str]]:

    ba, bb = a.get("best_per_target") or {}, b.get("best_per_target") or {}
    rows = []
    for t in list(ba) + [t for t in bb if t not in ba]:
        ca, cb = ba.get(t) or {}, bb.get(t) or {}
        mark = "* " if (b.get("chosen") or {}).get("target") == t else "  "
        cost_a, cost_b = ca.get("cost_per_million_usd"), cb.get("cost_per_million_usd")
        rows.append([mark + t, str(ca.get("batch", "-")), fmt_value("cost_per_million_usd", cost_a),
                     str(cb.get("batch", "-")), fmt_value("cost_per_million_usd", cost_b),
                     fmt_ratio(relative_change(cost_a, cost_b))])
    return rows


BEST_HEADERS = ["target", "A batch", "A $ per 1M", "B batch", "B $ per 1M", "change"]


def diff_text(a: dict[str, Any], b: dict[str, Any], c: Comparison | None, a_cfg: dict[str, Any] | None,
              b_cfg: dict[str, Any] | None, names: tuple[str, str], table=render_table, verbose: bool = False,
              quiet: bool = False) -> str:
    heads = ["", f"A: {names[0]}", f"B: {names[1]}", "change"]
    if quiet:
        if c is None:
            return "no comparison: a plan has no configuration to compare"
        ch = c.change("cost_per_million_usd")
        return f"{c.old_config} -> {c.new_config}: cost per 1M inferences {fmt_ratio(ch.ratio)}, " \
               f"latency {fmt_ratio(c.change('latency_ms').ratio)}"
    out = [table(heads, diff_context_rows(a, b, a_cfg, b_cfg))]
    if c is not None:
        out += [""] + comparison_text(c, table, verbose=verbose, headers=heads)
        for n in c.notes:
            out.append(f"note  {n}")
    rows = best_per_target_rows(a, b)
    if len(rows) > 1 or verbose:
        out += ["", "best configuration per target (* B's choice):", table(BEST_HEADERS, rows, right={1, 2, 3, 4, 5})]
    return "\n".join(out)


def diff_markdown(a: dict[str, Any], b: dict[str, Any], c: Comparison | None, a_cfg: dict[str, Any] | None,
                  b_cfg: dict[str, Any] | None, names: tuple[str, str]) -> str:
    heads = ["", f"A: {names[0]}", f"B: {names[1]}", "change"]
    out = [f"### plan diff `{md_escape(names[0])}` → `{md_escape(names[1])}`", "",
           md_table(heads, diff_context_rows(a, b, a_cfg, b_cfg))]
    if c is not None:
        out += [""] + comparison_markdown(c, headers=heads)
    rows = best_per_target_rows(a, b)
    if len(rows) > 1:
        out += ["", "**Best configuration per target**", "", md_table(BEST_HEADERS, rows, right={1, 2, 3, 4, 5})]
    return "\n".join(out)
