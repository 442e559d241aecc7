"""The plan as text at a terminal: the comparison people act on first, details after."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from planner.output.passes_text import pipeline_lines
from planner.search.plan_types import CandidateReport, ModelSummary, Plan


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{int(n)} B"


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def fmt_flops(x: float) -> str:
    for unit, div in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{int(x)} FLOP"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        cols = enumerate(zip(cells, widths, strict=False))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in cols)

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _row(c: CandidateReport, mark: str = "") -> list[str]:
    fit = "fits" if c.fits else "NO FIT"
    return [mark + c.target, c.precision, str(c.batch), fmt_num(c.latency_ms), fmt_num(c.throughput_per_s),
            f"{fmt_bytes(c.peak_memory_bytes)} / {fmt_bytes(c.memory['capacity'])} {fit}",
            fmt_num(c.cost_per_million_usd, 4), c.bound]


def chosen_line(plan: Plan) -> str:
    """The one line that says what was chosen (all that `plan --quiet` prints)."""
    c = plan.chosen
    if c is None:
        why = sorted({c.rejected for c in plan.candidates if c.rejected and not c.rejected.startswith("lost")})
        return "no plan: no candidate fits and meets the constraints (" + "; ".join(why[:3]) + ")"
    if c.tpot_ms is not None:  # a decoder (planner.llm)
        from planner.output.decoder_text import decoder_chosen_line

        return decoder_chosen_line(c)
    return (f"chosen   {c.target} at batch {c.batch}: {fmt_num(c.latency_ms)} ms per batch, "
            f"{fmt_num(c.throughput_per_s)} inferences/s, ${fmt_num(c.cost_per_million_usd, 4)} per million, "
            f"{c.bound}-bound")


def summary_lines(m: ModelSummary, bind_hint: str = "") -> list[str]:
    """The defaults, unknown ops and notes every rendering of a plan shows under the model line."""
    out = []
    if m.defaults_used:
        out.append(f"defaults {'; '.join(m.defaults_used)}{bind_hint}")
    if m.unknown_ops:
        out.append(f"unknown  {', '.join(m.unknown_ops)} (no cost formula: planned by bytes only)")
    out += [f"note     {note}" for note in m.notes]
    return out


def render_plan(plan: Plan, top: int = 8, table: Callable[..., str] = render_table) -> str:
    """`table` draws each table: the plain renderer here, rich at a terminal (planner.output.console)."""
    if plan.model.decoder is not None:
        from planner.output.decoder_text import render_decoder_plan

        return render_decoder_plan(plan, top=top, table=table)
    m = plan.model
    out = [f"model    {m.path}  ({m.nodes} nodes, opset {m.opset}, weights {fmt_bytes(m.weight_bytes)}, "
           f"{fmt_flops(m.flops)} per run)"]
    dims = ", ".join(f"{k}={v}" for k, v in m.dims.items()) or "all fixed"
    out.append(f"dims     {dims}")
    out += summary_lines(m, bind_hint="  (bind with --dim NAME=VALUE / --batch N)")
    out.append("")
    headers = ["target", "precision", "batch", "latency ms", "throughput/s", "peak memory / capacity",
               "$ per 1M", "bound"]
    chosen_target = plan.chosen.target if plan.chosen else None
    rows = [_row(c, "* " if c.target == chosen_target else "  ") for c in plan.best_per_target.values()]
    no_fit = [t for t in plan.constraints.get("targets", []) if t not in plan.best_per_target]
    for c in plan.candidates:
        if c.target in no_fit and c.rejected:
            rows.append(_row(c, "  "))
            no_fit.remove(c.target)
    out.append("best configuration per target (cheapest per million inferences that fits"
               + (f" and meets {plan.constraints['max_latency_ms']:g} ms" if plan.constraints.get("max_latency_ms")
                  else "") + "):")
    out.append(table(headers, rows, right={2, 3, 4, 6}))
    out.append("")
    out.append(chosen_line(plan))
    out += pipeline_lines(plan)  # pass pipelines, the chosen model's drift, what the runtime really runs
    if plan.chosen is None:
        return "\n".join(out)
    c = plan.chosen
    out.append("")
    out.append(f"top kernels on {c.target} (batch {c.batch}):")
    krows = [[k.ops if len(k.ops) < 40 else k.ops[:37] + "...", k.name[:32], k.dtype, fmt_num(k.time_ms),
              f"{100 * k.share:.1f}%", k.bound, fmt_num(k.intensity)] for k in _ranked(c, top)]
    out.append(table(["ops", "node", "dtype", "time ms", "share", "bound", "FLOP/byte"], krows, right={3, 4, 6}))
    return "\n".join(out)


def render_candidates(plan: Plan, table: Callable[..., str] = render_table) -> str:
    """Every configuration the search tried and why each lost (`plan --verbose`)."""
    rows = [_row(c, "* " if c is plan.chosen else "  ") + [c.rejected or "chosen"] for c in plan.candidates]
    headers = ["target", "precision", "batch", "latency ms", "throughput/s", "peak memory / capacity", "$ per 1M",
               "bound", "why not chosen"]
    return "every configuration tried:\n" + table(headers, rows, right={2, 3, 4, 6})


def _ranked(c: CandidateReport, top: int) -> list:
    """The `top` slowest kernels: from the top list, or from every kernel when more are asked for."""
    if top <= len(c.kernels) or not c.all_kernels:
        return list(c.kernels[:top])
    return sorted(c.all_kernels, key=lambda k: -k.time_ms)[:top]
