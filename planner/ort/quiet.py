"""Wait for a quiet moment before timing anything: a probe kernel's speed says when neighbours are busy.

This VM shares its physical cores with others. When a neighbour runs on the sibling hyperthread, compute-bound
code here slows by up to 60% for tens of seconds (a 128^3 MatMul takes 40 us instead of 24 us; ResNet-50's
median moves between 57 and 73 ms), and no statistic over runs taken inside such a phase recovers the quiet
number. So calibration and measurement first run a small probe, a 128 x 128 x 128 MatMul, until it is within
TOLERANCE of the quickest probe seen, and only then time the real thing. Waiting is bounded: a machine that is
never quiet is measured as it is, and the caller learns that it was not quiet.

That probe runs in cache, so it does not see neighbours that share the memory bus: a chain of GEMVs over 64 MB
of weights ran at 16-18 GB/s against 22.9 GB/s twenty minutes earlier while the MatMul probe said quiet, and
models whose weights stream from DRAM (decode steps) moved by as much between rounds. A gate made with
`memory=True` also streams STREAM_PROBE_BYTES (an Add far past any last-level cache) and waits for that too to
run within TOLERANCE of its quickest (or of `reference_memory_s`, the calibration's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from planner.ort.clock import effective_seconds, timed_run
from planner.ort.session import make_session, session_options

TOLERANCE = 1.15  # within 15% of the quickest probe seen is quiet: a busy sibling makes it 1.5x; the quickest
# of hundreds of probes is itself a few percent below a typical quiet one
PROBE_RUNS = 7
STREAM_PROBE_BYTES = 96 << 20  # two inputs and an output of 32 MiB: DRAM on the CPUs this runs on
STREAM_PROBE_RUNS = 3  # a few ms each


def _probe_session(threads: int):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array((np.arange(128 * 128, dtype=np.float32).reshape(128, 128) % 7) * 0.01, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [128, 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [128, 128])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return make_session(model.SerializeToString(), session_options(threads))


def _stream_probe_session(threads: int):
    from onnx import TensorProto, helper

    shape = [STREAM_PROBE_BYTES // 12 // 1024, 1024]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "stream_probe",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feeds = {"a": np.ones(shape, np.float32), "b": np.full(shape, 0.5, np.float32)}
    return make_session(model.SerializeToString(), session_options(threads)), feeds


@dataclass
class QuietGate:
    """`wait()` returns once the probe runs as fast as it has ever run here (or as `reference_s` says a quiet
    moment runs it), or when `budget_s` of waiting in all is spent."""

    threads: int = 1
    reference_s: float | None = None  # the quiet probe time, e.g. from the calibration
    budget_s: float = 20.0
    best_s: float = field(default=float("inf"), init=False)
    waited_s: float = field(default=0.0, init=False)
    noisy: int = field(default=0, init=False)  # waits that ran out of budget
    memory: bool = False  # also wait for the memory bus (the streaming probe)
    reference_memory_s: float | None = None  # the quiet streaming probe time, e.g. from the calibration
    best_memory_s: float = field(default=float("inf"), init=False)

    def __post_init__(self) -> None:
        self._session = _probe_session(self.threads)
        self._feeds = {"x": np.ones((128, 128), np.float32)}
        for _ in range(5):
            self._session.run(None, self._feeds)
        if self.reference_s:
            self.best_s = self.reference_s
        self._stream = None
        if self.memory:
            self._stream = _stream_probe_session(self.threads)
            self._stream[0].run(None, self._stream[1])  # the output's pages, untimed
            if self.reference_memory_s:
                self.best_memory_s = self.reference_memory_s

    def probe(self) -> float:

        times = sorted(effective_seconds(w, c, self.threads)
                       for w, c in (timed_run(self._session, self._feeds) for _ in range(PROBE_RUNS)))
        t = times[len(times) // 2]
        self.best_s = min(self.best_s, t)
        return t

    def probe_memory(self) -> float:
        """The streaming probe's median time; the quickest is remembered."""
        if self._stream is None:
            self._stream = _stream_probe_session(self.threads)
            self._stream[0].run(None, self._stream[1])
        session, feeds = self._stream
        times = sorted(effective_seconds(w, c, self.threads)
                       for w, c in (timed_run(session, feeds) for _ in range(STREAM_PROBE_RUNS)))
        t = times[len(times) // 2]
        self.best_memory_s = min(self.best_memory_s, t)
        return t

    def quiet(self) -> bool:
        """One look: the MatMul probe, and with memory=True the streaming one, within TOLERANCE of their best."""
        if self.probe() > TOLERANCE * self.best_s:
            return False
        return not self.memory or self.probe_memory() <= TOLERANCE * self.best_memory_s

    def wait(self, max_s: float = 3.0) -> bool:
        """True when quiet; at most `max_s` here and the remaining budget overall."""
        start = time.perf_counter()
        for _ in range(3):  # whatever ran before evicted the probe's weights: warm them up, untimed
            self._session.run(None, self._feeds)
        while True:
            if self.quiet():
                return True
            spent = time.perf_counter() - start
            if spent > max_s or self.waited_s + spent > self.budget_s:
                self.waited_s += spent
                self.noisy += 1
                return False
            time.sleep(0.05)
