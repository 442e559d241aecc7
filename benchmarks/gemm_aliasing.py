"""Does a float GEMM slow down when the rows of A lie a multiple of 4 KiB apart?  (issue #16, families.ALIASED)

    python benchmarks/gemm_aliasing.py [--rows 128 16 10] [--n 768] [--k 768 1024 1152 2048 2304 3072 4096] [--runs 40]

Each shape is one MatMul [rows, K] x [K, N] over a weight (prepacked by onnxruntime), profiled at 1 thread; the
figure is the quickest quartile of its runs, printed as GFLOP/s beside whether the planner calls it aliased
(K floats a multiple of ALIAS_BYTES, ALIAS_ROWS rows or more). On a Zen 4 EPYC (2026-12-07): 128 rows at K =
1024, 2048, 3072, 4096 101-104 GFLOP/s, at 768, 1152, 1536, 2304, 2560 113-116; 10 rows alike at any K.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.node_profile import node_quartiles_us, weight_matmul  # noqa: E402
from planner.predict.families import ALIAS_BYTES, ALIAS_ROWS  # noqa: E402


def matmul_us(rows: int, k: int, n: int, runs: int) -> float:
    return next(iter(node_quartiles_us(weight_matmul(rows, k, n), runs).values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[128, 16, 10])
    ap.add_argument("--n", type=int, default=768)
    ap.add_argument("--k", type=int, nargs="+", default=[768, 1024, 1152, 2048, 2304, 3072, 4096])
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    if min(args.rows + args.k + [args.n, args.runs]) < 1:
        print("gemm_aliasing: sizes must be positive", file=sys.stderr)
        return 2
    for rows in args.rows:
        cells = []
        for k in args.k:
            us = matmul_us(rows, k, args.n, args.runs)
            mark = "*" if (4 * k) % ALIAS_BYTES == 0 and rows >= ALIAS_ROWS else " "
            cells.append(f"K {k:5}{mark} {2 * rows * k * args.n / us / 1e3:6.1f}")
        print(f"rows {rows:4} x N {args.n}: " + "  ".join(cells) + "  GFLOP/s (* aliased)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
