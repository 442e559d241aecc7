"""The whole path on real architectures: FLOPs checked against an independent count, targets ranked sanely."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
import pytest

import planner
from planner.calibration.host import get_target
from planner.errors import DimError
from planner.model.analyze import Analyzer
from planner.model.loader import load_model
from planner.predict.fusion import graph_costs
from planner.predict.predictor import predict
from planner.search.variants import PassOptions

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = Path(__file__).parent.parent / "models"


def _independent_conv_gemm_flops(path: Path) -> int:
    """Count Conv and Gemm FLOPs from onnx's own shape inference, without any planner code."""
    m = onnx.shape_inference.infer_shapes(onnx.load(path))
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w, y = shapes[n.input[1]], shapes[n.output[0]]
            c_out, c_in_per_group, *kernel = w
            macs = math.prod(y) * c_in_per_group * math.prod(kernel)  # every output element: Cin/g * kh * kw MACs
            total += 2 * macs + (math.prod(y) if len(n.input) > 2 and n.input[2] else 0)
        elif n.op_type == "Gemm":
            a, y = shapes[n.input[0]], shapes[n.output[0]]
            trans_a = next((att.i for att in n.attribute if att.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            total += 2 * y[0] * y[1] * k + (y[0] * y[1] if len(n.input) > 2 else 0)
    return total


def _planner_conv_gemm_flops(path: Path) -> int:
    a = Analyzer(load_model(path)).analyze()
    return sum(c.cost.flops for n, c in zip(a.graph.nodes, graph_costs(a.graph), strict=True)
               if n.op_type in ("Conv", "Gemm"))


@pytest.mark.parametrize("name", ["light_resnet50.onnx", "light_vgg19.onnx", "light_squeezenet.onnx"])
def test_conv_gemm_flops_match_independent_count(name):
    path = LIGHT / name
    assert _planner_conv_gemm_flops(path) == _independent_conv_gemm_flops(path)


def test_resnet50_flops_in_published_range():
    # ResNet-50 at 224x224 is ~4.1 GMACs (He et al. 2016 report 3.8e9 multiply-adds for the conv trunk).
    flops = _planner_conv_gemm_flops(LIGHT / "light_resnet50.onnx")
    assert 7.6e9 < flops < 8.4e9


def test_h100_faster_than_t4_and_gpu_faster_than_cpu():
    a = Analyzer(load_model(LIGHT / "light_resnet50.onnx")).analyze()
    h100 = predict(a, get_target("h100-sxm")).latency_s
    t4 = predict(a, get_target("t4")).latency_s
    cpu = predict(a, get_target("c7i-xlarge")).latency_s
    assert h100 < t4 < cpu


def test_plan_api_returns_typed_plan_and_json():
    p = planner.plan(MODELS / "cnn.onnx", targets=["a10g", "t4"])
    assert isinstance(p, planner.Plan)
    assert p.chosen is not None and p.chosen.fits
    assert p.chosen.target in ("a10g", "t4")
    d = p.to_dict()
    assert d["schema_version"] == 1
    for key in ("path", "sha256", "dims", "defaults_used", "flops", "weight_bytes", "unknown_ops"):
        assert key in d["model"]
    for key in ("target", "precision", "passes", "batch", "latency_ms", "throughput_per_s", "peak_memory_bytes",
                "fits", "cost_per_million_usd", "bound", "drift", "kernels"):
        assert key in d["chosen"]
    # cost per million = price per hour / inferences per hour * 1e6
    c = p.chosen
    assert c.cost_per_million_usd == pytest.approx(c.price_usd_per_hour / (c.throughput_per_s * 3600) * 1e6)
    assert c.throughput_per_s == pytest.approx(c.batch / (c.latency_ms / 1e3))


def test_weights_counted_at_stored_precision():
    # mlp: 784*256 + 256 + 256*128 + 128 + 128*10 + 10 float32 parameters
    params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    p = planner.plan(MODELS / "mlp.onnx", targets=["t4"], batch=1)
    assert p.model.weight_bytes == params * 4
    assert p.chosen.memory["weights"] == params * 4


def test_batch_sweep_stops_at_memory_and_never_chooses_a_misfit(tmp_path):
    cap = 0.6e9  # the 0.512 GB workspace leaves ~90 MB for weights and activations
    toml = (Path(planner.__file__).parent.parent / "hwtargets" / "t4.toml").read_text()
    toml = toml.replace('name = "t4"', 'name = "tiny-gpu"')
    import re

    toml = re.sub(r"capacity_bytes = \{ value = [0-9.e]+", f"capacity_bytes = {{ value = {cap}", toml)
    f = tmp_path / "tiny.toml"
    f.write_text(toml)
    # the model as stored: fp16 / int4 pipelines halve its bytes and fit every batch up to the cap
    p = planner.plan(MODELS / "encoder.onnx", targets=["tiny-gpu"], target_files=[str(f)],
                     passes=PassOptions("none"))
    misfits = [c for c in p.candidates if not c.fits]
    assert misfits, "the sweep should reach a batch that does not fit"
    assert p.chosen.fits and p.chosen.peak_memory_bytes <= cap
    assert p.chosen.batch < min(c.batch for c in misfits)


def test_max_latency_constraint_respected():
    loose = planner.plan(MODELS / "encoder.onnx", targets=["t4"])
    limit = loose.chosen.latency_ms / 4
    tight = planner.plan(MODELS / "encoder.onnx", targets=["t4"], max_latency_ms=limit)
    assert tight.chosen.latency_ms <= limit
    assert tight.chosen.batch < loose.chosen.batch


def test_a_batch_bound_by_dim_is_planned_at_that_batch():
    """--dim batch=4 fixes the batch as --batch 4 does (issue #16's zoo: bert at batch_size=4 was refused,
    "--batch 1 contradicts --dim batch_size=4", by the sweep's own first batch)."""
    p = planner.plan(MODELS / "cnn.onnx", targets=["t4"], dims={"batch": 4}, passes=PassOptions(mode="none"))
    assert {c.batch for c in p.candidates} == {4}
    assert p.chosen.batch == 4
    with pytest.raises(DimError, match="contradicts"):
        planner.plan(MODELS / "cnn.onnx", targets=["t4"], dims={"batch": 4}, batch=2, passes=PassOptions(mode="none"))


def test_a_decoder_batch_bound_by_dim_is_planned_at_that_batch():
    """The decoder search analyses its phases at several batches; a --dim naming the batch fixes the search's
    batch instead of contradicting it ("--batch 2 contradicts --dim batch_size=1", the zoo's decoders)."""
    p = planner.plan(MODELS / "decoder.onnx", targets=["t4"], dims={"batch_size": 2},
                     passes=PassOptions(mode="none"))
    assert p.chosen is not None and p.chosen.batch == 2
    with pytest.raises(DimError, match="contradicts"):
        planner.plan(MODELS / "decoder.onnx", targets=["t4"], dims={"batch_size": 2}, batch=4,
                     passes=PassOptions(mode="none"))
