"""The zoo's pure-onnx builders (no torch): control-flow models computed by hand in numpy, -1 dims, the int8 and
fp16 variants of onnx.helper models run by onnxruntime, the feeds, and fidelity's per-class figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.zoo import build, check_plans, controlflow, feeds, manifest, variants
from planner import cli
from planner.calibration.store import Calibration, save
from planner.search import variants as search_variants
from planner.targets.host import host_fingerprint

ROOT = Path(__file__).resolve().parent.parent


def _session(model_or_path) -> ort.InferenceSession:
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_scan_model_is_an_elman_rnn():
    m = controlflow.scan_model(hidden=8, inputs=5, seed=3)
    w = _inits(m)
    xs = np.random.default_rng(1).standard_normal((6, 2, 5)).astype(np.float32)
    logits, ys = _session(m).run(None, {"xs": xs})
    h = np.zeros((2, 8), np.float32)
    states = []
    for t in range(6):
        h = np.tanh(xs[t] @ w["cell_W"] + h @ w["cell_R"] + w["cell_b"])
        states.append(h)
    np.testing.assert_allclose(ys, np.stack(states), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, h @ w["fc"] + w["fcb"], rtol=1e-5, atol=1e-6)
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1] == -1


def test_loop_model_runs_its_trip_count():
    m = controlflow.loop_model(hidden=6, inputs=4, steps=5, seed=2)
    w = _inits(m)
    assert int(w["trips"]) == 5
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    logits, states = _session(m).run(None, {"x": x})
    h = np.zeros((3, 6), np.float32)
    for i in range(5):
        h = np.tanh(x @ w["cell_W"] + h @ w["cell_R"] + w["cell_b"])
        np.testing.assert_allclose(states[i], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, h @ w["fc"] + w["fcb"], rtol=1e-5, atol=1e-6)


def _conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n, c, hh, ww = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (hh + 2 * pad - k) // stride + 1, (ww + 2 * pad - k) // stride + 1
    out = np.zeros((n, w.shape[0], oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("mode, prefix, k", [(True, "fast", 3), (False, "wide", 5)])
def test_if_model_runs_the_branch_the_mode_picks(mode, prefix, k):
    m = controlflow.if_model(channels=[3, 4], image=8, seed=5)
    branch = next(a.g for a in m.graph.node[0].attribute if a.name == ("then_branch" if mode else "else_branch"))
    w = {t.name: numpy_helper.to_array(t) for t in branch.initializer}
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (logits,) = _session(m).run(None, {"image": x, "mode": np.array(mode)})
    y = x.astype(np.float64)
    for i in range(2):
        y = np.maximum(_conv2d(y, w[f"{prefix}_w{i}"], w[f"{prefix}_b{i}"], 2, k // 2), 0)
    expect = y.mean(axis=(2, 3)) @ w[f"{prefix}_fc"] + w[f"{prefix}_fcb"]
    np.testing.assert_allclose(logits, expect, rtol=1e-4, atol=1e-5)


def test_minus_one_dims_run_at_any_batch_and_bind_as_batch_one(tmp_path):
    m = controlflow.scan_model(hidden=4, inputs=3)
    assert feeds.input_shapes(m, {"sequence": 7}) == {"xs": ((7, 1, 3), np.float32)}
    sess = _session(m)
    assert sess.get_inputs()[0].shape[1] in (None, -1) or isinstance(sess.get_inputs()[0].shape[1], str)
    out = sess.run(None, {"xs": np.ones((7, 3, 3), np.float32)})
    assert out[0].shape == (3, 10)
    dims, batch, dropped = build.model_dims(m, {"sequence": 7, "batch_size": 1})
    assert (dims, batch, dropped) == ({"sequence": 7}, 1, ["batch_size"])


def test_minus_one_rewrites_named_dims():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch_size", 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert variants.minus_one(m, ["batch_size"]) == 2
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [-1, 4]
    assert _session(m).run(None, {"x": -np.ones((5, 4), np.float32)})[0].tolist() == [[0.0] * 4] * 5


def test_feeds_follow_the_names():
    ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "past + s"]),
           helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["b", "s"]),
           helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["b", "s"]),
           helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])]
    m = helper.make_model(helper.make_graph([], "g", ins, []), ir_version=8)
    f = feeds.make_feeds(m, {"b": 2, "s": 3, "past": 4})
    assert f["attention_mask"].shape == (2, 7) and f["attention_mask"].min() == 1
    assert f["token_type_ids"].max() == 0
    assert f["position_ids"].tolist() == [[4, 5, 6], [4, 5, 6]]
    assert f["input_ids"].shape == (2, 3) and 0 <= f["input_ids"].min() and f["input_ids"].max() < 100
    assert f["use_cache_branch"].tolist() == [True]
    assert feeds.symbolic_dims(m) == ["b", "s"]
    with pytest.raises(feeds.BindingError, match="past"):
        feeds.make_feeds(m, {"b": 2, "s": 3})


def _small_cnn(path: Path, bias_by_identity: bool = False) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal((8, 10)) * 0.3).astype(np.float32), "fc")]
    nodes = []
    if bias_by_identity:  # as torch.onnx.export deduplicates equal initializers
        inits.append(numpy_helper.from_array(np.full(8, 0.1, np.float32), "b_shared"))
        nodes.append(helper.make_node("Identity", ["b_shared"], ["b"]))
    else:
        inits.append(numpy_helper.from_array(np.full(8, 0.1, np.float32), "b"))
    nodes += [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("MatMul", ["f", "fc"], ["y"])]
    m = helper.make_model(helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch_size", 10])], inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, str(path))
    return path


def _lstm(path: Path) -> Path:
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array((rng.standard_normal((1, 64, 12)) * 0.2).astype(np.float32), "W"),
             numpy_helper.from_array((rng.standard_normal((1, 64, 16)) * 0.2).astype(np.float32), "R")]
    m = helper.make_model(helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=16)], "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch_size", 12])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "batch_size", 16])], inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, str(path))
    return path


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("variant, must_have", [
    ("int8-dynamic", {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}),
    ("int8-qoperator", {"QLinearConv"}),
    ("int8-qdq", {"QuantizeLinear", "DequantizeLinear"}),
    ("fp16", {"Cast"}),
])
def test_cnn_variants_run_and_stay_close(tmp_path, variant, must_have):
    src = _small_cnn(tmp_path / "cnn.onnx")
    dst = variants.make_variant(variant, src, tmp_path / f"cnn.{variant}.onnx", {"batch_size": 2})
    assert must_have <= _ops(dst)
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind
    x = feeds.make_feeds(onnx.load(str(src)), {"batch_size": 2}, seed=9)
    ref = _session(src).run(None, x)[0]
    got = _session(dst).run(None, x)[0]
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert _cosine(got, ref) > 0.98
    if variant == "fp16":
        assert any(t.data_type == TensorProto.FLOAT16 for t in onnx.load(str(dst)).graph.initializer)


def test_dynamic_int8_lstm_is_dynamic_quantize_lstm(tmp_path):
    src = _lstm(tmp_path / "lstm.onnx")
    dst = variants.make_variant("int8-dynamic", src, tmp_path / "lstm.q.onnx", {"time": 5, "batch_size": 2})
    assert "DynamicQuantizeLSTM" in _ops(dst)
    assert feeds.run_once(str(dst), {"time": 5, "batch_size": 2})[:2] == (True, "")


def test_static_quantization_takes_a_bias_behind_an_identity(tmp_path):
    src = _small_cnn(tmp_path / "cnn.onnx", bias_by_identity=True)
    m = onnx.load(str(src))
    assert variants.constants_as_initializers(m) == 1
    assert "Identity" not in {n.op_type for n in m.graph.node}
    dst = variants.make_variant("int8-qoperator", src, tmp_path / "q.onnx", {"batch_size": 1})
    assert "QLinearConv" in _ops(dst)


def test_fp16_keeps_resize_scales_float32(tmp_path):
    scales = helper.make_node("Constant", [], ["scales"],
                              value=numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32)))
    m = helper.make_model(helper.make_graph(
        [scales, helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")], "up",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, str(tmp_path / "up.onnx"))
    dst = variants.fp16(tmp_path / "up.onnx", tmp_path / "up16.onnx")
    x = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    (y,) = _session(dst).run(None, {"x": x})
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(2, axis=3))


def _fidelity():
    spec = importlib.util.spec_from_file_location("fidelity_bench", ROOT / "benchmarks" / "fidelity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_fidelity_scores_per_class_and_split(capsys):
    rows = [{"class": "cnn", "split": "dev", "error": e} for e in (0.03, -0.08, 0.2)]
    rows += [{"class": "int8", "split": "held-out", "error": e} for e in (-0.5, 0.04)]
    out = _fidelity().per_class(rows)
    assert out["cnn"]["models"] == 3
    assert out["cnn"]["within_10pct"] == pytest.approx(2 / 3) and out["cnn"]["within_5pct"] == pytest.approx(1 / 3)
    assert out["cnn"]["median_abs_error"] == pytest.approx(0.08)
    assert out["held-out/int8"]["median_abs_error"] == pytest.approx(0.27)
    assert out["dev/all"]["models"] == 3 and "held-out/cnn" not in out
    assert "held-out/int8" in capsys.readouterr().out


def test_fidelity_states_the_bias_beside_the_spread():
    """Errors -12%, -8%, -3%, +4% and +20%: three of five within 10% (|-8|, |-3|, |+4|), median |error| 8%, median
    signed error -3%, three of five predicted too fast."""
    s = _fidelity().summarize([-0.12, -0.08, -0.03, 0.04, 0.20, float("nan")])
    assert s["models"] == 5 and s["within_10pct"] == pytest.approx(0.6)
    assert s["median_abs_error"] == pytest.approx(0.08) and s["median_error"] == pytest.approx(-0.03)
    assert s["too_fast"] == pytest.approx(0.6)


def test_fidelity_reads_the_zoo_manifest_by_split(tmp_path):
    models = [{"name": f"m{i}", "file": f"f/m{i}.onnx", "path": "/elsewhere", "family": "f", "class": "cnn",
               "variant": "fp32", "split": s, "dims": {"batch_size": 1}, "batch": None, "ort_runs": runs}
              for i, (s, runs) in enumerate([("dev", True), ("held-out", True), ("dev", False)])]
    (tmp_path / manifest.MANIFEST).write_text(json.dumps({"version": manifest.MANIFEST_VERSION, "models": models}))
    fid = _fidelity()
    dev = fid.zoo_cases(tmp_path, "dev")
    assert [c.name for c in dev] == ["m0"] and dev[0].path == tmp_path / "f" / "m0.onnx"
    assert [c.name for c in fid.zoo_cases(tmp_path, "all")] == ["m0", "m1"]
    assert [c.split for c in fid.zoo_cases(tmp_path, "held-out")] == ["held-out"]


def test_check_plans_turns_a_decoders_phase_dims_into_a_prompt_length():
    rec = {"path": "m.onnx", "dims": {"batch_size": 1, "decoder_sequence_length": 1,
                                      "past_decoder_sequence_length": 16, "encoder_sequence_length": 128},
           "batch": None}
    assert check_plans.decoder_plan_argv(rec, ["--passes", "none"]) == [
        "m.onnx", "--target", "host", "--dim", "batch_size=1", "--dim", "encoder_sequence_length=128",
        "--prompt-len", "17", "--gen-len", "16", "--passes", "none"]
    assert check_plans.dim_args({"dims": {"sequence": 50}, "batch": 1}) == ["--dim", "sequence=50", "--batch", "1"]


def test_predicting_an_s8_qdq_model_leaves_no_stray_file(tmp_path, monkeypatch):
    """onnxruntime turns s8 QDQ pairs into u8 ones with constants onnx cannot type; the executed graph's shapes
    then stayed unknown and onnxruntime's public symbolic inference saved ./sym_shape_infer_temp.onnx (the zoo's
    int8-qdq decoders and CNNs, through plan predict). The planner's guarded inference writes nothing."""
    src = _small_cnn(tmp_path / "cnn.onnx")
    q = variants.make_variant("int8-qdq", src, tmp_path / "q.onnx", {"batch_size": 1})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.main(["predict", str(q), "--target", "host", "--batch", "1"]) == 0
    assert list(work.iterdir()) == []


def test_fidelity_scores_a_zoo_per_class_and_split_end_to_end(tmp_path, monkeypatch):
    """fidelity.py --zoo DIR --split all on a two-model zoo, with a stated calibration and recorded
    measurements (--measured: nothing is timed here): every model predicted, figures per class and split."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    zoo = tmp_path / "zoo"
    (zoo / "s").mkdir(parents=True)
    variants.save_model(controlflow.scan_model(hidden=16, inputs=8), zoo / "s" / "scan.onnx")
    _small_cnn(zoo / "s" / "cnn.onnx")
    models = [{"name": "scan s20", "file": "s/scan.onnx", "family": "cf-scan", "class": "control-flow",
               "variant": "fp32", "split": "dev", "dims": {"sequence": 20}, "batch": 1, "ort_runs": True},
              {"name": "cnn b2", "file": "s/cnn.onnx", "family": "c", "class": "cnn", "variant": "fp32",
               "split": "held-out", "dims": {"batch_size": 2}, "batch": None, "ort_runs": True}]
    (zoo / manifest.MANIFEST).write_text(json.dumps({"version": manifest.MANIFEST_VERSION, "models": models}))
    cal = Calibration(fingerprint=host_fingerprint(), threads=1, launch_overhead_s=0.5e-6, run_overhead_s=8e-6,
                      run_overhead_per_io_s=1e-6, profiler_bias_s=3e-6, bandwidth_curve=((1e3, 2e10), (1e9, 2e10)),
                      weight_bandwidth_curve=((1e6, 8e10), (1e8, 2e10)),
                      rate_curves={"gemm.fp32": ((1.0, 1e10), (100.0, 1e11))}, throughput_curves={},
                      kernel_fixed_s={"gemm": 2e-6, "vector": 0.25e-6}, workspace_bytes=12e6,
                      created="2026-01-01T00:00:00+00:00", quick=True, weight_residency={})
    cal_file = save(cal, tmp_path / "cal.json")
    measured = {m["name"]: [{"latency_s": 1e-4, "latency_wall_s": 1e-4, "latency_best_s": 1e-4, "cpu_share": 1.0,
                             "latency_runs_s": [1e-4], "node_us": {}, "node_op": {}, "kernel_sum_s": 1e-4,
                             "profiled_run_s": 1e-4, "rss_peak_bytes": None, "arena_peak_bytes": None,
                             "threads": 1, "runs": 1}] for m in models}
    (tmp_path / "measured.json").write_text(json.dumps(measured))
    out = tmp_path / "out.json"
    rc = _fidelity().main(["--zoo", str(zoo), "--split", "all", "--calibration", str(cal_file), "--measured",
                           str(tmp_path / "measured.json"), "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [r["name"] for r in doc["models"]] == ["scan s20", "cnn b2"] and doc["unpredicted"] == []
    assert doc["split"] == "all"
    assert {"control-flow", "cnn", "dev/control-flow", "held-out/cnn", "dev/all", "held-out/all"} <= set(doc["classes"])
    assert doc["models"][0]["dims"]["sequence"] == 20
    for r in doc["models"]:
        assert doc["classes"][r["class"]]["median_abs_error"] == pytest.approx(abs(r["predicted_ms"] / 0.1 - 1))


def test_host_timing_keeps_a_scalar_input_when_it_cuts_the_batch(monkeypatch):
    """plan --target host timed the pass variants at batch 1 by cutting every input to its first row, and
    crashed on the zoo's If model, whose mode switch is a 0-d bool ("too many indices for array")."""
    monkeypatch.setattr(search_variants, "HOST_SLOW_RUN_S", 0.0)
    m = controlflow.if_model(channels=[4], image=16)
    feeds = {"mode": np.array(True), "image": np.ones((3, 3, 16, 16), np.float32)}
    out = search_variants.measure_on_host({"a": m}, feeds, budget_s=0.0, shrink=True)
    assert out["_batch"] == 1 and out["a"][1] >= 1


def test_fidelity_prints_the_noise_floor_of_its_rounds():
    """Three models' round medians: spreads 8%, 50%, 0% (by hand: 1.08/1.0, 3/2, 1/1); one model in one round
    says nothing. Median 8%, 90th percentile the largest of three, one of three beyond 10%."""
    floor = _fidelity().noise_floor([[1.0, 1.08, 1.05], [2.0, 3.0], [1.0, 1.0], [4.0]])
    assert floor["models"] == 3
    assert floor["median"] == pytest.approx(0.08) and floor["p90"] == pytest.approx(0.5)
    assert floor["over_10pct"] == pytest.approx(1 / 3)
    assert _fidelity().noise_floor([[1.0]]) == {"models": 0}
