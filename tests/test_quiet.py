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


def test_the_memory_bus_is_waited_for_too():
    """With memory=True the gate also streams past the last-level cache: a bus that never gets as quiet as the
    reference (a picosecond for 96 MiB) keeps it waiting until its budget is spent, though the MatMul probe
    is quiet at once; a slow reference lets it through."""
    busy_bus = QuietGate(1, reference_s=10.0, budget_s=0.3, memory=True, reference_memory_s=1e-12)
    start = time.perf_counter()
    assert busy_bus.wait(0.2) is False and busy_bus.noisy == 1
    assert time.perf_counter() - start < 2.0
    assert QuietGate(1, reference_s=10.0, budget_s=0.3).wait(0.2) is True  # without it: quiet
    quiet_bus = QuietGate(1, reference_s=10.0, memory=True, reference_memory_s=10.0)
    assert quiet_bus.wait(0.0) is True
    t = quiet_bus.probe_memory()
    assert 0 < quiet_bus.best_memory_s <= t < 10.0


def test_the_calibration_file_keeps_the_memory_probe(tmp_path):
    from planner.calibration.store import Calibration, read_file, save

    cal = Calibration(fingerprint="cpu", threads=1, launch_overhead_s=1e-6, run_overhead_s=5e-6,
                      run_overhead_per_io_s=0.0, profiler_bias_s=0.0, bandwidth_curve=((1.0, 1e10),),
                      weight_bandwidth_curve=(), rate_curves={}, throughput_curves={}, kernel_fixed_s={},
                      probe_s=2.5e-5, probe_memory_s=4.2e-3)
    path = save(cal, tmp_path / "cal.json")
    (back,) = read_file(path).values()
    assert back.probe_memory_s == 4.2e-3 and back.probe_s == 2.5e-5
