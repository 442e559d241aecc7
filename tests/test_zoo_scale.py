"""The zoo build's check for decayed activations (models/zoo/scale.py), on graphs whose medians are known."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime")

from models.zoo import scale  # noqa: E402


def _model(path, factors):
    """x [1, 256] (seeded normal draws, median |x| about 0.674) multiplied by each factor in turn."""
    nodes, inits, prev = [], [], "x"
    for i, f in enumerate(factors):
        inits.append(numpy_helper.from_array(np.array([f], np.float32), f"f{i}"))
        nodes.append(helper.make_node("Mul", [prev, f"f{i}"], [f"m{i}"]))
        prev = f"m{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return str(path)


def test_the_smallest_median_is_found_and_named(tmp_path):
    path = _model(tmp_path / "decay.onnx", [1e-10, 1e-10, 1e10])
    x = np.abs(np.random.default_rng(0).standard_normal(256))  # feeds.make_feeds draws seeded normals
    floor, where = scale.smallest_median(path, {})
    # x -> 1e-10 x -> 1e-20 x (the smallest) -> 1e-10 x: its median |x| is the input's times 1e-20
    assert where == "m1"
    assert floor < scale.FLOOR
    assert floor == pytest.approx(1e-20 * float(np.median(x)), rel=1e-3)


def test_activations_at_unit_scale_pass(tmp_path):
    floor, _ = scale.smallest_median(_model(tmp_path / "ok.onnx", [0.5, 2.0]), {})
    assert floor > scale.FLOOR
