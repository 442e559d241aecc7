"""`plan diff A.json B.json`: two plans side by side, and the kernels that account for the difference.

By default each plan's chosen configuration is compared; `--target T` compares each plan's best configuration
on T instead, which is like for like when the two plans chose different targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from planner.ci.compare import compare_configs, comparison_dict
from planner.ci.compare_text import diff_markdown, diff_text
from planner.ci.github import append_step_summary
from planner.output.console import table_renderer
from planner.output.planfile import PlanFileError, read_plan

NAME = "diff"
HELP = "compare two plan JSON files side by side"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A.json", help="the earlier plan (e.g. the committed baseline)")
    p.add_argument("b", metavar="B.json", help="the later plan")
    p.add_argument("--target", help="compare each plan's best configuration on this target instead of its choice")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--markdown", action="store_true", help="print markdown (for a pull-request comment)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="one line: the configurations and the cost change")
    loud.add_argument("-v", "--verbose", action="store_true", help="every changed kernel, op type and memory part")


def _config(doc: dict[str, Any], target: str | None, name: str) -> dict[str, Any] | None:

    if target is None:
        return doc.get("chosen")
    best = doc.get("best_per_target") or {}
    if target in best:
        return best[target]
    chosen = doc.get("chosen")
    if chosen and chosen.get("target") == target:
        return chosen
    known = ", ".join(best) or "none"
    raise PlanFileError(f"{name}: no configuration on target {target!r} (it has: {known})")


def run(args: argparse.Namespace) -> int:

    a, b = read_plan(args.a, role="plan"), read_plan(args.b, role="plan")
    ca, cb = _config(a, args.target, args.a), _config(b, args.target, args.b)
    # A chosen config in a plan carries every kernel; a best_per_target entry only its top ones. Prefer the
    # chosen dict when it is the same configuration.
    for doc, cfg, i in ((a, ca, 0), (b, cb, 1)):
        ch = doc.get("chosen")
        if cfg is not None and ch and ch is not cfg and (ch.get("target"), ch.get("batch")) == (cfg.get("target"),
                                                                                          cfg.get("batch")):
            if i == 0:
                ca = ch
            else:
                cb = ch
    c = compare_configs(ca, cb) if ca is not None and cb is not None else None
    names = (args.a, args.b)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "comparison": comparison_dict(c) if c else None}, indent=2))
    elif args.markdown:
        print(diff_markdown(a, b, c, ca, cb, names))
    else:
        print(diff_text(a, b, c, ca, cb, names, table=table_renderer(sys.stdout), verbose=args.verbose,
                        quiet=args.quiet))
    append_step_summary(diff_markdown(a, b, c, ca, cb, names))
    return 0
