"""Text building blocks every view uses: an aligned table, a markdown table, and the model summary's lines."""

from __future__ import annotations

from collections.abc import Sequence

from planner.search.plan_types import ModelSummary


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        cols = enumerate(zip(cells, widths, strict=False))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in cols)

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def summary_lines(m: ModelSummary, bind_hint: str = "") -> list[str]:
    """The defaults, unknown ops and notes every rendering of a plan shows under the model line."""
    out = []
    if m.defaults_used:
        out.append(f"defaults {'; '.join(m.defaults_used)}{bind_hint}")
    if m.unknown_ops:
        out.append(f"unknown  {', '.join(m.unknown_ops)} (no cost formula: planned by bytes only)")
    out += [f"note     {note}" for note in m.notes]
    return out


def md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset()) -> str:
    head = "| " + " | ".join(md_escape(h) for h in headers) + " |"
    rule = "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"
    body = ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join([head, rule] + body)
