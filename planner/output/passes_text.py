"""The pass pipelines of a plan as text: what each did, its drift, and why it won or lost."""

from __future__ import annotations

from planner.search.plan_types import Plan
from planner.units import fmt_bytes


def _drift_text(d: dict | None) -> str:
    if not d:
        return "-"
    g = d.get("generation")
    if g:  # a decoder, judged by generation (planner.llm.generation)
        return (f"agree {g['agreement']:.3f} (greedy {g['greedy_agreement']:.3f}) over {g['tokens']} tokens, "
                f"cos min {g['cosine_min']:.4f}, ppl {100 * g['perplexity_change']:+.2f}%")
    text = f"cos {d['cosine']:.5f}, max abs {d['max_abs_err']:.3g}"
    if d.get("top1") is not None:
        text += f", top-1 {d['top1']:.3f}"
    return text


def pipeline_lines(plan: Plan) -> list[str]:
    """A 'passes' block for render_plan: one line per pipeline tried; [] when only the stored model was planned."""
    if not plan.pipelines or len(plan.pipelines) < 2:
        out = []
    else:
        best: dict[str, object] = {}
        for c in plan.candidates:
            if c.cost_per_million_usd is None:
                continue
            cur = best.get(c.pipeline)
            if c.rejected is None or c.rejected.startswith("lost"):
                if cur is None or c.cost_per_million_usd < cur.cost_per_million_usd:
                    best[c.pipeline] = c
        chosen = plan.chosen.pipeline if plan.chosen else None
        out = [f"passes   pipelines tried (--passes {plan.constraints.get('passes', 'auto')}, "
               f"--max-drift {plan.constraints.get('max_drift', '-')}; drift measured once on this host with "
               "onnxruntime):"]
        for r in plan.pipelines:
            name = r["pipeline"]
            mark = "*" if name == chosen else " "
            steps = r.get("steps") or []
            weights = next((s["counts"].get("weight_bytes_after") for s in steps
                            if "weight_bytes_after" in s.get("counts", {})), None)
            dropped = [f"{s['name']} ({s['reason']})" for s in steps if not s["applied"] and s.get("reason")]
            if r.get("rejected"):
                status = f"not planned: {r['rejected']}"
            elif name in best:
                status = f"best ${best[name].cost_per_million_usd:.4g}/1M on {best[name].target}"
            else:
                why = next((c.rejected for c in plan.candidates if c.pipeline == name and c.rejected), None)
                status = why or "no candidate"
            passes = " > ".join(r.get("passes") or []) or "(as stored)"
            line = f"  {mark} {name:<13} {passes:<48} drift {_drift_text(r.get('drift')):<40} "
            if weights is not None:
                line += f"weights {fmt_bytes(weights)}  "
            host = r.get("host_measured") or {}
            if "decode_speedup" in host:  # a decoder's phases timed here
                line += f"host decode x{host['decode_speedup']:.2f} ({host['decode_ms']:.3g} ms/token)"
                if "wide_decode_speedup" in host:
                    line += f", x{host['wide_decode_speedup']:.2f} at batch {host['wide_batch']}"
                line += f", prefill x{host['prefill_speedup']:.2f}  "
            out.append((line + status).rstrip())
            for d in dropped:
                out.append(f"      dropped {d}")
    c = plan.chosen
    if c is not None and c.pipeline != "none":
        out.append(f"drift    of the chosen model ({c.pipeline}) against the original: {_drift_text(c.drift)}"
                   + (f" on {c.drift['inputs']} inputs" if c.drift else ""))
    if c is not None:
        for note in c.notes:
            out.append(f"runtime  {note}")
    return out
