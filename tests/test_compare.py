"""Kernel matching and change attribution between two plans (planner.ci.compare), on hand-written plan dicts."""

from __future__ import annotations

import json
import math

import pytest
from gate_models import build_mlp

from planner.ci.compare import compare_configs, kernel_changes, relative_change
from planner.cli import main


def _k(name, ops, ms, flops=0):
    return {"name": name, "ops": ops, "time_ms": ms, "flops": flops}


def test_relative_change():
    assert relative_change(2.0, 3.0) == 0.5
    assert relative_change(4.0, 3.0) == -0.25
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.0, 1.0) == math.inf
    assert relative_change(None, 1.0) is None


def test_kernels_match_by_name_and_occurrence():
    old = [_k("a", "MatMul", 1.0), _k("", "Add", 0.5), _k("", "Add", 0.25), _k("gone", "Relu", 0.1)]
    new = [_k("a", "MatMul+Relu", 3.0), _k("", "Add", 0.5), _k("", "Add", 0.75), _k("fresh", "Softmax", 0.2)]
    by = {(c.name, c.status): c for c in kernel_changes(old, new)}
    assert by[("a", "changed")].delta_ms == 2.0 and by[("a", "changed")].old_ops == "MatMul"
    # the two unnamed Adds pair up in order: the second one grew by 0.5
    unnamed = [c for c in kernel_changes(old, new) if c.name == "<unnamed Add>"]
    assert sorted(c.delta_ms for c in unnamed) == [0.0, 0.5]
    assert by[("gone", "removed")].delta_ms == pytest.approx(-0.1)
    assert by[("fresh", "added")].delta_ms == pytest.approx(0.2)
    # largest absolute change first
    assert [c.name for c in kernel_changes(old, new)][:2] == ["a", "<unnamed Add>"]


def test_top_kernels_stop_once_most_of_the_change_is_explained():
    old = {"latency_ms": 10.0, "all_kernels": [_k(f"k{i}", "MatMul", 1.0) for i in range(10)]}
    grow = [6.0, 2.0, 1.0, 0.5, 0.5]  # total +10 ms: the first three explain 90%
    new = {"latency_ms": 20.0, "all_kernels": [_k(f"k{i}", "MatMul", 1.0 + (grow[i] if i < 5 else 0))
                                               for i in range(10)]}
    c = compare_configs(old, new)
    assert c.kernels_complete
    assert [k.name for k in c.top_kernels()] == ["k0", "k1", "k2"]
    assert c.change("latency_ms").ratio == 1.0


def test_without_all_kernels_falls_back_to_top_kernels_and_says_so():
    old = {"latency_ms": 2.0, "kernels": [_k("a", "MatMul", 1.5)], "time_by_op_type_ms": {"MatMul": 1.5, "Add": .5}}
    new = {"latency_ms": 3.0, "kernels": [_k("a", "MatMul", 2.5)], "time_by_op_type_ms": {"MatMul": 2.5, "Add": .5},
           "all_kernels": [_k("a", "MatMul", 2.5), _k("b", "Add", 0.5)]}
    c = compare_configs(old, new)
    assert not c.kernels_complete and any("top kernels" in n for n in c.notes)
    assert c.by_op_type[0].key == "MatMul" and c.by_op_type[0].delta == 1.0


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    paths = []
    for h in (1024, 2048):
        model = build_mlp(d / f"m{h}.onnx", h)
        out = d / f"p{h}.json"
        assert main([str(model), "--target", "a10g,t4", "--batch", "64", "--out", str(out), "-q"]) == 0
        paths.append(out)
    return paths


def test_diff_side_by_side(two_plans, capsys):
    code = main(["diff", str(two_plans[0]), str(two_plans[1])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "A: " in out and "B: " in out and "fc1" in out
    assert "best configuration per target" in out


def test_diff_json_matches_plans(two_plans, capsys):
    assert main(["diff", str(two_plans[0]), str(two_plans[1]), "--target", "t4", "--json"]) == 0
    r = json.loads(capsys.readouterr()[0])
    a, b = (json.loads(p.read_text()) for p in two_plans)
    head = {c["key"]: c for c in r["comparison"]["headline"]}
    assert head["latency_ms"]["old"] == a["best_per_target"]["t4"]["latency_ms"]
    assert head["latency_ms"]["new"] == b["best_per_target"]["t4"]["latency_ms"]


def test_diff_errors_one_line(two_plans, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    for argv in ([str(two_plans[0]), str(bad)], [str(two_plans[0]), str(two_plans[1]), "--target", "h200"]):
        code = main(["diff", *argv])
        _, err = capsys.readouterr()
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("plan: error:"), err


def test_decoder_rows_only_when_a_side_has_them():
    plain = {"latency_ms": 1.0, "ttft_ms": None, "tpot_ms": None}
    assert compare_configs(plain, dict(plain)).decoder == []
    dec = compare_configs({"latency_ms": 1.0, "ttft_ms": 10.0}, {"latency_ms": 1.0, "ttft_ms": 12.5})
    assert [(c.key, c.ratio) for c in dec.decoder] == [("ttft_ms", 0.25)]


def test_baseline_configuration_is_found_or_the_closest_named():
    from planner.ci.gate import _match

    old = {"target": "t4", "batch": 8, "precision": "fp16", "passes": ["cleanup", "fp16"]}
    exact = dict(old, latency_ms=1.0)
    other_passes = dict(old, passes=["fp16"])
    other_batch = dict(old, batch=16)
    assert _match([other_passes, exact], old, fixed=False) == (exact, [])
    assert _match([other_batch, other_passes], old, fixed=False) == (other_passes, ["passes"])
    assert _match([other_batch], old, fixed=False) == (other_batch, ["batch"])  # only what really differs
    assert _match([other_batch], old, fixed=True) == (other_batch, [])  # a fixed-batch model runs its own batch
    assert _match([dict(old, target="a10g")], old, fixed=False) == (None, ["target", "batch", "precision", "passes"])
