"""`plan calibrate --quick`: the microbenchmarks run, the file is written, and host predictions pick it up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.calibration.benches import chain, single, tiny_chain
from planner.calibration.store import read_file
from planner.cli import main
from planner.targets.host import host_fingerprint


def test_quick_calibration_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "calibrating" not in captured.err  # no bar off a terminal (output.progress)
    assert str(out) in captured.out
    (cal,) = read_file(out).values()
    assert cal.fingerprint == host_fingerprint() and cal.threads == 1 and cal.quick
    assert len(cal.bandwidth_curve) >= 2 and all(b > 1e8 for _, b in cal.bandwidth_curve)
    assert "gemm.fp32" in cal.rate_curves and "nchwc.conv.fp32" in cal.rate_curves
    # int8 as dynamic quantization ships a CNN: ConvInteger (im2col + a u8 GEMM) and the quantize step
    assert "conv.int8" in cal.rate_curves and "DynamicQuantizeLinear" in cal.throughput_curves
    # subgraph runs: an If chain and a Loop, each at two run counts
    assert sorted((s[0], s[8]) for s in cal.samples if s[7] == "subgraph") == [("If", 8), ("If", 40), ("Loop", 8),
                                                                                ("Loop", 40)]
    assert 0 < cal.launch_overhead_s < 1e-4 and cal.profiler_bias_s >= 0
    assert cal.throughput_curves and cal.kernel_fixed_s
    # the samples say what was measured: every family the curves name came from a microbenchmark of ours
    assert {s[0] for s in cal.samples} >= {"gemm", "nchwc.conv", "Add"}
    # onnxruntime keeps at least one copy of every weight, so no kind may come out below 1
    assert set(cal.weight_residency) == {"gemm", "conv"} and min(cal.weight_residency.values()) >= 1.0

    from tests.test_validate import tiny_model

    model = tiny_model(tmp_path / "tiny.onnx")
    assert main(["predict", str(model), "--calibration", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibration"]["calibrated"] is True and doc["calibration"]["quick"] is True
    assert not (tmp_path / "cache" / "onnx-planner").exists()  # --out: the user cache was not touched


def test_microbenchmark_models_are_valid_onnx():
    import onnx

    for bench in (chain(8, ios=2), tiny_chain("gemm", 3), tiny_chain("nchwc.conv", 2),
                  single("x", "Relu", [("a", [4, 4], 1)], [4, 4])):
        m = onnx.load_from_string(bench.model)
        onnx.checker.check_model(m)
        assert all(isinstance(v, np.ndarray) for v in bench.feeds.values())


def test_node_times_are_the_end_to_end_time_apportioned_by_the_profile():
    """Worked by hand: end to end 20 us, less the run overhead (6 us for one input and one output, +1 us per
    extra one) and a 0.5 us launch per node, leaves what the nodes took; the profile (less its 2 us bias:
    3 and 1 us) splits it 3:1."""
    from onnx import TensorProto, helper

    from planner.calibration.timing import Overheads, Profiled, node_seconds
    from planner.model.build import build_graph

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="a"),
                           helper.make_node("Relu", ["t"], ["y"], name="b")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    graph = build_graph(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), fold_constants=False)
    o = Overheads(launch_s=0.5e-6, run_s=6e-6, per_io_s=1e-6, profiler_bias_s=2e-6)
    times = node_seconds(Profiled({"a": 5e-6, "b": 3e-6}, graph, e2e_s=20e-6, n_io=2), o)
    assert times["a"] == pytest.approx(13e-6 * 3 / 4) and times["b"] == pytest.approx(13e-6 / 4)
    more_io = node_seconds(Profiled({"a": 5e-6, "b": 3e-6}, graph, e2e_s=20e-6, n_io=4), o)
    assert sum(more_io.values()) == pytest.approx(11e-6)
    # no end-to-end time: the profiled durations less the bias
    assert node_seconds(Profiled({"a": 5e-6, "b": 3e-6}, graph), o) == pytest.approx({"a": 3e-6, "b": 1e-6})


def test_overheads_take_the_quickest_of_each_timing_then_fit_the_line():
    from planner.calibration.overheads import OVERHEAD_IO, ChainTiming, chain_samples, overheads_from

    # a chain of n Relus: 6 us + 0.2 us a node; the wide 64-chain: 2 x (OVERHEAD_IO - 1) extra ios at 0.5 us
    quiet = {"chain 1": 6.2e-6, "chain 64": 18.8e-6, "chain 256": 57.2e-6,
             "io": 18.8e-6 + 2 * (OVERHEAD_IO - 1) * 0.5e-6, "bias": 2e-6}
    burst = {k: v * (1.5 if k == "chain 256" else 1.0) for k, v in quiet.items()}  # one slow figure
    late = {k: v * 1.1 for k, v in quiet.items()}
    o = overheads_from(burst, late)
    # chain 256 is late's (quiet x 1.1), the others burst's (= quiet): fit through (1, 6.2) (64, 18.8)
    # (256, 62.92) by least squares, worked out separately
    xs, ys = [1, 64, 256], [6.2e-6, 18.8e-6, 57.2e-6 * 1.1]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert o.launch_s == pytest.approx(slope) and o.run_s == pytest.approx(my - slope * mx)
    assert o.per_io_s == pytest.approx(0.5e-6) and o.profiler_bias_s == 2e-6
    assert overheads_from(quiet).launch_s == pytest.approx(0.2e-6)
    # a tiny chain's step of 2 Add nodes taking 1.0 us: each Add costs (1.0 - 2 x 0.2) / 2 beyond its launch
    (a,) = chain_samples([ChainTiming("Add", 1.0e-6, {"Add": 2.0}, {"Add": (16, 192, "vector")})], 0.2e-6)
    assert a.family == "Add" and a.seconds == pytest.approx(0.3e-6) and (a.flops, a.bytes) == (16, 192)
