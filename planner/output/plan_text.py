"""The plan as text at a terminal: the comparison people act on first, details after."""

from __future__ import annotations

from collections.abc import Callable

from planner.output.decoder_text import decoder_chosen_line, render_decoder_plan
from planner.output.passes_text import pipeline_lines
from planner.output.text import render_table, summary_lines
from planner.search.plan_types import CandidateReport, Plan
from planner.units import fmt_bytes, fmt_flops, fmt_num


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

        return decoder_chosen_line(c)
    return (f"chosen   {c.target} at batch {c.batch}: {fmt_num(c.latency_ms)} ms per batch, "
            f"{fmt_num(c.throughput_per_s)} inferences/s, ${fmt_num(c.cost_per_million_usd, 4)} per million, "
            f"{c.bound}-bound")


def render_plan(plan: Plan, top: int = 8, table: Callable[..., str] = render_table) -> str:
    """`table` draws each table: the plain renderer here, rich at a terminal (planner.output.console)."""
    if plan.model.decoder is not None:

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
