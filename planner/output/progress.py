"""A progress bar for work that takes more than a moment, shown only to a person at a terminal.

    with Progress("planning", total=len(sizes), enabled=not args.quiet) as bar:
        for ...:
            bar.advance()            # or hand `bar.update` to code that reports (done, total)

The bar goes to stderr, so `--json` output on stdout stays pure JSON; it appears only when stderr is a TTY
and only once the work has run longer than `delay_s`, so quick runs never flash one; it is erased when done.
Everywhere else (pipes, CI logs, tests) it does nothing at all.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from planner.output.console import interactive

DEFAULT_DELAY_S = 1.0


class Progress:
    def __init__(self, label: str, total: int | None = None, *, enabled: bool = True,
                 delay_s: float = DEFAULT_DELAY_S, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.delay_s = delay_s
        self._stream = stream if stream is not None else sys.stderr
        self._active = enabled and interactive(self._stream)
        self._start = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        self.update(self.done + n, self.total, detail)

    def update(self, done: int, total: int | None = None, detail: str | None = None) -> None:
        """Report `done` of `total` steps; fits a callback of the form (done, total)."""
        self.done = done
        if total is not None:
            self.total = total
        if not self._active:
            return
        if self._bar is None:
            if time.monotonic() - self._start < self.delay_s:
                return
            self._open()
            if self._bar is None:
                return
        desc = f"{self.label}: {detail}" if detail else self.label
        self._bar.update(self._task, completed=done, total=self.total, description=desc)

    def _open(self) -> None:
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress
        except ImportError:  # no bar is better than a crash
            self._active = False
            return

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(file=self._stream), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, completed=self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def progress(label: str, total: int | None = None, *, enabled: bool = True,
             delay_s: float = DEFAULT_DELAY_S) -> Progress:
    """`with progress("validating", total=n) as bar: ... bar.advance()` (see the module docstring)."""
    return Progress(label, total, enabled=enabled, delay_s=delay_s)
