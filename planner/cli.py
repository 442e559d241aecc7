"""The `plan` command. Every user error is one line on stderr and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from planner.commands import SUBCOMMANDS
from planner.commands import plan as plan_command
from planner.errors import PlannerError, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, instead of usage + message
        raise PlannerError(f"{message} (see '{self.prog} --help')")


_DESCRIPTION = """Predict what an ONNX model costs to serve on each hardware target and choose the cheapest plan.

  plan MODEL --target a10g            plan one model on one target
  plan MODEL --target a10g,t4 --json  compare targets, JSON out
  plan targets                        list the targets
"""


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, Callable]:
    if argv and argv[0] in SUBCOMMANDS:
        mod = SUBCOMMANDS[argv[0]]
        p = _Parser(prog=f"plan {argv[0]}", description=mod.HELP)
        mod.add_arguments(p)
        return p, mod.run
    p = _Parser(prog="plan", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="subcommands: " + ", ".join(SUBCOMMANDS))
    plan_command.add_arguments(p)
    return p, plan_command.run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, fn = build_parser(argv)
        args = parser.parse_args(argv[1:] if argv and argv[0] in SUBCOMMANDS else argv)
        return fn(args)
    except PlannerError as e:
        print(f"plan: error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("plan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("plan: error: out of memory while planning this model", file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours, still reported on one line; PLANNER_DEBUG=1 shows the traceback
        if os.environ.get("PLANNER_DEBUG"):
            raise
        print(f"plan: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              "(set PLANNER_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
