"""planner.ort.quiet: the gate waits for the probe to run as fast as the reference, and gives up within its budget."""

import time

from planner.ort.quiet import QuietGate


def test_a_reference_no_run_can_reach_gives_up_within_the_budget():
    gate = QuietGate(1, reference_s=1e-12, budget_s=0.3)  # a picosecond MatMul: never quiet enough
    start = time.perf_counter()
    assert gate.wait(0.2) is False
    assert time.perf_counter() - start < 1.0
    assert gate.noisy == 1 and gate.waited_s > 0.2
    assert gate.wait(5.0) is False  # the budget is spent: the next wait returns at once
    assert gate.noisy == 2 and gate.waited_s < 0.6


def test_a_slow_reference_is_quiet_at_once_and_the_best_probe_is_kept():
    gate = QuietGate(1, reference_s=10.0)  # ten seconds per probe: any real run beats it
    assert gate.wait(0.0) is True and gate.waited_s == 0.0
    t = gate.probe()
    assert 0 < gate.best_s <= t < 10.0
