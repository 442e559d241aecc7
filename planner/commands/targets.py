"""`plan targets`: the hardware targets the planner knows, with their headline numbers."""

from __future__ import annotations

import argparse
import json

from planner.calibration.host import get_target
from planner.output.text import render_table
from planner.targets.catalog import bundled_targets, load_target_file
from planner.units import fmt_bytes, fmt_num

NAME = "targets"
HELP = "list the hardware targets"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-file", action="append", default=[], metavar="TOML")
    p.add_argument("--host", action="store_true", help="also detect and show this machine")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:

    targets = list(bundled_targets().values()) + [load_target_file(f) for f in args.target_file]
    if args.host:
        targets.append(get_target("host"))
    rows = []
    for t in targets:
        peaks = t.matrix_flops_per_s
        best = max(peaks, key=lambda k: peaks[k]) if peaks else "-"
        rows.append([t.name, t.kind, t.full_name[:44], fmt_bytes(t.mem_capacity_bytes),
                     f"{t.mem_bw_bytes_per_s / 1e9:,.0f} GB/s",
                     f"{peaks.get('fp16', peaks.get('bf16', 0)) / 1e12:,.4g}" if peaks else "-",
                     f"{best} {peaks[best] / 1e12:,.4g}" if peaks else "-",
                     fmt_num(t.price_usd_per_hour, 4), t.price_instance[:28]])
    if args.json:
        print(json.dumps([{"name": t.name, "full_name": t.full_name, "kind": t.kind,
                           "matrix_flops_per_s": dict(t.matrix_flops_per_s),
                           "mem_bw_bytes_per_s": t.mem_bw_bytes_per_s, "mem_capacity_bytes": t.mem_capacity_bytes,
                           "price_usd_per_hour": t.price_usd_per_hour, "path": t.path} for t in targets], indent=2))
        return 0
    print(render_table(["name", "kind", "device", "memory", "bandwidth", "fp16 TFLOP/s", "top peak T/s",
                        "$/hour", "priced as"], rows, right={3, 4, 5, 7}))
    if not args.host:
        print("\nplus 'host' (this machine, detected at run time): plan targets --host")
    return 0
