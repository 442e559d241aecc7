"""How fast a one-row int8 GEMM reads its weights in and out of cache, against the prediction: the check of the
calibration's int8 weight chains (planner.calibration.suite.INT8_WEIGHT_CHAINS, rates' int8 weight stream).

    python benchmarks/int8_weight_streams.py [--runs 100] [--calibration FILE]

Chains of n DynamicQuantizeMatMul nodes, one row of A, each with a K x K int8 weight of its own (as a decoder's
layers are), so that n x K² bytes of weights are in play: 1, 4 and 64 nodes at K = 512, 1024 and 2048. It prints
per node the time (the 25th percentile of --runs end-to-end runs, divided by n) and the weight bytes per second,
and, with --calibration, what the planner predicts for the same node (plan predict's per-kernel time, the weights
of the whole chain in play). One thread. Run it on a quiet machine; nothing is stored.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from planner.calibration.benches import weight_chain  # noqa: E402


def measured_per_node(model: bytes, n: int, k: int, runs: int) -> float:
    o = ort.SessionOptions()
    o.intra_op_num_threads = o.inter_op_num_threads = 1
    s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    feed = {"x": np.random.default_rng(0).standard_normal((1, k)).astype(np.float32)}
    for _ in range(20):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 25)) / n


def predicted_per_node(model: bytes, calibration: Path) -> float:
    from planner.calibration.host import predict_ort
    from planner.model.loader import load_model

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "chain.onnx"
        path.write_bytes(model)
        p = predict_ort(load_model(path), threads=1, calibration_path=calibration).prediction
    gemms = [k for k in p.kernels if "DynamicQuantizeMatMul" in k.kernel.op_types]
    return float(np.median([k.time.seconds for k in gemms]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--calibration", type=Path, help="also print the planner's prediction under this calibration")
    args = ap.parse_args()
    print(f"{'K':>5} {'nodes':>5} {'weights':>10} {'per node':>10} {'GB/s':>6}" +
          (f" {'predicted':>10} {'pred/meas':>9}" if args.calibration else ""))
    for k in (512, 1024, 2048):
        for n in (1, 4, 64):
            model = weight_chain(k, n, int8=True).model  # the calibration's own chains
            t = measured_per_node(model, n, k, args.runs)
            line = f"{k:>5} {n:>5} {n * k * k / 2**20:>6.1f} MiB {t * 1e6:>7.1f} us {k * k / t / 1e9:>6.1f}"
            if args.calibration:
                p = predicted_per_node(model, args.calibration)
                line += f" {p * 1e6:>7.1f} us {p / t:>9.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
