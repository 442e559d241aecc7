"""`plan check`: fail CI when a model got more expensive to serve than its committed baseline plan.

Exit 0 within the limit, 1 on a regression, 2 on an error (a missing, corrupt or foreign baseline is one
line). In GitHub Actions it also prints annotations and appends a summary table to the job summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from planner.atomic import write_atomic
from planner.ci.compare import METRICS
from planner.ci.compare_text import check_markdown, check_text, fmt_ratio
from planner.ci.fleet_gate import check_fleet
from planner.ci.gate import check, parse_increase
from planner.ci.github import annotation, append_step_summary, in_github_actions
from planner.commands.args import positive_float
from planner.commands.plan import add_traffic_arguments, fleet_request
from planner.errors import PlannerError
from planner.fleet.block import FleetRequest
from planner.output.console import table_renderer
from planner.output.planfile import read_plan
from planner.output.progress import Progress

NAME = "check"
HELP = ("re-plan MODEL under a baseline plan's settings; exit 1 if the predicted cost (or latency, memory) "
        "grew by more than --max-increase")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to the .onnx file to check")
    p.add_argument("--baseline", required=True, metavar="PLAN.json",
                   help="a plan written earlier by 'plan MODEL --out PLAN.json' (targets, dims and batch come "
                        "from it)")
    p.add_argument("--max-increase", default="5%", metavar="PCT",
                   help="largest allowed increase, e.g. 5%% or 0.5%% (default 5%%)")
    p.add_argument("--metric", choices=["cost", "latency", "memory", "monthly-cost"], default="cost",
                   help="what is gated: cost per million inferences (default), latency per batch, peak memory, "
                        "or the cheapest fleet's $ a month at a stated traffic (monthly-cost: the traffic and "
                        "SLO below, else the baseline's fleet block)")
    p.add_argument("--max-monthly-usd", type=positive_float, metavar="USD",
                   help="monthly-cost: also fail when the cheapest fleet costs more than USD a month")
    add_traffic_arguments(p)
    p.add_argument("--update-baseline", action="store_true",
                   help="accept the change: rewrite the baseline (atomically) with the new plan and exit 0")
    p.add_argument("--target-file", action="append", default=[], metavar="TOML",
                   help="a target the baseline names that is not bundled (repeatable)")
    p.add_argument("--json", action="store_true", help="print the verdict and comparison as JSON")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    loud.add_argument("-v", "--verbose", action="store_true", help="every changed kernel, op type and memory part")


def _annotations(r, model: str) -> list[str]:

    label = METRICS[r.metric][1]
    top = r.comparison.top_kernels(3)
    where = "; most of it in " + ", ".join(f"{k.name} ({k.delta_ms:+.3g} ms)" for k in top) if top else ""
    out = []
    if r.regression:
        out.append(annotation("error", f"{'; '.join(r.reasons)} at {r.comparison.new_config}{where}", file=model,
                              title=f"plan check: {label} regression"))
    elif (r.change or 0) > 0:
        out.append(annotation("warning", f"{label} {fmt_ratio(r.change)} at {r.comparison.new_config} "
                                         f"(within the limit of +{100 * r.max_increase:g}%){where}",
                              file=model, title=f"plan check: {label} increased"))
    if r.cheapest_now is not None and r.cheapest_changed:
        out.append(annotation("warning", f"cheapest configuration changed: {r.cheapest_before} -> {r.cheapest_now}",
                              file=model, title="plan check: cheapest configuration changed"))
    return out


def run(args: argparse.Namespace) -> int:
    limit = parse_increase(args.max_increase)
    request = fleet_request(args)
    if args.metric != "monthly-cost" and (request is not None or args.max_monthly_usd is not None):
        raise PlannerError("--qps, --traffic, the SLO flags and --max-monthly-usd go with --metric monthly-cost")
    baseline = read_plan(args.baseline, role="baseline")
    if args.metric == "monthly-cost":
        return _run_fleet(args, baseline, request, limit)
    with Progress("re-planning", enabled=not (args.quiet or args.json)) as bar:
        r = check(args.model, baseline, metric=args.metric, max_increase=limit, target_files=args.target_file,
                  progress=bar.update)
    if args.json:
        print(json.dumps(r.to_dict(baseline.get("model")), indent=2))
    else:
        print(check_text(r, baseline.get("model") or {}, table=table_renderer(sys.stdout), verbose=args.verbose,
                         quiet=args.quiet))
        if in_github_actions():
            for line in _annotations(r, args.model):
                print(line)
    append_step_summary(check_markdown(r, str(args.baseline)))
    if args.update_baseline:
        write_atomic(args.baseline, json.dumps(r.fresh.to_dict(), indent=2) + "\n", refuse={Path(args.model)})
        if not args.quiet:
            print(f"baseline {args.baseline} updated", file=sys.stderr)
        return 0
    return 1 if r.regression else 0


def _run_fleet(args: argparse.Namespace, baseline: dict, request: FleetRequest | None, limit: float) -> int:
    """--metric monthly-cost: the cheapest fleet's $ a month at the traffic, against the baseline's."""
    with Progress("re-planning", enabled=not (args.quiet or args.json)) as bar:
        r = check_fleet(args.model, baseline, request, limit, args.max_monthly_usd, args.target_file, bar.update)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
    else:
        print(r.text().splitlines()[0] if args.quiet else r.text())
    if args.update_baseline:
        write_atomic(args.baseline, json.dumps(r.fresh.to_dict(), indent=2) + "\n", refuse={Path(args.model)})
        return 0
    return 1 if r.regression else 0
