"""A decoder plan as text: the phases and token economics people act on, then where decode time goes."""

from __future__ import annotations

from collections.abc import Callable

from planner.output.passes_text import pipeline_lines
from planner.output.text import render_table, summary_lines
from planner.search.plan_types import CandidateReport, Plan
from planner.units import fmt_bytes, fmt_flops, fmt_num


def _row(c: CandidateReport, mark: str) -> list[str]:
    fit = "fits" if c.fits else "NO FIT"
    precision = c.precision if c.pipeline == "none" else f"{c.precision} [{c.pipeline}]"
    return [mark + c.target, precision, str(c.devices), str(c.batch), fmt_num(c.ttft_ms), fmt_num(c.tpot_ms),
            fmt_num(c.tokens_per_s), f"{fmt_bytes(c.peak_memory_bytes)} / {fmt_bytes(c.memory['capacity'])} {fit}",
            fmt_num(c.cost_per_million_input_tokens_usd, 4), fmt_num(c.cost_per_million_output_tokens_usd, 4),
            c.bound]


HEADERS = ["target", "precision", "devices", "batch", "TTFT ms", "TPOT ms", "tokens/s",
           "memory per device / capacity", "$/1M in", "$/1M out", "decode bound"]


def decoder_chosen_line(c: CandidateReport) -> str:
    return (f"chosen   {c.target} x {c.devices} at batch {c.batch}: TTFT {fmt_num(c.ttft_ms)} ms, TPOT "
            f"{fmt_num(c.tpot_ms)} ms, {fmt_num(c.tokens_per_s)} tokens/s, ${fmt_num(c.cost_per_million_usd, 4)} "
            f"per million requests (${fmt_num(c.cost_per_million_input_tokens_usd, 4)} per 1M input tokens, "
            f"${fmt_num(c.cost_per_million_output_tokens_usd, 4)} per 1M output tokens)")


def render_decoder_plan(plan: Plan, top: int = 8, table: Callable[..., str] = render_table) -> str:
    m, d = plan.model, plan.model.decoder or {}
    kv = f"{d.get('kv_heads')} KV heads x {d.get('head_dim')}" if d.get("kv_heads") else "KV layout not BNSH"
    out = [f"model    {m.path}  ({m.nodes} nodes, weights {fmt_bytes(m.weight_bytes)}, {d.get('weights')})",
           f"decoder  {d.get('layers')} layers, {kv}, hidden {d.get('hidden_size')}, vocab {d.get('vocab_size')}, "
           f"{d.get('attention')}; KV {fmt_bytes(d.get('kv_bytes_per_token'))} per token ({d.get('kv_dtype')})",
           f"workload prompt {d.get('prompt_len')} + generate {d.get('gen_len')} tokens; decode timed at context "
           f"{d.get('decode_context')} (the mean); decode {fmt_flops(d.get('decode_flops_per_token', 0))} per token, "
           f"prefill {fmt_flops(d.get('prefill_flops', 0))} per request"]
    out += summary_lines(m)
    out.append("")
    chosen = plan.chosen
    rows = []
    for c in plan.best_per_target.values():
        rows.append(_row(c, "* " if c is chosen else "  "))
    shown = {c.target for c in plan.best_per_target.values()}
    for c in plan.candidates:  # targets where nothing fits: show why, once
        if c.target not in shown and c.rejected:
            rows.append(_row(c, "  "))
            shown.add(c.target)
    limits = [f"{k.replace('_', ' ')} {v:g}" for k, v in plan.constraints.items()
              if k in ("max_ttft_ms", "max_tpot_ms", "max_latency_ms") and v]
    out.append("best configuration per target (cheapest per request that fits"
               + (f" and meets {', '.join(limits)}" if limits else "") + "):")
    out.append(table(HEADERS, rows, right={2, 3, 4, 5, 6, 8, 9}))
    out.append("")
    passes = pipeline_lines(plan)  # pipelines tried: generation agreement, host timings, the chosen one's drift
    if passes:
        out += passes + [""]
    if chosen is None:
        why = sorted({c.rejected for c in plan.candidates if c.rejected and not c.rejected.startswith("lost")})
        out.append("no plan: no configuration fits and meets the constraints (" + "; ".join(why[:3]) + ")")
        return "\n".join(out)
    c = chosen
    ph = c.phases or {}
    dec, pre = ph.get("decode", {}), ph.get("prefill", {})
    out.append(decoder_chosen_line(c))
    out.append(f"memory   per device: weights {fmt_bytes(c.memory['weights'])}, KV cache "
               f"{fmt_bytes(c.memory['kv_cache'])}, activations {fmt_bytes(c.memory['activations'])}, workspace "
               f"{fmt_bytes(c.memory['workspace'])}; largest batch that fits {c.max_batch_fits}")
    for name, p in (("prefill", pre), ("decode", dec)):
        if p:
            out.append(f"{name:8s} {fmt_num(p['latency_ms'])} ms, {p['bound']}-bound: roofline "
                       f"{fmt_num(p['roofline_ms'])} ms (compute {fmt_num(p['compute_ms'])}, memory "
                       f"{fmt_num(p['memory_ms'])}), launch {fmt_num(p['launch_ms'])} ms"
                       + (f", all-reduce {fmt_num(p['comm_ms'])} ms" if p.get("comm_ms") else "")
                       + (f" (eager launches: {fmt_num(p['eager_latency_ms'])} ms)"
                          if name == "decode" and abs(p["eager_latency_ms"] - p["latency_ms"]) > 1e-9 else ""))
    tp = (d.get("tensor_parallel") or {}).get(c.target, {})
    if len(tp.get("by_devices", {})) > 1:
        parts = []
        for n, v in tp["by_devices"].items():
            if isinstance(v, dict):
                parts.append(f"{n}: ${fmt_num(v['cost_per_million_output_tokens_usd'], 4)}/1M out at batch "
                             f"{v['batch']}")
            else:
                parts.append(f"{n}: {v}")
        out.append(f"devices  {c.target}: " + "; ".join(parts))
    out.append("")
    out.append(f"top decode kernels on {c.target} (batch {c.batch}, per device):")
    krows = [[k.ops if len(k.ops) < 40 else k.ops[:37] + "...", k.name[:40], k.dtype, fmt_num(k.time_ms),
              f"{100 * k.share:.1f}%", k.bound, fmt_num(k.intensity)] for k in c.kernels[:top]]
    out.append(table(["ops", "node", "dtype", "time ms", "share", "bound", "FLOP/byte"], krows, right={3, 4, 6}))
    return "\n".join(out)
