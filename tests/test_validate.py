"""`plan predict` / `plan validate` on a tiny model: it runs, reports every field, and predicts without running."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.calibration.host import predict_ort
from planner.cli import main
from planner.model.loader import load_model
from planner.ort.executed import optimized_model


def tiny_model(path: Path) -> Path:
    """x [batch, 64] -> MatMul 64x32 -> Add -> Relu -> Softmax: onnxruntime fuses the first three."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(32, np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"], name="mm"),
             helper.make_node("Add", ["xw", "b"], ["xwb"], name="add"),
             helper.make_node("Relu", ["xwb"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=-1)]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # never the user's calibration
    return tiny_model(tmp_path / "tiny.onnx")


def test_validate_runs_and_reports_fields(model, tmp_path, capsys):
    assert main(["validate", str(model), "--batch", "4", "--runs", "3", "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    executed = {n.name for n in optimized_model(load_model(model)).graph.node}
    # --runs is a minimum: a model of microseconds runs for TIMED_MIN_S, so that it is warm and steady
    assert v["dims"] == {"batch": 4} and v["threads"] == 1 and v["runs"] >= 3
    assert len(v["measured_runs_ms"]) == v["runs"] and v["measured_ms"] > 0
    assert v["measured_wall_ms"] >= v["measured_ms"]
    assert v["predicted_ms"] > 0 and v["error"] == pytest.approx(v["predicted_ms"] / v["measured_ms"] - 1)
    # every executed node has a prediction and a measurement, matched by name
    assert {k["name"] for k in v["kernels"]} == executed
    assert v["unmatched_predicted"] == [] and v["unmatched_measured"] == []
    assert {o["op_type"] for o in v["op_types"]} >= {"Softmax"}
    assert v["predicted_peak_memory_bytes"] > 64 * 32 * 4
    assert v["calibrated"] is False and any("uncalibrated" in n for n in v["notes"])
    assert main(["validate", str(model), "--runs", "2"]) == 0
    text = capsys.readouterr().out
    assert "end to end" in text and "worst-predicted kernels" in text


def test_predict_json_has_plan_fields_and_never_runs_the_model(model, monkeypatch, capsys):
    import onnxruntime

    def refuse(*a, **k):
        raise AssertionError("a prediction ran the model")

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", refuse)
    monkeypatch.setattr(onnxruntime.InferenceSession, "run_with_iobinding", refuse)
    assert main(["predict", str(model), "--target", "host", "--batch", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    chosen = doc["chosen"]
    assert chosen["target"] == "host" and chosen["batch"] == 2
    assert chosen["latency_ms"] > 0 and chosen["peak_memory_bytes"] > 0
    assert doc["model"]["dims"] == {"batch": 2}
    ops = doc["runtime_graph"]["op_types"]
    assert "MatMul" not in ops and sum(ops.values()) == doc["runtime_graph"]["nodes"]  # fused by onnxruntime


def test_predict_refuses_other_targets_on_one_line(model, capsys):
    assert main(["predict", str(model), "--target", "a10g"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target host" in err


def test_fixed_batch_cannot_be_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    from planner.errors import DimError

    with pytest.raises(DimError, match="fixed at 1"):
        predict_ort(load_model(light), batch=2)


def test_plot_is_written_when_matplotlib_is_there(model, tmp_path):
    pytest.importorskip("matplotlib")
    from planner.calibration.validate import validate

    out = tmp_path / "kernels.png"
    v = validate(model, runs=2, batch=2, plot=str(out), isolate=False)
    assert v.plot == str(out) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_on_host_times_the_graph_onnxruntime_runs(tmp_path, monkeypatch):
    """`plan --target host` plans what `plan predict` predicts: onnxruntime's optimized graph (its NCHWc
    convolutions and layout reorders, absent from the model file), not the stored graph fused by rule."""
    import planner
    from planner.search.variants import PassOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cnn = Path(__file__).resolve().parent.parent / "models" / "cnn.onnx"
    stored = {n.op_type for n in onnx.load(str(cnn)).graph.node}
    p = planner.plan(cnn, targets=["host"], batch=4, passes=PassOptions("none"))
    ops = {k.ops for k in p.chosen.all_kernels}
    assert "ReorderOutput" in ops and "ReorderOutput" not in stored
    alone = predict_ort(load_model(cnn), 1, {}, 4)
    assert p.chosen.latency_ms == pytest.approx(alone.prediction.latency_s * 1e3, rel=1e-9)
