"""`plan validate MODEL`: predict on this machine, then measure with onnxruntime, and show the error."""

from __future__ import annotations

import argparse
import json

from planner.calibration.validate import validate
from planner.commands.args import parse_dims, parse_values, positive_int
from planner.commands.predict import add_common

NAME = "validate"
HELP = "predict a model on this machine, then run it in onnxruntime and compare (end to end, per kernel, memory)"


def add_arguments(p: argparse.ArgumentParser) -> None:

    add_common(p)
    p.add_argument("--runs", type=positive_int, default=10,
                   help="timed runs after the warm-up, at least (default 10; a fast model runs 0.1 s)")
    p.add_argument("--plot", metavar="FILE.png", help="plot predicted against measured per kernel (needs matplotlib)")
    p.add_argument("--top", type=int, default=8, help="worst kernels shown (default 8)")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def render(v, top: int = 8) -> str:
    lines = [f"{v.model}: {v.threads} thread{'s' if v.threads != 1 else ''}, {v.runs} runs, "
             f"dims {', '.join(f'{k}={x}' for k, x in v.dims.items()) or 'all fixed'}; calibration {v.calibration}",
             f"  end to end   predicted {v.predicted_ms:.4g} ms, measured {v.measured_ms:.4g} ms: {_pct(v.error)}",
             f"               (wall clock {v.measured_wall_ms:.4g} ms, {_pct(v.wall_error)}; the model had a CPU "
             f"{100 * v.cpu_share:.0f}% of the time)",
             f"  peak memory  predicted {_mb(v.predicted_peak_memory_bytes)}, measured {_mb(v.measured_rss_peak_bytes)}"
             f" resident: {_pct(v.memory_error)}",
             f"  activations  predicted {_mb(v.predicted_activation_bytes)}, onnxruntime arena peak "
             f"{_mb(v.measured_arena_peak_bytes)}",
             "  per op type (matched kernels)        predicted    measured    error"]
    for o in v.op_types[:12]:
        lines.append(f"    {o.op_type:<24} x{o.kernels:<4}  {o.predicted_ms:9.3f} ms {o.measured_ms:9.3f} ms "
                     f"{_pct(o.error):>8}")
    lines.append("  worst-predicted kernels                           predicted    measured")
    for k in v.worst(top):
        lines.append(f"    {k.name[:40]:<40} {k.op_type[:12]:<12} {k.predicted_us:9.1f} us {k.measured_us:9.1f} us "
                     f"{_pct(k.error):>8}")
    if v.unmatched_measured or v.unmatched_predicted:
        lines.append(f"  unmatched: {len(v.unmatched_measured)} measured nodes, {len(v.unmatched_predicted)} "
                     "predicted kernels")
    if v.plot:
        lines.append(f"  plot: {v.plot}")
    lines += [f"  note: {n}" for n in v.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:

    v = validate(args.model, threads=args.threads, runs=args.runs, dims=parse_dims(args.dim), batch=args.batch,
                 calibration_path=args.calibration, plot=args.plot, values=parse_values(args.value))
    print(json.dumps(v.to_dict(), indent=2) if args.json else render(v, args.top))
    return 0
