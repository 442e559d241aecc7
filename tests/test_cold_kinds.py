"""Small nodes whose code the weights in between evicted (planner.predict.cold, planner.calibration.cold): the
bytes counted by hand, the measured curve read by hand, and the calibration's pair of graphs checked to hold the
same nodes in the two orders."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import onnx
import pytest

from planner.calibration.cold import D, cold_pair
from planner.calibration.fit import fit_cold
from planner.calibration.rates import CalibratedRates
from planner.calibration.samples import Sample
from planner.calibration.store import Calibration
from planner.costs import OpClass, OpCost
from planner.predict.cold import streamed_since_kind
from planner.predict.fusion import Kernel

MIB = 1 << 20


def _kernel(op: str, weight_bytes: int = 0) -> Kernel:
    return Kernel(op, (0,), (op,), OpClass.VECTOR, "float32", OpCost(0, weight_bytes + 64, 64, weight_bytes), False)


def test_bytes_since_a_kind_last_ran_are_counted_across_the_run():
    # MatMul (4 MiB of weights), Add, MatMul (1 MiB), Add, Mul; the run repeats
    kernels = [_kernel("MatMul", 4 * MIB), _kernel("Add"), _kernel("MatMul", MIB), _kernel("Add"), _kernel("Mul")]
    # the first MatMul: the second one ran last (a run ago) and nothing with weights ran since;
    # the first Add: the second Add ran last, then the first MatMul's 4 MiB;
    # the second MatMul: the first one just finished, no other weights since;
    # the second Add: the first Add, then the second MatMul's 1 MiB;
    # the Mul: its only kernel, a whole run ago (5 MiB)
    assert streamed_since_kind(kernels) == [0, 4 * MIB, 0, MIB, 5 * MIB]
    # all of a run's weights fit the core's own cache: nothing comes from far
    assert streamed_since_kind(kernels, near_bytes=8 * MIB) == [0] * 5
    assert streamed_since_kind(kernels, near_bytes=4 * MIB) == [0, 4 * MIB, 0, MIB, 5 * MIB]


def test_a_loop_streams_nothing_of_its_own():
    # a Loop's weights are its body's, counted once per iteration: the body is timed as a graph of its own, so
    # the Add after the Loop finds nothing streamed since the Add before it; the Loop is dispatched like any node
    kernels = [_kernel("Add"), _kernel("Loop", 64 * MIB), _kernel("Add"), _kernel("MatMul", 3 * MIB)]
    assert streamed_since_kind(kernels) == [3 * MIB, 3 * MIB, 0, 0]


def test_the_cold_cost_reads_the_measured_curve():
    rates = CalibratedRates(cold_kind_curve=((256 * 1024, 0.2e-6), (MIB, 0.5e-6), (4 * MIB, 1.4e-6)))
    assert rates.cold_kind_s(0) == 0.0
    assert rates.cold_kind_s(128 * 1024) == pytest.approx(0.1e-6)  # in proportion below the first point
    # between points, linear in the log of the bytes: 512 KiB is halfway from 256 KiB to 1 MiB
    assert rates.cold_kind_s(512 * 1024) == pytest.approx(0.35e-6)
    assert rates.cold_kind_s(2 * MIB) == pytest.approx(0.95e-6)
    assert rates.cold_kind_s(64 * MIB) == pytest.approx(1.4e-6)  # flat beyond the last
    assert CalibratedRates().cold_kind_s(4 * MIB) == 0.0  # a calibration that did not measure it


def test_the_fit_takes_the_median_at_each_point_and_never_falls():
    def s(nbytes, us):
        return Sample("cold", "vector", "vector", 0, nbytes, us * 1e-6, f"cold {nbytes}", "cold")

    samples = [s(MIB, 0.4), s(MIB, 0.6), s(MIB, 0.5), s(256 * 1024, 0.0), s(256 * 1024, 0.0), s(4 * MIB, 0.3)]
    # 256 KiB measured nothing (dropped: a curve's points are positive); 4 MiB's 0.3 us is raised to 1 MiB's 0.5
    assert fit_cold(samples) == ((float(MIB), pytest.approx(0.5e-6)), (4.0 * MIB, pytest.approx(0.5e-6)))
    assert fit_cold([]) == ()


def test_the_curve_survives_the_calibration_file():
    base = Calibration(fingerprint="x", threads=1, launch_overhead_s=1e-6, run_overhead_s=1e-6,
                       run_overhead_per_io_s=0.0, profiler_bias_s=0.0, bandwidth_curve=((1.0, 1e9),),
                       weight_bandwidth_curve=(), rate_curves={}, throughput_curves={}, kernel_fixed_s={})
    cal = dataclasses.replace(base, cold_kind_curve=((float(MIB), 5e-7), (4.0 * MIB, 1.4e-6)))
    assert Calibration.from_dict(cal.to_dict()).cold_kind_curve == cal.cold_kind_curve
    assert Calibration.from_dict(base.to_dict()).cold_kind_curve == ()


def test_the_calibration_pair_holds_the_same_nodes_in_two_orders():
    ort = pytest.importorskip("onnxruntime")
    blocks, s = 3, 128
    interleaved, grouped = cold_pair(blocks, s)
    a, b = (onnx.load_from_string(x.model).graph for x in (interleaved, grouped))
    assert Counter(n.op_type for n in a.node) == Counter(n.op_type for n in b.node)
    assert Counter(n.op_type for n in a.node)["MatMul"] == 2 * blocks  # two GEMVs a block, no d x d MatMul left
    weights = [t for t in a.initializer if t.name[0] in "uv"]
    assert sum(int(np.prod(t.dims)) * 4 for t in weights) == blocks * 8 * D * s  # 8 d s bytes a block
    # interleaved: each block's small nodes come right after its own two GEMVs; grouped: every GEMV first
    order_a = [n.op_type == "MatMul" for n in a.node]
    order_b = [n.op_type == "MatMul" for n in b.node]
    assert order_b[:2 * blocks] == [True] * (2 * blocks) and not any(order_b[2 * blocks:])
    per_block = len(a.node) // blocks
    assert all(order_a[i * per_block:i * per_block + 2] == [True, True] for i in range(blocks))
    # and both compute the same thing
    outs = [ort.InferenceSession(x.model, providers=["CPUExecutionProvider"]).run(None, x.feeds)[0]
            for x in (interleaved, grouped)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, equal_nan=True)


def test_a_calibrated_host_charges_each_cold_kind_once(tmp_path):
    """x [1, 512] -> MatMul (2 MiB of weights) -> Softmax -> MatMul (2 MiB) -> Softmax: each Softmax runs after
    2 MiB of weights since the other one; the MatMuls have only a Softmax between them. With 4 MiB of weights a
    run and a 1 MiB core cache, the two Softmaxes pay the curve at 2 MiB, nothing else pays."""
    from onnx import TensorProto, helper, numpy_helper

    from planner.calibration.host import get_target
    from planner.model.analyze import Analyzer
    from planner.model.loader import load_model
    from planner.predict.predictor import Predictor

    w1 = numpy_helper.from_array(np.zeros((512, 1024), np.float32), "W1")
    w2 = numpy_helper.from_array(np.zeros((1024, 512), np.float32), "W2")
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"]), helper.make_node("Softmax", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "W2"], ["c"]), helper.make_node("Softmax", ["c"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])], [w1, w2])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    analysis = Analyzer(load_model(tmp_path / "m.onnx")).analyze()
    curve = ((float(MIB), 0.5e-6), (4.0 * MIB, 1.4e-6))
    warm = dataclasses.replace(get_target("host"), core_cache_bytes=float(MIB),
                               rates=CalibratedRates(bandwidth_curve=((1.0, 50e9), (64.0 * MIB, 20e9))))
    cold = dataclasses.replace(warm, rates=dataclasses.replace(warm.rates, cold_kind_curve=curve))
    before, after = (Predictor().predict(analysis, t) for t in (warm, cold))
    extra = [b.time.seconds - a.time.seconds for a, b in zip(before.kernels, after.kernels, strict=True)]
    at_2mib = 0.5e-6 + 0.9e-6 / 2  # halfway (in log bytes) from 1 MiB to 4 MiB
    assert [k.kernel.op_types[0] for k in after.kernels] == ["MatMul", "Softmax", "MatMul", "Softmax"]
    assert extra == pytest.approx([0.0, at_2mib, 0.0, at_2mib])
    # a core cache that holds both weights: they stay near from one run to the next, nothing is cold
    near = dataclasses.replace(cold, core_cache_bytes=8.0 * MIB)
    assert Predictor().predict(analysis, near).latency_s == pytest.approx(before.latency_s)
