"""The published JSON Schema (planner/schema/plan.schema.json) describes the plans the planner really writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cli import main
from planner.output.planfile import schema_text

jsonschema = pytest.importorskip("jsonschema")

MODELS = Path(__file__).parent.parent / "models"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _plan(capsys, *argv) -> dict:
    code = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("argv", [
    ["cnn.onnx", "--target", "a10g"],
    ["encoder.onnx", "--target", "a10g", "--batch", "8", "--dim", "sequence=64"],
    ["mlp.onnx", "--target", "a10g,t4,c7i-xlarge,h100-sxm", "--max-batch", "16"],
    ["decoder.onnx", "--target", "l4", "--batch", "2"],
])
def test_real_plans_validate(capsys, validator, argv):
    doc = _plan(capsys, MODELS / argv[0], *argv[1:])
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    # all_kernels is the complete list the gate matches on: its times add up to the latency
    chosen = doc["chosen"]
    assert sum(k["time_ms"] for k in chosen["all_kernels"]) == pytest.approx(chosen["latency_ms"], rel=1e-9)


def test_plan_without_a_choice_validates(capsys, validator):
    code = main([str(MODELS / "mlp.onnx"), "--target", "t4", "--max-latency-ms", "1e-9", "--json"])
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    assert code == 1 and doc["chosen"] is None
    assert not list(validator.iter_errors(doc))


def test_v1_fixture_validates(validator):
    assert not list(validator.iter_errors(json.loads((FIXTURES / "baseline_v1_mlp.json").read_text())))


def test_schema_rejects_what_is_not_a_plan(validator):
    assert list(validator.iter_errors({"schema_version": 1}))
    doc = json.loads((FIXTURES / "baseline_v1_mlp.json").read_text())
    doc["chosen"]["batch"] = "256"
    assert list(validator.iter_errors(doc))
