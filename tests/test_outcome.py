"""The verdict the walk and the fuzzer rely on: what counts as planned, refused, or a crash (a bug)."""

from __future__ import annotations

import sys

import pytest

from harness.outcome import CRASHED, PLANNED, REFUSED, Tally, reason_group, run_plan_cli


def _fake_main(code: int, *lines: str):
    def main(argv):
        for ln in lines:
            print(ln, file=sys.stderr)
        return code

    return main


@pytest.mark.parametrize("code,lines,kind", [
    (0, [], PLANNED),
    (1, ["plan: warning: no candidate fits"], PLANNED),
    (2, ["plan: error: m.onnx: empty file, not an ONNX model"], REFUSED),
    (2, ["plan: warning: passes skipped", "plan: error: bad dims"], REFUSED),
    (2, ["plan: error: tensor 'a", "b' is defined twice"], CRASHED),  # a refusal on two lines is a bug
    (2, ["plan: error: out of memory while planning this model"], CRASHED),
    (2, [], CRASHED),
    (3, ["plan: internal error: KeyError: 'x' (set PLANNER_DEBUG=1 for the traceback)"], CRASHED),
    (130, ["plan: interrupted"], CRASHED),
])
def test_exit_codes_and_lines_give_the_verdict(monkeypatch, tmp_path, code, lines, kind):
    monkeypatch.setattr("planner.cli.main", _fake_main(code, *lines))
    assert run_plan_cli(tmp_path / "m.onnx").kind == kind


def test_reasons_group_without_their_particulars():
    a = reason_group("/x/y/m.onnx: opset 99 is newer than this onnx (1.23.2) knows (max 24)")
    b = reason_group("/z/m.onnx: opset 31 is newer than this onnx (1.23.2) knows (max 24)")
    assert a == b == "opset N is newer than this onnx (N.N) knows (max N)"
    assert reason_group("node 'A' reads tensor 'q', which nothing defines") == \
        "node '…' reads tensor '…', which nothing defines"


def test_tally_counts():
    from harness.outcome import Outcome

    t = Tally()
    t.add("a", Outcome(PLANNED, 0))
    t.add("b", Outcome(REFUSED, 2, "node 'x' reads tensor 'y', which nothing defines"))
    t.add("c", Outcome(REFUSED, 2, "node 'z' reads tensor 'w', which nothing defines"))
    t.add("d", Outcome(CRASHED, 3, "KeyError"))
    assert (t.planned, sum(t.refused.values()), len(t.crashes), t.total) == (1, 2, 1, 4)
    assert "planned 1, refused 2, tracebacks 1" in t.summary("x")
