"""The `plan` command: readable output, pure JSON, and one-line errors with exit 2 for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cli import main

MODELS = Path(__file__).parent.parent / "models"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_prints_table_and_chosen(capsys):
    code, out, err = _run(capsys, str(MODELS / "cnn.onnx"), "--target", "a10g,t4")
    assert code == 0, err
    assert "chosen" in out and "top kernels" in out
    assert "a10g" in out and "t4" in out


def test_json_is_pure_and_out_file_written(capsys, tmp_path):
    out_file = tmp_path / "plan.json"
    code, out, err = _run(capsys, str(MODELS / "mlp.onnx"), "--target", "t4", "--json", "--out", str(out_file))
    assert code == 0, err
    doc = json.loads(out)
    assert doc == json.loads(out_file.read_text())
    assert doc["schema_version"] == 1 and doc["chosen"]["target"] == "t4"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary file left behind


def test_target_all_names_cheapest(capsys):
    code, out, _ = _run(capsys, str(MODELS / "mlp.onnx"), "--target", "all", "--json")
    doc = json.loads(out)
    costs = {t: c["cost_per_million_usd"] for t, c in doc["best_per_target"].items()}
    assert len(costs) >= 13
    assert doc["chosen"]["target"] == min(costs, key=costs.get)


def test_input_model_unchanged_and_not_overwritten(capsys, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(MODELS / "cnn.onnx", model)
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    code, _, err = _run(capsys, str(model), "--out", str(model))
    assert code == 2 and "overwrite the input" in err
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("argv,needle", [
    (["{missing}"], "no such file"),
    (["{notonnx}"], "not an ONNX model"),
    (["{truncated}"], "not an ONNX model"),
    (["{cnn}", "--target", "nope"], "known targets"),
    (["{cnn}", "--dim", "batch"], "NAME=VALUE"),
    (["{cnn}", "--dim", "batch=abc"], "whole number"),
    (["{cnn}", "--dim", "nosuch=3"], "no such symbolic dim"),
    (["{cnn}", "--batch", "0"], "must be positive"),
    (["{cnn}", "--frobnicate"], "unrecognized arguments"),
    ([], "required"),
])
def test_bad_input_one_line_exit_2(capsys, tmp_path, argv, needle):
    (tmp_path / "notonnx.onnx").write_text("hello, I am not a model\n")
    data = (MODELS / "cnn.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 3])
    paths = {"missing": tmp_path / "missing.onnx", "notonnx": tmp_path / "notonnx.onnx",
             "truncated": tmp_path / "truncated.onnx", "cnn": MODELS / "cnn.onnx"}
    code, out, err = _run(capsys, *[a.format(**paths) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plan: error:"), err
    assert needle in err
    assert "Traceback" not in err


def test_targets_subcommand_lists_bundled(capsys):
    code, out, _ = _run(capsys, "targets")
    assert code == 0
    for name in ("a10g", "t4", "l4", "l40s", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "mi300x",
                 "inf2", "c7i-xlarge", "c7g-xlarge"):
        assert name in out


def test_installed_console_script(tmp_path):
    exe = shutil.which("plan", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("console script not installed in this environment")
    r = subprocess.run([exe, str(tmp_path / "nope.onnx")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
