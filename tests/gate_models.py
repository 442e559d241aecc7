"""Two-layer MLPs for the CI-gate tests: the same graph with the first MatMul widened, built with onnx.helper.

    x [batch, K] ──MatMul fc1 (W1 [K, H])──▶ Relu act ──MatMul fc2 (W2 [H, N])──▶ y [batch, N]

Widening H grows fc1 (2·B·K·H FLOPs) and fc2 (2·B·H·N FLOPs); the test numbers are derived from these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

K, N = 1024, 256


def build_mlp(path: Path, hidden: int, k: int = K, n: int = N) -> Path:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((k, hidden)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, n)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
         helper.make_node("Relu", ["h"], ["r"], name="act"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def pin(doc: dict, target: str, precision: str = "fp32") -> dict:
    """Make `doc` (a plan dict) choose its `target`/`precision` candidate with the fewest passes.

    The pass search may prefer another precision or target as the planner learns new tricks; tests that derive
    numbers by hand for one configuration pin it, as a team would whose baseline was written on that plan."""
    cands = [c for c in doc["candidates"] if c["target"] == target and c["precision"] == precision]
    doc["chosen"] = min(cands, key=lambda c: len(c.get("passes") or []))
    return doc
