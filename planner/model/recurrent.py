"""An RNN layer's sizes (LSTM, GRU, RNN and the quantized LSTM), read once for its cost and its timing.

planner.costs.rnn counts a layer's work from them; planner.calibration.recurrent times a layer from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.model.ir import NodeInfo

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "DynamicQuantizeLSTM": 4}


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
