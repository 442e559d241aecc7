"""Is this machine quiet enough to time models?  Runs one model for a while and prints window medians.

    python benchmarks/machine_noise.py [--model resnet50] [--seconds 40] [--windows 12]

A model's runs are split into consecutive windows; on a machine whose neighbours take turns with the CPU the
window medians move (this VM, 2026-11-22: ResNet-50 57.5 to 73.4 ms) while the window minima stay put (56.1
to 58.1 ms). When the medians move, compare predictions only with the quietest of several rounds
(benchmarks/fidelity.py does) or calibrate again later.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet50", help="one of onnx's light models (default resnet50)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--windows", type=int, default=12)
    args = ap.parse_args(argv)

    from planner.ort.clock import timed_run
    from planner.ort.measure import synthetic_feeds
    from planner.ort.session import make_session, session_options

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{args.model}.onnx"
    if not path.exists():
        print(f"machine_noise: no light model {args.model!r}", file=sys.stderr)
        return 2
    session = make_session(str(path), session_options(1))
    feeds = synthetic_feeds(session, {})
    for _ in range(3):
        session.run(None, feeds)
    walls = []
    start = time.time()
    while time.time() - start < args.seconds:
        walls.append(timed_run(session, feeds)[0] * 1e3)
    k = max(3, len(walls) // args.windows)
    windows = [walls[i:i + k] for i in range(0, len(walls), k)]
    medians = [statistics.median(w) for w in windows]
    minima = [min(w) for w in windows]
    print(f"{args.model}: {len(walls)} runs in {args.seconds:.0f} s; median {statistics.median(walls):.2f} ms, "
          f"quickest {min(walls):.2f} ms, p25 {np.quantile(walls, 0.25):.2f} ms")
    print("window medians (ms): " + " ".join(f"{m:.1f}" for m in medians))
    print("window minima  (ms): " + " ".join(f"{m:.1f}" for m in minima))
    print(f"spread of window medians {max(medians) / min(medians) - 1:+.0%}, of minima "
          f"{max(minima) / min(minima) - 1:+.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
