"""Roofline, fusion and liveness on small graphs whose numbers are worked out by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.calibration.host import get_target
from planner.costs import OpClass, OpCost
from planner.model.build import build_graph
from planner.predict.fusion import build_kernels, graph_costs
from planner.predict.memory import peak_activation_bytes
from planner.predict.predictor import predict
from planner.predict.roofline import COMPUTE, MEMORY, kernel_time, roofline
from planner.targets.catalog import bundled_targets
from planner.targets.rates import SPEC, Terms, Work

GPU_TARGETS = [t for t in bundled_targets().values() if t.kind == "gpu"]


def _graph(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return build_graph(onnx.shape_inference.infer_shapes(m))


def _mlp_block(m: int, k: int, n: int, relu_consumers: int = 1):
    """y = relu(x @ W + b), optionally with a second reader of the MatMul output."""
    w = numpy_helper.from_array(np.zeros((k, n), np.float32), "W")
    b = numpy_helper.from_array(np.zeros((n,), np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
             helper.make_node("Add", ["xw", "b"], ["xwb"], name="add"),
             helper.make_node("Relu", ["xwb"], ["y"], name="relu")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])]
    if relu_consumers > 1:
        nodes.append(helper.make_node("Neg", ["xw"], ["z"], name="neg"))
        outs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [m, n]))
    return _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])], outs, [w, b])


@pytest.mark.parametrize("target", GPU_TARGETS, ids=lambda t: t.name)
def test_large_gemm_compute_bound_large_elementwise_memory_bound(target):
    m = k = n = 8192
    gemm = OpCost(flops=2 * m * k * n, bytes_read=(m * k + k * n) * 2, bytes_written=m * n * 2)
    assert kernel_time(gemm, OpClass.MATRIX, "float16", target).bound == COMPUTE
    numel = 1 << 28
    add = OpCost(flops=numel, bytes_read=2 * numel * 2, bytes_written=numel * 2)
    assert kernel_time(add, OpClass.VECTOR, "float16", target).bound == MEMORY


def test_roofline_time_by_hand():
    t = get_target("a10g")
    m, k, n = 4096, 4096, 4096
    cost = OpCost(flops=2 * m * k * n, bytes_read=(m * k + k * n) * 2, bytes_written=m * n * 2)
    kt = kernel_time(cost, OpClass.MATRIX, "float16", t)
    expect_compute = 2 * m * k * n / (t.matrix_flops_per_s["fp16"] * t.compute_efficiency)
    expect_memory = 3 * m * k * 2 / (t.mem_bw_bytes_per_s * t.memory_efficiency)
    assert kt.compute_s == pytest.approx(expect_compute)
    assert kt.memory_s == pytest.approx(expect_memory)
    assert kt.seconds == pytest.approx(max(expect_compute, expect_memory) + t.launch_overhead_s)
    assert kt.intensity == pytest.approx(2 * m * k * n / (3 * m * k * 2))


def test_epilogue_fusion_counts_bytes_at_kernel_boundary():
    m, k, n = 64, 256, 512
    g = _mlp_block(m, k, n)
    kernels = build_kernels(g, graph_costs(g), fuse_epilogue=True, fuse_elementwise=False)
    assert [kk.op_types for kk in kernels] == [("MatMul", "Add", "Relu")]
    c = kernels[0].cost
    # reads x, W, b once; writes y once: the MatMul and Add outputs never reach memory
    assert c.bytes_read == (m * k + k * n + n) * 4
    assert c.bytes_written == m * n * 4
    assert c.flops == 2 * m * k * n + m * n + m * n


def test_no_fusion_when_intermediate_has_another_reader_or_runtime_does_not_fuse():
    g = _mlp_block(64, 256, 512, relu_consumers=2)
    kernels = build_kernels(g, graph_costs(g), fuse_epilogue=True, fuse_elementwise=False)
    assert ("MatMul",) in [kk.op_types for kk in kernels]  # xw is also read by Neg: it must be written
    g = _mlp_block(64, 256, 512)
    kernels = build_kernels(g, graph_costs(g), fuse_epilogue=False, fuse_elementwise=False)
    assert len(kernels) == 3


def test_fusion_lowers_predicted_latency():
    g = _mlp_block(4096, 1024, 4096)
    from planner.model.analyze import Analysis
    from planner.model.shapes import Binding

    a = Analysis(graph=g, binding=Binding({}, [], 4096))
    t = get_target("a10g")
    fused = predict(a, t)
    unfused = predict(a, dataclasses.replace(t, fuse_epilogue=False))
    assert fused.latency_s < unfused.latency_s
    assert fused.bytes_moved < unfused.bytes_moved


def test_liveness_peak_by_hand():
    # x(4KB) -> Relu -> a(4KB) -> Relu -> b(4KB) -> Relu -> y(4KB); x is dead after the first step.
    # At each step two 4 KB tensors are live (input and output): peak 8 KB.
    size = 1024
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    g = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])])
    assert peak_activation_bytes(g, graph_costs(g)) == 2 * size * 4
    # A skip connection keeps x alive to the end: x, b and y overlap at the last step.
    nodes[2] = helper.make_node("Add", ["b", "x"], ["y"])
    g = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])])
    assert peak_activation_bytes(g, graph_costs(g)) == 3 * size * 4


def test_reshape_aliases_its_input():
    size = 1024
    shape = numpy_helper.from_array(np.array([32, 32], np.int64), "shape")
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Reshape", ["a", "shape"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    g = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 32])], [shape])
    assert peak_activation_bytes(g, graph_costs(g)) == 2 * size * 4


# ---- the formula and the spec sheet's terms, worked by hand ------------------------------------------------


def test_roofline_formula_plain_serial_and_hidden_arithmetic():
    plain = roofline(Terms(compute_s=2.0, memory_s=5.0, fixed_s=1.0), 3.0, "fp32")
    assert (plain.seconds, plain.bound, plain.launch_dominated) == (6.0, MEMORY, False)  # max(2, 5) + 1
    # 2 s of the 5 s of memory run after the arithmetic: max(3, 5 - 2) + 2 + 1; arithmetic 3 > the serial 2
    serial = roofline(Terms(compute_s=3.0, memory_s=5.0, fixed_s=1.0, serial_s=2.0), 3.0, "fp32")
    assert (serial.seconds, serial.bound) == (6.0, COMPUTE)
    assert (serial.compute_s, serial.memory_s) == (3.0, 5.0)  # reported as measured, whatever the formula adds
    # a GEMV timed whole: its memory term holds its arithmetic, so 4 s of compute add nothing: 2 + 1
    hidden = roofline(Terms(compute_s=4.0, memory_s=2.0, fixed_s=1.0, arithmetic_hidden=True), 1.0, "fp32")
    assert (hidden.seconds, hidden.bound, hidden.compute_s) == (3.0, MEMORY, 4.0)
    tiny = roofline(Terms(compute_s=1e-9, memory_s=2e-9, fixed_s=1e-6), 0.5, "vector")
    assert tiny.launch_dominated and tiny.seconds == pytest.approx(1e-6 + 2e-9)


def test_spec_rates_are_peak_and_bandwidth_times_their_efficiencies():
    t = dataclasses.replace(get_target("a10g"), compute_efficiency=0.5, memory_efficiency=0.8,
                            mem_bw_bytes_per_s=1e11, launch_overhead_s=5e-6)
    flops, nbytes, weights = 2 * 10**9, 10**9, 4 * 10**8
    cost = OpCost(flops, nbytes - 10**8, 10**8, weights)  # 1e9 bytes in all, 4e8 of them weights
    work = Work(cost, OpClass.MATRIX, "gemm", "fp32", 1e12, flops / nbytes)
    terms = SPEC.terms(work, t)
    assert terms.compute_s == pytest.approx(flops / (1e12 * 0.5))  # 4 ms
    assert terms.memory_s == pytest.approx(nbytes / (1e11 * 0.8))  # 12.5 ms, weights or not
    assert (terms.fixed_s, terms.serial_s, terms.arithmetic_hidden) == (5e-6, 0.0, False)
    assert SPEC.layer_seconds(work, None, 10) is None  # only a calibration knows a recurrent layer whole


def test_a_few_rows_over_streamed_weights_take_the_measured_chains_ratio():
    """A host that timed few-row chains over weights in DRAM: fit_row_chains divides each by the one-row chain of
    the same weights (1.0 ms a node): 2 rows 1.1 ms, 8 rows 1.3 ms -> (1, 1.0), (2, 1.1), (8, 1.3); 4 rows
    measured 1.05 ms is lifted to 1.1 (more rows never take less time). An 8-row fp32 GEMM over 4 MB of weights
    at 20 GB/s (0.21 ms) then takes 1.3 times that in memory, a 5-row one 1.1 + (1.3 - 1.1) x 1 / 4 = 1.15
    times (linear between 4 and 8 rows); the arithmetic is not hidden: it is the roofline's other term."""
    from planner.calibration.fit import fit_row_chains
    from planner.calibration.rates import CalibratedRates
    from planner.calibration.samples import Sample

    k, w = 1024, 4 * 1024 * 1024

    def chain(rows, seconds, source):
        return Sample("gemm", "matrix", "fp32", 2 * rows * k * k, 8 * rows * k + w, seconds, f"r{rows}", source,
                      weight_bytes=w, working_set=24 * w)

    curve = fit_row_chains([chain(2, 1.1e-3, "rows"), chain(4, 1.05e-3, "rows"), chain(8, 1.3e-3, "rows")],
                           [chain(1, 1.0e-3, "weights")])
    assert [r for r, _ in curve] == [1, 2, 4, 8]
    assert [f for _, f in curve] == pytest.approx([1.0, 1.1, 1.1, 1.3])
    rates = CalibratedRates(bandwidth_curve=((1.0, 1e15),), weight_bandwidth_curve=((1.0, 20e9),),
                            weight_rows_curve=curve, rate_curves={"gemm.fp32": ((0.1, 1e12), (1e3, 1e12))})
    target = get_target("a10g")
    for rows, factor in ((8, 1.3), (5, 1.15)):
        cost = OpCost(2 * rows * k * k, w, 0, w)  # activations left out: the weights are the bytes
        t = rates.terms(Work(cost, OpClass.MATRIX, "gemm", "fp32", 1e12, cost.flops / w), target)
        assert t.memory_s == pytest.approx(w / 20e9 * factor)
        assert t.compute_s == pytest.approx(cost.flops / 1e12) and not t.arithmetic_hidden


def test_the_full_suite_times_few_row_chains_over_weights_in_dram():
    """ROW_CHAINS: 24 layers of 1024 x 1024 fp32 (96 MiB, past any L3 here) at 1, 2, 4, 8 and 16 rows; the one-row
    chain is a GEMV chain (source "weights"), the others "rows" samples of 2rk² FLOPs."""
    from planner.calibration.benches import weight_chain
    from planner.calibration.suite import weight_chains
    from planner.calibration.timing import Overheads, weight_chain_sample

    chains = weight_chains(quick=False)
    assert [(k, n, r) for k, n, t, r, _ in chains if n == 24] == [(1024, 24, r) for r in (1, 2, 4, 8, 16)]
    assert all(r == 1 for _, _, _, r, _ in weight_chains(quick=True))
    bench = weight_chain(1024, 24, rows=8)
    assert onnx.load_from_string(bench.model).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    s = weight_chain_sample(bench, 1024, 24, False, 0.024, Overheads(0.0, 0.0, 0.0, 0.0), rows=8)
    assert (s.source, s.flops, s.weight_bytes, s.working_set) == ("rows", 2 * 8 * 1024**2, 4 * 1024**2,
                                                                  24 * 4 * 1024**2)


def test_one_row_int8_gemms_take_the_weight_speed_their_own_chains_measured():
    """One-row int8 GEMMs read their weights far slower out of cache than float GEMVs (12-15 GB/s against 22-35
    on a Zen 4 EPYC): chains of DynamicQuantizeMatMul (INT8_WEIGHT_CHAINS) give them a weight-reading curve of
    their own, the arithmetic in it, and a fixed cost from two node sizes at one working set."""
    from planner.calibration.benches import weight_chain
    from planner.calibration.fit import fit
    from planner.calibration.rates import INT8_GEMV_FIXED, apply
    from planner.calibration.samples import Measurements, Sample
    from planner.calibration.suite import weight_chains
    from planner.calibration.timing import Overheads, weight_chain_sample
    from planner.targets.host import detect_host

    assert {(k, n) for k, n, _, _, q in weight_chains(quick=False) if q} >= {(1024, 64), (512, 16), (1024, 4)}
    bench = weight_chain(1024, 4, int8=True)
    assert {n.op_type for n in onnx.load_from_string(bench.model).graph.node} == {"DynamicQuantizeMatMul"}
    s = weight_chain_sample(bench, 1024, 4, False, 4 * 20e-6, Overheads(0.0, 0.0, 0.0, 0.0), int8=True)
    assert (s.family, s.peak_key, s.source, s.flops, s.bytes, s.weight_bytes, s.working_set) == (
        "gemm:dq", "int8", "weights", 2 * 1024**2 + 4 * 1024, 8 * 1024 + 1024**2, 1024**2, 4 * 1024**2)

    def chain(k: int, ws: int, seconds: float) -> Sample:
        return Sample("gemm:dq", "matrix", "int8", 2 * k * k, k * k, seconds, f"int8 chain {k} {ws}", "weights",
                      weight_bytes=k * k, working_set=ws)

    mib = 1 << 20
    # at 4 MiB in play: 0.25 MiB in 5 us and 1 MiB in 17 us, so 1 us fixed and 1 MiB / 16 us = 65.5 GB/s;
    # at 64 MiB one node of 1 MiB in 81 us: 1 MiB / 80 us = 13.1 GB/s
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         Sample("Add", "vector", "vector", 10**5, 12 * 10**5, 12e-6, "Add stream 1.2 MB"),
                         chain(512, 4 * mib, 5e-6), chain(1024, 4 * mib, 17e-6), chain(1024, 64 * mib, 81e-6)])
    cal = fit(m)
    assert cal.kernel_fixed_s[INT8_GEMV_FIXED] == pytest.approx(1e-6)
    assert cal.int8_weight_bandwidth_curve == ((4 * mib, pytest.approx(mib / 16e-6)),
                                               (64 * mib, pytest.approx(mib / 80e-6)))
    assert not cal.weight_bandwidth_curve  # the float GEMVs' curve is none of theirs
    t = apply(detect_host(), cal)
    k = 1024
    gemv = OpCost(flops=2 * k * k, bytes_read=4 * k + k * k, bytes_written=4 * k, weight_bytes=k * k)
    fixed = t.launch_overhead_s + 1e-6  # the launch and the chains' own (no chain of tiny matrix nodes here)
    own = 8 * k / 1e11  # A and Y at the streaming bandwidth, 1.2 MB / 12 us
    for in_play, speed in ((4 * mib, mib / 16e-6), (64 * mib, mib / 80e-6)):
        got = kernel_time(gemv, OpClass.MATRIX, "int8", t, "gemm:dq", resident_bytes=in_play).seconds
        assert got == pytest.approx(fixed + own + mib / speed)


def test_several_row_int8_gemms_read_their_weights_at_their_own_chains_speed():
    """Out of L2 onnxruntime's u8 kernel reads the packed weights of a several-row GEMM at 10-18 GB/s (Zen 4 EPYC),
    in L3 as in DRAM; chains of 32-row DynamicQuantizeMatMul (INT8_ROW_CHAINS) measure it against the same
    chain with its weights in cache, and such a GEMM in a model pays its weight read at that speed beside its
    arithmetic (fit.fit_row_weight_chains)."""
    from planner.calibration.benches import weight_chain
    from planner.calibration.fit import fit
    from planner.calibration.rates import apply
    from planner.calibration.samples import INT8_ROWS, Measurements, Sample
    from planner.calibration.suite import weight_chains
    from planner.calibration.timing import Overheads, weight_chain_sample
    from planner.targets.host import detect_host

    assert {(k, n, r) for k, n, _, r, q in weight_chains(quick=False) if q and r > 1} >= {(512, 1, 32), (512, 64, 32)}
    k, rows, mib = 512, 32, 1 << 20
    bench = weight_chain(k, 64, rows=rows, int8=True)
    s = weight_chain_sample(bench, k, 64, False, 64 * 50e-6, Overheads(0.0, 0.0, 0.0, 0.0), rows=rows, int8=True)
    assert (s.source, s.flops, s.bytes, s.weight_bytes, s.working_set) == (
        INT8_ROWS, 2 * rows * k * k + 4 * rows * k, 8 * rows * k + k * k, k * k, 64 * k * k)

    def chain(length: int, seconds: float) -> Sample:
        return Sample("gemm:dq", "matrix", "int8", 2 * rows * k * k, k * k, seconds, f"rows {length}", INT8_ROWS,
                      weight_bytes=k * k, working_set=length * k * k)

    def gemv(ws: int, seconds: float) -> Sample:  # fp32 GEMV chains: the in-cache weight speed, 64 GB/s
        return Sample("gemm", "matrix", "fp32", 2 * 1024 * 1024, 4 * 1024 * 1024, seconds, f"gemv {ws}", "weights",
                      weight_bytes=4 * 1024 * 1024, working_set=ws)

    w = k * k  # 256 KiB a node
    anchor_read = w / 64e9  # 4.1 us at the in-cache weight speed
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         Sample("Add", "vector", "vector", 10**5, 12 * 10**5, 12e-6, "Add stream 1.2 MB"),
                         gemv(4 * mib, 4 * mib / 64e9), gemv(64 * mib, 4 * mib / 64e9),
                         chain(1, 40e-6), chain(64, 56e-6)])  # 16 us more a node at 16 MiB in play
    cal = fit(m)
    out_of_l2 = w / (anchor_read + 16e-6)  # 12.9 GB/s
    assert cal.int8_rows_weight_curve == ((w, pytest.approx(64e9)), (16 * mib, pytest.approx(out_of_l2)))
    t = apply(detect_host(), cal)
    gemm = OpCost(flops=2 * rows * k * k, bytes_read=4 * rows * k + w, bytes_written=4 * rows * k, weight_bytes=w)
    in_cache = kernel_time(gemm, OpClass.MATRIX, "int8", t, "gemm:dq", resident_bytes=w).seconds
    in_play = kernel_time(gemm, OpClass.MATRIX, "int8", t, "gemm:dq", resident_bytes=16 * mib).seconds
    # its own bytes (w + 8·rows·k = 384 KiB) are past the anchor: read at the log-log interpolation there
    import math
    f = math.log((w + 8 * rows * k) / w) / math.log(16 * mib / w)
    own_speed = math.exp(math.log(64e9) + f * (math.log(out_of_l2) - math.log(64e9)))
    assert in_play - in_cache == pytest.approx(w / out_of_l2 - w / own_speed)
    assert w / out_of_l2 - w / 64e9 == pytest.approx(16e-6)  # what the chains took beyond their anchor
    fp32_like = dataclasses.replace(t, rates=dataclasses.replace(t.rates, int8_rows_weight_curve=()))
    at_gemv_speed = kernel_time(gemm, OpClass.MATRIX, "int8", fp32_like, "gemm:dq", resident_bytes=16 * mib).seconds
    # the float GEMVs read 16 MiB as fast as 256 KiB here: what the int8 chains add is their time beyond the anchor
    assert in_play - at_gemv_speed == pytest.approx(16e-6)


def test_several_row_float_gemms_read_their_weights_at_their_own_chains_speed():
    """MLAS reads a float GEMM's prepacked weights between bursts of FMAs, and out of the caches far slower than a
    GEMV chain streams them (Zen 4 EPYC, 1 thread: 32 x 512 x 512 150 us alone, 189 us with 48 MiB of such
    weights in play, where GEMV chains read 48 MiB at 30-60 GB/s). Chains of 32-row MatMuls (FP32_ROW_CHAINS)
    time it against their anchor, and such a GEMM in a model pays its weight read at that speed beside its
    arithmetic; an int8 GEMM and a convolution do not take the float chains' speed."""
    from planner.calibration.benches import weight_chain
    from planner.calibration.fit import fit
    from planner.calibration.rates import apply
    from planner.calibration.samples import FEW_ROWS, FP32_ROWS, Measurements, Sample
    from planner.calibration.suite import FP32_ROW_CHAINS, ROW_CHAINS, weight_chains
    from planner.calibration.timing import Overheads, weight_chain_sample
    from planner.targets.host import detect_host

    assert FEW_ROWS == max(r for _, _, r in ROW_CHAINS)  # a decoder step's chains stay "rows"
    assert {(k, n, r) for k, n, _, r, q in weight_chains(quick=False) if not q and r > FEW_ROWS} == set(FP32_ROW_CHAINS)
    k, rows, mib = 512, 32, 1 << 20
    w = 4 * k * k  # 1 MiB a node
    s = weight_chain_sample(weight_chain(k, 4, rows=rows), k, 4, False, 4 * 150e-6, Overheads(0.0, 0.0, 0.0, 0.0),
                            rows=rows)
    assert (s.source, s.family, s.flops, s.bytes, s.weight_bytes, s.working_set, s.seconds) == (
        FP32_ROWS, "gemm", 2 * rows * k * k, 8 * rows * k + w, w, 4 * w, pytest.approx(150e-6))

    def chain(length: int, seconds: float) -> Sample:
        return Sample("gemm", "matrix", "fp32", 2 * rows * k * k, 8 * rows * k + w, seconds, f"rows {length}",
                      FP32_ROWS, weight_bytes=w, working_set=length * w)

    def gemv(ws: int) -> Sample:  # fp32 GEMV chains reading 4 MiB nodes at 64 GB/s wherever they are
        return Sample("gemm", "matrix", "fp32", 2 * 1024 * 1024, 4 * 1024 * 1024, 4 * mib / 64e9, f"gemv {ws}",
                      "weights", weight_bytes=4 * mib, working_set=ws)

    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         Sample("Add", "vector", "vector", 10**5, 12 * 10**5, 12e-6, "Add stream 1.2 MB"),
                         gemv(4 * mib), gemv(64 * mib),
                         chain(1, 150e-6), chain(64, 189e-6)])  # 39 us more a node with 64 MiB in play
    cal = fit(m)
    anchor_read = w / 64e9  # 16.4 us: the anchor's weights at the in-cache weight speed
    out_of_cache = w / (anchor_read + 39e-6)  # 18.9 GB/s
    assert cal.fp32_rows_weight_curve == ((w, pytest.approx(64e9)), (64 * mib, pytest.approx(out_of_cache)))
    assert cal.int8_rows_weight_curve == ()
    t = apply(detect_host(), cal)
    gemv_speed = dataclasses.replace(t, rates=dataclasses.replace(t.rates, fp32_rows_weight_curve=()))
    gemm = OpCost(flops=2 * rows * k * k, bytes_read=4 * rows * k + w, bytes_written=4 * rows * k, weight_bytes=w)
    for family in ("gemm", "gemm_bias"):
        own = kernel_time(gemm, OpClass.MATRIX, "float32", t, family, resident_bytes=64 * mib).seconds
        as_gemv = kernel_time(gemm, OpClass.MATRIX, "float32", gemv_speed, family, resident_bytes=64 * mib).seconds
        assert own - as_gemv == pytest.approx(39e-6)  # what the chains took beyond their anchor
    for dtype, family in (("int8", "gemm:dq"), ("float32", "nchwc.conv")):  # not timed by these chains
        a = kernel_time(gemm, OpClass.MATRIX, dtype, t, family, resident_bytes=64 * mib).seconds
        b = kernel_time(gemm, OpClass.MATRIX, dtype, gemv_speed, family, resident_bytes=64 * mib).seconds
        assert a == b


def test_a_weight_dequantized_on_every_run_reads_it_from_where_the_weights_in_play_leave_it():
    """A QDQ decoder's weight DequantizeLinear: its bench (1 MiB of int8 in, 4 MiB of floats out) kept the weight
    in cache; in a model with 64 MiB of weights in play it comes at the weight curve's 25 GB/s instead of 80. By
    hand: 1 MiB / 25 GB/s - 1 MiB / 80 GB/s = 41.9 - 13.1 = 28.8 us beyond the bench's 5 MiB / 40 GB/s = 131 us;
    an activation's DequantizeLinear and a weight's Add keep their bench time."""
    from planner.calibration.rates import CalibratedRates
    from planner.costs import OpClass, OpCost
    from planner.targets.catalog import bundled_targets
    from planner.targets.rates import Work

    t = bundled_targets()["a10g"]
    mib = 1 << 20
    rates = CalibratedRates(bandwidth_curve=((1.0, 80e9), (1e9, 80e9)),
                            weight_bandwidth_curve=((8 * mib, 80e9), (64 * mib, 25e9)),
                            throughput_curves={"DequantizeLinear": ((1.0, 40e9), (1e9, 40e9)),
                                               "Add": ((1.0, 40e9), (1e9, 40e9))})
    weight = OpCost(flops=2 * mib, bytes_read=mib, bytes_written=4 * mib, weight_bytes=mib)
    activation = OpCost(flops=2 * mib, bytes_read=mib, bytes_written=4 * mib)

    def seconds(cost: OpCost, family: str = "DequantizeLinear") -> float:
        terms = rates.terms(Work(cost, OpClass.VECTOR, family, "vector", 1e12, 0.4, resident_bytes=64 * mib), t)
        return max(terms.compute_s, terms.memory_s - terms.serial_s) + terms.serial_s

    bench = 5 * mib / 40e9
    assert seconds(weight) == pytest.approx(bench + mib / 25e9 - mib / 80e9)
    assert seconds(activation) == pytest.approx(bench)
    assert seconds(weight, "Add") == pytest.approx(bench)


def test_the_float_row_chains_keep_the_slower_shape_where_two_meet_at_one_working_set():
    """On a Xeon with AMX (2 MiB L2), 32-row GEMMs hide a weight read from L3 behind their arithmetic where 128-row
    ones do not (benchmarks/fp32_weight_rows.py: 512 x 512 at 16 MiB in play, +10 us a node at 32 rows, +47 at
    128): FP32_ROW_CHAINS time both, and the curve keeps the slower speed, the one an encoder's GEMMs pay."""
    from planner.calibration.fit import fit
    from planner.calibration.samples import FP32_ROWS, Measurements, Sample
    from planner.calibration.suite import FP32_ROW_CHAINS

    assert {r for _, _, r in FP32_ROW_CHAINS} == {32, 128}
    k, mib = 512, 1 << 20
    w = 4 * k * k  # 1 MiB a node

    def chain(rows: int, length: int, seconds: float) -> Sample:
        return Sample("gemm", "matrix", "fp32", 2 * rows * k * k, 8 * rows * k + w, seconds, f"rows {rows} x{length}",
                      FP32_ROWS, weight_bytes=w, working_set=length * w)

    gemv = [Sample("gemm", "matrix", "fp32", 2 * 1024 * 1024, 4 * mib, 4 * mib / 64e9, f"gemv {ws}", "weights",
                   weight_bytes=4 * mib, working_set=ws) for ws in (4 * mib, 64 * mib)]  # 64 GB/s everywhere
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         Sample("Add", "vector", "vector", 10**5, 12 * 10**5, 12e-6, "Add stream 1.2 MB"), *gemv,
                         chain(32, 1, 107e-6), chain(32, 16, 117e-6), chain(128, 1, 397e-6), chain(128, 16, 444e-6)])
    anchor_read = w / 64e9  # 16.4 us: the weight read the rate fit took out of the anchors
    slower = w / (anchor_read + 47e-6)  # 16.5 GB/s, where the 32-row chains gave w / (16.4 + 10 us) = 39.7
    assert fit(m).fp32_rows_weight_curve == ((w, pytest.approx(64e9)), (16 * w, pytest.approx(slower)))
