"""If, Loop and Scan timed per target from their bodies' own kernels, not as one fused kernel, and their bodies'
memory counted.

A body is predicted like a small model of its own (its kernels fused as the target's runtime fuses them, each
with its launch) and counted as often as it runs; If takes its slower branch on each target. Every branch's
weights are loaded with the session, whichever runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from planner.model.analyze import Analysis
from planner.model.controlflow import Body, bodies, initializer_bytes, is_control_flow
from planner.predict.memory import MemoryEstimate
from planner.predict.roofline import COMPUTE, MEMORY


def _body_prediction(body: Body, analysis, target, new_predictor: Callable):
    if "predictor" not in body.memo:  # node costs and kernels are shared by every target and call
        body.memo["predictor"] = new_predictor()
        body.memo["analysis"] = Analysis(graph=body.graph, binding=analysis.binding)
    return body.memo["predictor"].predict(body.memo["analysis"], target)


def _body_time(body: Body, op_type: str, analysis, target, new_predictor: Callable
               ) -> tuple[float, float, float, str]:
    """(seconds, compute s, memory s, peaks used) of one node run of `body` on `target`: its own kernels, fused
    as the target's runtime fuses them, each with its launch, plus what running a subgraph costs the runtime
    (the target's rates: measured on a calibrated host), times its repeats."""
    p = _body_prediction(body, analysis, target, new_predictor)
    k = body.repeats
    used = sorted({kp.time.peak_used for kp in p.kernels if kp.time.peak_used != "none"})
    run_s = sum(kp.time.seconds for kp in p.kernels) + target.rates.subgraph_run_s(op_type, target)
    return (k * run_s, k * sum(kp.time.compute_s for kp in p.kernels),
            k * sum(kp.time.memory_s for kp in p.kernels), "+".join(used) or "none")


def control_flow_times(timed: tuple, analysis, target, new_predictor: Callable) -> tuple:
    """Re-time each If/Loop/Scan kernel on `target` from its bodies instead of as one fused kernel.

    One roofline over a body's summed cost would charge a single launch for trips x nodes kernels and time
    MatMuls at the vector peak; predicting the body like a small model of its own keeps both right. If takes
    its slower branch on this target. `new_predictor` (the Predictor class) times each body with its own caches.
    """
    if not any(is_control_flow(analysis.graph.nodes[kp.kernel.nodes[0]]) for kp in timed):
        return timed
    out = []
    for kp in timed:
        node = analysis.graph.nodes[kp.kernel.nodes[0]]
        found = bodies(node) if is_control_flow(node) and len(kp.kernel.nodes) == 1 else None
        if not found:
            out.append(kp)
            continue
        secs, comp, mem, used = max(_body_time(b, node.op_type, analysis, target, new_predictor) for b in found)
        t = replace(kp.time, seconds=secs, compute_s=comp, memory_s=mem, bound=COMPUTE if comp > mem else MEMORY,
                    peak_used=used, launch_dominated=False)
        out.append(replace(kp, time=t))
    return tuple(out)


def control_flow_memory(mem: MemoryEstimate, analysis, target, new_predictor: Callable) -> MemoryEstimate:
    """`mem` with the bodies of the graph's If/Loop/Scan nodes: every body's own initializers and the runtime's
    copies of them (onnxruntime loads every branch with the session), and, on top of the outer activations,
    the largest body's own activations while it runs (they come out of the same arena; the outer values it reads
    are counted outside)."""
    weights = copies = active = 0
    for node in analysis.graph.nodes:
        found = bodies(node) if is_control_flow(node) else None
        for body in {id(b): b for b in found or ()}.values():  # an If whose condition is known: one Body twice
            p = _body_prediction(body, analysis, target, new_predictor)
            own_bytes = initializer_bytes(body.proto)
            weights += own_bytes + body.idle_weight_bytes
            copies += p.memory.runtime_copy_bytes
            if own_bytes:  # the idle branch is prepacked at session start too: as the branch that runs is
                copies += int(body.idle_weight_bytes * p.memory.runtime_copy_bytes / own_bytes)
            outer = sum(body.graph.tensors[n].nbytes for n in body.graph.inputs if n in body.graph.tensors)
            active = max(active, p.memory.activation_bytes + p.memory.arena_bytes - outer)
    if not (weights or copies or active):
        return mem
    return replace(mem, weight_bytes=mem.weight_bytes + weights, runtime_copy_bytes=mem.runtime_copy_bytes + copies,
                   activation_bytes=mem.activation_bytes + active)
