"""Control flow on host: models whose work sits inside If / Loop bodies, predicted and measured here.

    python benchmarks/control_flow.py [--calibration FILE] [--runs 20]

Builds, in a temporary folder, models none of which is a calibration benchmark: a 4-layer MLP (512 wide)
inside a top-level If and the same MLP without it, a chain of 50 Ifs around [1, 64] Adds, Loops of 100 trips
over a [1, 64] Add and of 20 trips over a [1, 4096] Add. Each is predicted as `plan predict` predicts it (the
graph onnxruntime executes, bodies included) twice: with the calibration's subgraph-run costs and with them
removed (what the planner did before it had them), then measured with onnxruntime in a child process at one
thread. Prints predicted against measured for both.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from with_and_without import arguments, report, without

F = TensorProto.FLOAT


def _vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def _save(path: Path, graph) -> Path:
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def mlp_body(prefix: str, width: int = 512, layers: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) * 0.05).astype(np.float32),
                                             f"{prefix}W{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"{prefix}W{i}"], [f"{prefix}m{i}"]),
                  helper.make_node("Relu", [f"{prefix}m{i}"], [f"{prefix}h{i}"])]
        prev = f"{prefix}h{i}"
    return nodes, inits, prev


def if_mlp(path: Path) -> Path:
    branches = []
    for prefix in ("t", "e"):
        nodes, inits, out = mlp_body(prefix)
        branches.append(helper.make_graph(nodes, prefix, [], [_vi(out, None)], inits))
    node = helper.make_node("If", ["c"], ["y"], then_branch=branches[0], else_branch=branches[1])
    return _save(path, helper.make_graph([node], "g", [_vi("x", ["batch", 512]), _vi("c", [], TensorProto.BOOL)],
                                         [_vi("y", ["batch", 512])]))


def plain_mlp(path: Path) -> Path:
    nodes, inits, out = mlp_body("t")
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    return _save(path, helper.make_graph(nodes, "g", [_vi("x", ["batch", 512])], [_vi("y", ["batch", 512])], inits))


def if_chain(path: Path, n: int = 50) -> Path:
    nodes, prev = [], "x"
    for i in range(n):
        then_g = helper.make_graph([helper.make_node("Add", [prev, prev], [f"t{i}"])], "t", [], [_vi(f"t{i}", None)])
        else_g = helper.make_graph([helper.make_node("Sub", [prev, prev], [f"e{i}"])], "e", [], [_vi(f"e{i}", None)])
        nodes.append(helper.make_node("If", ["c"], [f"y{i}"], then_branch=then_g, else_branch=else_g))
        prev = f"y{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    return _save(path, helper.make_graph(nodes, "g", [_vi("x", [1, 64]), _vi("c", [], TensorProto.BOOL)],
                                         [_vi("y", [1, 64])]))


def loop(path: Path, trips: int, size: int) -> Path:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["h", "h"], ["h_out"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("h", None)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h_out", None)])
    inits = [helper.make_tensor("M", TensorProto.INT64, [], [trips]),
             helper.make_tensor("c", TensorProto.BOOL, [], [1])]
    node = helper.make_node("Loop", ["M", "c", "x"], ["y"], body=body)
    return _save(path, helper.make_graph([node], "g", [_vi("x", [1, size])], [_vi("y", [1, size])], inits))


def _drop_subgraph_costs(entry: dict) -> None:
    entry["kernel_fixed_s"] = {k: v for k, v in entry["kernel_fixed_s"].items() if not k.startswith("subgraph")}


def main() -> int:
    cal, runs = arguments(__doc__, 20)
    with tempfile.TemporaryDirectory(prefix="planner-control-flow-") as tmp:
        d = Path(tmp)
        before = without(cal, d / "without.json", _drop_subgraph_costs)
        cases = [("MLP inside an If, batch 16", if_mlp(d / "if_mlp.onnx"), {"batch": 16}),
                 ("the same MLP, no If, batch 16", plain_mlp(d / "mlp.onnx"), {"batch": 16}),
                 ("50 Ifs around [1, 64] Adds", if_chain(d / "ifs.onnx"), {}),
                 ("Loop, 100 trips of a [1, 64] Add", loop(d / "loop.onnx", 100, 64), {}),
                 ("Loop, 20 trips of a [1, 4096] Add", loop(d / "loop_big.onnx", 20, 4096), {})]
        report(cases, cal, before, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
