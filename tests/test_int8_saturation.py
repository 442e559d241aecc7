"""int8 on x86 CPUs without VNNI: onnxruntime's u8 x s8 kernel saturates, so the int8 passes quantize weights
in 7 bits there (onnxruntime's quantization docs); the cosine figures are onnxruntime's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import planner.targets.host as host
from passes.base import PassContext
from passes.quantize import REDUCED_RANGE, Int8Dynamic
from planner.search.variants import PassOptions

ENCODER = Path(__file__).resolve().parent.parent / "models" / "encoder.onnx"


@pytest.mark.parametrize("flags,machine,saturates", [
    ("sse avx2 fma", "x86_64", True), ("avx2 fma avx512f avx512_vnni", "x86_64", False),
    ("avx2 fma avx_vnni", "x86_64", False), ("avx512f amx_tile amx_int8", "x86_64", False),
    ("fp asimd asimddp", "aarch64", False)])
def test_which_cpus_saturate(monkeypatch, flags, machine, saturates):
    monkeypatch.setattr(host, "_cpuinfo", lambda: [{"flags": flags}])
    monkeypatch.setattr(host.platform, "machine", lambda: machine)
    assert host.u8s8_saturates() is saturates


def test_int8_dynamic_keeps_the_encoder_within_a_tenth_of_a_percent_on_any_cpu():
    model = onnx.load(str(ENCODER))
    result = Int8Dynamic().run(model, PassContext(options=PassOptions().context_options()))
    assert (REDUCED_RANGE in result.notes) is host.u8s8_saturates()
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(0, 256, (2, 64)).astype(np.int64), "attention_mask": np.ones((2, 64), np.int64)}
    ref = ort.InferenceSession(str(ENCODER), providers=["CPUExecutionProvider"]).run(None, feeds)[0].ravel()
    q = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    y = q[0].ravel()
    cosine = float(y @ ref / np.linalg.norm(y) / np.linalg.norm(ref))
    assert cosine > 0.999  # u8 x s8 saturating on an AVX2 CPU: 0.978
