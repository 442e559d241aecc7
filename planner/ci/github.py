"""GitHub Actions output: workflow-command annotations on stdout and a markdown job summary.

Annotations (`::error file=...::message`) put the regression on the pull request's Files tab and in the run's
summary; the job summary (the file named by GITHUB_STEP_SUMMARY) is where the comparison table goes. Both are
documented at https://docs.github.com/actions/reference/workflow-commands-for-github-actions.
"""

from __future__ import annotations

import os
from pathlib import Path

from planner.atomic import write_atomic


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None = None, title: str | None = None) -> str:
    """One workflow command line: level is 'error', 'warning' or 'notice'."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(level)
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{_escape_data(message)}"


def append_step_summary(markdown: str, path: str | os.PathLike | None = None) -> Path | None:
    """Add `markdown` to the job summary (GITHUB_STEP_SUMMARY), keeping what earlier steps wrote.

    Written as old + new through write_atomic, so a reader never sees half a table; returns None when there is
    no summary file to write (not in GitHub Actions).
    """
    target = path if path is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    p = Path(target)
    try:
        before = p.read_text(encoding="utf-8") if p.exists() else ""
    except (OSError, UnicodeDecodeError):
        return None  # never replace a summary we cannot read: earlier steps' output would be lost
    sep = "" if not before or before.endswith("\n") else "\n"
    return write_atomic(p, before + sep + markdown.rstrip("\n") + "\n\n")
