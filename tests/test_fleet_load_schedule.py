"""The in-process batcher of benchmarks/fleet_load.py (--sender inprocess), against arrival times worked by hand."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _fleet_load():
    spec = importlib.util.spec_from_file_location("fleet_load", ROOT / "benchmarks" / "fleet_load.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fleet_load"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class _Instant:
    """A session whose Run returns at once and remembers the batch it was given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def run(self, _outputs, feeds):
        self.batches.append(len(feeds["x"]))


def test_batches_leave_full_or_on_the_max_delay():
    fl = _fleet_load()
    sess = _Instant()
    # four at once with max batch 2: two full batches at once; then one alone leaves on the 30 ms delay;
    # then two 1 ms apart, which fill a batch when the second arrives
    offsets = np.array([0.0, 0.0, 0.0, 0.0, 0.2, 0.4, 0.401])
    raw = np.frombuffer(fl.serve_schedule(sess, {"x": np.ones((1, 4), np.float32)}, offsets, 2, 0.03), np.float64)
    start, nrows, n = raw[0], int(raw[1]), len(offsets)
    done = raw[2:2 + n]
    rows = raw[2 + n:].reshape(nrows, 6)
    assert sess.batches == [2, 2, 1, 2]
    assert list(rows[:, 0]) == [2, 2, 1, 2]
    latency = done - (start + offsets)
    assert np.all(latency[:4] < 0.03)  # full batches do not wait for the delay
    assert 0.03 <= latency[4] < 0.03 + 0.05  # alone: the delay, and the timer's lateness at most
    assert 0.001 <= latency[5] < 0.03 and latency[6] < latency[5]  # the first waited for the second, not the delay
    assert rows[0, 3] == -1.0 and rows[2, 3] >= 0.0  # "late" is set only for batches that left on the delay
