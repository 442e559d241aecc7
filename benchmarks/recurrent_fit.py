"""How well does planner.model.recurrent's form time LSTM and GRU layers on this machine?  Prints fit errors.

    python benchmarks/recurrent_fit.py [--batches 1 8] [--calibration FILE]

Times a grid of layers with onnxruntime (1 thread; hidden 32-256, input h/2, h and 2h, 8 and 40 steps, each
batch given), fits planner.model.recurrent's seven costs per family on half of the grid and prints the relative error
on both halves (in sample, held out); with a calibration (default: this machine's in the user cache), also
the error of the costs `plan calibrate` fitted from its own, different layers, on the whole grid.
A layer is timed as `plan calibrate` times a microbenchmark (the quickest of two quantiles of its runs, each
after planner.ort.quiet's probe says the machine is quiet; neighbours on this VM slow layers by 20-30%), less a
one-Relu model's time (the call overhead every model pays).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HIDDEN = (32, 64, 96, 128, 192, 256)
STEPS = (8, 40)
PASSES = 2


def _bench(nodes, x: np.ndarray, inits, label: str):
    from planner.calibration.benches import Bench

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return Bench(label, model.SerializeToString(), {"x": x})


def layer_bench(op: str, steps: int, batch: int, inputs: int, hidden: int, rng):
    g = 4 if op == "LSTM" else 3
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.1, n)
             for n, s in (("W", (1, g * hidden, inputs)), ("R", (1, g * hidden, hidden)), ("B", (1, 2 * g * hidden)))]
    node = helper.make_node(op, ["x", "W", "R", "B"], ["y"], hidden_size=hidden)
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    return _bench([node], x, inits, f"{op} b{batch} in{inputs} h{hidden} x{steps}")


def quickest_s(bench, gate, passes: int = PASSES) -> float:
    """As plan calibrate times a microbenchmark: the quickest of `passes` quantiles, each after a quiet probe."""
    from planner.calibration.timing import e2e_seconds

    times = []
    for _ in range(passes):
        gate.wait(1.0)
        times.append(e2e_seconds(bench, 1, 200, 0.1))
    return min(times)


def _errors(costs, layers) -> list[float]:
    from planner.calibration.recurrent import seconds

    return [seconds(costs, s, n) / t - 1 for s, n, t in layers]


def _summary(errs: list[float]) -> str:
    a = [abs(e) for e in errs]
    return f"median |error| {statistics.median(a):5.1%}, worst {max(a):5.1%}, mean {statistics.mean(errs):+5.1%}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--calibration", help="calibration file (default: the user cache of 'plan calibrate')")
    args = ap.parse_args(argv)

    from planner.calibration.recurrent import fit
    from planner.calibration.store import find
    from planner.model.recurrent import RecurrentShape
    from planner.ort.quiet import QuietGate

    rng = np.random.default_rng(0)
    found = find(1, args.calibration)
    cal = found.calibration
    gate = QuietGate(1, reference_s=cal.probe_s if cal else None, budget_s=60.0)
    gate.wait(2.0)
    empty = quickest_s(_bench([helper.make_node("Relu", ["x"], ["y"])], np.ones(16, np.float32), [], "Relu"),
                       gate, passes=3)
    for op, family in (("LSTM", "lstm"), ("GRU", "gru")):
        layers = []
        for batch in args.batches:
            for h in HIDDEN:
                for inputs in (h // 2, h, 2 * h):
                    for steps in STEPS:
                        t = quickest_s(layer_bench(op, steps, batch, inputs, h, rng), gate) - empty
                        layers.append((RecurrentShape(4 if op == "LSTM" else 3, batch, inputs, h), steps, t))
        # alternate shapes, both step counts of a shape on the same side
        train = [x for i, x in enumerate(layers) if (i // len(STEPS)) % 2 == 0]
        held = [x for i, x in enumerate(layers) if (i // len(STEPS)) % 2 == 1]
        costs = fit(train)
        if costs is None:
            print(f"{op}: too few layers to fit")
            continue
        print(f"{op}: {len(layers)} layers, batch {' '.join(map(str, args.batches))}")
        print(f"  fitted on half     in sample  {_summary(_errors(costs, train))}")
        print(f"                     held out   {_summary(_errors(costs, held))}")
        cal_costs = cal.recurrent_costs.get(f"{family}.fp32") if cal else None
        if cal_costs:
            print(f"  calibration's      all        {_summary(_errors(cal_costs, layers))}  ({cal.created})")
        print("  costs: " + ", ".join(f"{k} {v:.3g}" for k, v in costs.items()))
        worst = sorted(zip(_errors(costs, layers), layers, strict=True), key=lambda p: -abs(p[0]))[:3]
        print("  worst (fitted on half): " + "; ".join(
            f"b{s.batch} in{s.inputs} h{s.hidden} x{n} {t * 1e6:.1f} us {e:+.0%}" for e, (s, n, t) in worst))
    if not cal:
        print(f"(no calibration: {found.why})")
    if gate.noisy:
        print(f"(the machine was busy: {gate.noisy} layers timed after {gate.waited_s:.0f} s of waiting for quiet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
