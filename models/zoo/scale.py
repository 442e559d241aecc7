"""How small a zoo model's activations get: a randomly initialised model can compute on values no trained one has.

At transformers' normal(0, 0.02) for convolutions and BatchNorm scales, each block of a BatchNorm CNN shrinks
its input, and by the last blocks the activations sit at 1e-20 to 1e-45 (EfficientNet reached denormals,
RT-DETR's encoder 1e-22, MobileNet 1e-23 and 2e-29). An x86 core takes a microcode assist for every denormal
input or result, so such a model runs 10-100 times slower than the same architecture with real weights (a SiLU
over 1e-21 ran 60 times slower than over unit values: its x^2 goes denormal), and the zoo would score the
planner against a speed nobody deploys. The build runs each fp32 model once with every float node output exposed
and records the smallest median |x|; below FLOOR it says so (`init = "cnn"` in families.toml is the cure).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from models.zoo.feeds import make_feeds

FLOOR = 1e-12  # a median |x| below this is a decayed activation (trained models stay far above it)
MIN_ELEMENTS = 64  # a tensor this small is a scale or a shape, not an activation


def smallest_median(path: str, dims: dict[str, int], seed: int = 0) -> tuple[float, str]:
    """(the smallest non-zero median |x| over the model's float node outputs, that tensor's name) at one binding,
    on the zoo's feeds; (inf, "") when no float output has MIN_ELEMENTS elements."""
    model = onnx.load(path)
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    present = {o.name for o in model.graph.output}
    for n in model.graph.node:
        for o in n.output:
            if o in floats and o not in present:
                model.graph.output.append(helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None))
                present.add(o)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph's own tensors
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    best = (float("inf"), "")
    for name, value in zip(names, session.run(names, make_feeds(model, dims, seed)), strict=True):
        if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.size < MIN_ELEMENTS:
            continue
        median = float(np.median(np.abs(value)))
        if 0 < median < best[0]:
            best = (median, name)
    return best
