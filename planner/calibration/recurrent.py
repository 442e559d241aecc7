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
values (onnxruntime applies the gates one batch row at a time). `python benchmarks/recurrent_fit.py` measures
how well this form fits (docs/fidelity.md has its figures).

`plan calibrate` times a spread of layers and fits the seven costs per family (relative least squares, none
negative); the calibrated rates (planner.calibration.rates) time an RNN layer with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from planner.model.recurrent import RecurrentShape

TERMS = ("call", "step", "weights", "recurrent", "inputs", "gates", "rows")
MIN_SAMPLES = 9  # per family: seven costs need more layers than that to be told apart


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
