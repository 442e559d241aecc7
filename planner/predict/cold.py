"""How many weight bytes went by since a kernel's kind last ran: what decides whether its code is still cached.

A microbenchmark runs one kind of kernel, or a chain of small ones over small tensors, so the code of each kind
and the executor's data for it stay in the caches from one node to the next. In a model, a GEMM streams its
weights between two runs of the small kinds around it (a decoder layer's Add, Reshape, Cast and Softmax sit
between its projections), and the next small node of each kind finds its code and the data it works with
evicted: it runs several times its chain's cost. Profiled, a block of a decoder's small nodes (one of each kind)
pays about 0.2 us a kind when 256 KiB of weights went by since, 0.5-0.7 us at 1 MiB and 1.3-1.9 us at 4 MiB;
a second node of the same kind right after the first pays little (docs/fidelity.md, "Cold small nodes").
The calibration measures that cost against the bytes between (planner.calibration.cold); this module counts
the bytes for each kernel of a model.

A kind is the kernel's first operator (what onnxruntime dispatches). The bytes are the weights the other kernels
read since the last kernel of the same kind finished; the run repeats, so a kind's first kernel in a run counts
from its last one in the run before (the kernel list is walked twice, the second walk kept). Weights that a
core's own cache holds from one run to the next (all of a run's fit in it: a small model, or a Loop body over
the same weights every iteration) come from nowhere far and count nothing: the same 4 MiB read again every
block left the small nodes a third of the cost that 4 MiB of new weights did. An If, Loop or Scan streams
nothing here: its body's kernels are timed as a graph of their own (planner.predict.bodies), and a Loop's
weights, counted once per iteration, are the same bytes again.
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.model.controlflow import CONTROL_FLOW_OPS
from planner.predict.fusion import Kernel


def streamed_since_kind(kernels: Sequence[Kernel], near_bytes: float = 0.0) -> list[int]:
    """Per kernel, the weight bytes other kernels read since the last kernel of its kind ran; none at all when
    a run's weights total no more than `near_bytes` (the core's own cache)."""
    weights = [0 if k.op_types[0] in CONTROL_FLOW_OPS else k.cost.weight_bytes for k in kernels]
    total = sum(weights)
    out = [0] * len(kernels)
    if total <= near_bytes:
        return out
    last: dict[str, int] = {}  # kind -> weight bytes read up to the end of its latest kernel
    for walk in range(2):
        read = 0
        for i, k in enumerate(kernels):
            kind = k.op_types[0]
            if walk == 1:
                out[i] = read - last[kind]
            read += weights[i]
            last[kind] = read - (total if walk == 0 else 0)
    return out
