"""What onnxruntime costs beyond the kernels: per Run call, per input and output, per node, and the profiler's bias.

    per-run and per-node cost   chains of n tiny Relu nodes, n in {1, 64, 256}: the median end-to-end time
                                (no profiler) is  run_overhead + n · launch ; least squares gives both.
                                A second family of chains has k inputs and outputs: the per-I/O part.
    profiler bias               the same chains profiled: a tiny node's recorded duration is mostly the
                                profiler's own bookkeeping; validate subtracts it from every node it compares.
    family fixed costs          chains of 8 and 200 tiny nodes of one family (tiny_chain): the per-node cost
                                of each family beyond a Relu's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from planner.calibration.benches import SUBGRAPH_BENCHES, Bench, chain, chain_steps, tiny_chain
from planner.calibration.samples import Sample
from planner.calibration.timing import Overheads, e2e_seconds, profiled
from planner.costs import OpClass, node_cost
from planner.errors import PlannerError
from planner.model.analyze import Analyzer
from planner.model.build import build_graph
from planner.model.loader import load_model
from planner.ort.executed import infer_optimized
from planner.ort.quiet import QuietGate
from planner.ort.session import make_session, session_options
from planner.predict.families import kernel_family

CHAIN_REPEATS = 3  # tiny_chain timings (chain_samples)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
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


SUBGRAPH_RUNS = (8, 200)  # subgraph runs in the short and the long bench: their difference cancels the per-run cost


def subgraph_samples(threads: int, quick: bool, gate: QuietGate | None = None) -> list[Sample]:
    """End-to-end times of the If and Loop benches at two run counts (planner.calibration.fit.subgraph_residuals
    turns them into a cost per subgraph run beyond what its nodes are predicted to take)."""
    counts = (8, 40) if quick else SUBGRAPH_RUNS
    out = []
    for op, build in SUBGRAPH_BENCHES.items():
        for n in counts:
            bench = build(n)
            best = []
            for _ in range(1 if quick else CHAIN_REPEATS):
                if gate is not None:
                    gate.wait(0.5)
                best.append(e2e_seconds(bench, threads, 40 if quick else 80, 0.1))
            out.append(Sample(op, "vector", "vector", 0, 0, min(best), bench.label, "subgraph", steps=n))
    return out


def overheads_from(*timings: dict[str, float]) -> Overheads:
    """Launch and run overhead: the line through the chains' times against their length; per io: the wide
    chain beyond the narrow one, per extra input or output. Given several sets of timings (taken at different
    moments of a calibration), each figure is the quickest of them: a neighbour's burst only ever adds time,
    and these figures are subtracted from every microbenchmark and added to every prediction."""
    best = {k: min(t[k] for t in timings) for k in timings[0]}
    lengths = sorted(int(k.split()[1]) for k in best if k.startswith("chain "))
    run0, launch = fit_line(lengths, [best[f"chain {n}"] for n in lengths])
    per_io = max(0.0, (best["io"] - best["chain 64"]) / (2 * (OVERHEAD_IO - 1)))
    return Overheads(max(launch, 1e-8), max(run0, 0.0), per_io, best["bias"])


def _family_counts(bench: Bench, workdir: Path) -> tuple[dict[str, int], dict[str, tuple[int, int, str]]]:
    """How many nodes of each family the optimized chain runs, and one node's (FLOPs, bytes, op class) per
    family."""

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
    names = [n for n in chain_steps() if n != "Relu"]
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
