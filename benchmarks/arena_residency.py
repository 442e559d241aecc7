"""What onnxruntime's CPU arena keeps resident for activations, measured against planner.predict.arena.

    python benchmarks/arena_residency.py [--sizes 0.5,2,8,32]

Models whose memory is activations only (no weights): a chain of six Sin (two intermediates alive at a time,
then the output) and a fan (Sin and Cos of one input, then their Sum), over tensors of each size in MiB. Each is
measured like `plan validate` measures (planner.ort.measure: a fresh process, the peak resident memory beyond the
process before the session), less a 16-float model's (the session's own memory), and set beside the live peak
(what a liveness walk alone gives, the input included) and the arena walk's prediction (live peak + arena)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from onnx import helper

from planner.calibration.benches import make, vi
from planner.calibration.host import predict_ort
from planner.calibration.residency import runtime_memory
from planner.model.loader import load_model
from planner.ort.measure import measure
from planner.predict.fusion import graph_costs
from planner.predict.memory import arena_growth_bytes, peak_activation_bytes

MIB = 1 << 20


def chain(mib: float, n: int = 6) -> bytes:
    e = int(mib * MIB / 4)
    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Sin", [prev], [f"t{i}"]))
        prev = f"t{i}"
    return make(nodes, [vi("x", [1, e])], [vi(prev, [1, e])])


def fan(mib: float) -> bytes:
    e = int(mib * MIB / 4)
    nodes = [helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Cos", ["x"], ["c"]),
             helper.make_node("Sum", ["s", "c"], ["y"])]
    return make(nodes, [vi("x", [1, e])], [vi("y", [1, e])])


def predicted(path: Path) -> tuple[int, int]:
    """(live peak, arena beyond it) of the graph onnxruntime runs."""
    graph = predict_ort(load_model(path)).analysis.graph
    costs = graph_costs(graph)
    return peak_activation_bytes(graph, costs), arena_growth_bytes(graph, costs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.5,2,8,32", help="tensor sizes in MiB, comma-separated")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="planner-arena-") as tmp:
        work = Path(tmp)
        session = runtime_memory(1, work) or 0
        print(f"a session's own memory: {session / MIB:.1f} MiB (subtracted below)")
        print(f"{'model':<14} {'live peak':>10} {'predicted':>10} {'measured':>10} {'error':>7}")
        for kind, build in (("chain", chain), ("fan", fan)):
            for mib in (float(s) for s in args.sizes.split(",")):
                path = work / f"{kind}{mib}.onnx"
                path.write_bytes(build(mib))
                live, arena = predicted(path)
                rss = measure(path, {}, 1, runs=3, warmup=2).rss_peak_bytes
                if rss is None:
                    print(f"{kind} {mib:g} MiB: resident memory not readable here")
                    continue
                held = rss - session
                print(f"{kind + f' {mib:g} MiB':<14} {live / MIB:>9.1f}M {(live + arena) / MIB:>9.1f}M "
                      f"{held / MIB:>9.1f}M {100 * ((live + arena) / held - 1):>+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
