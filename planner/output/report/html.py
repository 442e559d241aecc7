"""A report as one self-contained HTML page: inline CSS and inline SVG, no scripts, nothing fetched.

The page is also well-formed XML (every element closed, only XML's own entities), so a test can parse it
strictly and a CI artifact viewer or a mail client shows the same thing a browser does.
"""

from __future__ import annotations

from html import escape
from typing import Any

from planner.output.report.content import Cards, Chart, Details, Para, Report, Table

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; background: #f7fafc;
       margin: 0; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e2e8f0; }
.sub { color: #4a5568; margin: 0; }
section { margin-bottom: 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.card { background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px; }
.card .label { color: #4a5568; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 20px; font-weight: 600; margin: 2px 0; }
.card .note { color: #718096; font-size: 12px; }
table { border-collapse: collapse; background: #ffffff; width: 100%; margin: 6px 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid #edf2f7; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #2d3748; background: #edf2f7; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
tr.hi td { background: #f0fff4; font-weight: 600; }
td.bar { width: 28%; }
.bar span { display: block; height: 12px; background: #2b6cb0; border-radius: 2px; opacity: .75; }
figure { margin: 0; background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #4a5568; font-size: 13px; padding: 6px 4px 2px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #2b6cb0; }
p.warn { color: #9c4221; }
footer { color: #718096; font-size: 12px; margin-top: 36px; }
"""

def _table(t: Table) -> str:
    out = ['<table class="data">', "<thead><tr>"]
    for i, h in enumerate(t.headers):
        out.append(('<th class="num">' if i in t.right else "<th>") + f"{escape(h)}</th>")
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(t.rows):
        out.append('<tr class="hi">' if r == t.highlight else "<tr>")
        for i, cell in enumerate(row):
            if i in t.bars:
                frac = max(0.0, min(1.0, t.bars[i][r]))
                out.append(f'<td class="bar"><span style="width: {100 * frac:.1f}%"></span></td>')
            elif i in t.right:
                out.append(f'<td class="num">{escape(cell)}</td>')
            elif t.headers[i] == "node":
                out.append(f'<td class="name">{escape(cell)}</td>')
            else:
                out.append(f"<td>{escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _block(b: Any) -> str:
    if isinstance(b, Para):
        return f'<p class="{b.kind}">{escape(b.text)}</p>' if b.kind else f"<p>{escape(b.text)}</p>"
    if isinstance(b, Cards):
        cards = "".join(f'<div class="card"><div class="label">{escape(label)}</div>'
                        f'<div class="value">{escape(value)}</div><div class="note">{escape(note)}</div></div>'
                        for label, value, note in b.items)
        return f'<div class="cards">{cards}</div>'
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Chart):
        return f'<figure class="chart">{b.svg}<figcaption>{escape(b.caption)}</figcaption></figure>'
    if isinstance(b, Details):
        inner = "".join(_block(x) for x in b.blocks)
        return f"<details><summary>{escape(b.summary)}</summary>{inner}</details>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(report: Report) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
             '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
             '<meta name="generator" content="onnx-planner"/>',
             f"<title>{escape(report.title)} - onnx-planner report</title>", f"<style>{CSS}</style>", "</head>",
             "<body>", "<main>", "<header>", f"<h1>{escape(report.title)}</h1>"]
    parts += [f'<p class="sub">{escape(s)}</p>' for s in report.subtitle]
    parts.append("</header>")
    for s in report.sections:
        parts.append(f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>')
        parts += [_block(b) for b in s.blocks]
        parts.append("</section>")
    parts += [f"<footer>{escape(report.footer)}</footer>", "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
