"""The plan's fleet block as text: per target, replicas, batching policy, simulated percentiles, $ a month."""

from __future__ import annotations

from collections.abc import Callable

from planner.output.text import render_table
from planner.units import fmt_num


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.0f}"


def fleet_line(fleet: dict) -> str:
    """One line: the chosen fleet, or that none meets the SLO."""
    c = fleet["chosen"]
    if c is None:
        return f"fleet    none meets the SLO ({fleet['slo'] or 'none'}) at {fleet['traffic']['description']}"
    policy = (f"max {c['max_batch']} sequences in flight" if "max_seqs_in_flight" in c else
              f"max batch {c['max_batch']}, max queue delay {fmt_num(c['max_queue_delay_ms'])} ms")
    devices = f" x {c['devices_per_replica']} devices" if c["devices_per_replica"] > 1 else ""
    lat = c["latency_ms"]
    shown = (f"TTFT p95 {fmt_num(lat['ttft_p95'])} ms, TPOT p95 {fmt_num(lat['tpot_p95'])} ms"
             if "ttft_p95" in lat else f"p99 {fmt_num(lat['p99'])} ms")
    return (f"fleet    {c['target']}: {c['replicas']} replica{'s' if c['replicas'] > 1 else ''}{devices}, {policy}, "
            f"utilization {100 * c['utilization']:.0f}%, {shown}, {_money(c['monthly_cost_at_traffic_usd'])}/month")


def render_fleet(fleet: dict, table: Callable[..., str] = render_table) -> str:
    slo = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} <= {v:g} ms" for k, v in fleet["slo"].items())
    out = [f"fleet for {fleet['traffic']['description']}; SLO: {slo or 'none (keep up)'}",
           f"  ({fleet['method']}; seed {fleet['seed']}, {fleet['search_s']:.2f} s)"]
    decoder = any("max_seqs_in_flight" in o for o in fleet["per_target"])
    lat = ["ttft_p95", "tpot_p95", "p99"] if decoder else ["p50", "p95", "p99"]
    headers = ["target", "replicas", "devices", "max batch" if not decoder else "max seqs", "delay ms", "util",
               *[f"{k} ms" for k in lat], "$/month", "$/month at traffic", "why not"]
    chosen = fleet["chosen"]["target"] if fleet["chosen"] else None
    rows = []
    for o in fleet["per_target"]:
        ok = o["replicas"] is not None
        rows.append([("* " if o["target"] == chosen else "  ") + o["target"], str(o["replicas"] or "-"),
                     str(o["devices_per_replica"]), str(o["max_batch"] or "-"), fmt_num(o["max_queue_delay_ms"]),
                     f"{100 * o['utilization']:.0f}%" if ok else "-",
                     *[fmt_num(o["latency_ms"].get(k)) if ok else "-" for k in lat],
                     _money(o["monthly_cost_usd"]), _money(o["monthly_cost_at_traffic_usd"]), o["rejected"] or ""])
    out.append(table(headers, rows, right={1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
    same: dict[str, list[str]] = {}  # one line per distinct overhead, naming its targets
    for target, o in (fleet.get("serving_overhead") or {}).items():
        line = (f"server overhead {o['per_batch_s'] * 1e6:.3g} us a batch + {o['per_request_s'] * 1e6:.3g} us a "
                f"request, {o['latency_s'] * 1e6:.3g} us outside it ({o['source']})")
        same.setdefault(line, []).append(target)
    out += [f"  {', '.join(targets)}: {line}" for line, targets in same.items()]
    out.append(fleet_line(fleet))
    return "\n".join(out)
