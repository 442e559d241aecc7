"""Does a small node cost more when the data between its runs has pushed the executor's code out of the cache?
(issue #16)

    python benchmarks/cold_nodes.py [--blocks 4 24] [--stream 8192] [--d 64] [--shared]

Four graphs of `blocks` blocks each, at two block counts so that the per-run cost cancels in the slope:

    mixed      benches.mixed_graph's block of 17 small nodes (a decoder's kind: Mul, ReduceMean, Sqrt, Div,
               Reshape, Transpose, Softmax, Slice, Neg, Concat, Unsqueeze, Squeeze, Add, a d x d MatMul)
    streams    per block two GEMVs over weights [d, S] and [S, d] (4 MiB a block at d = 64, S = 8192; 16 MiB
               in all at 4 blocks, 96 at 24; with --shared the same two in every block, 4 MiB in all)
    both       the mixed block with its d x d MatMul replaced by those two GEMVs
    mm         the d x d MatMuls alone (benches.weight_chain)

If a node's cost were its own, both = mixed + streams - mm, per block. What `both` takes beyond that, over its
16 small nodes, is what each pays for running cold: its code and the executor's data fetched again after the
weights went by. End to end (no profiler), 1 thread, the quickest quartile of runs, three interleaved rounds,
the quickest kept.

On a Xeon with AMX under KVM (2026-12-08 00:45-00:50 UTC, quiet): small nodes 270-283 ns each among their
kind; with each block's own weights streamed between them (DRAM at 24 blocks) +2.0, +2.1, +2.5 and +4.0 us a
small node in four runs; 1 MiB a block (--stream 2048) +0.24 and +0.32 us; the same 4 MiB in every block
(--shared, the L3) +0.01 and +0.73 us. A node is several times its chain's cost when the weights come from
DRAM: the tiny nodes of the zoo's decoder steps and QDQ models were profiled at 2-3 us where their chains say
0.3-0.5 (docs/fidelity.md). The streams' own time moves by more than the effect on a shared machine, so the
calibration measures it by the small nodes' profiled time instead (planner.calibration.cold) and the cost model
charges it per kind (planner.predict.cold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
from onnx import helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.calibration.benches import Bench, make, mixed_graph, rand, vi, weight, weight_chain  # noqa: E402
from planner.calibration.timing import e2e_seconds  # noqa: E402


def streams(blocks: int, d: int, s: int, shared: bool, small: bool) -> Bench:
    """Per block two GEMVs over [d, s] and [s, d] weights (with `shared`, the same two in every block); with
    `small`, mixed_graph's small nodes before them, in place of its d x d MatMul."""
    if small:
        base = onnx.load_from_string(mixed_graph(blocks, d).model)
        source, inits = list(base.graph.node), list(base.graph.initializer)
    else:
        source, inits = [helper.make_node("MatMul", ["x" if i == 0 else f"o{i - 1}", f"w{i}"],
                                          ["y" if i == blocks - 1 else f"o{i}"]) for i in range(blocks)], []
    nodes = []
    for n in source:
        if n.op_type != "MatMul":
            nodes.append(n)
            continue
        u, v = ("u", "v") if shared else (f"u{len(nodes)}", f"v{len(nodes)}")
        if u not in {t.name for t in inits}:
            inits += [weight(u, [d, s], 100 + len(nodes)), weight(v, [s, d], 200 + len(nodes))]
        nodes += [helper.make_node("MatMul", [n.input[0], u], [f"h{len(nodes)}"]),
                  helper.make_node("MatMul", [f"h{len(nodes)}", v], [n.output[0]])]
    read = {t for n in nodes for t in n.input}
    return Bench(f"{'both' if small else 'streams'} x{blocks}",
                 make(nodes, [vi("x", [1, 1, d])], [vi("y", [1, 1, d])], [t for t in inits if t.name in read]),
                 {"x": rand([1, 1, d], 6)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs=2, default=[4, 24])
    ap.add_argument("--stream", type=int, default=8192, help="S: each block streams 2 x d x S floats")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shared", action="store_true", help="the same two weights in every block (4 MiB in all at "
                    "the defaults: in the L3) instead of two of its own a block (16 MiB at 4 blocks, 96 at 24)")
    args = ap.parse_args()
    lo, hi = args.blocks
    kinds = {"mixed": lambda b: mixed_graph(b, args.d),
             "streams": lambda b: streams(b, args.d, args.stream, args.shared, False),
             "both": lambda b: streams(b, args.d, args.stream, args.shared, True),
             "mm": lambda b: weight_chain(args.d, b)}
    benches = {(k, b): f(b) for k, f in kinds.items() for b in (lo, hi)}
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for key, bench in benches.items():
            t = e2e_seconds(bench, 1, 60, 1.5)
            best[key] = min(best.get(key, t), t)
    slope = {k: (best[(k, hi)] - best[(k, lo)]) / (hi - lo) for k in kinds}
    nodes = {b: len(onnx.load_from_string(benches[("mixed", b)].model).graph.node) for b in (lo, hi)}
    small = (nodes[hi] - nodes[lo]) // (hi - lo) - 1  # a block's nodes beside its MatMul (views included)
    for k in kinds:
        print(f"{k:<8} {lo} blocks {best[(k, lo)] * 1e6:9.1f} us  {hi} blocks {best[(k, hi)] * 1e6:9.1f} us  "
              f"per block {slope[k] * 1e6:8.2f} us")
    extra = slope["both"] - slope["streams"] - (slope["mixed"] - slope["mm"])
    print(f"both beyond its parts: {extra * 1e6:+.2f} us a block, {extra / small * 1e9:+.0f} ns per small node "
          f"(small nodes hot: {(slope['mixed'] - slope['mm']) / small * 1e9:.0f} ns each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
