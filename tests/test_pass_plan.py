"""Passes in the plan: precision x pipeline in the search, drift in every candidate, --emit, runtime support."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import planner
from planner.calibration.host import get_target
from planner.cli import main
from planner.search.variants import PassOptions

MODELS = Path(__file__).resolve().parent.parent / "models"
ENCODER = MODELS / "encoder.onnx"


@pytest.fixture(scope="module")
def encoder_plan():
    return planner.plan(ENCODER, targets=["host", "a10g", "inf2", "c7i-xlarge"], max_batch=8)


def test_every_candidate_names_its_pipeline_precision_and_drift(encoder_plan):
    p = encoder_plan
    names = {r["pipeline"] for r in p.pipelines}
    assert {"none", "fused", "int8-dynamic", "int4", "fp16"} <= names
    by = {}
    for c in p.candidates:
        by.setdefault(c.pipeline, c)
        if c.pipeline == "none":
            assert c.passes == [] and c.drift is None and c.precision == "fp32"
        else:
            assert c.passes and c.drift is not None and 0.9 < c.drift["cosine"] <= 1.0 + 1e-9
    assert by["int8-dynamic"].precision == "int8" and by["int4"].precision == "int4" and by["fp16"].precision == "fp16"
    assert by["fused"].drift["cosine"] > 0.99999  # float-exact
    assert all(c.rejected for c in p.candidates if c is not p.chosen)  # losers say why
    doc = p.to_dict()
    assert doc["chosen"]["pipeline"] == p.chosen.pipeline and "pipelines" in doc
    json.dumps(doc)


def gpu_less_fp16(p):
    """fp16 candidates on a CPU target planned by rule (not host): our support table retimes them."""
    return [c for c in p.candidates if c.target == "c7i-xlarge" and c.pipeline == "fp16"]


def test_runtime_support_rejects_or_retimes(encoder_plan):
    p = encoder_plan
    gpu_int8 = [c for c in p.candidates if c.target == "a10g" and c.pipeline == "int8-dynamic"]
    assert gpu_int8 and all(c.rejected.startswith("does not run: onnxruntime-cuda has no device kernel")
                            for c in gpu_int8)
    neuron = [c for c in p.candidates if c.target == "inf2" and c.pipeline == "fused"]
    assert neuron and all("compiles standard ONNX ops only" in c.rejected for c in neuron)
    host_fp16 = [c for c in p.candidates if c.target == "host" and c.pipeline == "fp16"]
    # host plans onnxruntime's own graph, where the CPU provider casts around the fp16 GEMMs it lacks
    assert host_fp16 and any(k.ops == "Cast" for k in host_fp16[0].all_kernels)
    assert all(k.dtype != "float16" for k in host_fp16[0].all_kernels if k.op_class == "matrix")
    assert any("no fp16" in n for n in gpu_less_fp16(p)[0].notes)


def test_fused_kernels_move_fewer_bytes_and_quantized_weights_are_smaller(encoder_plan):
    p = encoder_plan
    a10g = {c.pipeline: c for c in p.candidates if c.target == "a10g" and c.batch == 8}
    assert a10g["fused"].bytes_moved < a10g["none"].bytes_moved
    assert a10g["fp16"].memory["weights"] < 0.55 * a10g["none"].memory["weights"]
    assert a10g["int4"].memory["weights"] < 0.6 * a10g["none"].memory["weights"]  # embeddings stay float


def test_max_drift_rejects_lossy_pipelines_with_the_reason():
    p = planner.plan(ENCODER, targets=["a10g"], max_batch=2, passes=PassOptions("auto", max_drift=1e-9))
    lossy = [c for c in p.candidates if c.pipeline in ("int4", "fp16")]
    assert lossy and all(c.rejected.startswith("drift: cosine") for c in lossy)
    assert p.chosen.pipeline in ("none", "fused")


def test_passes_none_plans_the_model_as_stored():
    p = planner.plan(ENCODER, targets=["a10g"], max_batch=2, passes=PassOptions("none"))
    assert {c.pipeline for c in p.candidates} == {"none"} and p.pipelines == []


def test_emit_writes_the_chosen_model_and_never_the_input(tmp_path, capsys):
    out = tmp_path / "opt.onnx"
    assert main([str(ENCODER), "--target", "a10g", "--max-batch", "4", "--emit", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    m = onnx.load(str(out))
    onnx.checker.check_model(m)
    chosen = doc["chosen"]["pipeline"]
    assert chosen != "none" and any(f"({chosen})" in n for n in doc["model"]["notes"])
    assert doc["chosen"]["drift"]["cosine"] >= 0.99
    assert doc["chosen"]["precision"] == "fp16"
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
    code = main([str(ENCODER), "--target", "a10g", "--max-batch", "2", "--emit", str(ENCODER)])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to overwrite the input model" in err


@pytest.mark.parametrize("argv, message", [
    (["--passes", "turbo"], "unknown pipeline 'turbo'"),
    (["--max-drift", "2"], "must be below 1"),
    (["--emit", "out.txt"], "must end in .onnx"),
])
def test_bad_pass_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    argv = [a if a != "out.txt" else str(tmp_path / "out.txt") for a in argv]
    code = main([str(ENCODER), "--target", "a10g", "--max-batch", "2", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_external_data_models_are_refused_clearly_when_passes_are_named(tmp_path):
    m = onnx.load(str(MODELS / "mlp.onnx"))
    onnx.save(m, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    with pytest.raises(planner.errors.PlannerError, match="external data"):
        planner.plan(tmp_path / "ext.onnx", targets=["a10g"], max_batch=2, passes=PassOptions("int8-dynamic"))
    auto = planner.plan(tmp_path / "ext.onnx", targets=["a10g"], max_batch=2)
    assert any("passes skipped: weights are stored as external data" in n for n in auto.model.notes)


def test_support_table_by_hand():
    from planner.model.analyze import Analyzer
    from planner.model.loader import load_model
    from planner.predict.fusion import build_kernels, graph_costs
    from planner.predict.support import runtime_kernels

    g = Analyzer(load_model(MODELS / "mlp.onnx")).analyze({}, batch=4).graph
    ks = build_kernels(g, graph_costs(g), True, False)
    same, notes, unsupported = runtime_kernels(ks, g, get_target("a10g"))
    assert [k.dtype for k in same] == [k.dtype for k in ks] and notes == () and unsupported == ()


def test_host_predictions_follow_what_each_pipeline_measures_here(monkeypatch):
    """On host, each pipeline is timed against the stored model; its host times are scaled to that ratio, and one
    that is not measurably faster is not chosen. Fake timings make the test deterministic."""
    import planner.search.variants as po

    fake = {"none": 10e-3, "int8-dynamic": 5e-3}  # int8 measures 2x faster; everything else 1.01x (noise)
    threads_timed = []

    def measure(models, feeds, budget_s=0, shrink=False, threads=1):
        threads_timed.append(threads)
        return {**{n: (fake.get(n, 10e-3 / 1.01), 9) for n in models}, "_batch": 8}

    monkeypatch.setattr(po, "measure_on_host", measure)
    po._CACHE.clear()
    try:
        p = planner.plan(ENCODER, targets=["host"], max_batch=8)
    finally:
        po._CACHE.clear()
    assert p.chosen.pipeline == "int8-dynamic"
    rep = {r["pipeline"]: r for r in p.pipelines}
    assert rep["int8-dynamic"]["host_measured"]["speedup"] == pytest.approx(2.0)
    assert "not measurably faster" in rep["fp16"]["host_measured"]["rejected"]
    at8 = {c.pipeline: c for c in p.candidates if c.batch == 8}
    assert at8["none"].latency_ms / at8["int8-dynamic"].latency_ms == pytest.approx(2.0, rel=1e-6)
    assert at8["fp16"].rejected.startswith("measured on this machine: x1.01")
    assert any(n.startswith("host: measured x2.00") for n in at8["int8-dynamic"].notes)
    assert sum(k.time_ms for k in p.chosen.all_kernels) == pytest.approx(p.chosen.latency_ms, rel=1e-9)
    assert threads_timed == [1]  # the pipelines are timed at the threads the plan is for


def test_host_plans_follow_the_thread_count(monkeypatch):
    """`--threads 2`: host is the 2-thread calibration's (or nominal at 2 threads), the pipelines are timed at 2
    threads, and the plan says so in its constraints and its notes."""
    import planner.search.variants as po

    threads_timed = []

    def measure(models, feeds, budget_s=0, shrink=False, threads=1):
        threads_timed.append(threads)
        return {**{n: (10e-3, 9) for n in models}, "_batch": 8}

    monkeypatch.setattr(po, "measure_on_host", measure)
    po._CACHE.clear()
    try:
        p = planner.plan(ENCODER, targets=["host"], max_batch=8, threads=2)
    finally:
        po._CACHE.clear()
    assert threads_timed == [2] and p.constraints["threads"] == 2
    assert any("ORT_ENABLE_ALL, 2 threads" in n for n in p.chosen.notes)


def test_int8_static_with_user_calibration_npz(tmp_path, capsys):
    import numpy as np

    from passes.verify import generate_inputs

    m = onnx.load(str(MODELS / "mlp.onnx"))
    rows = generate_inputs(m, batch=16, seed=3)
    npz = tmp_path / "calib.npz"
    np.savez(npz, **rows)
    code = main([str(MODELS / "mlp.onnx"), "--target", "c7i-xlarge", "--max-batch", "2", "--passes", "int8-static",
                 "--calibration", str(npz), "--json"])
    out = capsys.readouterr()
    assert code == 0 and "random data mean little" not in out.err
    doc = json.loads(out.out)
    rep = {r["pipeline"]: r for r in doc["pipelines"]}
    assert set(rep) == {"none", "int8-static"} and rep["int8-static"]["rejected"] is None
    assert rep["int8-static"]["drift"]["inputs"] == "user .npz" and rep["int8-static"]["drift"]["samples"] == 8


def test_generated_calibration_prints_its_warning(capsys):
    code = main([str(MODELS / "cnn.onnx"), "--target", "c7i-xlarge", "--max-batch", "2", "--passes", "int8-static"])
    err = capsys.readouterr().err
    assert code == 0 and "random data mean little" in err


def test_calibration_npz_missing_an_input_is_a_one_line_error(tmp_path, capsys):
    import numpy as np

    npz = tmp_path / "bad.npz"
    np.savez(npz, nope=np.zeros((2, 3), np.float32))
    code = main([str(MODELS / "mlp.onnx"), "--target", "a10g", "--max-batch", "2", "--calibration", str(npz)])
    err = capsys.readouterr().err
    assert code == 2 and "no array for input(s) x" in err


def test_help_states_the_drift_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default 0.01: cosine >= 0.99, top-1 >= 0.99" in out and "--passes" in out and "--emit" in out


def test_gpu_runs_int8_x_int8_matmul_integer_but_not_uint8_activations():
    """CUDA registers MatMulInteger for int8 x int8 only; quantize_dynamic's activations are uint8."""
    from onnx import TensorProto, helper

    from planner.model.analyze import Analyzer
    from planner.model.loader import LoadedModel
    from planner.predict.fusion import build_kernels, graph_costs
    from planner.predict.support import runtime_kernels

    def model(act):
        g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
                              [helper.make_tensor_value_info("a", act, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 8])],
                              [helper.make_tensor("b", TensorProto.INT8, [16, 8], [1] * 128)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    for act, runs in ((TensorProto.INT8, True), (TensorProto.UINT8, False)):
        gr = Analyzer(LoadedModel(model(act), Path("m.onnx"), "x")).analyze({}, None).graph
        ks, _, unsupported = runtime_kernels(build_kernels(gr, graph_costs(gr), True, False), gr, get_target("a10g"))
        assert (unsupported == ()) is runs
        if runs:
            assert ks[0].dtype == "int8"


def test_auto_skips_passes_on_graphs_too_big_for_its_time_budget(monkeypatch):
    import planner.search.variants as po

    monkeypatch.setattr(po, "AUTO_MAX_NODES", 10)
    p = planner.plan(ENCODER, targets=["a10g"], max_batch=2)
    assert {c.pipeline for c in p.candidates} == {"none"}
    assert any("79 nodes, over the 10 auto runs passes on" in n for n in p.model.notes)
    named = planner.plan(ENCODER, targets=["a10g"], max_batch=2, passes=PassOptions("fp16"))
    assert {c.pipeline for c in named.candidates} == {"none", "fp16"}


def test_emitting_the_stored_model_copies_its_bytes(tmp_path):
    out = tmp_path / "same.onnx"
    p = planner.plan(MODELS / "cnn.onnx", targets=["a10g"], max_batch=2, passes=PassOptions("none"), emit=str(out))
    assert p.chosen.pipeline == "none" and out.read_bytes() == (MODELS / "cnn.onnx").read_bytes()


def test_decoders_accept_passes_none_and_named_pipelines(capsys):
    """Decoders run pipelines too (issue 19: planner.llm.variants, tests/test_llm_passes.py)."""
    assert main([str(MODELS / "decoder.onnx"), "--target", "a10g", "--passes", "none", "-q"]) in (0, 1)
    capsys.readouterr()
    code = main([str(MODELS / "decoder.onnx"), "--target", "a10g", "--passes", "fp16", "--prompt-len", "16",
                 "--gen-len", "16"])
    out = capsys.readouterr().out
    assert code == 0 and "fp16          cleanup > ort-fusion > kv-attention > fp16" in out and "agree 1.000" in out
