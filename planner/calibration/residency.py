"""What onnxruntime keeps resident: a session's own memory, and its copies of the weights per weight byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from planner.calibration.benches import chain, make, vi, weight
from planner.errors import PlannerError
from planner.ort.measure import measure


def runtime_memory(threads: int, workdir: Path) -> int | None:
    """What a session costs in resident memory before any model-sized tensor: a 16-float model measured in a
    fresh process (planner.ort.measure), so the thread pool, arena and kernel registry are all that is there."""

    path = workdir / "tiny.onnx"
    path.write_bytes(chain(8).model)
    try:
        return measure(path, {}, threads, runs=3, warmup=1).rss_peak_bytes
    except PlannerError:
        return None


def residency_model(kind: str) -> tuple[bytes, int]:
    """A model whose memory is its weights: 16 MiB feeding MatMuls ("gemm": 4 x [8, 1024] x [1024, 1024]) or
    3x3 convolutions ("conv": 7 x 256 -> 256 on 14 x 14, which onnxruntime runs as NCHWc), with its weight bytes."""
    nodes, inits, prev = [], [], "x"
    if kind == "gemm":
        n, x, w_shape = 4, [8, 1024], [1024, 1024]
    else:
        n, x, w_shape = 7, [1, 256, 14, 14], [256, 256, 3, 3]
    for i in range(n):
        inits.append(weight(f"w{i}", w_shape, seed=i + 1))
        attrs = {} if kind == "gemm" else {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
        nodes.append(helper.make_node("MatMul" if kind == "gemm" else "Conv", [prev, f"w{i}"], [f"c{i}"], **attrs))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    return make(nodes, [vi("x", x)], [vi(prev, x)], inits), n * 4 * int(np.prod(w_shape))


def weight_residency(threads: int, workdir: Path, workspace: int | None) -> dict[str, float]:
    """Resident bytes per weight byte for each kind of weight (planner.predict.memory.residency_kind):
    onnxruntime keeps an initializer and also its prepacked (MatMul) or NCHWc-reordered (Conv) form, so a
    model's memory is not its weights once (docs/fidelity.md: about 1.7-2.0 and 3.1-3.3). Each model is measured
    like `plan validate` measures (planner.ort.measure, a fresh process), less the tiny model's resident memory
    (`workspace`)."""

    if not workspace:
        return {}
    out = {}
    for kind in ("gemm", "conv"):
        model, weight_bytes = residency_model(kind)
        path = workdir / f"residency-{kind}.onnx"
        path.write_bytes(model)
        try:
            rss = measure(path, {}, threads, runs=3, warmup=1).rss_peak_bytes
        except PlannerError:
            continue
        if rss:
            out[kind] = round(max((rss - workspace) / weight_bytes, 1.0), 3)
    return out
