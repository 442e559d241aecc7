"""`plan MODEL --qps ... --p99-ms ...` end to end: the fleet block, its schema, --emit-deploy, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from planner.output.planfile import schema_text
from planner.output.triton_proto import parse_config

MODELS = Path(__file__).parent.parent / "models"


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cnn_fleet(tmp_path_factory):
    """One planning run shared by the tests below: cnn on two targets, Poisson 300 req/s, p99 80 ms."""
    out = tmp_path_factory.mktemp("deploy")
    code = main([str(MODELS / "cnn.onnx"), "--target", "t4,c7i-xlarge", "--passes", "none", "--qps", "300",
                 "--p99-ms", "80", "--out", str(out / "plan.json"), "--emit-deploy", str(out), "-q"])
    assert code == 0
    return json.loads((out / "plan.json").read_text()), out


def test_the_fleet_block_validates_and_names_every_loser(cnn_fleet):
    jsonschema = pytest.importorskip("jsonschema")
    doc, _ = cnn_fleet
    jsonschema.Draft202012Validator(json.loads(schema_text())).validate(doc)
    fleet = doc["fleet"]
    assert fleet["traffic"]["kind"] == "poisson" and fleet["slo"] == {"latency_p99_ms": 80}
    chosen = fleet["chosen"]
    assert chosen["latency_ms"]["p99"] <= 80 and chosen["replicas"] >= 1
    losers = [o for o in fleet["per_target"] if o["target"] != chosen["target"]]
    assert losers and all(o["rejected"] for o in losers)
    # the month: replicas x the instance's price x 730 h
    assert chosen["monthly_cost_usd"] == pytest.approx(chosen["replicas"] * chosen["price_usd_per_hour"] * 730)


def test_the_deployment_carries_the_plan(cnn_fleet):
    doc, out = cnn_fleet
    c = doc["fleet"]["chosen"]
    cfg = parse_config((out / "triton" / "cnn" / "config.pbtxt").read_text())
    assert cfg.max_batch_size == c["max_batch"]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == round(c["max_queue_delay_ms"] * 1000)
    assert [i.name for i in cfg.input] == ["image"] and list(cfg.input[0].dims) == [3, 64, 64]  # batch dim off
    assert [o.name for o in cfg.output] == ["logits"] and list(cfg.output[0].dims) == [10]
    assert (out / "triton" / "cnn" / "1" / "model.onnx").read_bytes() == (MODELS / "cnn.onnx").read_bytes()
    deployment, service = yaml.safe_load_all((out / "kubernetes.yaml").read_text())
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    assert deployment["spec"]["replicas"] == c["replicas"]
    pod = deployment["spec"]["template"]["spec"]
    gpu = doc["fleet"]["target_kinds"][c["target"]] == "gpu"
    assert ("nvidia.com/gpu" in pod["containers"][0]["resources"].get("limits", {})) == gpu
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == doc["fleet"]["instance_types"][c["target"]]


def test_a_decoder_fleet(capsys, tmp_path):
    code, out, err = _run(capsys, MODELS / "decoder.onnx", "--target", "l4", "--qps", "2", "--prompt-len", "64",
                          "--gen-len", "16", "--ttft-p95-ms", "1000", "--tpot-p95-ms", "50", "--json",
                          "--emit-deploy", tmp_path)
    assert code == 0, err
    c = json.loads(out)["fleet"]["chosen"]
    assert c["latency_ms"]["ttft_p95"] <= 1000 and c["latency_ms"]["tpot_p95"] <= 50
    assert c["max_seqs_in_flight"] <= c["kv_capacity_sequences"] and c["tokens_per_s_per_replica"] > 0
    assert c["kv_capacity_tokens"] == c["kv_capacity_sequences"] * (64 + 16)
    # no Triton entry for a decoder (continuous batching is an LLM engine's), the manifest says what to run
    assert not (tmp_path / "triton").exists()
    deployment, _ = yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text())
    assert deployment["spec"]["replicas"] == c["replicas"]
    assert "max-num-seqs" in deployment["metadata"]["annotations"]["onnx-planner/serve-with"]


def test_a_decoder_fleet_with_chunked_prefill(capsys, tmp_path):
    code, out, err = _run(capsys, MODELS / "decoder.onnx", "--target", "l4", "--qps", "2", "--prompt-len", "64",
                          "--gen-len", "16", "--chunked-prefill", "256", "--json", "--emit-deploy", tmp_path)
    assert code == 0, err
    fleet = json.loads(out)["fleet"]
    assert "chunked prefill of 256 tokens an iteration" in fleet["method"]
    assert fleet["chosen"]["chunked_prefill_tokens"] == 256
    deployment, _ = yaml.safe_load_all((tmp_path / "kubernetes.yaml").read_text())
    assert "--max-num-batched-tokens 256" in deployment["metadata"]["annotations"]["onnx-planner/serve-with"]


@pytest.mark.parametrize("argv, message", [
    (["--qps", "abc"], "--qps: 'abc' is not a number"),
    (["--chunked-prefill", "256"], "need traffic"),
    (["--qps", "3", "--chunked-prefill", "256"], "--chunked-prefill applies to decoders only"),
    (["--qps", "3", "--chunked-prefill", "0"], "--chunked-prefill"),
    (["--qps", "0"], "--qps: '0' must be a positive number"),
    (["--traffic", "poisson"], "expected poisson:RATE"),
    (["--traffic", "missing.csv"], "no such file"),
    (["--p99-ms", "80"], "need traffic"),
    (["--p99-ms", "-1", "--qps", "3"], "must be positive"),
    (["--qps", "3", "--ttft-p95-ms", "100"], "apply to decoders only"),
])
def test_bad_fleet_input_is_one_line_and_exit_2(capsys, argv, message, tmp_path):
    code, out, err = _run(capsys, MODELS / "cnn.onnx", "--target", "t4", "--passes", "none", *argv,
                          "--emit-deploy", tmp_path / "d")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("plan: error:") and message in err
    assert not (tmp_path / "d").exists()


def test_emit_deploy_over_a_file_writes_nothing(capsys, tmp_path):
    f = tmp_path / "taken"
    f.write_text("mine")
    code, _, err = _run(capsys, MODELS / "cnn.onnx", "--target", "t4", "--passes", "none", "--qps", "10",
                        "--emit-deploy", f, "-q")
    assert code == 2 and "exists and is not a folder" in err and f.read_text() == "mine"


def test_check_gates_on_the_monthly_cost(capsys, cnn_fleet):
    doc, out = cnn_fleet
    base = out / "plan.json"
    cost = doc["fleet"]["chosen"]["monthly_cost_at_traffic_usd"]
    code, text, err = _run(capsys, "check", MODELS / "cnn.onnx", "--baseline", base, "--metric", "monthly-cost")
    assert code == 0, err
    assert text.startswith("ok: monthly cost unchanged") and f"${cost:,.0f}/month" in text
    code, text, _ = _run(capsys, "check", MODELS / "cnn.onnx", "--baseline", base, "--metric", "monthly-cost",
                         "--max-monthly-usd", str(cost / 2), "--json")
    verdict = json.loads(text)
    assert code == 1 and verdict["verdict"] == "regression"
    assert verdict["reasons"] == [f"monthly cost ${cost:,.0f} exceeds --max-monthly-usd {cost / 2:,.0f}"]


def test_check_monthly_cost_needs_traffic(capsys, tmp_path):
    base = tmp_path / "plain.json"
    assert main([str(MODELS / "cnn.onnx"), "--target", "t4", "--passes", "none", "--out", str(base), "-q"]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "check", MODELS / "cnn.onnx", "--baseline", base, "--metric", "monthly-cost")
    assert code == 2 and err.count("\n") == 1 and "the baseline has no fleet block" in err
    code, _, err = _run(capsys, "check", MODELS / "cnn.onnx", "--baseline", base, "--qps", "10")
    assert code == 2 and "go with --metric monthly-cost" in err


def test_a_fleet_over_every_bundled_target_is_quick(capsys):
    # the bar is an answer in under 5 s for all bundled targets; the search itself takes about 0.5 s here
    code, out, err = _run(capsys, MODELS / "cnn.onnx", "--target", "all", "--passes", "none", "--qps", "300",
                          "--p99-ms", "80", "--json")
    assert code == 0, err
    fleet = json.loads(out)["fleet"]
    assert fleet["search_s"] < 5
    assert len(fleet["per_target"]) == len(json.loads(out)["constraints"]["targets"])
