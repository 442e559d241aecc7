"""Recurrent layers (LSTM, GRU, RNN) timed the way onnxruntime runs them, from a fit to measured layers.

onnxruntime's CPU LSTM and GRU do not run a sequence as `steps` copies of one step. They first project the
whole input sequence through W in one GEMM (seq x batch rows), then, one time step after another, multiply
the previous hidden state by R (a GEMM of `batch` rows: a GEMV at batch 1, with R in cache) and apply the gate
nonlinearities; around all of it, a per-call cost (buffers, the input GEMM's packing) that does not shrink
with the sequence. So a layer's time is linear in a handful of counts, each with a cost of its own:

    t = call + directions x steps x (step + weights x G·h·h + recurrent x b·G·h·h + inputs x b·G·h·in
                                     + gates x b·G·h + rows x b)

with G the gates (4, 3, 1), b the batch, h the hidden size, in the input size. `weights` is the cost of
streaming R once per step whatever the batch (what dominates at batch 1), `recurrent` and `inputs` the cost
of a multiply-add in the per-step GEMM and in the sequence-wide one (they differ: one has b rows, the other
seq x b), `gates` the elementwise work per gate value, `rows` what each batch row costs a step beyond its
values (onnxruntime applies the gates one batch row at a time). `python benchmarks/recurrent_fit.py
--batches 1 2 4 8 16 32` times 216 layers per family (hidden 32-256, input h/2-2h, 8 and 40 steps; 2-vCPU
EPYC, 1 thread) and prints the errors: 2026-12-02, costs fitted on half erred by a median 2.9% (LSTM) and
2.5% (GRU) on the other half, and those `plan calibrate` fitted from its own 20 layers per family by 5.5% and
4.4% on all of them (worst: batch 4, 14-18%, whose step GEMM runs faster per multiply-add than either
neighbour's). Without `rows`, one grid of 120 layers per family fitted on half erred by 6.8% and 4.8% on the
other half (5.9% and 4.0% with it; at batch 1 6.6% and 5.6%, against 3.4% and 4.3%). One rate per
(intensity, weight bytes), the form this replaces, missed the fidelity zoo's 2-layer GRU at batch 1 by 12-13%;
it spread a layer's per-call cost (~8 us for a GRU) over the steps of sequences of other lengths.

`plan calibrate` times a spread of layers and fits the seven costs per family (relative least squares, none
negative); `roofline.kernel_time` uses them where a calibration has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from planner.model.ir import NodeInfo

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "DynamicQuantizeLSTM": 4}
TERMS = ("call", "step", "weights", "recurrent", "inputs", "gates", "rows")
MIN_SAMPLES = 9  # per family: seven costs need more layers than that to be told apart


@dataclass(frozen=True)
class RecurrentShape:
    gates: int
    batch: int
    inputs: int
    hidden: int
    directions: int = 1

    def as_list(self) -> list[int]:
        return [self.gates, self.batch, self.inputs, self.hidden, self.directions]


def shape_of(node: NodeInfo) -> RecurrentShape | None:
    """The layer's sizes (the one reading of them: planner.costs.rnn counts its work from these too).

    X [seq, batch, in] (layout=1: [batch, seq, in]); hidden_size, else R's hidden dim ([dirs, G·h, h]; the
    quantized LSTM's R is [dirs, h, 4h]); directions 2 for direction="bidirectional", else W's first dim.
    None when they are not all known."""
    g = GATES.get(node.op_type)
    x = node.in_shape(0)
    if g is None or x is None or len(x) != 3:
        return None
    batch, inputs = (x[0], x[2]) if node.attr("layout", 0) == 1 else (x[1], x[2])
    h = node.attr("hidden_size", None)
    if not isinstance(h, int) or h <= 0:
        r = node.in_shape(2)
        h = (r[1] if node.op_type == "DynamicQuantizeLSTM" else r[2]) if r is not None and len(r) == 3 else None
    direction = node.attr("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode("utf-8", "replace")
    w = node.in_shape(1)
    dirs = 2 if direction == "bidirectional" else w[0] if w is not None and len(w) == 3 else 1
    if not all(isinstance(v, int) and v > 0 for v in (batch, inputs, h, dirs)):
        return None
    return RecurrentShape(g, batch, inputs, h, dirs)


def features(shape: RecurrentShape, steps: int) -> list[float]:
    """The counts each cost in TERMS multiplies, for one call of `steps` time steps."""
    g, b, i, h = shape.gates, shape.batch, shape.inputs, shape.hidden
    n = shape.directions * steps
    return [1.0, n, n * g * h * h, n * b * g * h * h, n * b * g * h * i, n * b * g * h, n * b]


def seconds(costs: Mapping[str, float], shape: RecurrentShape, steps: int) -> float:
    """A layer's time beyond the launch overhead."""
    return sum(costs.get(t, 0.0) * x for t, x in zip(TERMS, features(shape, steps), strict=True))


def fit(layers: Sequence[tuple[RecurrentShape, int, float]]) -> dict[str, float] | None:
    """Costs from measured layers (shape, steps, seconds beyond the launch), least squares in relative error
    (a 30 us layer counts as much as a 3 ms one), none negative: a term whose cost comes out negative is
    dropped and the rest refitted. None when there are too few layers to tell the costs apart."""
    if len(layers) < MIN_SAMPLES:
        return None
    x = np.array([features(s, n) for s, n, _ in layers], dtype=float)
    y = np.array([t for _, _, t in layers], dtype=float)
    if np.any(y <= 0):
        return None
    scale = x.max(axis=0)
    scale[scale == 0] = 1.0
    a = x / scale / y[:, None]
    keep = list(range(len(TERMS)))
    coef = np.zeros(len(TERMS))
    while keep:
        sol, *_ = np.linalg.lstsq(a[:, keep], np.ones(len(y)), rcond=None)
        if np.all(sol >= 0):
            coef[keep] = sol
            break
        keep.pop(int(np.argmin(sol)))
    if not keep:
        return None
    return {t: float(c / s) for t, c, s in zip(TERMS, coef, scale, strict=True)}
