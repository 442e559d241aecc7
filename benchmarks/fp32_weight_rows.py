"""How much slower does a several-row float GEMM run when its weights are one share of many?  (issue #16)

    python benchmarks/fp32_weight_rows.py [--rows 32 128] [--k 256 512 1024] [--in-play 3 12 48] [--runs 60]

Per shape, a chain of Gemm nodes [rows, k] x [k, k] + bias, each with a weight of its own, sized to about each
--in-play MiB of weights in all, is profiled (1 thread, the quickest quartile of each node's runs, the median
over the chain's nodes) against the same Gemm alone, and the difference is printed with the speed it implies
for the weights (bytes / extra time). On a Zen 4 EPYC about 40 us per MiB of weights at 48 MiB in play, as
the calibration's FP32_ROW_CHAINS measure; the planner reads them at that speed (fp32_rows_weight_curve).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.node_profile import node_quartiles_us  # noqa: E402


def chain(rows: int, k: int, length: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(length):
        inits += [numpy_helper.from_array((rng.standard_normal((k, k)) / k ** 0.5).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(k, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"y{i}"], name=f"gemm{i}"))
        x = f"y{i}"
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [rows, k]) for n in ("x", x)]
    return helper.make_model(helper.make_graph(nodes, "chain", io[:1], io[1:], inits),
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def gemm_us(model: onnx.ModelProto, runs: int) -> float:
    """The median over the chain's Gemm nodes of each node's quickest-quartile profiled time, in us."""
    return statistics.median(node_quartiles_us(model, runs, lambda op: op == "Gemm").values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--k", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--in-play", type=float, nargs="+", default=[3.0, 12.0, 48.0], help="MiB of weights in all")
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    if min(args.rows + args.k + [args.runs]) < 1 or min(args.in_play) <= 0:
        print("fp32_weight_rows: sizes must be positive", file=sys.stderr)
        return 2
    for rows in args.rows:
        for k in args.k:
            w = 4 * k * k
            alone = gemm_us(chain(rows, k, 1), args.runs)
            cells = [f"rows {rows:4} x {w / 2**20:5.2f} MiB: alone {alone:8.1f} us"]
            for mib in args.in_play:
                length = max(2, round(mib * 2**20 / w))
                t = gemm_us(chain(rows, k, length), args.runs)
                extra = t - alone
                speed = f"{w / (extra * 1e-6) / 1e9:5.1f} GB/s" if extra > 0.5 else "  (none)"
                cells.append(f"{length * w / 2**20:4.0f} MiB {t:8.1f} us ({extra:+6.1f}, {speed})")
            print("  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
