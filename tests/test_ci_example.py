"""docs/ci-example.yml is a workflow a team copies: its `plan` commands must parse, and (slow) run as documented."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cli import build_parser
from planner.commands import SUBCOMMANDS

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / "docs" / "ci-example.yml"


def _commands() -> list[list[str]]:
    """Every `plan ...` command in the workflow: its run steps and the commented setup lines."""
    out = []
    for line in WORKFLOW.read_text().splitlines():
        m = re.match(r"^\s*(?:-\s*)?(?:run:\s*|#\s+)(plan\s.+)$", line)
        if m:
            out.append(shlex.split(m.group(1))[1:])
    return out


def test_workflow_commands_parse():
    cmds = _commands()
    assert [c[0] for c in cmds].count("check") >= 3 and any(c[0] == "report" for c in cmds)
    for argv in cmds:
        parser, _ = build_parser(argv)
        parser.parse_args(argv[1:] if argv[0] in SUBCOMMANDS else argv)  # raises PlannerError on a bad flag


@pytest.mark.slow
def test_workflow_runs_as_documented(tmp_path):
    """Lay out a repository like the workflow expects and run its commands in order, as Actions would."""
    exe = shutil.which("plan", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("console script not installed")
    (tmp_path / "models").mkdir()
    (tmp_path / "ci" / "plans").mkdir(parents=True)
    shutil.copy(ROOT / "models" / "encoder.onnx", tmp_path / "models" / "encoder.onnx")
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    cmds = _commands()
    setup, steps = cmds[0], [c for c in cmds[1:] if "--update-baseline" not in c]
    assert subprocess.run([exe, *setup], cwd=tmp_path, env=env, capture_output=True, timeout=600).returncode == 0
    for argv in steps:
        r = subprocess.run([exe, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "serving-cost.html").exists()
    assert (tmp_path / "summary.md").read_text().count("plan check") == 2
