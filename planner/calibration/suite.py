"""`plan calibrate`: measure this machine with onnxruntime microbenchmarks, so `host` predicts from data.

Every microbenchmark is a tiny ONNX model built here in memory (never a user's model). Each is run the way
`plan validate` runs a model (planner.ort.executed.session_options: ORT_ENABLE_ALL, sequential, pinned intra-op
threads), and its optimized graph is costed with the same formulas a prediction uses, so a measured time
and a predicted time talk about the same FLOPs and bytes of the same nodes.

    per-run and per-node cost   chains of n tiny Relu nodes, n in {1, 64, 256}: the median end-to-end time
                                (no profiler) is  run_overhead + n · launch ; least squares gives both.
                                A second family of chains has k inputs and outputs: the per-I/O part.
    profiler bias               the same chains profiled: a tiny node's recorded duration is mostly the
                                profiler's own bookkeeping; validate subtracts it from every node it compares.
    streaming bandwidth         Add of two same-shape tensors at working sets from 16 KiB to 256 MiB (L1,
                                L2, L3, DRAM on a typical server): bytes (io_cost) / kernel time.
    reading weights             chains of GEMVs, each node with weights of its own, 128 KiB to 256 MiB of
                                weights in all (weight_chain): end to end per node, no profiler.
    matrix families             MatMul / Gemm (weights and activations as B), batched MatMul, Conv
                                (onnxruntime turns most into com.microsoft.nchwc::Conv), depthwise and grouped
                                Conv, int8 MatMulInteger / QLinearMatMul / DynamicQuantizeMatMul, LSTM / GRU:
                                achieved FLOP/s against arithmetic intensity (FLOPs per byte), which is what
                                separates a GEMV from a square GEMM.
    graph node overhead         a transformer-like block of small nodes, 4 and 24 times (mixed_graph): what
                                each node costs beyond what its family's chain says.
    vector and data families    each op type on its own (Softmax, LayerNormalization, BiasGelu, MaxPool,
                                Transpose, Concat, ...) at working sets in L2 and beyond: achieved bytes/s
                                against working set, the same quantity as the streaming curve.

A node's kernel time is its profiled duration less the profiler bias. The fit (planner.calibration.store)
turns samples into the curves a `Target` carries.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from planner.errors import PlannerError
from planner.ort.profile import _quantile
from planner.ort.quiet import QuietGate

OPSET = 17
# Which quantile of a microbenchmark's runs is its time: below the median, because on a machine others use,
# noise only ever adds time; not the minimum, which no steady run reaches. On an idle machine all agree.
QUANTILE = 0.25
# The whole suite runs this many times, minutes apart on a slow machine, and each sample keeps its quickest
# pass (see quickest): one pass can fall entirely inside a neighbour's burst, two rarely both do.
PASSES = 2
MS = "com.microsoft"
F = TensorProto.FLOAT


class CalibrationError(PlannerError):
    """The microbenchmarks could not run (onnxruntime missing or refusing a kernel)."""


@dataclass(frozen=True)
class Sample:
    family: str  # planner.predict.fusion.kernel_family of the node
    op_class: str  # "matrix", "vector", "data"
    peak_key: str  # "fp32", "int8", "vector"
    flops: int
    bytes: int
    seconds: float  # time beyond a tiny Relu node's (which is the launch overhead): see the module docstring
    label: str  # the microbenchmark it came from
    source: str = "profile"  # "profile": one node, profiled; "chain": per node of a chain of tiny ones, no
    #   profiler; "weights": per node of a chain of GEMVs with weights of their own (weight_chain), no profiler;
    #   "series": per node of a chain of small matrix nodes (activation_chain), no profiler; "mixed": a whole
    #   mixed_graph end to end (steps: its blocks)
    steps: int = 1  # sequential steps (RNN time steps): flops and bytes are per step, seconds for all of them
    weight_bytes: int = 0  # of `bytes`, those of initializers (weights), read once per step
    working_set: int = 0  # weights in play around this node (a weight chain's total); 0: its own bytes
    shape: tuple[int, ...] = ()  # a recurrent layer's planner.model.recurrent.RecurrentShape, as_list()

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass
class Measurements:
    threads: int
    launch_overhead_s: float
    run_overhead_s: float
    run_overhead_per_io_s: float
    profiler_bias_s: float
    samples: list[Sample] = field(default_factory=list)
    workspace_bytes: int | None = None  # resident memory of a session running a tiny model (threads, arena)
    weight_residency: dict[str, float] = field(default_factory=dict)  # weight_residency()
    seconds: float = 0.0  # wall time the calibration took
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    probe_s: float | None = None  # planner.ort.quiet's probe on the quiet machine
    busy: int = 0  # microbenchmarks that ran after planner.ort.quiet gave up waiting for a quiet moment


# ---- building microbenchmark models ---------------------------------------------------------------------


def _model(nodes, inputs, outputs, inits=(), ms: bool = False) -> bytes:
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS, 1)] if ms else [])
    g = helper.make_graph(nodes, "bench", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=opsets, ir_version=8).SerializeToString()


def _vi(name: str, shape: Sequence[int], elem: int = F):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _rand(shape: Sequence[int], seed: int, dtype=np.float32) -> np.ndarray:
    """Seeded values; past a million elements a random block repeated (drawing 32 M normals takes seconds,
    and no kernel's speed depends on the values)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    n = min(size, 1 << 20)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        block = rng.integers(max(info.min, -8), min(info.max, 8), size=n).astype(dtype)
    else:
        block = (rng.standard_normal(n) * 0.1).astype(dtype)
    return block.reshape(shape) if n == size else np.resize(block, shape)


def _w(name: str, shape: Sequence[int], seed: int = 1, dtype=np.float32):
    return numpy_helper.from_array(_rand(shape, seed, dtype), name)


@dataclass
class Bench:
    label: str
    model: bytes
    feeds: dict[str, np.ndarray]


def chain(n: int, ios: int = 1, size: int = 16) -> Bench:
    """`ios` parallel chains of n/ios tiny Relu nodes, each with its own input and output."""
    nodes, ins, outs, feeds = [], [], [], {}
    per = max(1, n // ios)
    for c in range(ios):
        prev = f"x{c}"
        ins.append(_vi(prev, [size]))
        feeds[prev] = np.ones(size, np.float32)
        for i in range(per):
            out = f"y{c}" if i == per - 1 else f"t{c}_{i}"
            nodes.append(helper.make_node("Relu", [prev], [out], name=f"relu{c}_{i}"))
            prev = out
        outs.append(_vi(f"y{c}", [size]))
    return Bench(f"chain n={per * ios} io={ios}", _model(nodes, ins, outs), feeds)


def single(label: str, op: str, inputs: Sequence[tuple[str, Sequence[int], int]], out_shape: Sequence[int] | None,
           inits=(), attrs: dict | None = None, domain: str = "", out_elem: int = F, copies: int = 1,
           order: Sequence[str] | None = None) -> Bench:
    """One node; `inputs` are (name, shape, elem type) fed at run time; `inits` are weights.

    `copies` > 1 puts that many nodes side by side on the same inputs, each with its own copy of the weights
    (perturbed, so no runtime merges them): as in a network, a node's weights are not the ones the
    previous node just read, so they come from wherever the others left them, not from L1.
    """
    feeds = {}
    vis = []
    for i, (name, shape, elem) in enumerate(inputs):
        vis.append(_vi(name, shape, elem))
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        feeds[name] = _rand(shape, 10 + i, dtype) if elem != TensorProto.INT64 else np.zeros(shape, np.int64)
    nodes, outs, all_inits = [], [], []
    for c in range(copies):
        suffix = f"_{c}" if c else ""
        own = []
        for t in inits:
            arr = numpy_helper.to_array(t)
            if c and arr.dtype == np.float32 and arr.size > 1:
                arr = arr + np.float32(c * 1e-3)
            own.append(numpy_helper.from_array(arr, t.name + suffix))
        all_inits += own
        renamed = {t.name: o.name for t, o in zip(inits, own, strict=True)}
        ins = [renamed.get(x, x) for x in order] if order else [name for name, _, _ in inputs] + [t.name for t in own]
        out = f"out{c}"
        nodes.append(helper.make_node(op, ins, [out], name=f"bench{c}", domain=domain, **(attrs or {})))
        outs.append(helper.make_tensor_value_info(out, out_elem, None if out_shape is None else list(out_shape)))
    return Bench(label, _model(nodes, vis, outs, all_inits, ms=domain == MS), feeds)


def _steps() -> dict[str, Callable[[int, str, str], tuple[list, list]]]:
    """Shape-preserving steps on a [16, 16] tensor, for chains of tiny nodes of one family."""
    def unary(op, domain="", **kw):
        return lambda i, p, o: ([helper.make_node(op, [p], [o], domain=domain, **kw)], [])

    def with_const(op, shape=(16, 16), domain="", **kw):
        return lambda i, p, o: ([helper.make_node(op, [p, f"c{i}"], [o], domain=domain, **kw)],
                                [_w(f"c{i}", shape, i)])

    def layer_norm(i, p, o):
        return ([helper.make_node("LayerNormalization", [p, f"g{i}", f"b{i}"], [o], axis=-1)],
                [_w(f"g{i}", [16], i), _w(f"b{i}", [16], i + 1)])

    def skip_ln(i, p, o):
        return ([helper.make_node("SkipLayerNormalization", [p, f"s{i}", f"g{i}", f"b{i}"], [o], domain=MS)],
                [_w(f"s{i}", [16, 16], i), _w(f"g{i}", [16], i), _w(f"b{i}", [16], i + 1)])

    def where(i, p, o):
        return ([helper.make_node("Where", [f"m{i}", p, f"c{i}"], [o])],
                [numpy_helper.from_array(np.arange(256).reshape(16, 16) % 3 > 0, f"m{i}"), _w(f"c{i}", [16, 16], i)])

    def concat_slice(i, p, o):
        ints = [numpy_helper.from_array(np.array([v], np.int64), f"{k}{i}") for k, v in
                (("st", 0), ("en", 16), ("ax", 1))]
        return ([helper.make_node("Concat", [p, f"c{i}"], [f"cat{i}"], axis=1),
                 helper.make_node("Slice", [f"cat{i}", f"st{i}", f"en{i}", f"ax{i}"], [o])],
                [_w(f"c{i}", [16, 4], i), *ints])

    def gemm_bias(i, p, o):  # y = x·W + b, as classifiers and MLPs end: its own fixed cost, not the class median
        return ([helper.make_node("Gemm", [p, f"w{i}", f"b{i}"], [o])], [_w(f"w{i}", [16, 16], i),
                                                                        _w(f"b{i}", [16], i + 1)])

    def conv(group, channels=16):
        def step(i, p, o):
            return ([helper.make_node("Conv", [p, f"w{i}"], [o], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                      group=group)], [_w(f"w{i}", [channels, channels // group, 3, 3], i)])
        return step

    return {
        "Relu": unary("Relu"), "Sigmoid": unary("Sigmoid"), "Tanh": unary("Tanh"), "Erf": unary("Erf"),
        "Exp": unary("Exp"), "Sqrt": unary("Sqrt"), "Reciprocal": unary("Reciprocal"), "Neg": unary("Neg"),
        "Softmax": unary("Softmax", axis=-1), "Add": with_const("Add"), "Sub": with_const("Sub"),
        "Mul": with_const("Mul"), "Div": with_const("Div"), "Pow": with_const("Pow", ()),
        "LayerNormalization": layer_norm, "ms.SkipLayerNormalization": skip_ln, "Where": where,
        "ms.BiasGelu": with_const("BiasGelu", (16,), domain=MS), "ms.QuickGelu": unary("QuickGelu", domain=MS),
        "ms.FastGelu": with_const("FastGelu", (16,), domain=MS), "gemm": with_const("MatMul"),
        "gemm_bias": gemm_bias,
        "Concat+Slice": concat_slice, "nchwc.conv": conv(1, _CHAIN_CHANNELS["nchwc.conv"]),
        "nchwc.conv:1block": conv(1), "nchwc.conv_dw": conv(16),
    }


_CHAIN_CHANNELS = {"nchwc.conv": 32}  # two channel blocks with AVX-512: not kernels.ONE_BLOCK


def tiny_chain(name: str, n: int) -> Bench:
    """n nodes of one family on a [16, 16] tensor (a [1, 16, 8, 8] image for convolutions), chained."""
    step = _steps()[name]
    shape = [1, _CHAIN_CHANNELS.get(name, 16), 8, 8] if "conv" in name else [16, 16]
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        out = "y" if i == n - 1 else f"t{i}"
        ns, its = step(i, prev, out)
        nodes += ns
        inits += its
        prev = out
    return Bench(f"tiny {name} x{n}", _model(nodes, [_vi("x", shape)], [_vi("y", shape)], inits, ms=True),
                 {"x": _rand(shape, 7)})


# ---- running them ---------------------------------------------------------------------------------------


def _timed_runs(session, feeds, runs: int, budget_s: float) -> list[tuple[float, float]]:
    """(wall, thread CPU) seconds per run, until `runs` or `budget_s` (at least 3 runs)."""
    from planner.ort.measure import timed_run

    times = []
    start = time.perf_counter()
    for _ in range(runs):
        times.append(timed_run(session, feeds))
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    return times


def e2e_seconds(bench: Bench, threads: int, runs: int, budget_s: float, session=None) -> float:
    """End-to-end time of `bench` (the QUANTILE of its runs), no profiler (planner.ort.measure.effective_seconds);
    in `session` if given (one built for it before: building one over 256 MiB of weights takes seconds)."""
    from planner.ort.executed import make_session, session_options
    from planner.ort.measure import effective_seconds

    s = session if session is not None else make_session(bench.model, session_options(threads))
    for _ in range(3):
        s.run(None, bench.feeds)
    times = [effective_seconds(w, c, threads) for w, c in _timed_runs(s, bench.feeds, runs, budget_s)]
    return _quantile(times, QUANTILE)


@dataclass
class Profiled:
    node_s: dict[str, float]  # median profiled duration per node of the executed graph
    analysis: object  # planner.model.analyze.Analysis of the executed graph
    e2e_s: float | None = None  # the same model end to end without the profiler (QUANTILE of its runs)
    n_io: int = 0  # graph inputs + outputs: part of the per-run overhead


def profiled(bench: Bench, threads: int, runs: int, budget_s: float, workdir: Path, e2e: bool = False
             ) -> Profiled:
    """Run `bench` under the profiler and cost the graph onnxruntime executed (saved by the same session);
    with `e2e`, also time it end to end without the profiler (see samples_of)."""
    from planner.model.analyze import Analyzer, build_graph
    from planner.model.loader import load_model
    from planner.ort.executed import infer_optimized, make_session, session_options
    from planner.ort.measure import cpu_shares
    from planner.ort.profile import load_profile

    src = workdir / "bench.onnx"
    src.write_bytes(bench.model)
    opt = workdir / "bench.opt.onnx"
    so = session_options(threads, optimized_path=str(opt), profile_prefix=str(workdir / "prof"),
                         external_file="bench.opt.data")
    s = make_session(str(src), so)
    warm = 2
    for _ in range(warm):
        s.run(None, bench.feeds)
    timed = _timed_runs(s, bench.feeds, runs, budget_s)
    profile = load_profile(s.end_profiling())
    node_us = profile.node_times_us(skip_runs=warm, scale=cpu_shares(timed, threads, warm), quantile=QUANTILE)
    original = Analyzer(load_model(src)).analyze()
    inferred, _ = infer_optimized(onnx.load(str(opt), load_external_data=False), original)
    graph = build_graph(inferred, fold_constants=False)
    whole = e2e_seconds(bench, threads, runs, budget_s) if e2e else None
    return Profiled({k: v * 1e-6 for k, v in node_us.items()}, graph, whole,
                    len(graph.inputs) + len(graph.outputs))


@dataclass(frozen=True)
class Overheads:
    """What a run costs beyond its kernels' work (overheads_from), in seconds."""
    launch_s: float
    run_s: float
    per_io_s: float  # each graph input or output beyond the chains' one and one
    profiler_bias_s: float


def node_seconds(p: Profiled, o: Overheads) -> dict[str, float]:
    """Each working node's time beyond its launch.

    onnxruntime's profiler records whole microseconds, which is most of a small kernel's time, and its own
    bookkeeping (the bias) on top. The end-to-end time has neither problem: less the per-run overhead and one
    launch per executed node (both measured by the chains, the same terms a prediction adds), it is what the
    working nodes took together, and the profile only apportions it among them. Without an end-to-end time,
    or when noise leaves nothing to apportion, the profiled durations less the bias."""
    from planner.costs import OpClass, node_cost
    from planner.ort.executed import run_overhead

    working = {n.name for n in p.analysis.nodes if n.name in p.node_s and node_cost(n).op_class != OpClass.VIEW}
    profiled_s = {k: max(p.node_s[k] - o.profiler_bias_s, 0.05e-6) for k in working}
    if p.e2e_s is None or not profiled_s:
        return profiled_s
    net = p.e2e_s - run_overhead(o.run_s, o.per_io_s, p.n_io) - o.launch_s * len(p.analysis.nodes)
    total = sum(profiled_s.values())
    if net <= 0.25 * total:
        return profiled_s
    return {k: v * net / total for k, v in profiled_s.items()}


def samples_of(p: Profiled, overheads: Overheads, label: str) -> list[Sample]:
    """One sample per working node, its time anchored end to end (node_seconds)."""
    from planner.costs import OpClass, node_cost
    from planner.model.recurrent import shape_of
    from planner.predict.fusion import compute_dtype, kernel_family, kernel_steps
    from planner.targets.target import DTYPE_TO_PEAK

    times = node_seconds(p, overheads)
    out = []
    for node in p.analysis.nodes:
        if node.name not in times:
            continue
        nc = node_cost(node)  # node_seconds already left views out
        if not nc.known:
            continue
        peak = DTYPE_TO_PEAK.get(compute_dtype(node), "fp32") if nc.op_class == OpClass.MATRIX else "vector"
        t = times[node.name]
        steps = kernel_steps(node)
        c = nc.cost
        w = min(c.weight_bytes, c.bytes_read)
        flops, nbytes = c.flops // steps, (c.bytes_read - w) // steps + w + c.bytes_written // steps
        rnn = shape_of(node) if steps > 1 else None
        out.append(Sample(kernel_family(node, nc.op_class), nc.op_class.value, peak, flops, nbytes, t, label,
                          steps=steps, weight_bytes=w, shape=tuple(rnn.as_list()) if rnn else ()))
    return out


# ---- the microbenchmark suite ---------------------------------------------------------------------------


def _gemm_benches(quick: bool) -> list[Bench]:
    out = []
    # (M, K, N) with B a weight (prepacked by onnxruntime): GEMV through square GEMM
    shapes = [(1, 512, 512), (1, 2048, 1024), (4, 1024, 1024), (16, 256, 256), (32, 1024, 1024), (64, 64, 64),
              (128, 128, 128), (128, 64, 256), (256, 512, 512), (512, 1024, 1024), (48, 384, 1536), (200, 96, 96)]
    if quick:
        shapes = [(1, 512, 512), (128, 128, 128), (256, 512, 512)]
    for m, k, n in shapes:
        out.append(single(f"MatMul {m}x{k}x{n}", "MatMul", [("a", [m, k], F)], [m, n], [_w("b", [k, n])]))
    if not quick:
        for m, k, n in [(1, 1024, 512), (64, 512, 256), (16, 1024, 512), (128, 256, 512), (256, 768, 192),
                        (4, 512, 1000)]:
            out.append(single(f"Gemm {m}x{k}x{n} bias", "Gemm", [("a", [m, k], F)], [m, n],
                              [_w("b", [n, k]), _w("c", [n], 2)], {"transB": 1}))
        # activations on both sides (attention scores / context): not prepacked
        for h, m, k, n in [(4, 128, 32, 128), (4, 128, 128, 32), (8, 64, 64, 64), (12, 256, 64, 256)]:
            out.append(single(f"batched MatMul {h}x{m}x{k}x{n}", "MatMul", [("a", [h, m, k], F), ("b", [h, k, n], F)],
                              [h, m, n]))
    return out


# GEMV chains (k, length): every working set from 128 KiB to 256 MiB (VGG's fully connected layers read 400 MiB
# from DRAM once per run; a shared L3 makes 64 MiB look faster than DRAM), and at 128 KiB to 8 MiB two node
# sizes each, whose difference separates a GEMV's fixed cost from its bytes (fit_weight_chains)
WEIGHT_CHAINS = [(64, 8), (128, 2), (64, 32), (128, 8), (128, 32), (256, 8), (256, 32), (512, 8), (512, 16),
                 (1024, 8), (1024, 16), (2048, 8), (4096, 4)]
GEMM_WEIGHT_CHAINS = [(64, 32), (128, 8), (1024, 8)]  # transposed B, as Linear layers export
QUICK_WEIGHT_CHAINS = [(64, 32), (128, 8), (512, 16)]


def weight_chain(k: int, length: int, transposed: bool = False) -> Bench:
    """`length` GEMVs [1, k] x [k, k] in sequence, each with weights of its own.

    In a model a layer's weights are read once per inference with every other layer's read in between, so they
    come from wherever a working set of all the model's weights lives, not from L1 as a lone GEMV run in a loop
    would have them. A chain reproduces that, and its end-to-end time (no profiler: a small GEMV takes less
    than the profiler's microsecond) divided by its length is what one such node costs inside a model."""
    nodes, inits, prev = [], [], "x"
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        if transposed:
            nodes.append(helper.make_node("Gemm", [prev, f"w{i}"], [out], name=f"gemv{i}", transB=1))
        else:
            nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [out], name=f"gemv{i}"))
        inits.append(_w(f"w{i}", [k, k], i + 1))
        prev = out
    label = f"{'Gemm' if transposed else 'MatMul'} weights chain {k}x{k} x{length}"
    return Bench(label, _model(nodes, [_vi("x", [1, k])], [_vi("y", [1, k])], inits), {"x": _rand([1, k], 3)})


def per_node_seconds(e2e_s: float, length: int, n_io: int, o: Overheads) -> float:
    """One node of a chain of `length` alike: the chain's end to end less the run overhead (for `n_io` graph
    inputs and outputs), per node, less one launch."""
    from planner.ort.executed import run_overhead

    return max((e2e_s - run_overhead(o.run_s, o.per_io_s, n_io)) / length - o.launch_s, 1e-9)


def weight_chain_sample(bench: Bench, k: int, length: int, transposed: bool, e2e_s: float, o: Overheads) -> Sample:
    """One node of weight_chain: [1, k] x [k, k] is 2k² FLOPs, reads 4k + 4k² bytes (of them 4k² weights) and
    writes 4k."""
    w = 4 * k * k
    return Sample("gemm_bias" if transposed else "gemm", "matrix", "fp32", 2 * k * k, 8 * k + w,
                  per_node_seconds(e2e_s, length, 2, o), bench.label, "weights", weight_bytes=w,
                  working_set=length * w)


# small attention products [h, m, k] x [h, k, k] (a decoder's few heads over a short context): a microsecond or
# less each, so timed as chains end to end like the GEMVs
ACTIVATION_CHAINS = [(2, 16, 16), (8, 16, 32), (4, 64, 32), (8, 32, 64)]
CHAIN_LENGTH = 16


def activation_chain(h: int, m: int, k: int, length: int = CHAIN_LENGTH) -> Bench:
    """`length` batched MatMuls x [h, m, k] x b [h, k, k] in sequence, b one input shared by all."""
    nodes, prev = [], "x"
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        nodes.append(helper.make_node("MatMul", [prev, "b"], [out], name=f"bmm{i}"))
        prev = out
    return Bench(f"batched MatMul chain {h}x{m}x{k}x{k} x{length}",
                 _model(nodes, [_vi("x", [h, m, k]), _vi("b", [h, k, k])], [_vi("y", [h, m, k])]),
                 {"x": _rand([h, m, k], 3), "b": _rand([h, k, k], 4)})


def activation_chain_sample(bench: Bench, h: int, m: int, k: int, e2e_s: float, o: Overheads,
                            length: int = CHAIN_LENGTH) -> Sample:
    """One node of activation_chain: 2hmk² FLOPs, reads 4hmk + 4hk² bytes, writes 4hmk (three graph inputs and
    outputs)."""
    return Sample("gemm", "matrix", "fp32", 2 * h * m * k * k, 4 * (2 * h * m * k + h * k * k),
                  per_node_seconds(e2e_s, length, 3, o), bench.label, "series")


# A transformer-like block of small nodes, repeated: a few blocks and many, so that the difference per node is free
# of the per-run cost (mixed_residual in planner.calibration.store)
MIXED_BLOCKS = (4, 24)
MIXED_REPEATS = 3
CHAIN_REPEATS = 3  # tiny_chain timings (chain_samples)


def _ints(name: str, values: Sequence[int]):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def mixed_graph(blocks: int, d: int = 64, rows: int = 1) -> Bench:
    """`blocks` repeats of the kind of small-node sequence a decoder export is made of, on [1, rows, d]: scale,
    an RMS-style normalisation (ReduceMean, Sqrt, Div), heads split and merged (Reshape, Transpose), Softmax, a
    rotary-style half swap (Slice, Neg, Concat), Unsqueeze/Squeeze, a residual Add and a small MatMul.

    Chains of one family each (tiny_chain) measure what a node of that kind costs among its own kind; in a
    graph of mixed kinds, each node costs somewhat more (its inputs and outputs are other shapes, the arena
    hands out other blocks). What no family accounts for, per node, is the graph's node overhead. One row (a
    decode step's shapes): with the smallest tensors the residual is the node's alone (measured here: 70 ns a
    node at one row, 121 ns at eight, where work that the families' curves extrapolate below their smallest
    working set is in it too)."""
    nodes = []
    inits = [_ints("sh4", [1, rows, 4, d // 4]), _ints("sh3", [1, rows, d]), _ints("z", [0]), _ints("h", [d // 2]),
             _ints("e", [d]), _ints("ax", [2]), _ints("ax1", [1])]
    prev = "x"
    for i in range(blocks):
        p = f"b{i}_"
        inits += [_w(p + "c", [d], i + 1), _w(p + "w", [d, d], i + 2)]
        nodes += [
            helper.make_node("Mul", [prev, p + "c"], [p + "m"]),
            helper.make_node("ReduceMean", [p + "m"], [p + "rm"], axes=[-1]),
            helper.make_node("Sqrt", [p + "rm"], [p + "sq"]),
            helper.make_node("Div", [p + "m", p + "sq"], [p + "n"]),
            helper.make_node("Reshape", [p + "n", "sh4"], [p + "r"]),
            helper.make_node("Transpose", [p + "r"], [p + "t"], perm=[0, 2, 1, 3]),
            helper.make_node("Softmax", [p + "t"], [p + "s"], axis=-1),
            helper.make_node("Transpose", [p + "s"], [p + "u"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "u", "sh3"], [p + "v"]),
            helper.make_node("Slice", [p + "v", "z", "h", "ax"], [p + "lo"]),
            helper.make_node("Slice", [p + "v", "h", "e", "ax"], [p + "hi"]),
            helper.make_node("Neg", [p + "hi"], [p + "nh"]),
            helper.make_node("Concat", [p + "nh", p + "lo"], [p + "cat"], axis=-1),
            helper.make_node("Unsqueeze", [p + "cat", "ax1"], [p + "us"]),
            helper.make_node("Squeeze", [p + "us", "ax1"], [p + "sqz"]),
            helper.make_node("Add", [p + "sqz", prev], [p + "res"]),
            helper.make_node("MatMul", [p + "res", p + "w"], ["y" if i == blocks - 1 else p + "out"]),
        ]
        prev = p + "out"
    return Bench(f"mixed x{blocks}", _model(nodes, [_vi("x", [1, rows, d])], [_vi("y", [1, rows, d])], inits),
                 {"x": _rand([1, rows, d], 6)})


def mixed_sample(blocks: int, e2e_s: float) -> Sample:
    """A mixed graph's end-to-end time, for planner.calibration.store.mixed_residual (not a node's)."""
    return Sample("mixed", "vector", "vector", 0, 0, e2e_s, f"mixed x{blocks}", "mixed", steps=blocks)


def weight_chains(quick: bool) -> list[tuple[int, int, bool]]:
    if quick:
        return [(k, n, False) for k, n in QUICK_WEIGHT_CHAINS]
    return [(k, n, False) for k, n in WEIGHT_CHAINS] + [(k, n, True) for k, n in GEMM_WEIGHT_CHAINS]


def _conv_benches(quick: bool) -> list[Bench]:
    out = []
    # (C_in, C_out, HW, kernel, stride, group)
    shapes = [(3, 32, 96, 3, 2, 1), (3, 16, 64, 3, 1, 1), (3, 64, 160, 7, 2, 1), (3, 96, 160, 11, 4, 1),
              (16, 32, 64, 3, 1, 1), (32, 32, 56, 3, 1, 1), (64, 128, 28, 3, 1, 1),
              (64, 256, 28, 1, 1, 1), (256, 64, 28, 1, 1, 1), (128, 128, 14, 3, 1, 1), (256, 512, 7, 3, 1, 1),
              (512, 1024, 7, 1, 1, 1), (96, 96, 28, 5, 1, 1), (3, 48, 112, 7, 2, 1), (32, 64, 40, 1, 1, 1),
              (64, 64, 28, 3, 1, 64), (128, 128, 14, 3, 1, 128), (32, 32, 56, 3, 2, 32),
              (60, 60, 28, 1, 1, 3), (24, 24, 28, 3, 1, 24), (20, 40, 28, 3, 1, 1),
              # grouped 1x1 convolutions (ShuffleNet, ResNeXt), which onnxruntime runs as one GEMM per group
              (240, 240, 28, 1, 1, 3), (480, 480, 14, 1, 1, 3), (960, 960, 7, 1, 1, 3), (128, 256, 28, 1, 1, 4),
              (64, 64, 56, 3, 1, 2),
              # ... and with channels a group that onnxruntime's blocked layout does not take (plain Conv)
              (132, 132, 28, 1, 1, 4), (264, 264, 14, 1, 1, 4), (520, 520, 7, 1, 1, 4), (120, 240, 28, 1, 1, 2),
              (200, 200, 28, 1, 1, 8),
              # grouped 3x3 with few channels a group (ResNeXt's 32x4d), im2col per group
              (128, 128, 28, 3, 1, 32), (120, 120, 14, 3, 1, 6),
              # depthwise 3x3 at more sizes, and depthwise 1x1 (a BatchNormalization in the blocked layout)
              (256, 256, 14, 3, 1, 256), (144, 144, 28, 3, 1, 144), (512, 512, 7, 3, 1, 512),
              (48, 48, 28, 1, 1, 48), (160, 160, 28, 1, 1, 160), (128, 128, 56, 1, 1, 128), (320, 320, 56, 1, 1, 320),
              (512, 512, 7, 1, 1, 512),
              # one block of output channels (kernels.ONE_BLOCK; 8 is one block on every x86 CPU, 16 with AVX-512)
              (3, 16, 112, 3, 2, 1), (3, 8, 64, 3, 1, 1), (16, 16, 32, 3, 1, 1), (64, 16, 28, 1, 1, 1),
              (128, 16, 56, 1, 1, 1), (32, 8, 28, 3, 1, 1), (96, 16, 14, 3, 1, 1)]
    if quick:
        shapes = [(32, 32, 56, 3, 1, 1), (64, 256, 28, 1, 1, 1), (64, 64, 28, 3, 1, 64)]
    for cin, cout, hw, k, s, g in shapes:
        pad = k // 2
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": g}
        ho = (hw + 2 * pad - k) // s + 1
        out.append(single(f"Conv {cin}->{cout} {hw}x{hw} k{k} s{s} g{g}", "Conv", [("x", [1, cin, hw, hw], F)],
                          [1, cout, ho, ho], [_w("w", [cout, cin // g, k, k]), _w("b", [cout], 2)], attrs))
    return out


def _scalar(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def _int8_benches(quick: bool) -> list[Bench]:
    """u8 x s8 GEMMs through the three ways onnxruntime runs them (all MLAS QGEMM underneath)."""
    u8 = TensorProto.UINT8
    shapes = [(1, 1024, 1024), (64, 512, 512), (256, 1024, 1024)] if not quick else [(64, 512, 512)]
    out = []
    for m, k, n in shapes:
        weights = _w("b", [k, n], 1, np.int8)
        out.append(single(f"MatMulInteger {m}x{k}x{n}", "MatMulInteger", [("a", [m, k], u8)], [m, n],
                          [weights, _scalar("za", 3, np.uint8)], out_elem=TensorProto.INT32))
        if quick:
            continue
        qparams = [_scalar("sa", 0.02, np.float32), _scalar("za", 3, np.uint8), weights,
                   _scalar("sb", 0.01, np.float32), _scalar("zb", 0, np.int8), _scalar("sy", 0.05, np.float32),
                   _scalar("zy", 5, np.uint8)]
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["out0"],
                                name="bench")
        out.append(Bench(f"QLinearMatMul {m}x{k}x{n}",
                         _model([node], [_vi("a", [m, k], u8)], [_vi("out0", [m, n], u8)], qparams),
                         {"a": _rand([m, k], 3, np.uint8)}))
        node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "sb", "zb"], ["out0"], name="bench", domain=MS)
        out.append(Bench(f"DynamicQuantizeMatMul {m}x{k}x{n}",
                         _model([node], [_vi("a", [m, k])], [_vi("out0", [m, n])],
                                [weights, _scalar("sb", [0.01], np.float32), _scalar("zb", [0], np.int8)], ms=True),
                         {"a": _rand([m, k], 4)}))
    return out


def _rnn_benches(quick: bool) -> list[Bench]:
    # (op, sequence, batch, input, hidden): per family, enough layers to fit planner.model.recurrent's seven costs apart
    # (batch 1 to 64, hidden 32 to 256, input a quarter to four times the hidden size, 8 to 64 steps)
    shapes = [("LSTM", 16, 1, 64, 64), ("LSTM", 32, 4, 128, 128), ("LSTM", 48, 8, 256, 256), ("GRU", 32, 1, 64, 128),
              ("GRU", 16, 16, 256, 256), ("LSTM", 8, 32, 32, 32), ("LSTM", 24, 1, 128, 192), ("GRU", 24, 4, 96, 64),
              ("LSTM", 16, 64, 64, 128), ("GRU", 12, 2, 32, 48), ("GRU", 20, 32, 64, 96), ("GRU", 16, 1, 160, 160),
              ("LSTM", 16, 1, 32, 128), ("LSTM", 16, 1, 128, 96),  # batch 1, the common serving case
              ("LSTM", 40, 1, 48, 48), ("LSTM", 12, 2, 256, 64), ("LSTM", 8, 1, 256, 256), ("LSTM", 20, 8, 96, 112),
              ("GRU", 40, 1, 32, 64), ("GRU", 24, 1, 128, 96), ("GRU", 16, 8, 160, 120), ("GRU", 48, 1, 96, 48),
              ("GRU", 8, 4, 192, 192), ("GRU", 12, 64, 32, 64),
              # batches 2 to 16, where the per-row cost (planner.model.recurrent's `rows`) tells apart from the rest
              ("LSTM", 24, 16, 48, 64), ("LSTM", 16, 2, 64, 128), ("LSTM", 32, 4, 32, 48), ("LSTM", 12, 16, 128, 160),
              ("GRU", 24, 16, 40, 64), ("GRU", 16, 2, 96, 96), ("GRU", 32, 4, 64, 128), ("GRU", 12, 16, 128, 160)]
    if quick:
        shapes = shapes[1:2]
    out = []
    for op, seq, b, inp, h in shapes:
        g = 4 if op == "LSTM" else 3
        inits = [_w("W", [1, g * h, inp]), _w("R", [1, g * h, h], 2), _w("B", [1, 2 * g * h], 3)]
        node = helper.make_node(op, ["x", "W", "R", "B"], ["y"], name="bench", hidden_size=h)
        out.append(Bench(f"{op} seq{seq} b{b} in{inp} h{h}",
                         _model([node], [_vi("x", [seq, b, inp])], [_vi("y", [seq, 1, b, h])], inits),
                         {"x": _rand([seq, b, inp], 5)}))
    return out


STREAM_SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]  # floats per input


def _stream_benches(quick: bool) -> list[Bench]:
    sizes = STREAM_SIZES if not quick else [16 << 10, 1 << 20]
    out = []
    for n in sizes:
        shape = [n // 1024, 1024]  # 2-D: onnx's data propagation walks every element of a 1-D tensor
        out.append(single(f"Add stream {n * 12 >> 10} KiB", "Add", [("a", shape, F), ("b", shape, F)], shape))
    return out


def _vector_benches(quick: bool) -> list[Bench]:
    """Each op at two working sets: one inside L2, one well beyond it."""
    rows = []
    for rows_, cols in ([(64, 256), (1024, 512)] if not quick else [(64, 256)]):
        shape = [rows_, cols]
        n = rows_ * cols
        rows += [
            single(f"Mul {shape}", "Mul", [("a", shape, F), ("b", shape, F)], shape),
            single(f"Add bias {shape}", "Add", [("a", shape, F)], shape, [_w("c", [cols])]),
            single(f"Relu {shape}", "Relu", [("a", shape, F)], shape),
            single(f"Sigmoid {shape}", "Sigmoid", [("a", shape, F)], shape),
            single(f"Tanh {shape}", "Tanh", [("a", shape, F)], shape),
            single(f"Erf {shape}", "Erf", [("a", shape, F)], shape),
            single(f"Exp {shape}", "Exp", [("a", shape, F)], shape),
            single(f"Div {shape}", "Div", [("a", shape, F)], shape, [_w("c", [cols])]),
            single(f"Sub {shape}", "Sub", [("a", shape, F), ("b", shape, F)], shape),
            single(f"Pow {shape}", "Pow", [("a", shape, F)], shape, [_scalar("p", 2.0, np.float32)]),
            single(f"Sqrt {shape}", "Sqrt", [("a", shape, F)], shape),
            single(f"Reciprocal {shape}", "Reciprocal", [("a", shape, F)], shape),
            single(f"Softmax {shape}", "Softmax", [("a", shape, F)], shape, attrs={"axis": -1}),
            single(f"LayerNormalization {shape}", "LayerNormalization", [("a", shape, F)], shape,
                   [_w("g", [cols]), _w("bb", [cols], 2)], {"axis": -1}),
            single(f"ReduceMean {shape}", "ReduceMean", [("a", shape, F)], [rows_, 1], attrs={"axes": [-1]}),
            single(f"Cast {shape}", "Cast", [("a", shape, F)], shape, attrs={"to": TensorProto.FLOAT16},
                   out_elem=TensorProto.FLOAT16),
            single(f"Transpose {shape}", "Transpose", [("a", [rows_ // 16, 16, cols // 32, 32], F)],
                   [rows_ // 16, cols // 32, 16, 32], attrs={"perm": [0, 2, 1, 3]}),
            single(f"Transpose long rows {shape}", "Transpose", [("a", [4, rows_ // 4, cols], F)],
                   [rows_ // 4, 4, cols], attrs={"perm": [1, 0, 2]}),
            single(f"Concat {shape}", "Concat", [("a", shape, F), ("b", shape, F)], [rows_, 2 * cols],
                   attrs={"axis": 1}),
            single(f"Where {shape}", "Where", [("c", shape, TensorProto.BOOL), ("a", shape, F), ("b", shape, F)],
                   shape),
            single(f"Gather {shape}", "Gather", [("i", [rows_ // 4, 4], TensorProto.INT64)], [rows_ // 4, 4, cols],
                   [_w("tab", shape)], attrs={"axis": 0}, order=["tab", "i"]),
            single(f"Slice {shape}", "Slice", [("a", shape, F)], [rows_, cols // 2],
                   [numpy_helper.from_array(np.array([0], np.int64), "st"),
                    numpy_helper.from_array(np.array([cols // 2], np.int64), "en"),
                    numpy_helper.from_array(np.array([1], np.int64), "ax")]),
            single(f"Expand {shape}", "Expand", [("a", [1, cols], F)], shape,
                   [numpy_helper.from_array(np.array(shape, np.int64), "sh")]),
            single(f"BiasGelu {shape}", "BiasGelu", [("a", shape, F)], shape, [_w("c", [cols])], domain=MS),
            single(f"QuickGelu {shape}", "QuickGelu", [("a", shape, F)], shape, attrs={"alpha": 1.702}, domain=MS),
            single(f"FastGelu {shape}", "FastGelu", [("a", shape, F)], shape, [_w("c", [cols])], domain=MS),
            single(f"SkipLayerNormalization {shape}", "SkipLayerNormalization", [("a", shape, F), ("s", shape, F)],
                   shape, [_w("g", [cols]), _w("bb", [cols], 2)], domain=MS),
        ]
        short = [rows_ * cols // 32, 32]  # the same elements in rows of 32: attention over a short context
        rows += [
            single(f"Softmax {short}", "Softmax", [("a", short, F)], short, attrs={"axis": -1}),
            single(f"LayerNormalization {short}", "LayerNormalization", [("a", short, F)], short,
                   [_w("g", [32]), _w("bb", [32], 2)], {"axis": -1}),
            single(f"ReduceMean {short}", "ReduceMean", [("a", short, F)], [short[0], 1], attrs={"axes": [-1]}),
            single(f"SkipLayerNormalization {short}", "SkipLayerNormalization", [("a", short, F), ("s", short, F)],
                   short, [_w("g", [32]), _w("bb", [32], 2)], domain=MS),
        ]
        c = max(16, cols // 16)
        hw = max(4, int((n / c) ** 0.5))
        img = [1, c, hw, hw]
        rows += [
            single(f"MaxPool {img}", "MaxPool", [("a", img, F)], None, attrs={"kernel_shape": [3, 3], "strides": [2, 2],
                                                                               "pads": [1, 1, 1, 1]}),
            single(f"AveragePool {img}", "AveragePool", [("a", img, F)], None,
                   attrs={"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
            single(f"GlobalAveragePool {img}", "GlobalAveragePool", [("a", img, F)], [1, c, 1, 1]),
            single(f"LRN {img}", "LRN", [("a", img, F)], img, attrs={"size": 5, "alpha": 1e-4, "beta": 0.75}),
            single(f"BatchNormalization {img}", "BatchNormalization", [("a", img, F)], img,
                   [_w("s", [c]), _w("bb", [c], 2), _w("mu", [c], 3),
                    numpy_helper.from_array(np.ones(c, np.float32), "var")]),
        ]
    return rows


def suite(quick: bool = False) -> list[Bench]:
    return (_stream_benches(quick) + _gemm_benches(quick) + _conv_benches(quick)
            + _int8_benches(quick) + _rnn_benches(quick) + _vector_benches(quick))


# ---- progress -------------------------------------------------------------------------------------------


class _Progress:
    """A one-line bar on a terminal; plain lines (every 10%) on a pipe or in a log."""

    def __init__(self, total: int, stream=None, enabled: bool = True) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / self.total if self.total else 1.0
        if self.tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\rcalibrating [{bar:<30}] {self.done}/{self.total} {label[:40]:<40}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            print(f"calibrating: {self.done}/{self.total} ({label})", file=self.stream, flush=True)


# ---- the whole calibration ------------------------------------------------------------------------------


def _fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b·x; returns (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def _trimmed_mean(xs: list[float], cut: float = 0.2) -> float:
    """Mean of the middle (1 - 2·cut) of `xs`: profiled durations are whole microseconds, so a mean over many
    nodes resolves below one where a median cannot, and the trimming drops the preempted ones."""
    xs = sorted(xs)
    k = int(len(xs) * cut)
    mid = xs[k:len(xs) - k] or xs
    return sum(mid) / len(mid)


OVERHEAD_IO = 8  # graph inputs and outputs of the wide chain that times the per-io overhead


def overhead_timings(threads: int, quick: bool, workdir: Path, progress: Callable[[str], None],
                     gate: QuietGate | None = None, repeats: int = 3) -> dict[str, float]:
    """What Overheads are fitted from (overheads_from): the quickest end to end of Relu chains of several
    lengths ("chain N"), of a 64-chain with OVERHEAD_IO inputs and outputs ("io"), and the profiler's bias."""
    lengths = [1, 64, 256] if not quick else [1, 64]
    runs = 200 if not quick else 40
    repeats = repeats if not quick else 1

    def quickest_e2e(bench: Bench) -> float:
        """The quickest of `repeats` measurements, each after waiting for a quiet moment: these two numbers
        are subtracted from every microbenchmark, so a busy moment here would skew all of them."""
        times = []
        for _ in range(repeats):
            if gate is not None:
                gate.wait(0.5)
            times.append(e2e_seconds(bench, threads, runs, 0.3))
        return min(times)

    out = {}
    for n in lengths:
        out[f"chain {n}"] = quickest_e2e(chain(n))
        progress(f"chain {n}")
    out["io"] = quickest_e2e(chain(64, ios=OVERHEAD_IO))
    progress("chain io")
    p = profiled(chain(128), threads, 20 if not quick else 5, 0.5, workdir)
    out["bias"] = _trimmed_mean(list(p.node_s.values()))
    progress("profiler bias")
    return out


def overheads_from(*timings: dict[str, float]) -> Overheads:
    """Launch and run overhead: the line through the chains' times against their length; per io: the wide
    chain beyond the narrow one, per extra input or output. Given several sets of timings (taken at different
    moments of a calibration), each figure is the quickest of them: a neighbour's burst only ever adds time,
    and these figures are subtracted from every microbenchmark and added to every prediction."""
    best = {k: min(t[k] for t in timings) for k in timings[0]}
    lengths = sorted(int(k.split()[1]) for k in best if k.startswith("chain "))
    run0, launch = _fit_line(lengths, [best[f"chain {n}"] for n in lengths])
    per_io = max(0.0, (best["io"] - best["chain 64"]) / (2 * (OVERHEAD_IO - 1)))
    return Overheads(max(launch, 1e-8), max(run0, 0.0), per_io, best["bias"])


def _family_counts(bench: Bench, workdir: Path) -> tuple[dict[str, int], dict[str, tuple[int, int, str]]]:
    """How many nodes of each family the optimized chain runs, and one node's (FLOPs, bytes, op class) per
    family."""
    from planner.costs import OpClass, node_cost
    from planner.model.analyze import Analyzer, build_graph
    from planner.model.loader import load_model
    from planner.ort.executed import infer_optimized, make_session, session_options
    from planner.predict.fusion import kernel_family

    src, opt = workdir / "chain.onnx", workdir / "chain.opt.onnx"
    src.write_bytes(bench.model)
    make_session(str(src), session_options(1, optimized_path=str(opt), external_file="chain.opt.data"))
    inferred, _ = infer_optimized(onnx.load(str(opt), load_external_data=False), Analyzer(load_model(src)).analyze())
    counts: dict[str, int] = {}
    one: dict[str, tuple[int, int, str]] = {}
    for node in build_graph(inferred, fold_constants=False).nodes:
        nc = node_cost(node)
        fam = kernel_family(node, nc.op_class) if nc.op_class != OpClass.VIEW else "view"
        counts[fam] = counts.get(fam, 0) + 1
        one[fam] = (nc.cost.flops, nc.cost.bytes, nc.op_class.value)
    return counts, one


@dataclass(frozen=True)
class ChainTiming:
    """A tiny chain's growth from `short` to `long` nodes: seconds per step, and the nodes of each family a
    step adds (with one such node's FLOPs and bytes)."""
    name: str
    per_step_s: float
    grown: dict[str, float]  # family -> nodes per step
    one: dict[str, tuple[int, int, str]]  # (FLOPs, bytes, op class) of one node


def chain_timings(threads: int, quick: bool, workdir: Path, progress: Callable[[str], None]) -> list[ChainTiming]:
    """Tiny chains of each family at two lengths (chain_samples turns them into per-node costs)."""
    names = [n for n in _steps() if n != "Relu"]
    if quick:
        names = ["Add", "gemm", "nchwc.conv"]
    short, long_ = (8, 40) if quick else (8, 200)  # long: a per-node figure that noise barely moves
    runs = 40 if quick else 80
    out = []
    for name in names:
        try:
            a, b = tiny_chain(name, short), tiny_chain(name, long_)
            counts_a, one = _family_counts(a, workdir)
            counts_b, _ = _family_counts(b, workdir)
            # a difference of two sub-microsecond figures per node: each the quickest of several
            ta = min(e2e_seconds(a, threads, runs, 0.1) for _ in range(CHAIN_REPEATS))
            tb = min(e2e_seconds(b, threads, runs, 0.1) for _ in range(CHAIN_REPEATS))
        except PlannerError:
            progress(f"tiny {name}")
            continue
        grown = {f: (counts_b.get(f, 0) - counts_a.get(f, 0)) / (long_ - short) for f in counts_b}
        grown = {f: d for f, d in grown.items() if d > 0}
        if grown:
            out.append(ChainTiming(name, (tb - ta) / (long_ - short), grown, one))
        progress(f"tiny {name}")
    return out


def chain_samples(timings: Sequence[ChainTiming], launch_s: float) -> list[Sample]:
    """Per-node cost of tiny nodes of each family beyond a Relu's, from the slope of chain length vs time:
    every family that grows with the chain shares the step's time beyond one launch per node."""
    out = []
    for c in timings:
        nodes_per_step = sum(c.grown.values())
        excess = max(c.per_step_s - nodes_per_step * launch_s, 0.0) / nodes_per_step
        for fam in c.grown:
            flops, nbytes, cls = c.one[fam]
            op_class = "matrix" if cls == "matrix" else "vector"
            out.append(Sample(fam, op_class, "fp32" if op_class == "matrix" else "vector", flops, nbytes,
                              excess, f"tiny {c.name}", "chain"))
    return out


def runtime_memory(threads: int, workdir: Path) -> int | None:
    """What a session costs in resident memory before any model-sized tensor: a 16-float model measured in a
    fresh process (planner.ort.measure), so the thread pool, arena and kernel registry are all that is there."""
    from planner.ort.measure import measure

    path = workdir / "tiny.onnx"
    path.write_bytes(chain(8).model)
    try:
        return measure(path, {}, threads, runs=3, warmup=1).rss_peak_bytes
    except PlannerError:
        return None


def residency_model(kind: str) -> tuple[bytes, int]:
    """A model whose memory is its weights: 16 MiB feeding MatMuls ("gemm": 4 x [8, 1024] x [1024, 1024]) or
    3x3 convolutions ("conv": 7 x 256 -> 256 on 14 x 14, which onnxruntime runs as NCHWc), with its weight bytes."""
    nodes, inits, prev = [], [], "x"
    if kind == "gemm":
        n, x, w_shape = 4, [8, 1024], [1024, 1024]
    else:
        n, x, w_shape = 7, [1, 256, 14, 14], [256, 256, 3, 3]
    for i in range(n):
        inits.append(_w(f"w{i}", w_shape, seed=i + 1))
        attrs = {} if kind == "gemm" else {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
        nodes.append(helper.make_node("MatMul" if kind == "gemm" else "Conv", [prev, f"w{i}"], [f"c{i}"], **attrs))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    return _model(nodes, [_vi("x", x)], [_vi(prev, x)], inits), n * 4 * int(np.prod(w_shape))


def weight_residency(threads: int, workdir: Path, workspace: int | None) -> dict[str, float]:
    """Resident bytes per weight byte for each kind of weight (planner.predict.memory.residency_kind): onnxruntime keeps
    an initializer and also its prepacked (MatMul) or NCHWc-reordered (Conv) form, so a model's memory is
    not its weights once. Each model is measured like `plan validate` measures (planner.ort.measure, a fresh
    process), less the tiny model's resident memory (`workspace`). 2026-12-02 here: gemm 1.70, conv 3.25."""
    from planner.ort.measure import measure

    if not workspace:
        return {}
    out = {}
    for kind in ("gemm", "conv"):
        model, weight_bytes = residency_model(kind)
        path = workdir / f"residency-{kind}.onnx"
        path.write_bytes(model)
        try:
            rss = measure(path, {}, threads, runs=3, warmup=1).rss_peak_bytes
        except PlannerError:
            continue
        if rss:
            out[kind] = round(max((rss - workspace) / weight_bytes, 1.0), 3)
    return out


def quickest(passes: Sequence[Sequence[Sample]]) -> list[Sample]:
    """Per sample (same benchmark, node work and family), the quickest of the passes: a neighbour's burst
    slows every kernel it overlaps by up to a quarter for seconds at a time, and only ever adds time."""
    best: dict[tuple, Sample] = {}
    for samples in passes:
        for s in samples:
            key = (s.label, s.family, s.flops, s.bytes, s.steps, s.source)
            if key not in best or s.seconds < best[key].seconds:
                best[key] = s
    return list(best.values())


def calibrate(threads: int = 1, quick: bool = False, progress_stream=None, show_progress: bool = True
              ) -> Measurements:
    """Run the suite; `quick` is a small subset (seconds) for tests and smoke checks."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise CalibrationError("plan calibrate needs onnxruntime (pip install onnxruntime)") from None
    from planner.ort.executed import make_session, session_options

    start = time.perf_counter()
    benches = suite(quick)
    n_chains = 3 if quick else len(_steps()) - 1
    n_passes = 1 if quick else PASSES
    chains_w = weight_chains(quick)
    chains_a = ACTIVATION_CHAINS if not quick else ACTIVATION_CHAINS[:1]
    mixed = MIXED_BLOCKS
    steps = (len(benches) + len(chains_w) + len(chains_a) + len(mixed)) * n_passes + n_chains + (5 if quick else 11)
    bar = _Progress(steps, progress_stream, show_progress)
    with tempfile.TemporaryDirectory(prefix="planner-calibrate-") as tmp:
        work = Path(tmp)
        gate = QuietGate(threads, budget_s=6.0 if not quick else 1.0)  # bounded: under a minute in all
        gate.wait(2.0 if not quick else 0.2)  # learn how fast the probe runs when nothing disturbs it
        # the overheads are timed at the start and again at the end, and every sample is made from the
        # quickest of the two once both are in (overheads_from): one burst cannot skew them all
        overhead_times = [overhead_timings(threads, quick, work, bar.step, gate)]
        runs = 30 if not quick else 5
        notes: list[str] = []
        workspace = runtime_memory(threads, work)
        residency = weight_residency(threads, work, workspace)
        bar.step("runtime memory")
        passes: list[list[Callable[[Overheads], list[Sample]]]] = []
        weight_sessions: dict[tuple, object] = {}
        tiny: list[ChainTiming] = []
        for i in range(n_passes):
            samples: list[Callable[[Overheads], list[Sample]]] = []
            if i == 0:  # chains already take the quicker of two interleaved measurements
                gate.wait(1.0 if not quick else 0.05)
                tiny = chain_timings(threads, quick, work, bar.step)
            for b in benches:
                gate.wait(1.0 if not quick else 0.05)
                try:
                    p = profiled(b, threads, runs, 0.15 if not quick else 0.05, work, e2e=True)
                except PlannerError as e:  # one kernel this build lacks must not sink the calibration
                    if i == 0:
                        notes.append(f"{b.label}: skipped ({e})")
                else:
                    samples.append(lambda o, p=p, label=b.label: samples_of(p, o, label))
                bar.step(b.label)
            for k, length, transposed in chains_w:
                key = (k, length, transposed)
                if key not in weight_sessions:  # built once, timed in every pass (256 MiB take seconds to build)
                    bench = weight_chain(k, length, transposed)
                    weight_sessions[key] = (bench, make_session(bench.model, session_options(threads)))
                bench, session = weight_sessions[key]
                gate.wait(1.0 if not quick else 0.05)
                t = e2e_seconds(bench, threads, 200 if not quick else 20, 0.2 if not quick else 0.05, session)
                samples.append(lambda o, a=(bench, k, length, transposed, t): [weight_chain_sample(*a, o)])
                bar.step(bench.label)
            for h, m, k in chains_a:
                gate.wait(1.0 if not quick else 0.05)
                bench = activation_chain(h, m, k)
                t = e2e_seconds(bench, threads, 200 if not quick else 20, 0.1 if not quick else 0.05)
                samples.append(lambda o, a=(bench, h, m, k, t): [activation_chain_sample(*a, o)])
                bar.step(bench.label)
            for blocks in mixed:
                bench = mixed_graph(blocks)
                times = []
                for _ in range(MIXED_REPEATS if not quick else 1):  # a difference of two: each its quickest
                    gate.wait(1.0 if not quick else 0.05)
                    times.append(e2e_seconds(bench, threads, 400 if not quick else 40, 0.15 if not quick else 0.05))
                whole = mixed_sample(blocks, min(times))  # needs no overheads
                samples.append(lambda o, s=whole: [s])
                bar.step(bench.label)
            passes.append(samples)
        weight_sessions.clear()
        if not quick:
            overhead_times.append(overhead_timings(threads, quick, work, bar.step, gate, repeats=2))
        o = overheads_from(*overhead_times)
        made = [[s for pending in p for s in pending(o)] for p in passes]
        made[0] += chain_samples(tiny, o.launch_s)
        if gate.noisy:
            notes.append(f"the machine was busy: {gate.noisy} microbenchmarks ran after {gate.waited_s:.0f} s of "
                         "waiting for a quiet moment (planner.ort.quiet)")
    return Measurements(threads=threads, launch_overhead_s=o.launch_s, run_overhead_s=o.run_s,
                        run_overhead_per_io_s=o.per_io_s, profiler_bias_s=o.profiler_bias_s, samples=quickest(made),
                        workspace_bytes=workspace, weight_residency=residency,
                        seconds=time.perf_counter() - start, notes=notes, quick=quick, probe_s=gate.best_s,
                        busy=gate.noisy)
