"""A calibration's noise: which microbenchmarks a second pass confirmed, re-timing the rest, and the warnings
`plan calibrate` prints with their numbers. Figures worked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.calibration.noise import noise_of, unconfirmed, warnings
from planner.calibration.run import CONFIRM_ROUNDS, Timed, _Run, _Steps
from planner.calibration.samples import Noise


def test_a_quickest_time_needs_a_second_pass_within_ten_percent():
    times = {"a": [1.05, 1.0], "b": [1.0, 1.2], "c": [2.0], "lucky": [0.8, 1.0, 1.02]}
    # a: 1.05 <= 1.10 x 1.0; b: 1.2 > 1.1; c: one pass; lucky: its quickest (0.8) stands alone (1.0 > 0.88)
    assert unconfirmed(times) == ["b", "c", "lucky"]
    assert unconfirmed({"b": [1.0, 1.2]}, tolerance=1.25) == []


def test_noise_is_the_spread_of_the_two_quickest_passes():
    n = noise_of({"a": [1.05, 1.0], "b": [1.0, 1.2], "c": [2.0], "lucky": [0.8, 1.0, 1.02]})
    # spreads (second quickest / quickest - 1): a 0.05, b 0.2, lucky 0.25; c has none
    assert n.benches == 4 and n.unconfirmed == 3
    assert n.median_spread == pytest.approx(0.2)
    assert n.p90_spread == pytest.approx(0.2)  # int(0.9 x 2) = 1: the second of three


def test_warnings_say_how_busy_with_the_number():
    assert warnings(Noise(100, 10, 0.02, 0.05), 1.0e-5, 1.0e-5) == []  # 10% unconfirmed is tolerated
    (line,) = warnings(Noise(100, 11, 0.02, 0.30), None, None)
    assert "11 of 100" in line and "30%" in line
    assert warnings(Noise(100, 0), 1.1e-5, 1.0e-5) == []  # 1.10x the last quiet probe: within 15%
    (line,) = warnings(Noise(100, 0), 1.2e-5, 1.0e-5)
    assert "1.20x" in line and "12.0 us against 10.0 us" in line


def test_a_calibration_whose_gemms_ran_slower_than_the_last_says_by_how_much():
    """The probe can pass while the cores run slower throughout: 100 G FLOP/s against the last calibration's 111
    is -10%, past the 5% tolerated; 106 against 111 (-4.5%) is within it."""
    from types import SimpleNamespace

    from planner.calibration.noise import fastest_gemm

    def cal(*rates):
        return SimpleNamespace(rate_curves={"gemm.fp32": tuple((float(i + 1), r) for i, r in enumerate(rates))})

    assert fastest_gemm(cal(80e9, 111e9, 109e9)) == 111e9
    assert fastest_gemm(SimpleNamespace(rate_curves={})) is None
    assert warnings(Noise(100, 0), 4.3e-5, 4.3e-5, 106e9, 111e9) == []
    (line,) = warnings(Noise(100, 0), 4.3e-5, 4.3e-5, 100e9, 111e9)
    assert "100 G FLOP/s against 111" in line and "-10%" in line


class _Scripted(_Run):
    """A _Run whose passes return scripted end-to-end times instead of running onnxruntime."""

    def __init__(self, script: dict[str, list[float]]) -> None:
        self.quick, self.notes, self.script, self.asked = False, [], script, []

    def one_pass(self, i, work, gate, bar, only=None):
        self.asked.append(None if only is None else sorted(only))
        return [Timed(label, ts[i], lambda o: []) for label, ts in self.script.items()
                if (only is None or label in only) and i < len(ts)]


def test_unconfirmed_benches_are_timed_again_until_confirmed_or_out_of_rounds():
    run = _Scripted({"steady": [1.0, 1.02], "burst": [1.5, 1.0, 1.03], "never": [1.0, 1.5, 2.0, 2.5, 3.0]})
    passes = [run.one_pass(i, Path("."), None, None) for i in range(2)]
    noise = run.confirm(passes, Path("."), None, _Steps(6, None))
    # pass 3 re-times burst (1.0 alone) and never; burst is confirmed by 1.03, never keeps going to the limit
    assert run.asked[2:] == [["burst", "never"], ["never"], ["never"]]
    assert len(passes) == 2 + CONFIRM_ROUNDS
    assert noise.benches == 3 and noise.unconfirmed == 1
    assert "1 of 3 microbenchmarks stayed unconfirmed after 5 passes" in run.notes[0]
