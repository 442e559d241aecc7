"""Run the `plan` CLI in-process on one model and say what happened: planned, refused (why), or crashed.

The walk over onnx's test data, the fuzzer and their tests all need the same verdict, and it must come from
the very code path a user's terminal takes (`planner.cli.main`), not from a private shortcut. A refusal is a
`PlannerError` (one line, exit 2); anything else that escapes is a bug of ours and is counted as a crash with
its traceback, including the CLI's last-resort "internal error" (exit 3), an out-of-memory exit, and a case
that runs past its time limit (a hang on a crafted shape is a bug too).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from planner import cli

PLANNED, REFUSED, CRASHED = "planned", "refused", "crashed"


class CaseTimeout(BaseException):
    """Raised inside a case that ran past its time limit; a BaseException so that no `except Exception` in the
    code under test can swallow it and run on."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # PLANNED, REFUSED or CRASHED
    exit_code: int | None
    message: str = ""  # the refusal line, or the crash's last traceback line
    detail: str = ""  # the full traceback of a crash


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """SIGALRM-based limit; a no-op off the main thread or without SIGALRM (it cannot be enforced there)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise CaseTimeout(f"ran past {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_plan_cli(model_path: str | os.PathLike, args: Sequence[str] = ("--target", "a10g", "--json"),
                 timeout_s: float | None = 60.0, watch: str | os.PathLike | None = None) -> Outcome:
    """`plan MODEL ARGS` through planner.cli.main, with PLANNER_DEBUG set so that a bug shows its traceback.

    `watch`: a folder (the working folder, the model's) in which the run must create nothing; a new entry there
    is a crash too (a stray temporary file escaped), and it is removed.
    """

    before = set(os.listdir(watch)) if watch is not None else set()
    outcome = _run(cli.main, model_path, args, timeout_s)  # looked up per call: tests replace it
    if watch is not None:
        stray = sorted(set(os.listdir(watch)) - before)
        for name in stray:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(watch, name))
        if stray:
            return Outcome(CRASHED, outcome.exit_code, f"left stray files: {', '.join(stray)[:200]}", outcome.detail)
    return outcome


def _run(main, model_path: str | os.PathLike, args: Sequence[str], timeout_s: float | None) -> Outcome:

    out, err = io.StringIO(), io.StringIO()
    old_debug = os.environ.get("PLANNER_DEBUG")
    os.environ["PLANNER_DEBUG"] = "1"  # the CLI re-raises unexpected exceptions instead of exit 3
    try:
        with _time_limit(timeout_s), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([os.fspath(model_path), *args])
    except CaseTimeout as e:
        return Outcome(CRASHED, None, f"timeout: {e}", traceback.format_exc())
    except BaseException as e:  # noqa: BLE001  a crash is what we are here to count
        if isinstance(e, KeyboardInterrupt):
            raise
        last = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return Outcome(CRASHED, None, last, traceback.format_exc())
    finally:
        if old_debug is None:
            os.environ.pop("PLANNER_DEBUG", None)
        else:
            os.environ["PLANNER_DEBUG"] = old_debug
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    message = lines[-1] if lines else ""
    if code in (0, 1):  # 1: a plan whose candidates all fail the constraints is still a plan
        return Outcome(PLANNED, code, message)
    errors = [ln for ln in lines if not ln.startswith("plan: warning: ")]  # warnings may precede the refusal
    if code == 2 and "out of memory" not in message and len(errors) == 1 and errors[0].startswith("plan: error: "):
        return Outcome(REFUSED, code, errors[0].removeprefix("plan: error: "))
    return Outcome(CRASHED, code, message or f"exit {code} with no message", err.getvalue())


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(\.\d+)?")
_PATH = re.compile(r"^\S+\.onnx: ")


def reason_group(message: str) -> str:
    """A refusal message with its particulars (path, names, numbers) taken out, so like reasons count together."""
    m = _PATH.sub("", message)
    m = _QUOTED.sub("'…'", m)
    m = _NUMBER.sub("N", m)
    return m[:160]


@dataclass
class Tally:
    """Outcome counts for one walk; crashes keep their case names and tracebacks for the report."""

    planned: int = 0
    refused: Counter = field(default_factory=Counter)  # reason group -> count
    crashes: list[tuple[str, Outcome]] = field(default_factory=list)

    def add(self, name: str, outcome: Outcome) -> None:
        if outcome.kind == PLANNED:
            self.planned += 1
        elif outcome.kind == REFUSED:
            self.refused[reason_group(outcome.message)] += 1
        else:
            self.crashes.append((name, outcome))

    @property
    def total(self) -> int:
        return self.planned + sum(self.refused.values()) + len(self.crashes)

    def summary(self, title: str) -> str:
        lines = [f"{title}: {self.total} models: planned {self.planned}, refused {sum(self.refused.values())}, "
                 f"tracebacks {len(self.crashes)}"]
        for reason, n in self.refused.most_common():
            lines.append(f"  refused {n:5d}  {reason}")
        for name, o in self.crashes:
            lines.append(f"  CRASH {name}: {o.message}")
        return "\n".join(lines)
