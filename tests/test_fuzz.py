"""A short fuzz run finds no crash; each crash the long runs found is pinned here as a regression test."""

from __future__ import annotations

import time

import onnx
import pytest
from onnx import TensorProto, helper

from harness.fuzz import SEEDS, SIDE_FILES, Mutant, args_for, mutant, run_mutant
from harness.outcome import PLANNED, REFUSED, Tally

SECONDS = 6.0  # CI budget; benchmarks/fuzz_models.py runs for as long as you like


def test_mutants_are_a_pure_function_of_seed_and_iteration():
    a, b = mutant(7, 123), mutant(7, 123)
    assert a.data == b.data and a.steps == b.steps
    assert mutant(7, 124).data != a.data or mutant(7, 124).steps != a.steps


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_model_plans_unmutated(tmp_path, name):
    mt = Mutant(name, SEEDS[name]().SerializeToString(), (), dict(SIDE_FILES.get(name, {})))
    o = run_mutant(mt, tmp_path / "m", ["--target", "a10g", "--json", "--passes", "none", "--max-batch", "2"])
    assert o.kind == PLANNED, o.message


def test_short_fuzz_run_finds_no_crash(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    seed = 20260  # fixed: a CI failure replays with benchmarks/fuzz_models.py --replay 20260:ITER
    tally, i, t0 = Tally(), 0, time.perf_counter()
    while time.perf_counter() - t0 < SECONDS:
        mt = mutant(seed, i)
        tally.add(f"{seed}:{i} {mt.seed_name} {'; '.join(mt.steps)}",
                  run_mutant(mt, tmp_path / "m", args_for(seed, i), 60, watch=work))
        i += 1
    assert tally.crashes == [], tally.summary("fuzz")
    assert tally.total >= 20 and tally.planned > 0 and tally.refused  # both outcomes exercised


# ---- regressions: the crashes the long runs found (seed 1), each fixed at its root ---------------------------


@pytest.mark.parametrize("iteration,needle", [
    (705, "not valid UTF-8"),  # a bit flip in a node's domain: protobuf hands back bytes
    (1636, "not valid UTF-8"),  # ... in an external data location
    (2209, "File name too long"),  # a 5,000-character location: is_file() raises ENAMETOOLONG
    (2338, "its schema says int"),  # Scan's num_scan_inputs holding a sparse tensor
])
def test_fuzz_findings_are_refused_cleanly(tmp_path, iteration, needle):
    o = run_mutant(mutant(1, iteration), tmp_path / "m", args_for(1, iteration))
    assert o.kind == REFUSED and needle in o.message, (o.kind, o.message)


@pytest.mark.parametrize("iteration,expect", [
    (602, REFUSED),  # Scan num_scan_inputs = 2^31 - 1: onnxruntime's inference built [0] * 2^31 (16 GB)
    (9404, PLANNED),  # Range(0, 2^56) -> Cast: onnx's data propagation materialized it (OOM kill)
    (10360, PLANNED),  # an undefined element type inside a Loop body: onnxruntime's nested pass loop spun
    (13296, REFUSED),  # the same inside an If branch (then refused for its pinned batch)
])
def test_seed_2_findings_end_quickly(tmp_path, iteration, expect):
    t0 = time.perf_counter()
    o = run_mutant(mutant(2, iteration), tmp_path / "m", args_for(2, iteration), timeout_s=60)
    assert o.kind == expect, o.message
    assert time.perf_counter() - t0 < 30


def test_a_pooling_window_over_a_huge_axis_is_counted_quickly(tmp_path):
    """Seed 20260 (the short run's), iteration 896: a MaxPool's input dim set to billions; the window taps were
    counted output by output (planner.costs.pool.axis_taps) and the plan ran past 60 s."""
    t0 = time.perf_counter()
    o = run_mutant(mutant(20260, 896), tmp_path / "m", args_for(20260, 896), timeout_s=60)
    assert o.kind == PLANNED, o.message
    assert time.perf_counter() - t0 < 30


def test_refusal_naming_a_tensor_with_a_newline_stays_on_one_line(tmp_path, capsys):
    """Seed 3, iteration 70589: a bit flip put a newline into a tensor name, and the refusal into two lines."""
    from planner.cli import main

    mt = mutant(3, 70589)
    p = tmp_path / "m.onnx"
    p.write_bytes(mt.data)
    for name, content in mt.side_files.items():
        (tmp_path / name).write_bytes(content)
    assert main([str(p), *args_for(3, 70589)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'g\\n\\x02bb'" in err, err


def test_untyped_input_no_longer_spins_onnxruntime_symbolic_inference(tmp_path):
    """Seed 2, iteration 534: an input of element type UNDEFINED made onnxruntime's symbolic shape inference
    loop forever (its driver reruns while anything changed); our driver stops after MAX_PASSES."""
    t0 = time.perf_counter()
    o = run_mutant(mutant(2, 534), tmp_path / "m", args_for(2, 534), timeout_s=60)
    assert o.kind == PLANNED, o.message
    assert time.perf_counter() - t0 < 30


def test_attribute_of_the_wrong_type_refused_but_unknown_attributes_and_custom_ops_pass(tmp_path):
    from harness.outcome import run_plan_cli

    def save(node, domain_opsets=()):
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), *domain_opsets])
        p = tmp_path / "m.onnx"
        onnx.save(m, p)
        return p

    bad = helper.make_node("Softmax", ["x"], ["y"])
    bad.attribute.append(helper.make_attribute("axis", "minus one"))  # a string where the schema says int
    o = run_plan_cli(save(bad), ("--passes", "none", "--json"))
    assert o.kind == REFUSED and "attribute 'axis' is a string, its schema says int" in o.message
    extra = helper.make_node("Softmax", ["x"], ["y"], axis=-1, my_hint="fast")  # not in the schema: ignored
    assert run_plan_cli(save(extra), ("--passes", "none", "--json")).kind == PLANNED
    custom = helper.make_node("Frob", ["x"], ["y"], domain="com.example", axis="any type goes")
    assert run_plan_cli(save(custom, [helper.make_opsetid("com.example", 1)]),
                        ("--passes", "none", "--json")).kind == PLANNED

