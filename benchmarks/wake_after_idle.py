"""How much slower a session Run is after the process slept: the cost a server pays at light load.  (issue #18)

    python benchmarks/wake_after_idle.py [--gaps-ms 0 0.5 2 10 50] [--reps 60] [--threads 1] [MODEL.onnx ...]

A served model at light load runs after an idle gap, and on a shared VM that Run is slower than one that
follows another Run: the fleet simulator's wake-up term (planner.fleet.overhead, measured by
benchmarks/fleet_load.py around an Identity model) charges it by gap. This prints, per model, the median Run
after sleeping each gap (--reps Runs each) and its excess over back-to-back Runs (gap 0). The models: a chain of
1 and 256 tiny Relus (what the Identity measurement sees: the executor alone), then models/cnn.onnx,
encoder.onnx and decoder.onnx (or the ones named), their dims bound as benchmarks/fleet_load.py binds them.
Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.calibration.benches import chain  # noqa: E402
from planner.ort.measure import synthetic_feeds  # noqa: E402
from planner.ort.session import make_session, session_options  # noqa: E402

DIMS = {"batch": 1, "batch_size": 1, "sequence": 128, "sequence_length": 32, "total_sequence_length": 32,
        "past_sequence_length": 0}
MODELS = [ROOT / "models" / f"{m}.onnx" for m in ("cnn", "encoder", "decoder")]


def after_gaps(model: bytes | str, gaps_s: list[float], reps: int, threads: int) -> list[float]:
    """Median Run (s) after sleeping each gap, the gaps interleaved rep by rep so that a busy spell of the
    machine falls on all of them alike."""
    session = make_session(model, session_options(threads))
    feeds = synthetic_feeds(session, DIMS)
    for _ in range(20):
        session.run(None, feeds)
    times: list[list[float]] = [[] for _ in gaps_s]
    for _ in range(reps):
        for i, gap in enumerate(gaps_s):
            if gap:
                time.sleep(gap)
            else:
                session.run(None, feeds)  # the Run before, so that this one follows a Run
            t0 = time.perf_counter()
            session.run(None, feeds)
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="ONNX models (default: the shipped cnn, encoder, decoder)")
    ap.add_argument("--gaps-ms", nargs="+", type=float, default=[0, 0.5, 2, 10, 50])
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    gaps = [g / 1e3 for g in args.gaps_ms]
    if 0.0 not in gaps:
        gaps.insert(0, 0.0)
    cases: list[tuple[str, bytes | str]] = [("relu x1", chain(1).model), ("relu x256", chain(256).model)]
    cases += [(Path(m).name, str(m)) for m in (args.models or MODELS)]
    print(f"median Run after an idle gap, {args.reps} Runs each, {args.threads} thread(s); excess over gap 0 in "
          f"brackets (us)")
    print(f"{'model':14}" + "".join(f"{g * 1e3:>18g} ms" for g in gaps))
    for name, model in cases:
        t = after_gaps(model, gaps, args.reps, args.threads)
        print(f"{name:14}" + "".join(f"{x * 1e6:>11.1f} (+{(x - t[0]) * 1e6:5.0f})" for x in t), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
