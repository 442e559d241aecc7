"""A report as markdown (a pull-request comment, a wiki page, a job summary), with the chart as a sidecar SVG.

Markdown renderers strip inline SVG, so the roofline is written next to the report and linked as an image
(GitHub and most viewers show an SVG image). Bars become text bars so the breakdowns still read at a glance.
"""

from __future__ import annotations

from typing import Any

from planner.output.report.content import Cards, Chart, Details, Para, Report, Table
from planner.output.text import md_escape, md_table

BAR_WIDTH = 20


def _bar(frac: float) -> str:
    n = round(max(0.0, min(1.0, frac)) * BAR_WIDTH)
    return "█" * n if n else ("▏" if frac > 0 else "")


def _table(t: Table) -> str:
    rows = []
    for r, row in enumerate(t.rows):
        cells = [_bar(t.bars[i][r]) if i in t.bars else c for i, c in enumerate(row)]
        if r == t.highlight:
            cells = [f"**{c}**" if c else c for c in cells]
        rows.append(cells)
    return md_table(t.headers, rows, right=set(t.right))


def _block(b: Any, chart_href: str | None) -> str:
    if isinstance(b, Para):
        return f"> **Note:** {md_escape(b.text)}" if b.kind == "warn" else md_escape(b.text)
    if isinstance(b, Cards):
        return md_table(["", ""], [[label, f"**{value}**" + (f" ({note})" if note else "")]
                                   for label, value, note in b.items])
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Chart):
        img = f"![{md_escape(b.name)}]({chart_href})" if chart_href else "(chart: see the HTML report)"
        return f"{img}\n\n{md_escape(b.caption)}"
    if isinstance(b, Details):
        inner = "\n\n".join(_block(x, chart_href) for x in b.blocks)
        return f"<details><summary>{md_escape(b.summary)}</summary>\n\n{inner}\n\n</details>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_markdown(report: Report, chart_href: str | None) -> str:
    """`chart_href`: where the sidecar roofline SVG is, relative to the markdown file (None: no chart file)."""
    out = [f"# {md_escape(report.title)}", ""] + [md_escape(s) + "  " for s in report.subtitle] + [""]
    for s in report.sections:
        out += [f"## {md_escape(s.title)}", ""]
        for b in s.blocks:
            out += [_block(b, chart_href), ""]
    out.append(f"_{md_escape(report.footer)}_")
    return "\n".join(out) + "\n"
