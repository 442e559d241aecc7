"""Dynamic batching over model instances, as a discrete-event simulation (SimPy).

The batcher is Triton's (and onnxruntime server's) dynamic batcher: requests wait in one queue; when an instance
is free, a batch leaves as soon as `max_batch` requests wait or the oldest has waited `max_delay_s`, whichever
comes first, taking at most `max_batch` of them. With `max_delay_s = 0` an idle instance takes whatever waits.
A batch of b requests keeps its instance busy for `service_s(b)` (the plan's latency at batch b plus what the
server itself spends on the batch, planner.fleet.overhead), and each request's latency is its wait plus that,
plus `extra_latency_s` spent outside the instance (the client's send, the reply's way back). A batch that leaves
on the max queue delay leaves `timer_late_s` after it: a server's timer wakes it late; and a batch after the
instance sat idle costs `wake_s(idle, run)` more, run the batch's service time (a CPU that slept runs its first
work slowly, and a longer run pays more of it).

    arrivals ──▶ queue ──(max_batch or max_delay + late)──▶ instance 1..k ──service_s(b)──▶ done (+ extra)

Why a simulation and not a formula: with batching the service time depends on the queue, and no closed form
covers the percentiles of this batcher; M/D/1 (max_batch 1) has one for the mean wait, and the tests compare
against it (tests/test_fleet_queueing.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

WARMUP = 0.1  # the first 10% of requests are dropped from the statistics: the queue starts empty


@dataclass(frozen=True)
class Stats:
    """Latency percentiles (s) of the requests after the warm-up, and how busy the instances were."""

    p50_s: float
    p95_s: float
    p99_s: float
    mean_s: float
    mean_wait_s: float
    mean_batch: float
    utilization: float  # busy instance-time / (instances x simulated time)
    completed: int

    def percentile_s(self, q: int) -> float:
        return {50: self.p50_s, 95: self.p95_s, 99: self.p99_s}[q]


def summarize(latency: np.ndarray, wait: np.ndarray, batches: list[int], busy_s: float, span_s: float,
              instances: int) -> Stats:
    start = int(len(latency) * WARMUP)
    lat, w = latency[start:], wait[start:]
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return Stats(float(p50), float(p95), float(p99), float(lat.mean()), float(w.mean()),
                 float(np.mean(batches)) if batches else 0.0, busy_s / (instances * span_s) if span_s > 0 else 0.0,
                 len(lat))


def simulate(arrivals_s: np.ndarray, service_s: Callable[[int], float], max_batch: int, max_delay_s: float = 0.0,
             instances: int = 1, extra_latency_s: float | np.ndarray = 0.0, timer_late_s: float = 0.0,
             wake_s: Callable[[float, float], float] | None = None,
             spread: Callable[[int, float], float] | None = None) -> Stats:
    """Run the arrivals (at least one, sorted) through the batcher; every request completes (the run lasts until
    the queue drains). `extra_latency_s` (one for all, or one per request) is added to each request's latency;
    `timer_late_s` to a max queue delay
    that is not zero (with none, an idle instance sets no timer). `spread`: the k-th batch's service time is
    multiplied by spread(k, its idle gap) (seeded draws of how Runs spread around their median)."""
    hold_s = max_delay_s + timer_late_s if max_delay_s > 0 else 0.0
    env = simpy.Environment()
    waiting: deque[int] = deque()
    n = len(arrivals_s)
    done = np.zeros(n)
    started = np.zeros(n)
    batches: list[int] = []
    state = {"wake": env.event(), "busy": 0.0}

    def arrive():
        for i, t in enumerate(arrivals_s):
            if t > env.now:
                yield env.timeout(t - env.now)
            waiting.append(i)
            wake, state["wake"] = state["wake"], env.event()
            wake.succeed()

    def instance():
        last_end = 0.0
        while True:
            while not waiting:
                yield state["wake"]
            deadline = arrivals_s[waiting[0]] + hold_s
            while len(waiting) < max_batch and env.now < deadline:
                yield state["wake"] | env.timeout(deadline - env.now)
                if not waiting:  # another instance took them
                    break
            if not waiting:
                continue
            batch = [waiting.popleft() for _ in range(min(max_batch, len(waiting)))]
            for i in batch:
                started[i] = env.now
            gap = env.now - last_end
            s = service_s(len(batch))
            s += wake_s(gap, s) if wake_s is not None else 0.0
            if spread is not None:
                s *= spread(len(batches), gap)
            batches.append(len(batch))
            state["busy"] += s
            yield env.timeout(s)
            last_end = env.now
            for i in batch:
                done[i] = env.now

    env.process(arrive())
    for _ in range(instances):
        env.process(instance())
    _run_until_done(env, done, arrivals_s)
    return summarize(done - arrivals_s + extra_latency_s, started - arrivals_s, batches, state["busy"],
                     float(done.max() - arrivals_s[0]), instances)


def _run_until_done(env: simpy.Environment, done: np.ndarray, arrivals_s: np.ndarray) -> None:
    """Step until the last request completes (the instance processes loop for ever)."""
    last = float(arrivals_s[-1])
    env.run(until=last + 1e-12 if last > 0 else 1e-12)
    while (done == 0).any():
        env.step()
