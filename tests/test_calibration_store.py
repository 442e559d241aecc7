"""Calibration files: fitted from samples, round-tripped through JSON, applied to `host`; numbers by hand."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from planner.calibration.fit import fit
from planner.calibration.host import calibrated_host, get_target
from planner.calibration.rates import apply
from planner.calibration.samples import Measurements, Sample
from planner.calibration.store import Calibration, CalibrationFileError, entry_key, find, read_file, save
from planner.cli import main
from planner.costs import OpClass, OpCost
from planner.predict.roofline import kernel_time
from planner.targets.host import detect_host, host_fingerprint

GB = 1e9


def _cal(bw: float = 20 * GB, threads: int = 1, **kw) -> Calibration:
    base = dict(
        fingerprint=host_fingerprint(), threads=threads, launch_overhead_s=0.5e-6, run_overhead_s=8e-6,
        run_overhead_per_io_s=1e-6, profiler_bias_s=3e-6,
        bandwidth_curve=((1e3, bw), (1e9, bw)),
        weight_bandwidth_curve=((1e6, 4 * bw), (1e8, bw)),
        rate_curves={"gemm.fp32": ((1.0, 10 * GB), (100.0, 100 * GB))},
        throughput_curves={"Softmax": ((1e5, 5 * GB),)},
        kernel_fixed_s={"gemm": 2e-6, "vector": 0.25e-6},
        workspace_bytes=12e6, created="2026-01-01T00:00:00+00:00", quick=True,
        weight_residency={"gemm": 1.5, "conv": 3.0},
        noise={"benches": 224.0, "unconfirmed": 4.0, "median_spread": 0.019, "p90_spread": 0.059},
        run_s={"Pad": 13e-9},
    )
    base.update(kw)
    return Calibration(**base)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx-planner" / "calibration.json"


def test_round_trip_keeps_every_number(tmp_path):
    cal = _cal()
    path = save(cal, tmp_path / "c.json")
    back = read_file(path)[entry_key(cal.fingerprint, 1)]
    assert back.to_dict() == cal.to_dict()
    # a second thread count lands beside the first, not over it
    save(_cal(threads=2, launch_overhead_s=0.9e-6), path)
    entries = read_file(path)
    assert sorted(e.threads for e in entries.values()) == [1, 2]
    assert entries[entry_key(cal.fingerprint, 2)].launch_overhead_s == 0.9e-6


def test_doubling_bandwidth_halves_a_memory_bound_kernel():
    n = 1 << 22  # Add of two 16 MiB tensors: 1 FLOP and 12 bytes per element
    add = OpCost(flops=n, bytes_read=8 * n, bytes_written=4 * n)
    slow = apply(detect_host(), _cal(bw=20 * GB))
    fast = apply(detect_host(), _cal(bw=40 * GB))
    t_slow = kernel_time(add, OpClass.VECTOR, "float32", slow, "Add")
    t_fast = kernel_time(add, OpClass.VECTOR, "float32", fast, "Add")
    fixed = 0.5e-6 + 0.25e-6  # launch + the vector class's fixed cost ("Add" has none of its own)
    assert t_slow.bound == "memory"
    assert t_slow.seconds == pytest.approx(fixed + 12 * n / (20 * GB))
    assert t_fast.seconds - fixed == pytest.approx((t_slow.seconds - fixed) / 2)


def test_gemm_rate_curve_times_a_compute_bound_gemm():
    m = k = n = 256
    gemm = OpCost(flops=2 * m * k * n, bytes_read=4 * (m * k + k * n), bytes_written=4 * m * n,
                  weight_bytes=4 * k * n)
    t = apply(detect_host(), _cal())
    intensity = gemm.flops / gemm.bytes  # 2·256³ / (4·3·256²) = 42.67 FLOPs per byte
    assert intensity == pytest.approx(128 / 3)
    # log-log interpolation between (1, 10 GFLOP/s) and (100, 100 GFLOP/s): rate = 10 GFLOP/s · intensity^0.5
    rate = 10 * GB * intensity ** 0.5
    kt = kernel_time(gemm, OpClass.MATRIX, "float32", t, "gemm")
    assert kt.bound == "compute"
    # plus its 256 KiB of weights, read between the FMAs at the weight curve's 0.79 MB point (80 GB/s)
    assert kt.seconds == pytest.approx(0.5e-6 + 2e-6 + gemm.flops / rate + 4 * k * n / (80 * GB))
    # in a model with 100 MB of weights they come from where 100 MB live: 20 GB/s
    big = kernel_time(gemm, OpClass.MATRIX, "float32", t, "gemm", resident_bytes=1e8)
    assert big.seconds == pytest.approx(0.5e-6 + 2e-6 + gemm.flops / rate + 4 * k * n / (20 * GB))
    # an uncalibrated target keeps the plain roofline: the larger term, not the sum
    plain = kernel_time(gemm, OpClass.MATRIX, "float32", detect_host(), "gemm")
    assert plain.seconds < plain.compute_s + plain.memory_s


def test_weights_stream_at_the_bandwidth_of_all_weights_in_play():
    w = 1_000_000  # a GEMV's 1 MB of weights, the rest negligible
    gemv = OpCost(flops=w // 2, bytes_read=w, bytes_written=0, weight_bytes=w)
    t = apply(detect_host(), _cal(bw=20 * GB))
    alone = kernel_time(gemv, OpClass.MATRIX, "float32", t, "gemm", resident_bytes=0)
    in_big_model = kernel_time(gemv, OpClass.MATRIX, "float32", t, "gemm", resident_bytes=1e8)
    assert alone.memory_s == pytest.approx(w / (80 * GB))  # weight curve at 1 MB: 4 x 20 GB/s
    assert in_big_model.memory_s == pytest.approx(w / (20 * GB))  # at 100 MB: 20 GB/s


def test_measured_vector_family_uses_its_own_speed():
    x = OpCost(flops=5 * 25_000, bytes_read=100_000, bytes_written=100_000)  # Softmax over 25k floats
    t = apply(detect_host(), _cal())
    kt = kernel_time(x, OpClass.VECTOR, "float32", t, "Softmax")
    assert kt.compute_s == pytest.approx(200_000 / (5 * GB))
    assert kt.seconds == pytest.approx(0.5e-6 + 0.25e-6 + 200_000 / (5 * GB))


def test_rnn_steps_read_their_weights_every_step():
    steps, w = 10, 400_000
    cost = OpCost(flops=steps * 200_000, bytes_read=w + steps * 1000, bytes_written=steps * 1000, weight_bytes=w)
    t = apply(detect_host(), _cal(rate_curves={"lstm.fp32": ((1.0, 50 * GB),)}, kernel_fixed_s={"lstm": 1e-6}))
    # one step: 200k FLOPs at 50 GFLOP/s = 4 µs; its 400 kB of weights at 80 GB/s (the weight curve below 1 MB)
    # plus 2 kB of activations at 20 GB/s = 5.1 µs: memory-bound; plus the 1 µs fixed cost every step
    step_s = 1e-6 + 400_000 / (80 * GB) + 2000 / (20 * GB)
    kt = kernel_time(cost, OpClass.MATRIX, "float32", t, "lstm", steps=steps)
    assert kt.seconds == pytest.approx(0.5e-6 + steps * step_s)  # one launch for all steps
    assert kt.bound == "memory"


def test_uncalibrated_targets_keep_the_plain_roofline():
    t = get_target("a10g")
    cost = OpCost(flops=10**9, bytes_read=10**8, bytes_written=10**7, weight_bytes=10**7)
    kt = kernel_time(cost, OpClass.MATRIX, "float16", t, "gemm", resident_bytes=10**10)
    assert kt.compute_s == pytest.approx(1e9 / (t.matrix_flops_per_s["fp16"] * t.compute_efficiency))
    assert kt.memory_s == pytest.approx(1.1e8 / (t.mem_bw_bytes_per_s * t.memory_efficiency))


def test_host_applies_this_machines_calibration_for_its_thread_count(cache):
    assert calibrated_host().calibration is None
    nominal = get_target("host")
    save(_cal())  # default path: the cache folder
    assert cache.exists()
    host = get_target("host")
    assert host.launch_overhead_s == 0.5e-6 and host.run_overhead_s == 8e-6
    assert host.workspace_bytes == 12e6 and host.dispatch_views
    assert nominal.launch_overhead_s != host.launch_overhead_s
    assert find(2).calibration is None and "threads" in find(2).why or "thread(s)" in find(2).why
    other = _cal(fingerprint="some other CPU / 64 logical CPUs")
    doc = json.loads(cache.read_text())
    doc["calibrations"] = {other.key: other.to_dict()}
    cache.write_text(json.dumps(doc))
    assert calibrated_host().calibration is None  # another machine's numbers never apply here


def test_bad_calibration_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "calibrations": {"x": {"threads": 1}}}')
    with pytest.raises(CalibrationFileError):
        read_file(bad)
    bad.write_text("[]")
    with pytest.raises(CalibrationFileError):
        read_file(bad)
    curve = _cal().to_dict()
    curve["bandwidth_curve"] = [[2, 1], [1, 1]]  # not ascending
    bad.write_text(json.dumps({"schema_version": 1, "calibrations": {"k": curve}}))
    with pytest.raises(CalibrationFileError, match="ascending"):
        read_file(bad)
    model = tmp_path / "m.onnx"
    from tests.test_validate import tiny_model

    tiny_model(model)
    assert main(["predict", str(model), "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calibration" in err


def _s(family, op_class, peak, flops, nbytes, seconds, label, source="profile", steps=1):
    return Sample(family, op_class, peak, flops, nbytes, seconds, label, source, steps)


def _w(weights: int, working_set: int, seconds: float) -> Sample:
    """One node of a GEMV chain: weights w bytes, w/2 FLOPs, in a chain holding `working_set` bytes of weights."""
    return Sample("gemm", "matrix", "fp32", weights // 2, weights + 64, seconds, f"MatMul weights chain {weights}",
                  "weights", weight_bytes=weights, working_set=working_set)


def test_fit_by_hand():
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         _s("Add", "vector", "vector", 1000, 12_000, 1e-6, "Add stream 12 KiB"),
                         _s("Add", "vector", "vector", 10**6, 12 * 10**6, 2e-3, "Add stream 12 MiB"),
                         _s("gemm", "matrix", "fp32", 10**5, 10**6, 1e-5, "MatMul 1x1000x250"),
                         # GEMV chains: two node sizes in 1 MB of weights, one size in 100 MB
                         _w(10_000, 10**6, 0.2e-6), _w(100_000, 10**6 + 10**5, 1.1e-6), _w(10**6, 10**8, 20.1e-6),
                         _s("gemm", "matrix", "fp32", 10**6, 10**5, 1.2e-5, "MatMul 1"),
                         _s("gemm", "matrix", "fp32", 10**6, 10**4, 5.2e-5, "MatMul 2"),  # slower, more intense
                         _s("gemm", "matrix", "fp32", 8000, 3000, 2e-6, "tiny gemm", "chain"),
                         _s("Softmax", "vector", "vector", 5000, 8000, 3e-6, "tiny Softmax", "chain"),
                         _s("Softmax", "vector", "vector", 5 * 10**5, 8 * 10**5, 1.01e-4, "Softmax big"),
                     ])
    cal = fit(m)
    # streaming, bytes / time: 12 GB/s at 12 kB, 6 GB/s at 12 MB (a falling curve stays as it is)
    assert cal.bandwidth_curve == ((12_000, 12e9), (12 * 10**6, 6e9))
    # GEMV fixed cost: the 1 MB pair's intercept, 0.2 µs - 10 kB at the slope's 90 kB / 0.9 µs = 1e11 B/s
    assert cal.kernel_fixed_s["weight_stream"] == pytest.approx(0.1e-6)
    # each chain's weights / (time - 0.1 µs): 1e11 B/s at 1 MB (both nodes), 1e6 / 20 µs = 5e10 B/s at 100 MB
    assert cal.weight_bandwidth_curve == ((10**6, pytest.approx(1e11)), (10**8, pytest.approx(5e10)))
    # gemm fixed cost: the tiny chain's 2 µs less what the profiled points say 8000 FLOPs take at intensity
    # 8000 / 3000; between (0.1, 1e10) and (10, 1e6 / 1.2e-5) log-log
    lo, hi = (0.1, 1e5 / 1e-5), (10.0, 1e6 / 1.2e-5)
    f = (math.log(8000 / 3000) - math.log(lo[0])) / (math.log(hi[0]) - math.log(lo[0]))
    rate = math.exp(math.log(lo[1]) + f * (math.log(hi[1]) - math.log(lo[1])))
    fixed = 2e-6 - 8000 / rate
    assert cal.kernel_fixed_s["gemm"] == pytest.approx(fixed)
    rates = dict(cal.rate_curves["gemm.fp32"])
    assert rates[0.1] == pytest.approx(1e5 / (1e-5 - fixed))
    # non-decreasing: the slower, more intense sample pools with the one before it (least squares: their mean)
    assert rates[100.0] == rates[10.0] == pytest.approx((1e6 / (1.2e-5 - fixed) + 1e6 / (5.2e-5 - fixed)) / 2)
    # Softmax: fixed = 3 µs - 8000 bytes at the profiled 8e5 / 1.01e-4 bytes/s; the curve net of it
    soft_fixed = 3e-6 - 8000 / (8e5 / 1.01e-4)
    assert cal.kernel_fixed_s["Softmax"] == pytest.approx(soft_fixed)
    assert cal.throughput_curves["Softmax"][0][1] == pytest.approx(8e5 / (1.01e-4 - soft_fixed))
    assert cal.kernel_fixed_s["vector"] == cal.kernel_fixed_s["Softmax"]  # the class median of one


def test_a_rate_curve_pools_violators_at_their_median_so_one_lucky_point_lifts_nothing():
    """Pool-adjacent-violators by hand: 944 then 429 pool at their median (686.5); 437 joins (median 437); 460 is
    above and stays. Pooled by the mean, 944 would have lifted all of them to 567.5."""
    from planner.calibration.fit import _isotonic

    curve = ((1.0, 100.0), (2.0, 944.0), (3.0, 429.0), (4.0, 437.0), (5.0, 460.0))
    assert _isotonic(curve) == ((1.0, 100.0), (2.0, 437.0), (3.0, 437.0), (4.0, 437.0), (5.0, 460.0))
    assert _isotonic(((1.0, 3.0), (2.0, 1.0))) == ((1.0, 2.0), (2.0, 2.0))  # two pool at their middle
    assert _isotonic(((1.0, 1.0), (2.0, 2.0))) == ((1.0, 1.0), (2.0, 2.0))  # rising already: unchanged


def test_a_bytes_timed_matrix_family_fits_and_times_by_its_bytes():
    """A 1x1 depthwise convolution (planner.calibration.rates.BYTES_TIMED) does a multiply-add per element it reads:
    its samples make a bytes/s curve over working set, not a FLOP rate, and a kernel of it takes its bytes at
    that curve (when slower than plain streaming), whatever its FLOPs."""
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         _s("Add", "vector", "vector", 10**5, 12 * 10**5, 6e-6, "Add stream 1.2 MB"),  # 2e11 B/s
                         _s("gemm", "matrix", "fp32", 10**6, 10**5, 1.2e-5, "MatMul 1"),
                         _s("nchwc.conv_dw_1x1", "matrix", "fp32", 10**5, 4 * 10**5, 4e-6, "Conv dw 1x1 small"),
                         _s("nchwc.conv_dw_1x1", "matrix", "fp32", 10**6, 4 * 10**6, 8e-5, "Conv dw 1x1 big"),
                     ])
    cal = fit(m)
    assert not any(k.startswith("nchwc.conv_dw_1x1") for k in cal.rate_curves)
    assert not any(cal.kernel_fixed_s.values())  # no chain measured a fixed cost: none to take off the samples
    # bytes / seconds, falling with working set: 1e11 B/s at 400 kB, 5e10 B/s at 4 MB
    assert cal.throughput_curves["nchwc.conv_dw_1x1"] == ((4 * 10**5, pytest.approx(1e11)),
                                                          (4 * 10**6, pytest.approx(5e10)))
    t = apply(detect_host(), cal)
    assert t.rates.bytes_per_s(2e6, t) == pytest.approx(2e11)
    # 2 MB, log-log between the two points: 1e11 * 0.5^(log 5 / log 10) B/s
    own = 1e11 * 0.5 ** (math.log(5) / math.log(10))
    cost = OpCost(flops=5 * 10**5, bytes_read=10**6, bytes_written=10**6, weight_bytes=0)
    kt = kernel_time(cost, OpClass.MATRIX, "float32", t, family="nchwc.conv_dw_1x1")
    assert kt.seconds == pytest.approx(2e6 / own + t.launch_overhead_s)
    # the same kernel as a 3x3 depthwise one is a FLOP rate (the gemm curve, the matrix fallback: 6 µs) or
    # plain streaming (10 µs), whichever is slower
    dw = kernel_time(cost, OpClass.MATRIX, "float32", t, family="nchwc.conv_dw")
    assert dw.seconds == pytest.approx(max(5e5 / (1e6 / 1.2e-5), 2e6 / 2e11) + t.launch_overhead_s)


def test_a_depthwise_conv_in_dram_is_no_faster_than_its_own_bytes():
    """planner.calibration.rates.DRAM_TIMED: the blocked depthwise family's benches in DRAM are points of a bytes/s
    curve over working set, not of its FLOP rate; from the smallest of them up, that curve's time is a floor under
    the memory term."""
    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         _s("Add", "vector", "vector", 10**5, 12 * 10**5, 6e-6, "Add stream 1.2 MB"),  # 2e11 B/s
                         _s("nchwc.conv_dw", "matrix", "fp32", 2 * 10**6, 4 * 10**5, 1e-5, "Conv depthwise 64"),
                         _s("nchwc.conv_dw", "matrix", "fp32", 2 * 10**7, 4 * 10**6, 1e-4,
                            "Conv depthwise in DRAM 2x144"),
                         _s("nchwc.conv_dw", "matrix", "fp32", 2 * 10**8, 4 * 10**7, 4e-3,
                            "Conv depthwise in DRAM 8x144"),
                     ])
    cal = fit(m)
    # intensity 5 at 2e6 / 1e-5 = 2e11 FLOP/s; the benches in DRAM are no points of it
    assert cal.rate_curves["nchwc.conv_dw.fp32"] == ((5.0, pytest.approx(2e11)),)
    # bytes/s: 4e6 / 1e-4 = 4e10 at 4 MB, 4e7 / 4e-3 = 1e10 at 40 MB
    assert cal.throughput_curves["nchwc.conv_dw"] == ((4 * 10**6, pytest.approx(4e10)),
                                                      (4 * 10**7, pytest.approx(1e10)))
    t = apply(detect_host(), cal)

    def seconds(flops: float, nbytes: float) -> float:
        cost = OpCost(flops=flops, bytes_read=nbytes / 2, bytes_written=nbytes / 2, weight_bytes=0)
        return kernel_time(cost, OpClass.MATRIX, "float32", t, family="nchwc.conv_dw").seconds - t.launch_overhead_s

    # 40 MB: arithmetic 2e8 / 2e11 = 1 ms, plain streaming 40 MB / 2e11 = 0.2 ms, its own bytes/s 4 ms
    assert seconds(2e8, 4e7) == pytest.approx(4e-3)
    # halfway between the two points in log-log (sqrt(4 MB x 40 MB) = 12.6 MB): sqrt(4e10 x 1e10) = 2e10 B/s,
    # 0.63 ms over 0.32 ms of arithmetic
    mid = math.sqrt(4e6 * 4e7)
    assert seconds(5 * mid, mid) == pytest.approx(mid / 2e10)
    # 2 MB, below the smallest working set measured in DRAM: arithmetic (50 us) or plain streaming (10 us)
    assert seconds(1e7, 2e6) == pytest.approx(1e7 / 2e11)


def test_a_pad_costs_its_bytes_at_the_streaming_bandwidth_and_a_fixed_time_per_run():
    """families.RUN_TIMED: Pad benches of like bytes and different rows fit seconds a run beyond their bytes at
    the streaming bandwidth (fit.fit_run_costs), and a Pad in a model pays both."""
    bw, per_run = 2e10, 13e-9
    fixed = 0.3e-6 - 2048 / bw  # the data class's fixed cost: the vector one's, the tiny Relu's beyond its bytes

    def pad(nbytes: int, runs: int) -> Sample:
        return Sample("Pad", "data", "vector", 0, nbytes, fixed + nbytes / bw + runs * per_run, f"Pad {runs}",
                      runs=runs)

    m = Measurements(threads=1, launch_overhead_s=0.3e-6, run_overhead_s=6e-6, run_overhead_per_io_s=1e-6,
                     profiler_bias_s=3e-6, samples=[
                         _s("Add", "vector", "vector", 10**5, 12 * 10**5, 12 * 10**5 / bw, "Add stream 1.2 MB"),
                         _s("Relu", "vector", "vector", 256, 2048, 0.3e-6, "tiny Relu", "chain"),  # vector fixed
                         pad(500_000, 6720), pad(1_260_000, 5376), pad(3_300_000, 3584),
                     ])
    cal = fit(m)
    assert cal.kernel_fixed_s["data"] == pytest.approx(fixed)
    assert cal.run_s["Pad"] == pytest.approx(per_run)
    assert "Pad" not in cal.throughput_curves  # its bytes/s over working set would count the runs twice
    t = apply(detect_host(), cal)
    cost = OpCost(flops=0, bytes_read=400_000, bytes_written=600_000, weight_bytes=0)
    got = kernel_time(cost, OpClass.DATA, "float32", t, family="Pad", runs=10_000).seconds
    # launch + data fixed + 1 MB at 2e10 B/s (50 us) + 10,000 runs at 13 ns (130 us)
    assert got == pytest.approx(t.launch_overhead_s + fixed + 50e-6 + 130e-6)
    assert kernel_time(cost, OpClass.DATA, "float32", t, family="Pad").seconds == pytest.approx(got - 130e-6)
    # a bench its bytes alone over-explain (a gather of a few long rows inside L1, quicker than streaming)
    # says nothing of runs: with it the fit would have dragged the cost a run towards zero
    quick = pad(131_584, 64)
    m.samples.append(dataclasses.replace(quick, seconds=0.5e-6, label="Pad in L1"))
    assert fit(m).run_s["Pad"] == pytest.approx(per_run)


def test_calibrated_target_keeps_its_sources():
    t = apply(detect_host(), _cal())
    assert "calibration" in t.sources and "quick" in t.sources["calibration"]
    assert t.mem_bw_bytes_per_s == 20 * GB
    no_curves = dataclasses.replace(t.rates, rate_curves={})  # a family never measured: peak x efficiency
    assert no_curves.flops_per_s("matrix", "gemm", "fp32", 1e11, 5.0, t) == pytest.approx(1e11 * t.compute_efficiency)


def test_recurrent_layers_take_their_fitted_costs_over_the_step_rule(tmp_path):
    from planner.model.recurrent import RecurrentShape

    costs = {"call": 8e-6, "step": 0.1e-6, "weights": 2e-11, "recurrent": 1.5e-11, "inputs": 1.6e-11,
             "gates": 1.7e-9}
    t = apply(detect_host(), _cal(recurrent_costs={"gru.fp32": costs}, kernel_fixed_s={"gru": 1e-6}))
    # a GRU of hidden 80, input 48, batch 1, 40 steps: G.h.h = 19200, b.G.h.h = 19200, b.G.h.in = 11520, b.G.h = 240
    shape = RecurrentShape(gates=3, batch=1, inputs=48, hidden=80)
    rnn = OpCost(flops=40 * 61440, bytes_read=4 * 31200, bytes_written=40 * 320, weight_bytes=4 * 31200)
    kt = kernel_time(rnn, OpClass.MATRIX, "float32", t, "gru", steps=40, recurrent=shape)
    by_hand = 8e-6 + 40 * (0.1e-6 + 19200 * 2e-11 + 19200 * 1.5e-11 + 11520 * 1.6e-11 + 240 * 1.7e-9)
    assert kt.seconds == pytest.approx(t.launch_overhead_s + by_hand)
    # without the sizes (or without fitted costs) the layer is `steps` steps of the plain rule
    plain = kernel_time(rnn, OpClass.MATRIX, "float32", t, "gru", steps=40)
    assert plain.seconds != pytest.approx(kt.seconds)
    back = read_file(save(_cal(recurrent_costs={"gru.fp32": costs}), tmp_path / "c.json"))
    assert next(iter(back.values())).recurrent_costs == {"gru.fp32": costs}


def test_graph_node_overhead_is_the_slope_of_what_mixed_graphs_take_beyond_their_prediction():
    from planner.calibration.fit import mixed_predictions, mixed_residual

    cal = _cal()
    (n4, p4), (n16, p16) = mixed_predictions(cal, [4, 16])
    assert n16 > n4 > 16 and n16 - n4 == 12 * (n4 // 4)  # every block is as many nodes
    per_node, per_run = 80e-9, 3e-6  # measured = predicted + 3 µs + 80 ns a node: the 3 µs must cancel
    samples = [Sample("mixed", "vector", "vector", 0, 0, p + per_run + per_node * n, f"mixed x{b}", "mixed",
                      steps=b) for b, (n, p) in ((4, (n4, p4)), (16, (n16, p16)))]
    assert mixed_residual(cal, samples) == pytest.approx(per_node)
    slower = apply(detect_host(), dataclasses.replace(cal, graph_node_overhead_s=per_node))
    assert slower.launch_overhead_s == pytest.approx(cal.launch_overhead_s + per_node)


def test_runtime_copies_of_weights_by_kind_and_size():
    from planner.predict.fusion import Kernel
    from planner.predict.memory import ALWAYS_RETURNED, runtime_copies

    def k(family, op_class, weights):
        return Kernel(family, (0,), ("X",), op_class, "float32", OpCost(1, weights + 64, 64, weights), False, family)

    kernels = [k("nchwc.conv", OpClass.MATRIX, 2 << 20),  # (3.0 - 1) x 2 MiB = 4 MiB more
               k("gemm_bias", OpClass.MATRIX, 1 << 20),  # (1.5 - 1) x 1 MiB = 0.5 MiB
               k("gemm", OpClass.MATRIX, ALWAYS_RETURNED),  # mmapped: its spare copy goes back to the OS
               k("Add", OpClass.VECTOR, 1 << 20)]  # not a matrix kernel: one copy
    assert runtime_copies(kernels, {"gemm": 1.5, "conv": 3.0}) == (4 << 20) + (1 << 19)
    assert runtime_copies(kernels, {}) == 0  # an uncalibrated target: weights once


def test_calibrated_host_memory_counts_the_runtimes_copies(tmp_path):
    from planner.model.analyze import Analyzer
    from planner.model.loader import load_model
    from planner.predict.predictor import predict
    from tests.test_validate import tiny_model

    analysis = Analyzer(load_model(tiny_model(tmp_path / "tiny.onnx"))).analyze()
    plain = predict(analysis, apply(detect_host(), _cal(weight_residency={})))
    copies = predict(analysis, apply(detect_host(), _cal(weight_residency={"gemm": 2.0, "conv": 2.0})))
    matrix_weights = 64 * 32 * 4 + 32 * 4  # the MatMul's weights and the bias onnxruntime fuses into it
    assert copies.memory.runtime_copy_bytes == matrix_weights  # (2.0 - 1) x each matrix kernel's weights
    assert copies.memory.total_bytes - plain.memory.total_bytes == matrix_weights


def test_a_calibration_of_another_cpu_never_serves_this_one(tmp_path):
    path = save(_cal(fingerprint="AMD EPYC (cpu family 25 model 17) / 2 logical CPUs / avx512f / LLC 32 MiB"),
                tmp_path / "c.json")
    found = find(1, path)
    assert found.calibration is None
    assert "holds calibrations of other CPUs (AMD EPYC (cpu family 25 model 17)" in found.why
    assert host_fingerprint() in found.why
