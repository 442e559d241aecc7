"""The calibration times onnxruntime's DynamicQuantizeLSTM as a family of its own (issue #16: int8 LSTMs as
quantize_dynamic ships them ran 2-4x slower than the float LSTM's costs said)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from planner.calibration.suite import _quantized_lstm, _rnn_benches
from planner.costs import node_cost
from planner.model.analyze import Analyzer
from planner.model.loader import load_model
from planner.model.recurrent import shape_of
from planner.predict.families import compute_dtype, kernel_family


def test_every_float_lstm_shape_is_also_timed_quantized():
    benches = _rnn_benches(quick=False)
    lstm = sorted(b.label.removeprefix("LSTM ") for b in benches if b.label.startswith("LSTM "))
    quantized = sorted(b.label.removeprefix("DynamicQuantizeLSTM ") for b in benches
                       if b.label.startswith("DynamicQuantizeLSTM "))
    assert quantized == lstm and len(lstm) >= 9  # planner.calibration.recurrent.MIN_SAMPLES layers to fit


def test_the_bench_runs_and_is_an_int8_lstm_layer(tmp_path):
    bench = _quantized_lstm(seq=5, b=2, inp=12, h=8)
    path = tmp_path / "dq.onnx"
    path.write_bytes(bench.model)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, bench.feeds)[0]
    assert y.shape == (5, 1, 2, 8) and np.all(np.abs(y) < 1)  # h = o * tanh(c): inside (-1, 1)
    (node,) = Analyzer(load_model(str(path))).analyze().graph.nodes
    assert kernel_family(node, node_cost(node).op_class) == "lstm" and compute_dtype(node) == "int8"
    s = shape_of(node)  # W is [1, in, 4h] here, not the float LSTM's [1, 4h, in]
    assert (s.gates, s.batch, s.inputs, s.hidden, s.directions) == (4, 2, 12, 8, 1)
