"""`plan calibrate`: run the suite on a quiet machine, twice, keeping each sample's quickest time.

The overheads are timed at the start and again at the end; every sample is made from the quickest of the two.
The fit (planner.calibration.fit) turns the measurements into a Calibration."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from planner.calibration.benches import MIXED_BLOCKS, activation_chain, chain_steps, mixed_graph, weight_chain
from planner.calibration.overheads import (
    ChainTiming,
    chain_samples,
    chain_timings,
    overhead_timings,
    overheads_from,
)
from planner.calibration.residency import runtime_memory, weight_residency
from planner.calibration.samples import CalibrationError, Measurements, Sample
from planner.calibration.suite import ACTIVATION_CHAINS, suite, weight_chains
from planner.calibration.timing import (
    Overheads,
    activation_chain_sample,
    e2e_seconds,
    mixed_sample,
    profiled,
    samples_of,
    weight_chain_sample,
)
from planner.errors import PlannerError
from planner.ort.quiet import QuietGate
from planner.ort.session import make_session, session_options

# The whole suite runs this many times, minutes apart on a slow machine, and each sample keeps its quickest
# pass (see quickest): one pass can fall entirely inside a neighbour's burst, two rarely both do.
PASSES = 2


MIXED_REPEATS = 3


class _Steps:
    """Counts finished microbenchmarks for a `progress(done, total, label)` callback (a progress bar's update)."""

    def __init__(self, total: int, progress: Callable[[int, int, str], None] | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def step(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, label)


def quickest(passes: Sequence[Sequence[Sample]]) -> list[Sample]:
    """Per sample (same benchmark, node work and family), the quickest of the passes: a neighbour's burst
    slows every kernel it overlaps by up to a quarter for seconds at a time, and only ever adds time."""
    best: dict[tuple, Sample] = {}
    for samples in passes:
        for s in samples:
            key = (s.label, s.family, s.flops, s.bytes, s.steps, s.source)
            if key not in best or s.seconds < best[key].seconds:
                best[key] = s
    return list(best.values())


def calibrate(threads: int = 1, quick: bool = False, progress: Callable[[int, int, str], None] | None = None
              ) -> Measurements:
    """Run the suite; `quick` is a small subset (seconds) for tests and smoke checks. `progress(done, total,
    label)` hears of each finished step (planner.output.progress.Progress.update fits)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise CalibrationError("plan calibrate needs onnxruntime (pip install onnxruntime)") from None

    start = time.perf_counter()
    benches = suite(quick)
    n_chains = 3 if quick else len(chain_steps()) - 1
    n_passes = 1 if quick else PASSES
    chains_w = weight_chains(quick)
    chains_a = ACTIVATION_CHAINS if not quick else ACTIVATION_CHAINS[:1]
    mixed = MIXED_BLOCKS
    steps = (len(benches) + len(chains_w) + len(chains_a) + len(mixed)) * n_passes + n_chains + (5 if quick else 11)
    bar = _Steps(steps, progress)
    with tempfile.TemporaryDirectory(prefix="planner-calibrate-") as tmp:
        work = Path(tmp)
        gate = QuietGate(threads, budget_s=6.0 if not quick else 1.0)  # bounded: under a minute in all
        gate.wait(2.0 if not quick else 0.2)  # learn how fast the probe runs when nothing disturbs it
        # the overheads are timed at the start and again at the end, and every sample is made from the
        # quickest of the two once both are in (overheads_from): one burst cannot skew them all
        overhead_times = [overhead_timings(threads, quick, work, bar.step, gate)]
        runs = 30 if not quick else 5
        notes: list[str] = []
        workspace = runtime_memory(threads, work)
        residency = weight_residency(threads, work, workspace)
        bar.step("runtime memory")
        passes: list[list[Callable[[Overheads], list[Sample]]]] = []
        weight_sessions: dict[tuple, object] = {}
        tiny: list[ChainTiming] = []
        for i in range(n_passes):
            samples: list[Callable[[Overheads], list[Sample]]] = []
            if i == 0:  # chains already take the quicker of two interleaved measurements
                gate.wait(1.0 if not quick else 0.05)
                tiny = chain_timings(threads, quick, work, bar.step)
            for b in benches:
                gate.wait(1.0 if not quick else 0.05)
                try:
                    p = profiled(b, threads, runs, 0.15 if not quick else 0.05, work, e2e=True)
                except PlannerError as e:  # one kernel this build lacks must not sink the calibration
                    if i == 0:
                        notes.append(f"{b.label}: skipped ({e})")
                else:
                    samples.append(lambda o, p=p, label=b.label: samples_of(p, o, label))
                bar.step(b.label)
            for k, length, transposed in chains_w:
                key = (k, length, transposed)
                if key not in weight_sessions:  # built once, timed in every pass (256 MiB take seconds to build)
                    bench = weight_chain(k, length, transposed)
                    weight_sessions[key] = (bench, make_session(bench.model, session_options(threads)))
                bench, session = weight_sessions[key]
                gate.wait(1.0 if not quick else 0.05)
                t = e2e_seconds(bench, threads, 200 if not quick else 20, 0.2 if not quick else 0.05, session)
                samples.append(lambda o, a=(bench, k, length, transposed, t): [weight_chain_sample(*a, o)])
                bar.step(bench.label)
            for h, m, k in chains_a:
                gate.wait(1.0 if not quick else 0.05)
                bench = activation_chain(h, m, k)
                t = e2e_seconds(bench, threads, 200 if not quick else 20, 0.1 if not quick else 0.05)
                samples.append(lambda o, a=(bench, h, m, k, t): [activation_chain_sample(*a, o)])
                bar.step(bench.label)
            for blocks in mixed:
                bench = mixed_graph(blocks)
                times = []
                for _ in range(MIXED_REPEATS if not quick else 1):  # a difference of two: each its quickest
                    gate.wait(1.0 if not quick else 0.05)
                    times.append(e2e_seconds(bench, threads, 400 if not quick else 40, 0.15 if not quick else 0.05))
                whole = mixed_sample(blocks, min(times))  # needs no overheads
                samples.append(lambda o, s=whole: [s])
                bar.step(bench.label)
            passes.append(samples)
        weight_sessions.clear()
        if not quick:
            overhead_times.append(overhead_timings(threads, quick, work, bar.step, gate, repeats=2))
        o = overheads_from(*overhead_times)
        made = [[s for pending in p for s in pending(o)] for p in passes]
        made[0] += chain_samples(tiny, o.launch_s)
        if gate.noisy:
            notes.append(f"the machine was busy: {gate.noisy} microbenchmarks ran after {gate.waited_s:.0f} s of "
                         "waiting for a quiet moment (planner.ort.quiet)")
    return Measurements(threads=threads, launch_overhead_s=o.launch_s, run_overhead_s=o.run_s,
                        run_overhead_per_io_s=o.per_io_s, profiler_bias_s=o.profiler_bias_s, samples=quickest(made),
                        workspace_bytes=workspace, weight_residency=residency,
                        seconds=time.perf_counter() - start, notes=notes, quick=quick, probe_s=gate.best_s,
                        busy=gate.noisy)
