"""Broken and hostile files get one clear line and exit 2 from the CLI: never a traceback, a hang or a silent plan.

Each refusal has a neighbour that must still plan (the negative test of the rule): an empty `axes` input, a
large but addressable tensor, a big computed tensor that fits in 64 bits.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.outcome import PLANNED, REFUSED, run_plan_cli
from planner.cli import main
from planner.errors import ModelShapeError
from planner.model.limits import bounded_numel, check_tensor_size


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _relu(shape) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    return _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                                 None)])


def _matmul(w: onnx.TensorProto) -> onnx.ModelProto:
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])


def _constant_of_shape(dims) -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array(dims, np.int64), "s")
    return _model([helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])


def _bare_tensor(name: str, dims) -> onnx.TensorProto:
    """A float tensor that declares `dims` and stores nothing (helper.make_tensor would refuse to build it)."""
    t = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(dims)
    return t


def _refusal(capsys, path) -> str:
    code = main([str(path), "--target", "a10g"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("plan: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _save(tmp_path, model: onnx.ModelProto, name: str = "m.onnx"):
    p = tmp_path / name
    p.write_bytes(model.SerializeToString())
    return p


def test_zip_archive_refused_with_hint(capsys, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model.onnx", _relu(["n", 4]).SerializeToString())
    p = tmp_path / "model.zip.onnx"
    p.write_bytes(buf.getvalue())
    assert "zip archive" in _refusal(capsys, p)


def test_json_file_refused_with_hint(capsys, tmp_path):
    p = tmp_path / "model.onnx"
    p.write_text(json.dumps({"irVersion": "8", "graph": {"node": [{"opType": "Relu"}]}}))
    assert "JSON" in _refusal(capsys, p)


def test_onnx_text_format_refused_with_hint(capsys, tmp_path):
    p = tmp_path / "model.onnx"
    p.write_text('<ir_version: 8, opset_import: ["" : 17]>\nagraph (float[N] x) => (float[N] y) { y = Relu(x) }\n')
    assert "text format" in _refusal(capsys, p)


@pytest.mark.parametrize("make,needle", [
    (lambda: _relu([-3, 4]), "input 'x' has a negative dim"),
    (lambda: _matmul(_bare_tensor("w", [-4, 3])), "initializer 'w' has a negative"),
    (lambda: _relu([0, 4]), "fixed batch of 0"),
    (lambda: _relu([1 << 31, 1 << 31, 1 << 31]), "more than 2^63 bytes"),  # product 2^93 elements
    (lambda: _relu([(1 << 63) - 1, (1 << 63) - 1]), "more than 2^63 bytes"),  # each dim at the int64 maximum
    (lambda: _relu([1 << 31, 1 << 30]), "more than 2^63 bytes"),  # 2^61 elements x 4 bytes = 2^63: one too many
])
def test_impossible_declared_dims_refused(capsys, tmp_path, make, needle):
    assert needle in _refusal(capsys, _save(tmp_path, make()))


def test_initializer_dims_without_the_bytes_refused(capsys, tmp_path):
    w = _bare_tensor("w", [1 << 40, 1 << 20])  # 2^60 elements, no data at all
    assert "stores no data" in _refusal(capsys, _save(tmp_path, _matmul(w)))
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    w.dims[0] = 4000  # 48 bytes of raw data for 48,000 bytes of dims
    assert "needs 48000 bytes but stores 48" in _refusal(capsys, _save(tmp_path, _matmul(w)))


def test_initializer_of_2_to_62_squared_elements_refused(capsys, tmp_path):
    w = _bare_tensor("w", [1 << 62, 1 << 62])
    assert "more than 2^63 bytes" in _refusal(capsys, _save(tmp_path, _matmul(w)))


def test_constant_node_with_impossible_dims_refused(capsys, tmp_path):
    t = _bare_tensor("v", [1 << 40, 1 << 40])
    m = _model([helper.make_node("Constant", [], ["c"], value=t), helper.make_node("Add", ["x", "c"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert "constant in node" in _refusal(capsys, _save(tmp_path, m))


def test_inferred_shape_past_64_bits_refused(capsys, tmp_path):
    """The dims are small numbers; only the shape inference of ConstantOfShape multiplies them past 2^63 bytes."""
    assert "tensor 'c' of shape [1099511627776, 1099511627776]" in _refusal(
        capsys, _save(tmp_path, _constant_of_shape([1 << 40, 1 << 40])))


def test_hostile_rank_refused_fast(capsys, tmp_path):
    """200,000 dims of 2: the bounded product stops after 64 multiplications instead of building a huge int."""
    p = _save(tmp_path, _relu([2] * 200_000))
    t0 = time.perf_counter()
    assert "more than 2^63 bytes" in _refusal(capsys, p)
    assert time.perf_counter() - t0 < 10


def test_dim_binding_past_64_bits_refused(capsys, tmp_path):
    """Each --dim is within the per-dim cap (2^40), but seq x seq x 4 bytes is 2^82."""
    p = _save(tmp_path, _relu(["batch", "seq", "seq"]))
    code = main([str(p), "--dim", f"seq={1 << 40}", "--batch", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "more than 2^63 bytes" in err and "Traceback" not in err


# ---- the negative tests: what the rules must let through ----------------------------------------------------


def test_empty_axes_input_still_plans(tmp_path):
    """A zero dim is valid ONNX: an empty `axes` means 'reduce all' and the model must plan."""
    m = _model([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
                helper.make_tensor_value_info("axes", TensorProto.INT64, [0])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], opset=18)
    assert run_plan_cli(_save(tmp_path, m)).kind == PLANNED


def test_large_but_addressable_tensor_plans_and_does_not_fit(capsys, tmp_path):
    """2^30 x 2^30 float32 is 2^62 bytes: addressable, so it is planned, and the plan says it does not fit."""
    p = _save(tmp_path, _constant_of_shape([1 << 30, 1 << 30]))
    code = main([str(p), "--target", "a10g", "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err  # a plan with no admissible candidate
    doc = json.loads(out)
    assert doc["chosen"] is None and doc["candidates"][0]["fits"] is False
    assert doc["candidates"][0]["peak_memory_bytes"] >= 4 * (1 << 60)


def test_bounded_numel():
    assert bounded_numel([3, 0, 1 << 62]) == 0
    assert bounded_numel([1 << 31, 1 << 31]) == 1 << 62
    assert bounded_numel([1 << 32, 1 << 32], limit=(1 << 63) - 1) is None
    check_tensor_size("ok", (1 << 30, 1 << 30), 32)  # 2^62 bytes: allowed
    with pytest.raises(ModelShapeError):
        check_tensor_size("one_bit_too_many", (1 << 61,), 32)


# ---- the list: cycle, undefined tensor, duplicate names, future opset ---------------------------------


def _cycle():
    return _model([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                  [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])


def _undefined():
    return _model([helper.make_node("Add", ["x", "ghost"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def _duplicate():
    return _model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def _future_opset():
    m = _relu([1])
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    return m


@pytest.mark.parametrize("make,needle", [
    (_cycle, "cycle"), (_undefined, "nothing defines"), (_duplicate, "defined twice"), (_future_opset, "newer"),
])
def test_malformed_graphs_refused(capsys, tmp_path, make, needle):
    assert needle in _refusal(capsys, _save(tmp_path, make()))


@pytest.mark.parametrize("content", [b"", b"\x00", bytes(range(256)) * 4, b"\x08\x08\x12"])
def test_garbage_bytes_refused(tmp_path, content):
    p = tmp_path / "g.onnx"
    p.write_bytes(content)
    assert run_plan_cli(p).kind == REFUSED


def test_name_that_is_not_utf8_refused(capsys, tmp_path):
    """proto2 does not check UTF-8 on parse; Python then returns bytes for the field. Refused at load."""
    m = _model([helper.make_node("Relu", ["x"], ["y"], domain="", name="relu_\u00e9")],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = m.SerializeToString().replace("relu_\u00e9".encode(), b"relu_\xff\xfe")
    p = tmp_path / "m.onnx"
    p.write_bytes(data)
    assert "not valid UTF-8" in _refusal(capsys, p)
