"""What a small node pays when weights went by since its kind last ran (planner.predict.cold), by the bytes between.

Two graphs hold the same nodes: per block, two GEMVs over weights of the block's own ([d, S] and [S, d]: 8 d S
bytes) and a decoder's block of small nodes (benches.mixed_graph's, without its d x d MatMul). Interleaved, each
block's small nodes run right after its weights went by; grouped, every GEMV runs first and then every block of
small nodes, one after the other, so only the first block finds its kinds cold. Same kernels, same bytes, same
run: the streams' own time, which on a shared machine moves by more than the effect, is in both and not compared.
What is compared is the small nodes' profiled time, summed per run: the interleaved graph's over the grouped
one's, over the blocks less one and over the kinds in a block (what planner.predict.cold charges), is the cost of
one cold kind after that many bytes. The profiler's own cost per node is in both and cancels.

Measured on a Xeon with AMX under KVM (2026-12-08, d = 64): about 0.2 us a kind at 256 KiB between, 0.5 at
1 MiB, 1.3-1.7 at 4 MiB; the first node after the weights (a Mul) paid most (+3.5-4.2 us), a second Reshape
in the block less than the first.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import onnx
from onnx import helper

from planner.calibration.benches import Bench, make, mixed_graph, rand, vi, weight
from planner.calibration.samples import Sample
from planner.ort.profile import load_profile
from planner.ort.session import make_session, session_options

D = 64
# (S, blocks): 8 D S bytes of weights a block (256 KiB, 1 MiB, 4 MiB), at least 24 MiB of them in all, so that
# the weights come from beyond the L2 as a model's do
COLD_STREAMS = ((512, 96), (2048, 48), (8192, 24))
STREAM_KIND = "MatMul"
WARM_RUNS = 5


def cold_label(blocks: int, s: int, interleaved: bool = True, d: int = D) -> str:
    return f"cold {'interleaved' if interleaved else 'grouped'} {blocks}x{8 * d * s // 1024}KiB"


def cold_pair(blocks: int, s: int, d: int = D) -> tuple[Bench, Bench]:
    """(interleaved, grouped) graphs of `blocks` blocks, 8 d s bytes of weights a block."""
    base = onnx.load_from_string(mixed_graph(blocks, d).model)
    inits = [t for t in base.graph.initializer if not t.name.endswith("_w")]
    blocks_: list[tuple[list[onnx.NodeProto], str]] = []  # each block's small nodes and its output
    current: list[onnx.NodeProto] = []
    for n in base.graph.node:
        if n.op_type == STREAM_KIND:  # the block's d x d MatMul ends it: dropped, its input is the block's output
            blocks_.append((current, n.input[0]))
            current = []
        else:
            current.append(n)
    for i in range(blocks):
        inits += [weight(f"u{i}", [d, s], 100 + i), weight(f"v{i}", [s, d], 300 + i)]

    def stream(i: int, src: str) -> list[onnx.NodeProto]:
        return [helper.make_node(STREAM_KIND, [src, f"u{i}"], [f"h{i}"]),
                helper.make_node(STREAM_KIND, [f"h{i}", f"v{i}"], [f"s{i}"])]

    def small(i: int, src: str) -> tuple[list[onnx.NodeProto], str]:
        """Block i's small nodes reading `src` where mixed_graph had them read the block before's output."""
        nodes, out = blocks_[i]
        before = "x" if i == 0 else f"b{i - 1}_out"
        moved = []
        for n in nodes:
            m = onnx.NodeProto()
            m.CopyFrom(n)
            for j, t in enumerate(m.input):
                if t == before:
                    m.input[j] = src
            moved.append(m)
        return moved, out

    def graph(interleaved: bool) -> Bench:
        nodes, prev = [], "x"
        if not interleaved:
            for i in range(blocks):
                nodes += stream(i, prev)
                prev = f"s{i}"
        for i in range(blocks):
            if interleaved:
                nodes += stream(i, prev)
                prev = f"s{i}"
            more, prev = small(i, prev)
            nodes += more
        nodes.append(helper.make_node("Identity", [prev], ["y"]))
        read = {t for n in nodes for t in n.input}
        return Bench(cold_label(blocks, s, interleaved, d), make(nodes, [vi("x", [1, 1, d])], [vi("y", [1, 1, d])],
                                 [t for t in inits if t.name in read]), {"x": rand([1, 1, d], 6)})

    return graph(True), graph(False)


def _small_node_seconds(bench: Bench, threads: int, runs: int, work: Path) -> tuple[float, set[str]]:
    """The median over runs of the small nodes' profiled time in a run, and their kinds."""
    so = session_options(threads, profile_prefix=str(work / "cold"))
    session = make_session(bench.model, so)
    for _ in range(WARM_RUNS + runs):
        session.run(None, bench.feeds)
    profile = load_profile(session.end_profiling())
    per_run: dict[int, float] = defaultdict(float)
    kinds = set()
    for n in profile.nodes:
        if n.run >= WARM_RUNS and n.op_type not in (STREAM_KIND, "Identity"):
            per_run[n.run] += n.dur_us * 1e-6
            kinds.add(n.op_type)
    return statistics.median(per_run.values()), kinds


def cold_sample(s: int, blocks: int, threads: int, runs: int, work: Path) -> Sample:
    """One point of the cold cost: seconds a kind pays after 8 D s bytes of weights went by (Sample.bytes)."""
    interleaved, grouped = cold_pair(blocks, s)
    hot, kinds = _small_node_seconds(grouped, threads, runs, work)
    cold, _ = _small_node_seconds(interleaved, threads, runs, work)
    per_kind = max(cold - hot, 0.0) / ((blocks - 1) * len(kinds))
    return Sample("cold", "vector", "vector", 0, 8 * D * s, per_kind, interleaved.label, "cold", steps=blocks)
