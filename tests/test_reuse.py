"""Stack distances of a kernel's inputs (planner.predict.reuse) and the late reads they cost a calibrated host,
on a graph whose distances are counted by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.calibration.rates import CalibratedRates
from planner.costs import OpClass, OpCost
from planner.model.build import build_graph
from planner.predict.fusion import build_kernels, graph_costs
from planner.predict.reuse import input_reuse
from planner.targets.catalog import bundled_targets
from planner.targets.rates import Work

KIB = 1024


def _graph():
    """x [1, 256] fp32 (1 KiB) -> a = Relu(x) -> b = a @ W (W 256 x 256: 256 KiB) -> c = Relu(b);
    ar = Reshape(a) (the same memory as a); d = c + ar."""
    w = numpy_helper.from_array(np.zeros((256, 256), np.float32), "W")
    shape = numpy_helper.from_array(np.array([1, 256], np.int64), "shape")
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="n0"),
             helper.make_node("MatMul", ["a", "W"], ["b"], name="n1"),
             helper.make_node("Relu", ["b"], ["c"], name="n2"),
             helper.make_node("Reshape", ["a", "shape"], ["ar"], name="view"),
             helper.make_node("Add", ["c", "ar"], ["d"], name="n3")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                          [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 256])], [w, shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return build_graph(onnx.shape_inference.infer_shapes(m))


@pytest.mark.parametrize("dispatch_views", [False, True])
def test_distances_are_the_distinct_bytes_touched_since_the_last_use(dispatch_views):
    graph = _graph()
    costs = graph_costs(graph)
    kernels = build_kernels(graph, costs, fuse_epilogue=False, fuse_elementwise=False, dispatch_views=dispatch_views)
    by_name = dict(zip((k.name for k in kernels), input_reuse(graph, costs, kernels), strict=True))
    # n0 reads x, last touched by n0 itself one run earlier: since then a (1 KiB, last read by n3), W (256 KiB),
    # b, c and d (1 KiB each) were touched; x itself makes 261 KiB
    assert by_name["n0"] == ((KIB, 261 * KIB),)
    assert by_name["n1"] == ((KIB, KIB),)  # a: written by n0 right before
    assert by_name["n2"] == ((KIB, KIB),)
    # n3 reads c (its producer n2 ran right before) and ar, which is a: last read by n1, then n2 touched b and c
    assert sorted(by_name["n3"]) == [(KIB, KIB), (KIB, 3 * KIB)]
    if dispatch_views:
        assert by_name["view"] == ()


def test_a_calibrated_host_reads_a_far_input_at_the_speed_of_its_distance():
    """An Add over 1 MiB a side (3 MiB working set): one input written right before, the other 64 MiB of other
    tensors ago. Streaming runs 100 GB/s up to 3 MiB and 20 GB/s from 64 MiB: the far MiB costs 1 MiB / 20 GB/s
    less 1 MiB / 100 GB/s beyond the bench."""
    mib = 1 << 20
    rates = CalibratedRates(bandwidth_curve=((3 * mib, 100e9), (64 * mib, 20e9)),
                            throughput_curves={"Add": ((1.0, 50e9), (1e9, 50e9))})
    target = bundled_targets()["a10g"]
    cost = OpCost(flops=mib // 4, bytes_read=2 * mib, bytes_written=mib)

    def seconds(reads) -> float:
        t = rates.terms(Work(cost, OpClass.VECTOR, "Add", "vector", 1e12, 0.08, reads=reads), target)
        return max(t.compute_s, t.memory_s - t.serial_s) + t.serial_s

    bench = 3 * mib / 50e9
    assert seconds(()) == pytest.approx(bench)
    assert seconds(((mib, mib), (mib, 2 * mib))) == pytest.approx(bench)  # both within the bench's working set
    assert seconds(((mib, mib), (mib, 65 * mib))) == pytest.approx(bench + mib / 20e9 - mib / 100e9)

