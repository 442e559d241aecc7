"""`plan report MODEL --target T --out report.html|report.md`: the plan as a page with a roofline chart."""

from __future__ import annotations

import argparse
import sys

from planner.api import plan
from planner.calibration.host import resolve_targets
from planner.commands.args import parse_dims, positive_float, positive_int
from planner.output.console import table_renderer
from planner.output.plan_text import chosen_line, render_plan
from planner.output.progress import Progress
from planner.output.report import report_format, write_report

NAME = "report"
HELP = "plan MODEL and write an HTML or markdown report: summary, alternatives, roofline chart, time by op type"


def add_arguments(p: argparse.ArgumentParser) -> None:

    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("--target", default="a10g", help="target name, comma-separated names, or 'all'; default a10g")
    p.add_argument("--target-file", action="append", default=[], metavar="TOML",
                   help="add a target from a TOML file (repeatable)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="bind a symbolic dim (repeatable)")
    p.add_argument("--batch", type=positive_int, help="bind the batch dim (default: sweep 1, 2, 4, ...)")
    p.add_argument("--max-batch", type=positive_int, default=256, help="largest batch in the sweep (default 256)")
    p.add_argument("--max-latency-ms", type=positive_float, help="latency limit per batch")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="report.html (self-contained page) or report.md (plus report.roofline.svg beside it)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="also print the plan's table")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    report_format(args.out)  # refuse a bad --out before planning
    with Progress("planning", enabled=not args.quiet) as bar:
        p = plan(args.model, targets=args.target, dims=parse_dims(args.dim), batch=args.batch,
                 max_latency_ms=args.max_latency_ms, target_files=args.target_file, max_batch=args.max_batch,
                 progress=bar.update)
    target = None
    if p.chosen is not None:
        target = next(t for t in resolve_targets(args.target, args.target_file) if t.name == p.chosen.target)
    written = write_report(p.to_dict(), target, args.out, refuse={Path(args.model)})
    if args.verbose:
        print(render_plan(p, table=table_renderer(sys.stdout)) + "\n")
    if not args.quiet:
        print(chosen_line(p))
        print("wrote " + ", ".join(str(w) for w in written))
    return 0 if p.chosen is not None else 1
