"""Parsing onnxruntime's profiling output, checked against a real profile generated here."""

from __future__ import annotations

import json
import statistics

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from planner.ort.profile import ProfileError, load_profile, parse_events
from planner.ort.session import make_session, session_options

RUNS = 4


def _model() -> bytes:
    nodes = [helper.make_node("Neg", ["x"], ["a"], name="neg"),
             helper.make_node("Sigmoid", ["a"], ["b"], name="sig"),
             helper.make_node("Transpose", ["b"], ["y"], name="tr", perm=[1, 0])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 64])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@pytest.fixture(scope="module")
def real_profile(tmp_path_factory):
    d = tmp_path_factory.mktemp("prof")
    opt = d / "opt.onnx"
    s = make_session(_model(), session_options(1, optimized_path=str(opt), profile_prefix=str(d / "p")))
    x = np.ones((64, 32), np.float32)
    for _ in range(RUNS):
        s.run(None, {"x": x})
    path = s.end_profiling()
    return path, json.loads(open(path).read()), onnx.load(str(opt))


def test_node_events_match_the_executed_graph(real_profile):
    path, events, optimized = real_profile
    p = load_profile(path)
    executed = {n.name: n.op_type for n in optimized.graph.node}
    assert set(executed) == {"neg", "sig", "tr"}  # onnxruntime keeps these three nodes as they are
    assert len(p.runs_us) == RUNS
    assert p.op_types() == executed
    # every node ran once in each run, each event inside its run's window
    for name in executed:
        assert sorted(n.run for n in p.nodes if n.name == name) == list(range(RUNS))
    assert all(n.provider == "CPUExecutionProvider" for n in p.nodes)


def test_medians_and_sums_worked_out_from_the_raw_json(real_profile):
    path, events, _ = real_profile
    p = load_profile(path)
    runs = sorted((e["ts"], e["dur"]) for e in events if e["cat"] == "Session" and e["name"] == "model_run")
    expect: dict[str, list[float]] = {}
    for e in events:
        if e["cat"] == "Node" and e["name"].endswith("_kernel_time"):
            run = next(i for i, (t, d) in enumerate(runs) if t <= e["ts"] <= t + d)
            if run >= 1:
                expect.setdefault(e["name"][: -len("_kernel_time")], []).append(float(e["dur"]))
    got = p.node_times_us(skip_runs=1)
    assert got == {k: statistics.median(v) for k, v in expect.items()}
    for r in range(RUNS):
        assert p.kernel_sum_us(r) <= p.runs_us[r]
    peak = p.arena_peak_bytes()
    assert peak is None or peak >= 64 * 32 * 4  # at least one activation was in the arena


def test_scaling_by_cpu_share_and_quiet_runs():
    def ev(run_ts, name, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": run_ts + 1, "dur": dur,
                "args": {"op_name": "Relu"}}

    runs = [{"cat": "Session", "name": "model_run", "ts": 1000 * i, "dur": 500} for i in range(4)]
    nodes = [ev(0, "a", 10), ev(1000, "a", 40), ev(2000, "a", 20), ev(3000, "a", 30)]
    p = parse_events(runs + nodes)
    assert p.node_times_us() == {"a": 25.0}
    # runs 1 and 3 had the CPU half of the time: their durations count half; nothing is quiet enough to select
    assert p.node_times_us(scale={0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}) == {"a": 12.5}
    # three quiet runs: only those count, unscaled
    assert p.node_times_us(scale={0: 1.0, 1: 0.2, 2: 0.99, 3: 0.97}) == {"a": 20.0}


def test_not_a_profile(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError):
        load_profile(bad)
    with pytest.raises(ProfileError):
        parse_events({"cat": "Node"})  # type: ignore[arg-type]
    with pytest.raises(ProfileError):
        load_profile(tmp_path / "missing.json")
