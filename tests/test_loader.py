"""Loading: bad files are refused with one clear message; external data is sized, never read, never escapes."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.errors import ModelLoadError
from planner.model.loader import load_model


def _tiny_model(opset: int = 17) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _external_model(location: str, length: int = 48) -> onnx.ModelProto:
    m = _tiny_model()
    w = m.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(length))):
        e = w.external_data.add()
        e.key, e.value = k, v
    return m


def test_valid_model_loads_and_hashes(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_tiny_model(), p)
    lm = load_model(p)
    import hashlib

    assert lm.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert lm.model.graph.node[0].op_type == "MatMul"


@pytest.mark.parametrize("content,expect", [
    (b"", "empty file"),
    (os.urandom(0) + bytes(range(256)) * 8, "not an ONNX model"),
    (b'{"graph": {}}', "not an ONNX model"),
])
def test_not_onnx_refused(tmp_path, content, expect):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelLoadError, match=expect):
        load_model(p)


def test_truncated_model_refused(tmp_path):
    data = _tiny_model().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        load_model(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="directory"):
        load_model(tmp_path)


def test_opset_newer_than_onnx_refused(tmp_path):
    p = tmp_path / "new.onnx"
    m = _tiny_model()
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 5
    p.write_bytes(m.SerializeToString())
    with pytest.raises(ModelLoadError, match="newer"):
        load_model(p)


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"])
def test_external_location_escaping_folder_refused(tmp_path, location):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    p = model_dir / "m.onnx"
    p.write_bytes(_external_model(location).SerializeToString())
    with pytest.raises(ModelLoadError, match="refused"):
        load_model(p)


def test_external_symlink_outside_refused(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    os.symlink(tmp_path / "secret.bin", model_dir / "w.bin")
    p = model_dir / "m.onnx"
    p.write_bytes(_external_model("w.bin").SerializeToString())
    with pytest.raises(ModelLoadError, match="outside"):
        load_model(p)


def test_external_missing_and_short_files(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(_external_model("w.bin").SerializeToString())
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(p)
    (tmp_path / "w.bin").write_bytes(b"\0" * 10)  # 48 bytes are declared
    with pytest.raises(ModelLoadError, match="past the end"):
        load_model(p)


def test_external_data_is_sized_not_read(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(_external_model("w.bin").SerializeToString())
    with open(tmp_path / "w.bin", "wb") as f:
        f.truncate(48)
    lm = load_model(p)
    assert lm.external_files == {"w.bin": 48}
    w = lm.model.graph.initializer[0]
    assert w.data_location == TensorProto.EXTERNAL and not w.raw_data
