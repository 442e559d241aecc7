"""Timing onnxruntime runs: wall and CPU time of each run, and the share of the CPU a run really had."""

from __future__ import annotations

import time
from collections.abc import Sequence

# A model of a few microseconds is not warm after 3 runs: on this VM the median of 10 runs of the zoo's MLP
# (15 us) came out 15-50% above that of 300 or 3000, which agreed within 2%. So warm-up and timing also last
# at least this long, in as many runs as that takes (capped).
WARMUP_MIN_S = 0.05


TIMED_MIN_S = 0.1


MAX_RUNS = 20000  # warm-up runs


MAX_TIMED_RUNS = 2000  # each one's time is kept (Measurement.latency_runs_s)


def timed_run(session, feeds) -> tuple[float, float]:
    """One InferenceSession.run: (wall seconds, CPU seconds of this thread)."""
    w, c = time.perf_counter(), time.thread_time()
    session.run(None, feeds)
    return time.perf_counter() - w, time.thread_time() - c


def warm_up(session, feeds, runs: int, max_runs: int = MAX_RUNS) -> int:
    """At least `runs` runs and at least WARMUP_MIN_S of them (up to `max_runs`); returns how many ran."""
    start, n = time.perf_counter(), 0
    while n < runs or (time.perf_counter() - start < WARMUP_MIN_S and n < max_runs):
        session.run(None, feeds)
        n += 1
    return n


def timed_runs(session, feeds, runs: int) -> list[tuple[float, float]]:
    """timed_run at least `runs` times and for at least TIMED_MIN_S (up to MAX_TIMED_RUNS)."""
    start, out = time.perf_counter(), []
    while len(out) < runs or (time.perf_counter() - start < TIMED_MIN_S and len(out) < MAX_TIMED_RUNS):
        out.append(timed_run(session, feeds))
    return out


def effective_seconds(wall: float, cpu: float, threads: int) -> float:
    """A run's time with the CPU to itself: with one intra-op thread onnxruntime computes on the calling thread,
    so that thread's CPU time is the run less the time other processes held the CPU (a shared machine preempts
    a long run every few milliseconds). With more threads the workers' time is not the caller's: wall time."""
    return min(wall, cpu) if threads == 1 and cpu > 0 else wall


def cpu_shares(timed: Sequence[tuple[float, float]], threads: int, first_run: int = 0) -> dict[int, float]:
    """Per run index (counting from `first_run`): the share of its wall time it had a CPU, for scaling the
    profiled durations of its nodes (1 with several threads, where the caller's CPU time says nothing)."""
    return {first_run + i: (effective_seconds(w, c, threads) / w if w > 0 else 1.0) for i, (w, c) in
            enumerate(timed)}
