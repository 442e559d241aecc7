"""A QDQ model whose MatMul onnxruntime leaves unfused dequantizes its int8 weight to floats on every run: those
floats pass through the caches like the weights themselves, so the other weights are read from where all of it
lives (on a Zen 4 EPYC a one-row QLinearMatMul over 0.7 MB of int8 weights took 15 us alone and 31-41 us beside
four layers of 2.9 MB dequantized weights)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.calibration.rates import apply
from planner.calibration.store import Calibration
from planner.model.analyze import Analyzer
from planner.model.loader import load_model
from planner.ort.executed import ort_analysis
from planner.predict.predictor import Predictor
from planner.targets.host import detect_host, host_fingerprint

GB = 1e9
K, N, WIDE = 256, 256, 4096


def _model(path: Path, dequantized: bool) -> Path:
    """x [1, K] -> a float GEMV over A [K, N] -> a MatMul over W [N, WIDE], W stored as int8 behind a
    DequantizeLinear (`dequantized`) or as float32."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "A")]
    nodes = [helper.make_node("MatMul", ["x", "A"], ["y"], name="gemv")]
    if dequantized:
        inits += [numpy_helper.from_array(rng.integers(-127, 127, (N, WIDE), dtype=np.int8), "Wq"),
                  numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [helper.make_node("DequantizeLinear", ["Wq", "s", "zp"], ["W"], name="dq"),
                  helper.make_node("DequantizeLinear", ["z8", "s", "zp"], ["zf"], name="dq_activation")]
    else:
        inits.append(numpy_helper.from_array(rng.standard_normal((N, WIDE)).astype(np.float32), "W"))
    nodes.append(helper.make_node("MatMul", ["y", "W"], ["z"], name="wide"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])]
    outputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, WIDE])]
    if dequantized:
        inputs.append(helper.make_tensor_value_info("z8", TensorProto.INT8, [1, WIDE]))
        outputs.append(helper.make_tensor_value_info("zf", TensorProto.FLOAT, [1, WIDE]))
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _executed(path: Path):
    """As onnxruntime runs it: its optimized graph, where a weight's DequantizeLinear is not folded."""
    loaded = load_model(path)
    return ort_analysis(loaded, analyzer=Analyzer(loaded))


def _cal() -> Calibration:
    return Calibration(
        fingerprint=host_fingerprint(), threads=1, launch_overhead_s=0.5e-6, run_overhead_s=8e-6,
        run_overhead_per_io_s=1e-6, profiler_bias_s=3e-6, bandwidth_curve=((1e3, 20 * GB), (1e9, 20 * GB)),
        weight_bandwidth_curve=((1e6, 80 * GB), (1e8, 20 * GB)),
        rate_curves={"gemm.fp32": ((1.0, 10 * GB), (100.0, 100 * GB))}, throughput_curves={},
        kernel_fixed_s={"gemm": 2e-6}, workspace_bytes=0, created="2026-01-01T00:00:00+00:00", quick=True)


def test_the_floats_a_dequantizelinear_writes_from_a_weight_are_counted_once_per_run(tmp_path: Path):
    graph = _executed(_model(tmp_path / "q.onnx", True)).graph
    assert graph.dequantized_weight_bytes == 4 * N * WIDE  # W's floats; not the activation's DequantizeLinear
    plain = _executed(_model(tmp_path / "f.onnx", False)).graph
    assert plain.dequantized_weight_bytes == 0


def test_a_gemv_beside_dequantized_weights_reads_from_where_all_of_them_live(tmp_path: Path):
    target = apply(detect_host(), _cal())
    analysis = _executed(_model(tmp_path / "q.onnx", True))
    gemv = next(k for k in Predictor().predict(analysis, target).kernels if k.kernel.name == "gemv")
    # in play: A (256 KiB of floats), W (1 MiB of int8) with its scale and zero point, and W's 4 MiB of floats
    in_play = 4 * K * N + (N * WIDE + 4 + 1) + 4 * N * WIDE
    # the weight curve, log-log between (1 MB, 80 GB/s) and (100 MB, 20 GB/s)
    speed = 80 * GB * (in_play / 1e6) ** (math.log(20 / 80) / math.log(100))
    weights_s = 4 * K * N / speed
    activations_s = (4 * K + 4 * N) / (20 * GB)
    assert gemv.time.memory_s == pytest.approx(weights_s + activations_s, rel=1e-6)
