"""`plan check`: a widened MatMul fails the gate naming that kernel; unchanged passes; bad baselines exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gate_models import K, N, build_mlp, pin

from planner.calibration.host import get_target
from planner.cli import main

BATCH = 256
H_BASE, H_WIDE = 1024, 4096
FIXTURES = Path(__file__).parent / "fixtures"
MODELS = Path(__file__).parent.parent / "models"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate")
    return build_mlp(d / "base.onnx", H_BASE), build_mlp(d / "wide.onnx", H_WIDE)


@pytest.fixture
def baseline(models, tmp_path, capsys):
    path = tmp_path / "plan.json"
    code, _, err = _run(capsys, models[0], "--target", "a10g,t4", "--batch", BATCH, "--out", path)
    assert code == 0, err
    path.write_text(json.dumps(pin(json.loads(path.read_text()), "a10g")))
    return path


def _a10g_matmul_s(flops: float, busy: float) -> float:
    """Compute-bound time of a float32 MatMul on a10g: ORT's CUDA EP runs fp32 GEMMs on TF32 tensor cores, with
    `busy` the share of the 80 SMs its output tiles keep working (planner.targets.rates.wave_utilization)."""
    t = get_target("a10g")
    assert t.compute_units == 80
    return flops / (t.matrix_flops_per_s["tf32"] * t.compute_efficiency * busy) + t.launch_overhead_s


# The share of a10g's 80 SMs each GEMM keeps busy, by hand (128 x 128 tiles, or 64 x 64 at half the rate;
# K split in up to 8 slices of >= 256 while the tiles are fewer than the SMs):
#   fc1 [256 x 1024], K 1024: 2 x 8 = 16 tiles, K split in 4: 64 of 80 busy = 0.8
#   fc1 [256 x 4096], K 1024: 2 x 32 = 64 tiles: 0.8 (splits do no better)
#   fc2 [256 x 256], K 1024: 64 x 64 tiles, 4 x 4 = 16, K split in 4: 64 of 80 at half rate = 0.4
#   fc2 [256 x 256], K 4096: 128 x 128, 4 tiles, K split in 8: 32 of 80 = 0.4 (or 64 x 64: 128 in 2 waves, 0.4)
BUSY_FC1, BUSY_FC2 = 0.8, 0.4


def test_widened_matmul_is_a_regression_naming_the_kernel(models, baseline, capsys):
    code, out, err = _run(capsys, "check", models[1], "--baseline", baseline, "--json")
    assert code == 1, err
    r = json.loads(out)
    assert r["verdict"] == "regression" and r["current_config"] == "a10g batch 256 fp32"
    # At batch 256 both MatMuls are compute-bound on a10g for both widths (intensity 85-190 FLOP/B against
    # a ridge of 28e12 / 510e9 = 55), so each kernel is FLOPs / (TF32 peak x efficiency) + launch. The Relu
    # fuses into fc1 as its epilogue: one more FLOP per output element, inside the same kernel.
    fc1 = [_a10g_matmul_s(2 * BATCH * K * h + BATCH * h, BUSY_FC1) for h in (H_BASE, H_WIDE)]
    fc2 = [_a10g_matmul_s(2 * BATCH * h * N, BUSY_FC2) for h in (H_BASE, H_WIDE)]
    old_ms, new_ms = (fc1[0] + fc2[0]) * 1e3, (fc1[1] + fc2[1]) * 1e3
    head = {c["key"]: c for c in r["comparison"]["headline"]}
    assert head["latency_ms"]["old"] == pytest.approx(old_ms, rel=1e-9)
    assert head["latency_ms"]["new"] == pytest.approx(new_ms, rel=1e-9)
    # Same target and batch: cost per inference scales with latency.
    assert r["change"] == pytest.approx(new_ms / old_ms - 1, rel=1e-9)
    first = r["comparison"]["kernels"][0]
    assert first["name"] == "fc1" and first["old_ops"] == first["new_ops"] == "MatMul+Relu"
    assert first["delta_ms"] == pytest.approx((fc1[1] - fc1[0]) * 1e3, rel=1e-9)
    second = r["comparison"]["kernels"][1]
    assert second["name"] == "fc2" and second["delta_ms"] == pytest.approx((fc2[1] - fc2[0]) * 1e3, rel=1e-9)


def test_regression_text_names_kernel_and_change(models, baseline, capsys):
    code, out, _ = _run(capsys, "check", models[1], "--baseline", baseline)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("REGRESSION: cost per 1M inferences +") and "a10g batch 256" in first
    kernel_lines = [ln for ln in out.splitlines() if ln.startswith("fc1 ")]
    assert kernel_lines and "MatMul+Relu" in kernel_lines[0]


def test_unchanged_model_passes(models, baseline, capsys):
    code, out, err = _run(capsys, "check", models[0], "--baseline", baseline)
    assert code == 0, err
    assert out.startswith("OK: cost per 1M inferences 0% on a10g batch 256 fp32")
    assert "\ncheapest  " in out


def test_limit_and_metrics(models, baseline, capsys):
    # fc1 alone grows 4x; the whole latency ~3.1x; memory grows far less (one weight matrix of 12 MB more).
    assert _run(capsys, "check", models[1], "--baseline", baseline, "--max-increase", "1000%")[0] == 0
    code, out, _ = _run(capsys, "check", models[1], "--baseline", baseline, "--metric", "memory", "--json")
    r = json.loads(out)
    head = {c["key"]: c for c in r["comparison"]["headline"]}
    grown = head["peak_memory_bytes"]["new"] - head["peak_memory_bytes"]["old"]
    # weights: W1 and W2 each grow by (H_WIDE - H_BASE) x 1024 or x 256 floats; activations h/r grow too
    weights = 4 * (K + N) * (H_WIDE - H_BASE)
    assert grown >= weights
    assert r["metric"] == "memory" and code == (1 if grown / head["peak_memory_bytes"]["old"] > 0.05 else 0)


def test_quiet_prints_one_line(models, baseline, capsys):
    code, out, _ = _run(capsys, "check", models[1], "--baseline", baseline, "-q")
    assert code == 1 and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("content,needle", [
    (None, "no such file"),
    ('{"schema_version": 1, "model": {', "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "top level is not an object"),
    ('{"hello": "world"}', "no schema_version"),
    ('{"schema_version": 99, "model": {}, "chosen": null, "candidates": []}', "newer onnx-planner"),
    ('{"schema_version": "1"}', "schema_version is not an integer"),
    ('{"schema_version": 1, "model": {"dims": {}}, "chosen": {"target": "a10g", "batch": "8", "latency_ms": 1}}',
     "chosen.batch"),
    ('{"schema_version": 1, "model": {"dims": {}}, "chosen": null, "candidates": []}', "no chosen plan"),
])
def test_bad_baseline_exits_2_one_line(models, tmp_path, capsys, content, needle):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    code, out, err = _run(capsys, "check", models[0], "--baseline", path)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plan: error:") and needle in err, err


def test_bad_arguments_exit_2(models, baseline, capsys):
    for argv in (["--max-increase", "five"], ["--max-increase", "-3%"], ["--metric", "joules"]):
        code, _, err = _run(capsys, "check", models[0], "--baseline", baseline, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    code, _, err = _run(capsys, "check", models[0], "--baseline", baseline.parent)
    assert code == 2 and "directory" in err


def test_update_baseline_rewrites_it(models, baseline, capsys):
    before = json.loads(baseline.read_text())
    code, _, _ = _run(capsys, "check", models[1], "--baseline", baseline, "--update-baseline")
    assert code == 0
    after = json.loads(baseline.read_text())
    assert after["model"]["sha256"] != before["model"]["sha256"]
    assert after["constraints"]["targets"] == ["a10g", "t4"] and after["constraints"]["batch"] == BATCH
    assert sorted(p.name for p in baseline.parent.iterdir()) == ["plan.json"]  # no temporary left behind
    assert _run(capsys, "check", models[1], "--baseline", baseline)[0] == 0


def test_github_annotations_and_step_summary(models, baseline, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = _run(capsys, "check", models[1], "--baseline", baseline)
    assert code == 1
    errors = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    assert len(errors) == 1
    assert f"file={models[1]}".replace(":", "%3A") in errors[0] and "fc1" in errors[0]
    assert "%25" in errors[0]  # a literal '%' in the message is escaped for the workflow command
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "\u274c plan check" in text and "| fc1 |" in text


def test_json_output_stays_pure_in_github_actions(models, baseline, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, out, _ = _run(capsys, "check", models[1], "--baseline", baseline, "--json")
    assert code == 1 and json.loads(out)["verdict"] == "regression"


def test_baseline_with_extra_keys_and_pinned_choice(models, baseline, capsys):
    doc = json.loads(baseline.read_text())
    doc["chosen"]["ttft_ms"] = 3.0  # keys other developers add (decoders, passes) must not disturb check
    doc["something_new"] = {"x": [1, 2]}
    doc["chosen"]["kernels"][0]["extra"] = True
    # Pin t4 at fp32 although a10g at fp32 is cheaper (same FLOPs, 35 vs 8.1 TFLOP/s fp32, $1.006 vs $0.526 an
    # hour): check compares like for like and reports that the cheapest configuration differs.
    pin(doc, "t4")
    baseline.write_text(json.dumps(doc))
    code, out, err = _run(capsys, "check", models[0], "--baseline", baseline)
    assert code == 0, err
    assert "on t4 batch 256 fp32" in out.splitlines()[0]
    assert "cheapest  changed: t4 batch 256 fp32 -> " in out


def test_v1_fixture_still_reads(capsys):
    """A stable-core-only v1 plan (no constraints, best_per_target or all_kernels) is still a baseline."""
    fixture = FIXTURES / "baseline_v1_mlp.json"
    code, out, err = _run(capsys, "check", MODELS / "mlp.onnx", "--baseline", fixture, "--max-increase", "1000%")
    assert code == 0, err
    assert "on t4 batch" in out.splitlines()[0]
    assert "no 'constraints'" in out and "only its top kernels" in out
    assert json.loads(fixture.read_text())["schema_version"] == 1


def test_check_never_touches_model(models, baseline, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(models[1], model)
    before = model.read_bytes()
    _run(capsys, "check", model, "--baseline", baseline)
    assert model.read_bytes() == before
