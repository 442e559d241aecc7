"""How text reaches the terminal: rich tables when a person is looking, the plain renderer otherwise.

Pipes, files, CI logs and tests get planner.output.plan_text.render_table's plain columns (stable, greppable, no escape
codes); an interactive terminal gets a rich table. Renderers return strings, so every view stays a pure
function of the plan and can be tested without a terminal. `PLANNER_PLAIN=1` (or TERM=dumb) forces plain.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from planner.output.text import render_table

TableFn = Callable[..., str]  # (headers, rows, right=set()) -> str


def interactive(stream: TextIO | None = None) -> bool:
    """A person is reading `stream`: a TTY, not a dumb terminal, not forced plain."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("PLANNER_PLAIN") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset(),
               stream: TextIO | None = None) -> str:
    """A rich table as a string with the terminal's escape codes; a row starting with '* ' is the chosen one."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream if stream is not None else sys.stdout, highlight=False)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i in right else "left", no_wrap=True)
    for r in rows:
        chosen = bool(r) and r[0].startswith("* ")
        table.add_row(*(Text(c) for c in r), style="bold green" if chosen else None)
    # Never squeeze a wide table into a narrow terminal (rich would wrap or cut cells): like the plain
    # renderer, print it whole and let the terminal wrap the lines.
    console.width = max(console.width, console.measure(table, options=console.options.update_width(10_000)).maximum)
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip("\n")


def table_renderer(stream: TextIO | None = None) -> TableFn:
    """The table function for `stream`: rich at a terminal, plain everywhere else."""
    if not interactive(stream):
        return render_table
    try:
        import rich  # noqa: F401
    except ImportError:  # rich is a core dependency, but a trimmed environment still gets tables
        return render_table
    return lambda headers, rows, right=frozenset(): rich_table(headers, rows, right, stream)
