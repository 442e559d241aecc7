"""Does a kernel run as fast inside a graph as the calibration's bench of it alone?  (issue #16, item 3)

On the zoo most models come out fast whatever the calibration, and the deficit sits inside the kernels
(docs/fidelity.md, late afternoon of 2026-12-07). This builds a graph nobody tuned for, from code: a
BERT-like encoder of L layers (hidden H, S tokens, NH heads, feed-forward FF; LayerNormalization, Q/K/V and
output projections with biases, scaled attention with Softmax, Gelu), predicts it on `host` with the
calibration given (nothing of it runs for that), then measures it and compares kernel by kernel as `plan
validate` does, and prints end to end and per op type, predicted against measured:

    python benchmarks/in_graph_block.py [--calibration CAL] [--layers 4] [--hidden 256] [--seq 128] [--runs 50]

Each Gemm (onnxruntime fuses MatMul + Add) is also timed alone, its bench shape in a loop of its own, so that
the slowdown a graph adds to the very kernel the calibration timed is printed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def encoder(layers: int, hidden: int, seq: int, heads: int, ff: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def w(name: str, shape: list[int]) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    inits += [numpy_helper.from_array(np.array([1, seq, heads, hidden // heads], np.int64), "shape4"),
              numpy_helper.from_array(np.array([1, seq, hidden], np.int64), "shape3"),
              numpy_helper.from_array(np.array((hidden // heads) ** -0.5, np.float32), "scale")]
    x = "x"
    for i in range(layers):
        p = f"l{i}."
        ln = node("LayerNormalization", [x, w(p + "g1", [hidden]), w(p + "b1", [hidden])], p + "ln1", axis=-1)
        qkv = []
        for t in "qkv":
            y = node("Add", [node("MatMul", [ln, w(p + "w" + t, [hidden, hidden])], p + t),
                             w(p + "bias" + t, [hidden])], p + t + ".b")
            y = node("Reshape", [y, "shape4"], p + t + ".r")
            qkv.append(node("Transpose", [y], p + t + ".t", perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]))
        scores = node("Mul", [node("MatMul", qkv[:2], p + "s"), "scale"], p + "s.scaled")
        ctx = node("MatMul", [node("Softmax", [scores], p + "probs", axis=-1), qkv[2]], p + "ctx")
        ctx = node("Reshape", [node("Transpose", [ctx], p + "ctx.t", perm=[0, 2, 1, 3]), "shape3"], p + "ctx.r")
        out = node("Add", [node("MatMul", [ctx, w(p + "wo", [hidden, hidden])], p + "o"), w(p + "bo", [hidden])],
                   p + "o.b")
        x1 = node("Add", [out, x], p + "res1")
        ln2 = node("LayerNormalization", [x1, w(p + "g2", [hidden]), w(p + "b2", [hidden])], p + "ln2", axis=-1)
        h = node("Add", [node("MatMul", [ln2, w(p + "w1", [hidden, ff])], p + "f1"), w(p + "bf1", [ff])], p + "f1.b")
        h = node("Gelu", [h], p + "gelu")
        h = node("Add", [node("MatMul", [h, w(p + "w2", [ff, hidden])], p + "f2"), w(p + "bf2", [hidden])], p + "f2.b")
        x = node("Add", [h, x1], p + "res2")
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, seq, hidden]) for name in ("x", x)]
    graph = helper.make_graph(nodes, "encoder", io[:1], io[1:], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)


def gemm_alone(m: int, k: int, n: int, runs: int = 200) -> float:
    """One Gemm with a bias in a loop of its own, timed as the calibration times a bench end to end
    (planner.calibration.timing.e2e_seconds), less an Identity's run of the same input."""
    from planner.calibration.benches import Bench, make, vi
    from planner.calibration.timing import e2e_seconds

    rng = np.random.default_rng(1)
    feeds = {"a": rng.random((m, k), np.float32)}
    gemm = Bench("gemm", make([helper.make_node("Gemm", ["a", "w", "b"], ["y"])], [vi("a", [m, k])],
                              [vi("y", [m, n])], [numpy_helper.from_array(rng.random((k, n), np.float32), "w"),
                                                  numpy_helper.from_array(rng.random(n, np.float32), "b")]), feeds)
    empty = Bench("empty", make([helper.make_node("Identity", ["a"], ["y"])], [vi("a", [m, k])],
                                [vi("y", [m, k])]), feeds)
    return e2e_seconds(gemm, 1, runs, 2.0) - e2e_seconds(empty, 1, runs, 2.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    if min(args.layers, args.hidden, args.seq, args.heads, args.runs) < 1 or args.hidden % args.heads:
        print("in_graph_block: sizes must be positive and --hidden a multiple of --heads", file=sys.stderr)
        return 2
    from planner.calibration.host import predict_ort
    from planner.calibration.validate import compare
    from planner.errors import PlannerError
    from planner.model.loader import load_model
    from planner.ort.measure import measure

    ff = 4 * args.hidden
    with tempfile.TemporaryDirectory(prefix="planner-block-") as tmp:
        path = Path(tmp) / "encoder.onnx"
        onnx.save(encoder(args.layers, args.hidden, args.seq, args.heads, ff), path)
        try:  # predicted once, measured once, compared kernel by kernel as `plan validate` does
            op = predict_ort(load_model(path), calibration_path=args.calibration)
            cal = op.calibration
            m = measure(path, {}, 1, args.runs, quiet_probe_s=cal.probe_s if cal else None,
                        quiet_memory_probe_s=cal.probe_memory_s if cal else None)
        except PlannerError as e:
            print(f"in_graph_block: {e}", file=sys.stderr)
            return 2
    kernels, op_types, _, _ = compare(op.prediction, m, op.target.launch_overhead_s if cal else 0.0,
                                      cal.profiler_bias_s if cal else 0.0)
    predicted = op.prediction.latency_s
    print(f"encoder of {args.layers} layers, hidden {args.hidden}, {args.seq} tokens "
          f"(calibration {cal.created if cal else 'none'}):")
    print(f"  end to end: predicted {predicted * 1e3:.3f} ms, measured {m.latency_s * 1e3:.3f} ms (median), "
          f"{m.latency_best_s * 1e3:.3f} ms (quickest): {100 * (predicted / m.latency_s - 1):+.1f}%")
    for o in sorted(op_types, key=lambda o: -o.measured_ms):
        print(f"  {o.op_type:<20} {o.kernels:>4} kernels {o.predicted_ms:8.3f} ms {o.measured_ms:8.3f} ms "
              f"{100 * o.error:+6.1f}%")
    weights = {}  # Gemm kernel name -> its weight's [K, N]
    for kp in op.prediction.kernels:
        node = op.analysis.graph.nodes[kp.kernel.nodes[0]]
        if node.op_type == "Gemm" and node.in_shape(1):
            weights[kp.kernel.name] = tuple(node.in_shape(1))
    by_shape: dict[tuple[int, ...], list[tuple[float, float]]] = {}
    for k in kernels:
        if k.name in weights:
            by_shape.setdefault(weights[k.name], []).append((k.predicted_us, k.measured_us))
    for shape, pairs in sorted(by_shape.items()):
        alone = gemm_alone(args.seq, shape[0], shape[1]) * 1e6
        predicted, in_graph = (statistics.median(x[i] for x in pairs) for i in (0, 1))
        print(f"  Gemm {args.seq}x{shape[0]}x{shape[1]} x{len(pairs)}: predicted {predicted:.1f} us, in the graph "
              f"{in_graph:.1f} us (profiled), alone {alone:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
