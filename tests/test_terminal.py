"""Terminal output: rich tables and progress bars for a person at a TTY, plain text for pipes, CI and JSON."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from planner.cli import main
from planner.output.console import interactive, table_renderer
from planner.output.progress import Progress
from planner.output.text import render_table

MODELS = Path(__file__).parent.parent / "models"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_for_pipes_rich_for_a_terminal(monkeypatch):
    monkeypatch.delenv("PLANNER_PLAIN", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    headers, rows = ["target", "batch"], [["* a10g", "256"], ["  t4", "8"]]
    assert table_renderer(io.StringIO()) is render_table
    tty = FakeTTY()
    assert interactive(tty)
    text = table_renderer(tty)(headers, rows, right={1})
    plain = ANSI.sub("", text)
    assert "\x1b[" in text  # styled: the chosen row is bold green
    assert all(h in plain for h in headers) and "* a10g" in plain and "256" in plain
    monkeypatch.setenv("PLANNER_PLAIN", "1")
    assert table_renderer(tty) is render_table


def test_progress_silent_off_a_terminal_and_before_the_delay():
    pipe = io.StringIO()
    with Progress("planning", 4, stream=pipe, delay_s=0) as bar:
        for i in range(4):
            bar.update(i + 1, 4)
        assert not bar.shown
    assert pipe.getvalue() == ""
    tty = FakeTTY()
    with Progress("planning", 4, stream=tty, delay_s=3600) as bar:
        bar.advance()
        assert not bar.shown  # quick work never flashes a bar
    assert tty.getvalue() == ""


def test_progress_on_a_terminal_after_the_delay(monkeypatch):
    monkeypatch.delenv("PLANNER_PLAIN", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = FakeTTY()
    with Progress("planning", 4, stream=tty, delay_s=0) as bar:
        bar.update(2, 4)
        assert bar.shown and bar.done == 2
        bar.advance(detail="batch 8")
        assert bar.done == 3
    assert not bar.shown  # closed (and, being transient, erased) on exit
    assert "planning" in ANSI.sub("", tty.getvalue())
    with Progress("planning", 4, stream=tty, delay_s=0, enabled=False) as bar:  # --quiet
        bar.update(1, 4)
        assert not bar.shown


def test_plan_quiet_verbose_and_json(capsys):
    cnn = str(MODELS / "cnn.onnx")
    assert main([cnn, "--target", "a10g,t4", "--max-batch", "4", "-q"]) == 0
    out = capsys.readouterr()[0]
    assert out.count("\n") == 1 and out.startswith("chosen")
    assert main([cnn, "--target", "a10g,t4", "--max-batch", "4", "-v"]) == 0
    out = capsys.readouterr()[0]
    assert "every configuration tried" in out and out.count("lost:") >= 5  # 2 targets x 3 batches, one chosen
    assert main([cnn, "--target", "a10g", "--max-batch", "4", "--json", "-v"]) == 0
    json.loads(capsys.readouterr()[0])  # stdout stays one JSON document whatever the verbosity
    assert main([cnn, "-q", "-v"]) == 2  # one or the other
