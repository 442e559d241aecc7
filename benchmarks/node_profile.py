"""Each node's time as onnxruntime's profiler reports it, for the benchmarks that compare one node in two settings
(fp32_weight_rows.py, conv_weights_in_play.py, gemm_aliasing.py): 1 thread, a few warm-up runs, then the quickest
quartile of each node's last `runs` kernel times, the statistic the calibration keeps."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

WARMUP = 5


def node_quartiles_us(model: onnx.ModelProto, runs: int, op: Callable[[str], bool] = lambda _: True,
                      seed: int = 1) -> dict[str, float]:
    """Node name -> quickest quartile of its profiled kernel times in us, for nodes whose op type `op` accepts.
    The model's one input is fed uniform random floats of its static shape."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="planner-profile-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "profile")
        s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        x = model.graph.input[0]
        feeds = {x.name: np.random.default_rng(seed).random([d.dim_value for d in x.type.tensor_type.shape.dim],
                                                            np.float32)}
        for _ in range(runs + WARMUP):
            s.run(None, feeds)
        events = json.loads(Path(s.end_profiling()).read_text())
    by_node: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and op(e["args"].get("op_name", "")):
            by_node.setdefault(e["name"], []).append(float(e["dur"]))
    return {name: sorted(ts[-runs:])[len(ts[-runs:]) // 4] for name, ts in by_node.items()}


def weight_matmul(rows: int, k: int, n: int) -> onnx.ModelProto:
    """One MatMul [rows, k] x [k, n] over a weight (prepacked by onnxruntime), built as the calibration's GEMM
    benches are (planner.calibration.benches.single)."""
    from planner.calibration.benches import F, single, weight

    bench = single(f"MatMul {rows}x{k}x{n}", "MatMul", [("x", [rows, k], F)], [rows, n], [weight("w", [k, n])])
    return onnx.load_from_string(bench.model)
