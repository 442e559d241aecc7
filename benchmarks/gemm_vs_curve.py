"""Does the calibrated GEMM curve time a lone float MatMul of a model's shape as onnxruntime runs it?  (issue #16)

    python benchmarks/gemm_vs_curve.py [--calibration FILE] [--runs 40] [SHAPE ...]

Each SHAPE is M x K x N ("128x768x3072"), one MatMul [M, K] x [K, N] over a weight (prepacked by onnxruntime),
profiled at 1 thread (the quickest quartile of its runs, the statistic the calibration keeps), beside what
`plan predict --target host` gives that one node with the calibration. A miss here is the curve's (the shape
falls between the benches it was fitted on); a shape timed right here and wrong in a model is the model's
context (weights in play, what the nodes around it leave in the caches). On a Xeon with AMX (2026-12-07): an
encoder's 128-row shapes within 0-9%, Swin's 3136 x 96 x 384 (6 MiB of activations) 12% under.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.node_profile import node_quartiles_us, weight_matmul  # noqa: E402
from planner.calibration.host import predict_ort  # noqa: E402
from planner.errors import PlannerError  # noqa: E402
from planner.model.loader import load_model  # noqa: E402

DEFAULT_SHAPES = ["128x256x256", "128x512x512", "128x768x768", "128x768x3072", "128x3072x768", "3136x96x384",
                  "784x192x768", "196x384x1536"]


def predicted_us(model: onnx.ModelProto, calibration: str | None) -> float:
    with tempfile.TemporaryDirectory(prefix="planner-gemm-") as tmp:
        path = Path(tmp) / "mm.onnx"
        onnx.save(model, path)
        prediction = predict_ort(load_model(path), 1, calibration_path=calibration).prediction
    return max(k.time.seconds for k in prediction.kernels) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shapes", nargs="*", default=DEFAULT_SHAPES, help="M x K x N, e.g. 128x768x3072")
    ap.add_argument("--calibration", default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    shapes = []
    for text in args.shapes:
        got = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text)
        if not got or min(map(int, got.groups())) < 1 or args.runs < 1:
            print(f"gemm_vs_curve: {text!r} is not M x K x N of positive sizes (or --runs < 1)", file=sys.stderr)
            return 2
        shapes.append(tuple(map(int, got.groups())))
    errors = []
    for m, k, n in shapes:
        model = weight_matmul(m, k, n)
        try:
            pred = predicted_us(model, args.calibration)
        except PlannerError as e:
            print(f"gemm_vs_curve: {e}", file=sys.stderr)
            return 2
        meas = next(iter(node_quartiles_us(model, args.runs).values()))
        errors.append(pred / meas - 1)
        print(f"{m:5} x {k:5} x {n:5}: measured {meas:9.1f} us ({2 * m * k * n / meas / 1e3:6.1f} GFLOP/s), "
              f"predicted {pred:9.1f} us, error {pred / meas - 1:+6.1%}", flush=True)
    print(f"median error {float(np.median(errors)):+.1%} over {len(errors)} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
