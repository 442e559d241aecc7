"""If, Loop and Scan: bodies counted with hand-derived numbers, repeat counts, flags, and the malformed cases."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.api import plan
from planner.calibration.benches import SUBGRAPH_BENCHES
from planner.calibration.fit import bench_prediction, subgraph_residuals
from planner.calibration.host import get_target
from planner.calibration.rates import apply
from planner.calibration.samples import Sample
from planner.calibration.store import Calibration
from planner.cli import main
from planner.costs import node_cost
from planner.model.analyze import Analyzer
from planner.model.controlflow import DEFAULT_LOOP_TRIPS
from planner.model.loader import load_model
from planner.ort.executed import ort_analysis
from planner.predict.predictor import predict
from planner.search.variants import PassOptions
from planner.targets.host import detect_host, host_fingerprint

F = TensorProto.FLOAT
D = 64  # feature width
FP32 = 4  # bytes


def _vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def _w(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def _save(tmp_path, graph, name="m.onnx", opset=17):
    p = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), p)
    return p


def _node(path, op_type, batch=1, loop_trips=None):
    a = Analyzer(load_model(path), loop_trips=loop_trips).analyze(batch=batch)
    [n] = [n for n in a.graph.nodes if n.op_type == op_type]
    return n, a


def _if_model(tmp_path):
    """then: y = x·W (2·b·D·2D FLOPs); else: y = x + x (b·D FLOPs). Both read outer x; W is an outer weight."""
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"])], "then", [], [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Add", ["x", "x"], ["e"])], "else", [], [_vi("e", None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "g",
                          [_vi("x", ["batch", D]), _vi("c", [], TensorProto.BOOL)], [_vi("y", None)],
                          [_w("W", (D, 2 * D))])
    return _save(tmp_path, g)


def test_if_costs_the_larger_branch_per_component(tmp_path):
    b = 4
    n, _ = _node(_if_model(tmp_path), "If", batch=b)
    c = node_cost(n).cost
    then_flops, else_flops = 2 * b * D * 2 * D, b * D
    then_read = (b * D + D * 2 * D) * FP32  # x and W
    else_read = 2 * b * D * FP32  # x twice
    then_written, else_written = b * 2 * D * FP32, b * D * FP32
    assert c.flops == max(then_flops, else_flops) == then_flops
    assert c.bytes_read == max(then_read, else_read)
    assert c.bytes_written == max(then_written, else_written)
    assert c.weight_bytes == D * 2 * D * FP32
    assert node_cost(n).known


def test_if_is_flagged_and_not_unknown(tmp_path, capsys):
    code = main([str(_if_model(tmp_path)), "--json", "--batch", "2"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["model"]["unknown_ops"] == []
    assert any(n.startswith("If 'If_0': costed as the larger of its two branches") for n in doc["model"]["notes"])
    assert doc["model"]["flops"] == 2 * 2 * D * 2 * D


def _rate_switch(tmp_path):
    """A sample-rate switch as audio exports write it: If(Equal(sr, 16000)); then y = x·W, else y = x + x."""
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"])], "then", [], [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Add", ["x", "x"], ["e"])], "else", [], [_vi("e", None)])
    nodes = [helper.make_node("Equal", ["sr", "k16000"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["y"], then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(nodes, "g", [_vi("x", ["batch", D]), _vi("sr", [], TensorProto.INT64)], [_vi("y", None)],
                          [_w("W", (D, 2 * D)), numpy_helper.from_array(np.array(16000, np.int64), "k16000")])
    return _save(tmp_path, g, "rate.onnx")


@pytest.mark.parametrize("given,flops", [({}, 2 * 3 * D * 2 * D), ({"sr": 16000}, 2 * 3 * D * 2 * D),
                                         ({"sr": 8000}, 3 * D)])
def test_a_given_value_decides_the_branch(tmp_path, given, flops):
    """--value sr=8000: the condition Equal(sr, 16000) is false, so only the else branch (b·D FLOPs) is costed;
    with no value, the larger (2·b·D·2D); the graph onnxruntime runs follows the same rule."""
    path = _rate_switch(tmp_path)
    a = Analyzer(load_model(path), values=given).analyze(batch=3)
    [n] = [n for n in a.graph.nodes if n.op_type == "If"]
    assert node_cost(n).cost.flops == flops
    o = ort_analysis(load_model(path), batch=3, analyzer=Analyzer(load_model(path), values=given))
    [n] = [n for n in o.graph.nodes if n.op_type == "If"]
    assert node_cost(n).cost.flops == flops
    if given:
        assert any("only its" in x and f"sr={given['sr']}" in x for x in a.notes)


def test_a_constant_condition_decides_the_branch(tmp_path):
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["t"])], "then", [], [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Add", ["x", "x"], ["e"])], "else", [], [_vi("e", None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "g",
                          [_vi("x", [1, D])], [_vi("y", None)],
                          [_w("W", (D, 2 * D)), numpy_helper.from_array(np.array(False), "c")])
    n, _ = _node(_save(tmp_path, g), "If")
    assert node_cost(n).cost.flops == D  # x + x: the else branch, the only one that can run


@pytest.mark.parametrize("arg,message", [("nope=1", "the model has no input 'nope'"),
                                         ("sr=fast", "VALUE must be true, false or a number"),
                                         ("x=1", "binds inputs of one element")])
def test_bad_values_are_refused_in_one_line(tmp_path, capsys, arg, message):
    code = main(["predict", str(_rate_switch(tmp_path)), "--value", arg])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_the_measurement_feeds_the_given_value(tmp_path):
    import onnxruntime as ort

    from planner.ort.measure import one_element_feeds, synthetic_feeds

    path = _rate_switch(tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = synthetic_feeds(session, {"batch": 2}, values={"sr": 8000})
    assert feeds["sr"].dtype == np.int64 and feeds["sr"].shape == () and int(feeds["sr"]) == 8000
    default = synthetic_feeds(session, {"batch": 2})
    assert one_element_feeds(onnx.load(path)) == {"sr": int(default["sr"])}  # what the predictor is told


def _loop_model(tmp_path, m_value=None, m_input=False, with_cond=True, name="loop.onnx"):
    """h_{k+1} = h_k · W, W [D, D] an outer weight: 2·D·D FLOPs per trip for h [1, D]."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("MatMul", ["h_in", "W"], ["h_out"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("h_in", None)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h_out", None)])
    inits = [_w("W", (D, D))]
    inputs = [_vi("h0", [1, D])]
    m_name = ""
    if m_value is not None:
        inits.append(numpy_helper.from_array(np.array(m_value, np.int64), "M"))
        m_name = "M"
    elif m_input:
        inputs.append(_vi("M", [], TensorProto.INT64))
        m_name = "M"
    cond_name = ""
    if with_cond:
        inits.append(numpy_helper.from_array(np.array(True), "cond"))
        cond_name = "cond"
    g = helper.make_graph([helper.make_node("Loop", [m_name, cond_name, "h0"], ["h"], body=body)], "g", inputs,
                          [_vi("h", None)], inits)
    return _save(tmp_path, g, name)


PER_TRIP = 2 * 1 * D * D


def test_loop_with_constant_trip_count(tmp_path):
    trips = 5
    n, a = _node(_loop_model(tmp_path, m_value=trips), "Loop")
    assert node_cost(n).cost.flops == trips * PER_TRIP
    assert node_cost(n).cost.weight_bytes == trips * D * D * FP32  # W streamed once per trip
    assert any("body x 5 (constant trip count M=5, an upper bound" in note for note in a.notes)


def test_loop_without_a_fixed_count_uses_the_default_then_the_user_value(tmp_path):
    p = _loop_model(tmp_path, m_input=True)
    n, a = _node(p, "Loop")
    assert node_cost(n).cost.flops == DEFAULT_LOOP_TRIPS * PER_TRIP
    assert any("set it with --loop-trips N" in note for note in a.notes)
    n, a = _node(p, "Loop", loop_trips=12)
    assert node_cost(n).cost.flops == 12 * PER_TRIP
    assert any("--loop-trips 12" in note for note in a.notes)


def test_exporters_int64_max_is_not_a_trip_count(tmp_path):
    """PyTorch writes M = INT64_MAX for a while-loop: 9.2e18 trips would be nonsense; it is 'unknown'."""
    n, a = _node(_loop_model(tmp_path, m_value=np.iinfo(np.int64).max), "Loop", loop_trips=3)
    assert node_cost(n).cost.flops == 3 * PER_TRIP


def test_loop_trips_from_the_cli(tmp_path, capsys):
    p = _loop_model(tmp_path, m_input=True)
    assert main([str(p), "--json", "--loop-trips", "7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"]["flops"] == 7 * PER_TRIP and doc["model"]["unknown_ops"] == []
    assert main([str(p), "--loop-trips", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_loop_time_counts_every_body_launch(tmp_path):
    """A tiny body run 1000 times: each trip launches its MatMul, so the Loop takes at least 1000 launches;
    one roofline over the summed cost would have charged a single launch."""
    trips = 1000
    result = plan(_loop_model(tmp_path, m_value=trips), targets="a10g", batch=1)
    a10g = get_target("a10g")
    [k] = [k for k in result.chosen.kernels if k.ops == "Loop"]
    assert k.time_ms / 1e3 >= trips * a10g.launch_overhead_s
    assert k.flops == trips * PER_TRIP


def _scan_model(tmp_path, length=10, width=4):
    """s_{t+1} = s_t + x_t; y_t = s_{t+1}: one Add of `width` elements per step."""
    body = helper.make_graph([helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
                              helper.make_node("Identity", ["s_out"], ["y_t"])], "body",
                             [_vi("s_in", None), _vi("x_t", None)], [_vi("s_out", None), _vi("y_t", None)])
    g = helper.make_graph([helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1)], "g",
                          [_vi("s0", [width]), _vi("xs", ["seq", width])], [_vi("s", None), _vi("ys", None)])
    return _save(tmp_path, g, "scan.onnx")


def test_scan_costs_body_times_scan_length(tmp_path):
    length, width = 10, 4
    lm = load_model(_scan_model(tmp_path, length, width))
    a = Analyzer(lm).analyze({"seq": length})
    [n] = [n for n in a.graph.nodes if n.op_type == "Scan"]
    c = node_cost(n).cost
    assert c.flops == length * width
    assert c.bytes_read == length * 2 * width * FP32 and c.bytes_written == length * width * FP32
    assert any("body x 10 (scan length 10)" in note for note in a.notes)


def test_nested_if_inside_loop_multiplies(tmp_path):
    """Loop M=3 whose body runs an If: then = h·W (2·D·D), else = Identity (0). 3 × 2·D·D."""
    then_g = helper.make_graph([helper.make_node("MatMul", ["h_in", "W"], ["t"])], "then", [], [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["h_in"], ["e"])], "else", [], [_vi("e", None)])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("If", ["flag"], ["h_out"], then_branch=then_g, else_branch=else_g)],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("h_in", None)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h_out", None)])
    g = helper.make_graph([helper.make_node("Loop", ["M", "", "h0"], ["h"], body=body)], "g",
                          [_vi("h0", [1, D]), _vi("flag", [], TensorProto.BOOL)], [_vi("h", None)],
                          [_w("W", (D, D)), numpy_helper.from_array(np.array(3, np.int64), "M")])
    n, _ = _node(_save(tmp_path, g), "Loop")
    assert node_cost(n).cost.flops == 3 * 2 * D * D


def test_unknown_op_inside_a_body_is_listed(tmp_path, capsys):
    then_g = helper.make_graph([helper.make_node("Frob", ["x"], ["t"], domain="com.example")], "then", [],
                               [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [], [_vi("e", None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "g",
                          [_vi("x", [2, D]), _vi("c", [], TensorProto.BOOL)], [_vi("y", None)])
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]),
              p)
    assert main([str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["unknown_ops"] == ["com.example::Frob"]


# ---- malformed control flow: a clear refusal or a plan by bytes, never a crash -------------------------------


def test_if_without_else_branch_is_planned_by_bytes(tmp_path):
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [_vi("t", None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g)], "g",
                          [_vi("x", [2, D]), _vi("c", [], TensorProto.BOOL)], [_vi("y", None)])
    result = plan(_save(tmp_path, g), targets="a10g", batch=2)
    assert result.chosen is not None and result.model.unknown_ops == []


def _nested_ifs(levels: int) -> onnx.GraphProto:
    inner = helper.make_graph([helper.make_node("Relu", ["x"], ["r0"])], "b0", [], [_vi("r0", None)])
    for depth in range(1, levels + 1):
        leaf = helper.make_graph([helper.make_node("Relu", ["x"], [f"e{depth}"])], f"e{depth}", [],
                                 [_vi(f"e{depth}", None)])
        inner = helper.make_graph([helper.make_node("If", ["c"], [f"r{depth}"], then_branch=inner,
                                                    else_branch=leaf)], f"b{depth}", [], [_vi(f"r{depth}", None)])
    return helper.make_graph(list(inner.node), "g", [_vi("x", [2, D]), _vi("c", [], TensorProto.BOOL)],
                             [_vi(f"r{levels}", None)])


def test_control_flow_nested_too_deep_is_refused_before_any_work(tmp_path, capsys):
    code = main([str(_save(tmp_path, _nested_ifs(25))), "--batch", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "nested 25 levels deep, more than the 16 planned" in err


def test_control_flow_nested_within_the_limit_plans(tmp_path):
    n, _ = _node(_save(tmp_path, _nested_ifs(6)), "If", batch=2)
    relu = 2 * D  # the deepest Relu (1 FLOP per element) is the costliest path: every level's max picks it
    assert node_cost(n).cost.flops == relu


@pytest.mark.parametrize("bad_m", [-5, [2, 3]])
def test_odd_trip_count_constants_fall_back_to_the_default(tmp_path, bad_m):
    n, _ = _node(_loop_model(tmp_path, m_value=bad_m), "Loop")
    assert node_cost(n).cost.flops == DEFAULT_LOOP_TRIPS * PER_TRIP


def test_loop_time_is_trips_times_the_body_planned_alone(tmp_path):
    """The same MatMul planned as a model of its own, times 5, is the Loop's kernel time on each target."""
    trips = 5
    alone = helper.make_graph([helper.make_node("MatMul", ["h", "W"], ["y"])], "g", [_vi("h", [1, D])],
                              [_vi("y", [1, D])], [_w("W", (D, D))])
    as_stored = PassOptions("none")  # the comparison is of the graphs as built, not of what passes make of them
    single = plan(_save(tmp_path, alone, "alone.onnx"), targets="a10g,c7i-xlarge", batch=1, passes=as_stored)
    looped = plan(_loop_model(tmp_path, m_value=trips), targets="a10g,c7i-xlarge", batch=1, passes=as_stored)
    for target in ("a10g", "c7i-xlarge"):
        [k1] = [k for k in single.best_per_target[target].kernels if k.ops == "MatMul"]
        [kl] = [k for k in looped.best_per_target[target].kernels if k.ops == "Loop"]
        assert kl.time_ms == pytest.approx(trips * k1.time_ms, rel=1e-9)
        assert kl.flops == trips * k1.flops


def test_the_graph_onnxruntime_executes_counts_if_bodies_too(tmp_path):
    """`plan predict` / `validate` / `--target host` cost onnxruntime's optimized graph: its If must carry its
    branches (issue #16: a whole model inside a top-level If was predicted 10-14x too fast, costed by bytes)."""
    b = 4
    a = ort_analysis(load_model(_if_model(tmp_path)), batch=b)
    [n] = [n for n in a.graph.nodes if n.op_type == "If"]
    assert node_cost(n).cost.flops == 2 * b * D * 2 * D  # the then branch's MatMul, the larger one
    assert any("If" in note for note in a.notes)


def test_each_body_run_costs_the_calibrated_subgraph_run(tmp_path):
    """On a calibrated host, every run of a body adds what onnxruntime pays to run a subgraph (calibration:
    If and Loop benches against their predicted nodes); a Scan iteration costs a Loop's; spec targets add 0."""
    trips, per_loop, per_if = 5, 0.7e-6, 0.4e-6
    host = apply(detect_host(), _calibration())
    timed = apply(detect_host(), _calibration(kernel_fixed_s={"vector": 0.25e-6, "subgraph.Loop": per_loop,
                                                              "subgraph.If": per_if}))
    loop = Analyzer(load_model(_loop_model(tmp_path, m_value=trips))).analyze(batch=1)
    assert predict(loop, timed).latency_s - predict(loop, host).latency_s == pytest.approx(trips * per_loop)
    branch = Analyzer(load_model(_if_model(tmp_path))).analyze(batch=1)
    assert predict(branch, timed).latency_s - predict(branch, host).latency_s == pytest.approx(per_if)
    a10g = get_target("a10g")
    assert a10g.rates.subgraph_run_s("Loop", a10g) == 0.0
    assert timed.rates.subgraph_run_s("Scan", timed) == per_loop


def _calibration(**kw) -> Calibration:
    base = dict(fingerprint=host_fingerprint(), threads=1, launch_overhead_s=0.5e-6, run_overhead_s=8e-6,
                run_overhead_per_io_s=1e-6, profiler_bias_s=3e-6, bandwidth_curve=((1e3, 2e10), (1e9, 2e10)),
                weight_bandwidth_curve=(), rate_curves={"gemm.fp32": ((1.0, 1e10), (100.0, 1e11))},
                throughput_curves={}, kernel_fixed_s={"vector": 0.25e-6}, workspace_bytes=12e6,
                created="2026-01-01T00:00:00+00:00", quick=True)
    base.update(kw)
    return Calibration(**base)


def test_subgraph_residual_is_the_slope_of_measured_less_predicted():
    """Measured = predicted + 3 us per run of the bench + 0.5 us per body run: the residual is the 0.5 us."""
    cal = _calibration()
    samples = []
    for n in (8, 40):
        _, predicted = bench_prediction(cal, SUBGRAPH_BENCHES["Loop"](n))
        samples.append(Sample("Loop", "vector", "vector", 0, 0, predicted + 3e-6 + n * 0.5e-6, f"loop {n}",
                              "subgraph", steps=n))
    assert subgraph_residuals(cal, samples) == {"subgraph.Loop": pytest.approx(0.5e-6)}
    faster = [dataclasses.replace(s, seconds=s.seconds - s.steps * 1e-6) for s in samples]  # below prediction
    assert subgraph_residuals(cal, faster) == {"subgraph.Loop": 0.0}


def test_a_decoder_checks_its_values_too(capsys):
    """Decoders are planned by planner.llm; --value reaches their analyzers rather than being dropped."""
    from pathlib import Path

    decoder = Path(__file__).resolve().parent.parent / "models" / "decoder.onnx"
    code = main([str(decoder), "--value", "nope=1", "--passes", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "the model has no input 'nope'" in err and len(err.splitlines()) == 1


def test_every_branch_brings_its_own_weights_into_memory(tmp_path):
    """A model inside an If (an export with a mode switch): its weights are the branches' initializers, and
    onnxruntime loads both branches with the session. then: x·Wt, Wt [D, 2D]; else: x·We, We [D, D]; no outer
    weight. The plan's weights are both, by hand; its activations the outer ones plus the larger branch's own
    while it runs (then: [b, 2D]; x is outer, counted once)."""
    from planner.targets.catalog import bundled_targets

    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "Wt"], ["t"])], "then", [], [_vi("t", None)],
                               [_w("Wt", (D, 2 * D))])
    else_g = helper.make_graph([helper.make_node("MatMul", ["x", "We"], ["e"])], "else", [], [_vi("e", None)],
                               [_w("We", (D, D))])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "g",
                          [_vi("x", ["batch", D]), _vi("c", [], TensorProto.BOOL)], [_vi("y", None)])
    b = 4
    _, a = _node(_save(tmp_path, g), "If", batch=b)
    mem = predict(a, bundled_targets()["a10g"]).memory
    assert mem.weight_bytes == (D * 2 * D + D * D) * FP32
    assert mem.activation_bytes == b * D * FP32 + 1 + b * 2 * D * FP32  # x, the condition, then's x·Wt


def test_a_branch_that_does_not_run_still_brings_its_weights(tmp_path):
    """The same If deciding on a given input (--value mode=1): only the then branch is costed, but onnxruntime
    loads the else branch's weights with the session all the same, so memory counts both; We is [D, D]."""
    from planner.targets.catalog import bundled_targets

    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "Wt"], ["t"])], "then", [], [_vi("t", None)],
                               [_w("Wt", (D, 2 * D))])
    else_g = helper.make_graph([helper.make_node("MatMul", ["x", "We"], ["e"])], "else", [], [_vi("e", None)],
                               [_w("We", (D, D))])
    g = helper.make_graph([helper.make_node("Cast", ["mode"], ["c"], to=TensorProto.BOOL),
                           helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "g",
                          [_vi("x", ["batch", D]), _vi("mode", [], TensorProto.INT64)], [_vi("y", None)])
    a = Analyzer(load_model(_save(tmp_path, g)), values={"mode": 1}).analyze(batch=4)
    [n] = [n for n in a.graph.nodes if n.op_type == "If"]
    assert n.attr("then_branch") is n.attr("else_branch")  # one branch costed
    assert predict(a, bundled_targets()["a10g"]).memory.weight_bytes == (D * 2 * D + D * D) * FP32
