"""onnxruntime's CPU arena (planner.predict.arena): regions grown as BFCArena grows them, best fit, and the bytes
written; the numbers are worked out by hand from the rules in the module docstring, and one model's resident
memory is measured with onnxruntime."""

from pathlib import Path

import pytest

from planner.predict.arena import Arena, Lifetime, resident_bytes

MIB = 1 << 20


def test_a_region_doubles_to_fit_a_request_and_the_next_doubles_only_after_one_made_without_doubling():
    a = Arena()
    a.alloc(3 * MIB)  # 1 MiB < 3 MiB: doubled to 4 MiB, and stays 4 for the next
    assert a.regions == [4 * MIB]
    a.alloc(3 * MIB)  # 4 MiB fits: a region of 4 MiB, made without doubling, so the next is 8
    a.alloc(1 * MIB)
    assert a.regions == [4 * MIB, 4 * MIB, 8 * MIB]
    # the 1 MiB request split its 8 MiB region (at least twice the request), so the rest takes 6 MiB more
    a.alloc(6 * MIB)
    assert a.regions == [4 * MIB, 4 * MIB, 8 * MIB]
    assert a.resident_bytes() == (3 + 3 + 1 + 6) * MIB


def test_a_freed_chunk_is_taken_whole_by_a_request_of_more_than_half_and_coalesces_with_its_free_neighbour():
    a = Arena()
    first = a.alloc(512 << 10)  # the initial 1 MiB region, split (1 MiB >= 2 x 512 KiB)
    second = a.alloc(512 << 10)  # the other half, whole
    a.free(first)
    a.free(second)  # coalesced: one free 1 MiB chunk again
    a.alloc(1 * MIB)
    assert a.regions == [MIB]
    assert a.resident_bytes() == MIB


def test_a_chain_keeps_twice_its_live_intermediates_resident():
    """Six steps over 8 MiB tensors, each read by the next (t5 the graph's output). First run: t0 takes a region of
    8 MiB (doubled from 1 to fit), t1 a second of 8 (not doubled: the next will be 16), t2..t4 alternate in the
    freed ones, t5 takes one of them. Second run: the pattern of two live intermediates, 16 MiB, fits no freed
    chunk: a region of 16. Written: 8 + 8 + 16 = 32 MiB, where the live peak is 16 (+ the output)."""
    lives = [Lifetime(8 * MIB, i, i + 1) for i in range(5)] + [Lifetime(8 * MIB, 5, 6, output=True)]
    assert resident_bytes(lives, pattern_bytes=16 * MIB) == 32 * MIB


def test_a_pattern_that_fits_a_freed_region_adds_nothing():
    """Two 8 MiB intermediates alive together in regions of 8 and 8, the 4 MiB output in a third (16 MiB, split):
    the 16 MiB pattern fits the third once the output is freed and coalesced; the output again in a region of 8."""
    lives = [Lifetime(8 * MIB, 0, 2), Lifetime(8 * MIB, 1, 2), Lifetime(4 * MIB, 2, 3, output=True)]
    assert resident_bytes(lives, pattern_bytes=16 * MIB) == (8 + 8 + 16) * MIB


def test_the_arena_walk_gives_what_onnxruntime_keeps_resident_for_a_chain_of_activations(tmp_path: Path):
    """A chain of six Sin over 8 MiB tensors, measured in a fresh process (planner.ort.measure) less a session's
    own memory: onnxruntime kept 41 MiB on a Zen 4 EPYC; the input (8 MiB, the caller's) plus the walk's 32."""
    from onnx import helper

    from planner.calibration.benches import make, vi
    from planner.calibration.host import predict_ort
    from planner.calibration.residency import runtime_memory
    from planner.model.loader import load_model
    from planner.ort.measure import measure
    from planner.predict.fusion import graph_costs
    from planner.predict.memory import arena_growth_bytes, peak_activation_bytes

    e = 2 * MIB  # floats: 8 MiB
    nodes = [helper.make_node("Sin", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"]) for i in range(6)]
    path = tmp_path / "chain.onnx"
    path.write_bytes(make(nodes, [vi("x", [1, e])], [vi("t5", [1, e])]))
    graph = predict_ort(load_model(path)).analysis.graph
    costs = graph_costs(graph)
    live, arena = peak_activation_bytes(graph, costs), arena_growth_bytes(graph, costs)
    assert live + arena == 40 * MIB
    session = runtime_memory(1, tmp_path)
    rss = measure(path, {}, 1, runs=2, warmup=2).rss_peak_bytes
    if rss is None or session is None:
        pytest.skip("resident memory is not readable here")
    assert live + arena == pytest.approx(rss - session, rel=0.1)
