"""`plan calibrate`: run the suite on a quiet machine, twice, keeping each sample's quickest time.

A quickest time is kept only once it is confirmed: a microbenchmark whose second-quickest pass is not within
CONFIRM of its quickest is timed again (at most CONFIRM_ROUNDS more times, only the unconfirmed ones), so that a
burst that slowed one pass, or a lucky run, does not decide a figure alone. What stays unconfirmed, and how
far apart the passes were, is the calibration's noise (Noise), which `plan calibrate` prints and warns about.
The overheads are timed at the start and again at the end; every sample is made from the quickest of the two.
The fit (planner.calibration.fit) turns the measurements into a Calibration."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from planner.calibration.benches import MIXED_BLOCKS, activation_chain, chain_steps, mixed_graph, weight_chain
from planner.calibration.cold import COLD_STREAMS, cold_label, cold_sample
from planner.calibration.noise import CONFIRM, noise_of, unconfirmed
from planner.calibration.overheads import (
    chain_samples,
    chain_timings,
    overhead_timings,
    overheads_from,
    subgraph_samples,
)
from planner.calibration.residency import runtime_memory, weight_residency
from planner.calibration.samples import CalibrationError, Measurements, Noise, Sample
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
CONFIRM_ROUNDS = 3  # the most extra passes over the unconfirmed microbenchmarks

MIXED_REPEATS = 3

Pending = Callable[[Overheads], list[Sample]]  # a timing waiting for the final overheads to become samples


class _Steps:
    """Counts finished microbenchmarks for a `progress(done, total, label)` callback (a progress bar's update)."""

    def __init__(self, total: int, progress: Callable[[int, int, str], None] | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def step(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, label)


@dataclass(frozen=True)
class Timed:
    """One microbenchmark timed once: its end-to-end time (what confirmation compares), and its samples once the
    overheads are known."""
    label: str
    seconds: float
    pending: Pending


def quickest(passes: Sequence[Sequence[Sample]]) -> list[Sample]:
    """Per sample (same benchmark, node work and family), the quickest of the passes: a neighbour's burst
    slows every kernel it overlaps by up to a quarter for seconds at a time, and only ever adds time. A cold
    sample is a difference of two times, which noise moves either way: every pass's is kept (fit takes the
    median)."""
    best: dict[tuple, Sample] = {}
    for i, samples in enumerate(passes):
        for s in samples:
            key = (s.label, s.family, s.flops, s.bytes, s.steps, s.source, i if s.source == "cold" else 0)
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
    run = _Run(threads, quick)
    bar = _Steps(run.steps, progress)
    with tempfile.TemporaryDirectory(prefix="planner-calibrate-") as tmp:
        work = Path(tmp)
        gate = QuietGate(threads, budget_s=6.0 if not quick else 1.0)  # bounded: under a minute in all
        gate.wait(2.0 if not quick else 0.2)  # learn how fast the probe runs when nothing disturbs it
        _probe_memory(gate, quick)  # and the memory bus: its quickest here is what measurements wait for
        # the overheads are timed at the start and again at the end, and every sample is made from the
        # quickest of the two once both are in (overheads_from): one burst cannot skew them all
        overhead_times = [overhead_timings(threads, quick, work, bar.step, gate)]
        workspace = runtime_memory(threads, work)
        residency = weight_residency(threads, work, workspace)
        bar.step("runtime memory")
        gate.wait(run.pause_s)
        tiny = chain_timings(threads, quick, work, bar.step)  # the quicker of two interleaved timings already
        subgraph = subgraph_samples(threads, quick, gate)
        bar.step("subgraph runs")
        passes = [run.one_pass(i, work, gate, bar) for i in range(run.passes)]
        noise = run.confirm(passes, work, gate, bar)
        run.weight_sessions.clear()
        if not quick:
            overhead_times.append(overhead_timings(threads, quick, work, bar.step, gate, repeats=2))
        _probe_memory(gate, quick)
        o = overheads_from(*overhead_times)
        made = [[s for t in p for s in t.pending(o)] for p in passes]
        made[0] += chain_samples(tiny, o.launch_s) + subgraph
        if gate.noisy:
            run.notes.append(f"the machine was busy: {gate.noisy} microbenchmarks ran after {gate.waited_s:.0f} s "
                             "of waiting for a quiet moment (planner.ort.quiet)")
    return Measurements(threads=threads, launch_overhead_s=o.launch_s, run_overhead_s=o.run_s,
                        run_overhead_per_io_s=o.per_io_s, profiler_bias_s=o.profiler_bias_s, samples=quickest(made),
                        workspace_bytes=workspace, weight_residency=residency,
                        seconds=time.perf_counter() - start, notes=run.notes, quick=quick, probe_s=gate.best_s,
                        probe_memory_s=gate.best_memory_s if gate.best_memory_s < float("inf") else None,
                        busy=gate.noisy, noise=noise)


def _probe_memory(gate: QuietGate, quick: bool) -> None:
    """A few looks at the streaming probe, at the start and at the end: the quickest is the quiet bus."""
    for _ in range(2 if quick else 6):
        gate.probe_memory()


class _Run:
    """One calibration's suite and its knobs; one_pass times everything once."""

    def __init__(self, threads: int, quick: bool) -> None:
        self.threads, self.quick = threads, quick
        self.benches = suite(quick)
        self.chains_w = weight_chains(quick)
        self.chains_a = ACTIVATION_CHAINS if not quick else ACTIVATION_CHAINS[:1]
        self.passes = 1 if quick else PASSES
        self.pause_s = 1.0 if not quick else 0.05  # the most a microbenchmark waits for a quiet moment
        n_chains = 3 if quick else len(chain_steps()) - 1
        self.cold = COLD_STREAMS if not quick else ((COLD_STREAMS[1][0], 4),)  # a smoke check: 4 MiB in all
        per_pass = len(self.benches) + len(self.chains_w) + len(self.chains_a) + len(MIXED_BLOCKS) + len(self.cold)
        self.steps = per_pass * self.passes + n_chains + (6 if quick else 12)
        self.weight_sessions: dict[tuple, tuple] = {}  # built once, timed in every pass (256 MiB take seconds)
        self.notes: list[str] = []

    def one_pass(self, i: int, work: Path, gate: QuietGate, bar: _Steps, only: set[str] | None = None
                 ) -> list[Timed]:
        """Every microbenchmark once (or those labelled in `only`)."""
        return [*self._profiled(i, work, gate, bar, only), *self._weight_chains(gate, bar, only),
                *self._activation_chains(gate, bar, only), *self._mixed(gate, bar, only),
                *self._cold(work, gate, bar, only)]

    def confirm(self, passes: list[list[Timed]], work: Path, gate: QuietGate, bar: _Steps) -> Noise:
        """Time the unconfirmed microbenchmarks again, up to CONFIRM_ROUNDS times, adding each round to `passes`;
        the noise that is left."""
        def times() -> dict[str, list[float]]:
            out: dict[str, list[float]] = defaultdict(list)
            for p in passes:
                for t in p:
                    out[t.label].append(t.seconds)
            return out

        for _ in range(0 if self.quick else CONFIRM_ROUNDS):
            todo = set(unconfirmed(times()))
            if not todo:
                break
            bar.total += len(todo)
            passes.append(self.one_pass(len(passes), work, gate, bar, todo))
        noise = noise_of(times())
        if noise.unconfirmed:
            self.notes.append(f"{noise.unconfirmed} of {noise.benches} microbenchmarks stayed unconfirmed after "
                              f"{len(passes)} passes (no second pass within {CONFIRM - 1:.0%} of the quickest)")
        return noise

    def _profiled(self, i: int, work: Path, gate: QuietGate, bar: _Steps, only: set[str] | None) -> list[Timed]:
        out: list[Timed] = []
        for b in self.benches:
            if only is not None and b.label not in only:
                continue
            gate.wait(self.pause_s)
            try:
                p = profiled(b, self.threads, 30 if not self.quick else 5, 0.15 if not self.quick else 0.05, work,
                             e2e=True)
            except PlannerError as e:  # one kernel this build lacks must not sink the calibration
                if i == 0:
                    self.notes.append(f"{b.label}: skipped ({e})")
            else:
                out.append(Timed(b.label, p.e2e_s or 0.0, lambda o, p=p, label=b.label: samples_of(p, o, label)))
            bar.step(b.label)
        return out

    def _weight_chains(self, gate: QuietGate, bar: _Steps, only: set[str] | None) -> list[Timed]:
        out: list[Timed] = []
        for k, length, transposed, rows, int8 in self.chains_w:
            key = (k, length, transposed, rows, int8)
            if key not in self.weight_sessions:
                bench = weight_chain(k, length, transposed, rows, int8)
                self.weight_sessions[key] = (bench, make_session(bench.model, session_options(self.threads)))
            bench, session = self.weight_sessions[key]
            if only is not None and bench.label not in only:
                continue
            gate.wait(self.pause_s)
            t = e2e_seconds(bench, self.threads, 200 if not self.quick else 20, 0.2 if not self.quick else 0.05,
                            session)
            out.append(Timed(bench.label, t,
                             lambda o, a=(bench, k, length, transposed, t), r=rows, q=int8: [
                                 weight_chain_sample(*a, o, rows=r, int8=q)]))
            bar.step(bench.label)
        return out

    def _activation_chains(self, gate: QuietGate, bar: _Steps, only: set[str] | None) -> list[Timed]:
        out: list[Timed] = []
        for h, m, k in self.chains_a:
            bench = activation_chain(h, m, k)
            if only is not None and bench.label not in only:
                continue
            gate.wait(self.pause_s)
            t = e2e_seconds(bench, self.threads, 200 if not self.quick else 20, 0.1 if not self.quick else 0.05)
            out.append(Timed(bench.label, t, lambda o, a=(bench, h, m, k, t): [activation_chain_sample(*a, o)]))
            bar.step(bench.label)
        return out

    def _mixed(self, gate: QuietGate, bar: _Steps, only: set[str] | None) -> list[Timed]:
        out: list[Timed] = []
        for blocks in MIXED_BLOCKS:
            bench = mixed_graph(blocks)
            if only is not None and bench.label not in only:
                continue
            times = []
            for _ in range(MIXED_REPEATS if not self.quick else 1):  # a difference of two: each its quickest
                gate.wait(self.pause_s)
                times.append(e2e_seconds(bench, self.threads, 400 if not self.quick else 40,
                                         0.15 if not self.quick else 0.05))
            whole = mixed_sample(blocks, min(times))  # needs no overheads
            out.append(Timed(bench.label, min(times), lambda o, s=whole: [s]))
            bar.step(bench.label)
        return out

    def _cold(self, work: Path, gate: QuietGate, bar: _Steps, only: set[str] | None) -> list[Timed]:
        out: list[Timed] = []
        for s, blocks in self.cold:
            label = cold_label(blocks, s)
            if only is not None and label not in only:
                continue
            gate.wait(self.pause_s)
            sample = cold_sample(s, blocks, self.threads, 40 if not self.quick else 8, work)
            # confirmation compares passes by this figure: the cold cost itself, a difference of two sums
            out.append(Timed(label, sample.seconds, lambda o, x=sample: [x]))
            bar.step(label)
        return out
