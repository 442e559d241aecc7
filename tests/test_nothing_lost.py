"""Nothing lost, nothing stray: an interrupted --out leaves no file, the input is never modified or overwritten,
and planning writes nothing the user did not ask for (onnxruntime's symbolic inference used to drop
./sym_shape_infer_temp.onnx into the working folder)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import planner.atomic as atomic
from planner.cli import main

MODELS = Path(__file__).parent.parent / "models"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _custom_op_model() -> onnx.ModelProto:
    """A custom-domain op: onnx cannot infer its output, nor can onnxruntime's symbolic pass (incomplete)."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Frob", ["a"], ["b"], domain="com.example"),
             helper.make_node("Sigmoid", ["b"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])


def _typeless_sequence_model() -> onnx.ModelProto:
    """An input with no type read by SequenceAt: onnxruntime's symbolic inference stays incomplete on it, and
    its public entry point then saves ./sym_shape_infer_temp.onnx wherever `plan` runs."""
    nodes = [helper.make_node("SequenceAt", ["x", "i"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    g = helper.make_graph(nodes, "g", [onnx.ValueInfoProto(name="x"),
                                       helper.make_tensor_value_info("i", TensorProto.INT64, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("make,unknown", [(_typeless_sequence_model, []), (_custom_op_model, ["com.example::Frob"])])
def test_planning_writes_no_file_into_the_working_folder(tmp_path, monkeypatch, capsys, make, unknown):
    model_dir, work = tmp_path / "models", tmp_path / "cwd"
    model_dir.mkdir()
    work.mkdir()
    p = model_dir / "m.onnx"
    onnx.save(make(), p)
    monkeypatch.chdir(work)
    code = main([str(p), "--target", "a10g", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["model"]["unknown_ops"] == unknown  # a custom domain is listed and planned by bytes
    assert sorted(os.listdir(work)) == []
    assert sorted(os.listdir(model_dir)) == ["m.onnx"]


def test_input_hash_unchanged_after_planning_with_out(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(MODELS / "cnn.onnx", model)
    before = _sha(model)
    out = tmp_path / "plan.json"
    assert main([str(model), "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    assert _sha(model) == before
    assert json.loads(out.read_text())["model"]["sha256"] == before
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "plan.json"]


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
def test_out_refuses_the_input_model_however_spelled(tmp_path, capsys, monkeypatch, spelling):
    model = tmp_path / "m.onnx"
    shutil.copy(MODELS / "mlp.onnx", model)
    before = _sha(model)
    monkeypatch.chdir(tmp_path)
    if spelling == "same":
        target = "m.onnx"
    elif spelling == "dot":
        target = "./sub/../m.onnx"
        (tmp_path / "sub").mkdir()
    else:
        os.symlink(model, tmp_path / "link.json")
        target = "link.json"
    code = main(["m.onnx", "--out", target, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "overwrite the input" in err, err
    assert _sha(model) == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


class _Boom(Exception):
    pass


def test_interrupted_write_leaves_no_partial_and_no_temp_file(tmp_path, capsys, monkeypatch):
    """The write dies halfway (after some bytes reach the temp file): no plan.json, no .tmp file left."""
    out = tmp_path / "plan.json"
    real_fdopen = os.fdopen

    class HalfFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            return False

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise _Boom("disk pulled out halfway")

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: HalfFile(real_fdopen(fd, mode)))
    monkeypatch.setenv("PLANNER_DEBUG", "1")  # let the exception through so we see it is ours
    with pytest.raises(_Boom):
        main([str(MODELS / "mlp.onnx"), "--out", str(out), "-q"])
    assert os.listdir(tmp_path) == []


def test_interrupt_keeps_the_previous_plan_intact(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the rename's preparation: the old plan.json is still the complete old document."""
    out = tmp_path / "plan.json"
    out.write_text('{"old": true}\n')

    def interrupted_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted_replace)
    code = main([str(MODELS / "mlp.onnx"), "--out", str(out), "-q"])
    assert code == 130
    assert out.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["plan.json"]
