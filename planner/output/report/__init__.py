"""`plan report`: a plan as a page people would rather look at than read.

    content.py       what the report says (sections of cards, tables, a chart), from the plan's JSON
    roofline_svg.py  the roofline chart, hand-written SVG (no plotting dependency)
    html.py          one self-contained HTML file
    markdown.py      markdown, the chart as a sidecar .svg next to it
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from planner import __version__
from planner.atomic import write_atomic
from planner.errors import PlannerError
from planner.output.report.content import Chart, build_report
from planner.output.report.html import render_html
from planner.output.report.markdown import render_markdown
from planner.targets.target import Target

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


def report_format(path: str | os.PathLike) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise PlannerError(f"--out {path}: the report format comes from the extension: .html or .md")
    return fmt


def write_report(doc: dict[str, Any], target: Target | None, out: str | os.PathLike,
                 refuse: Iterable[Path] = ()) -> list[Path]:
    """Write the report for plan `doc` to `out` (.html or .md); returns the files written."""

    fmt = report_format(out)
    report = build_report(doc, target, version=__version__)
    out = Path(out)
    refuse = set(refuse)
    if fmt == "html":

        return [write_atomic(out, render_html(report), refuse=refuse)]

    charts = [b for s in report.sections for b in s.blocks if isinstance(b, Chart)]
    written = []
    href = None
    if charts:
        svg_path = out.with_name(f"{out.stem}.{charts[0].name}.svg")
        written.append(write_atomic(svg_path, '<?xml version="1.0" encoding="UTF-8"?>\n' + charts[0].svg + "\n",
                                    refuse=refuse))
        href = svg_path.name
    written.insert(0, write_atomic(out, render_markdown(report, href), refuse=refuse))
    return written
