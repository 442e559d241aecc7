"""onnxruntime sessions as the planner builds them: one place for the settings, so that the graph we predict is
the graph validate and calibrate measure."""

from __future__ import annotations

import os

from planner.errors import PlannerError

_EXTERNAL_MIN_BYTES = 1024  # initializers at least this big are saved outside the optimized .onnx


class OrtGraphError(PlannerError):
    """onnxruntime could not build a session for the model (unsupported op, invalid graph)."""


def session_options(threads: int = 1, *, optimized_path: str | None = None, profile_prefix: str | None = None,
                    external_file: str | None = None):
    """The one place session settings live, so the graph we predict is the graph validate measures.

    ORT_ENABLE_ALL, sequential execution, one inter-op thread, `threads` intra-op threads (pinned: a
    calibration is per thread count), CPU execution provider, warnings off.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
        if external_file:
            so.add_session_config_entry("session.optimized_model_external_initializers_file_name", external_file)
            so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                        str(_EXTERNAL_MIN_BYTES))
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def make_session(model: str | os.PathLike | bytes, so):
    """An onnxruntime CPU session; a model onnxruntime refuses is a one-line OrtGraphError."""
    import onnxruntime as ort

    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types from C++
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise OrtGraphError(f"onnxruntime cannot run this model on the CPU: {first}") from None
