"""`plan predict MODEL --target host`: the model exactly as given, as onnxruntime runs it on this machine.

No passes of ours, no batch sweep: onnxruntime's own optimized graph (ORT_ENABLE_ALL, CPU) timed by the host
calibration (planner.ort.executed.predict_ort). The model is never run.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict

from planner.calibration.host import predict_ort
from planner.commands.args import parse_dims, parse_values, positive_int, threads
from planner.errors import PlannerError
from planner.model.loader import load_model
from planner.search.plan_types import candidate_report
from planner.units import fmt_bytes

NAME = "predict"
HELP = "predict latency and memory of a model as onnxruntime runs it here (--target host), without running it"


def add_common(p: argparse.ArgumentParser) -> None:
    """Arguments `plan predict` and `plan validate` share."""

    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("--threads", type=threads, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--batch", type=positive_int, help="bind the batch dim (default 1)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                   help="bind a symbolic dim (repeatable); unbound dims get stated defaults")
    p.add_argument("--value", action="append", default=[], metavar="NAME=V",
                   help="the value of a one-element input (repeatable), e.g. a mode switch or a sample rate: "
                        "an If it decides is costed by the branch that runs, not the larger")
    p.add_argument("--calibration", metavar="FILE",
                   help="calibration file (default: the user cache written by 'plan calibrate')")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--target", default="host", help="only 'host' (this machine): plan other targets with 'plan'")
    p.add_argument("--top", type=int, default=8, help="kernels shown at the terminal (default 8)")


def document(op, loaded) -> dict:
    """The prediction as JSON: plan keys (chosen.latency_ms, chosen.peak_memory_bytes, ...) plus the graph."""

    a, p = op.analysis, op.prediction
    ops = Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in a.graph.nodes)
    cal = op.calibration
    return {
        "schema_version": 1,
        "model": {"path": str(loaded.path), "sha256": loaded.sha256, "dims": dict(a.binding.values),
                  "defaults_used": list(a.binding.defaults_used), "flops": p.flops,
                  "weight_bytes": a.graph.weight_bytes},
        "runtime_graph": {"runtime": "onnxruntime", "optimization": "ORT_ENABLE_ALL", "provider": "CPU",
                          "threads": op.threads, "nodes": len(a.graph.nodes), "op_types": dict(ops.most_common())},
        "calibration": {"calibrated": cal is not None, "created": cal.created if cal else None,
                        "quick": cal.quick if cal else None},
        "chosen": asdict(candidate_report(p)),
        "notes": list(op.notes),
    }


def run(args: argparse.Namespace) -> int:

    if args.target.strip().lower() != "host":
        raise PlannerError(f"plan predict times onnxruntime on this machine: --target host only (got "
                           f"{args.target!r}); plan other targets with 'plan MODEL --target {args.target}'")
    loaded = load_model(args.model)
    op = predict_ort(loaded, args.threads, parse_dims(args.dim), args.batch, args.calibration,
                     values=parse_values(args.value))
    doc = document(op, loaded)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    c = doc["chosen"]
    m = c["memory"]
    print(f"{loaded.path.name} on host ({op.threads} thread{'s' if op.threads != 1 else ''}, onnxruntime "
          f"ORT_ENABLE_ALL graph: {doc['runtime_graph']['nodes']} nodes)")
    print(f"  latency      {c['latency_ms']:.4g} ms  ({c['bound']}-bound)")
    arena = f", arena {fmt_bytes(m['arena'])} beyond them" if m.get("arena") else ""
    print(f"  peak memory  {fmt_bytes(c['peak_memory_bytes'])}  (weights {fmt_bytes(m['weights'])}, activations "
          f"{fmt_bytes(m['activations'])}{arena}, runtime {fmt_bytes(m['workspace'])})")
    print(f"  dims         {', '.join(f'{k}={v}' for k, v in doc['model']['dims'].items()) or 'all fixed'}")
    for k in c["kernels"][: args.top]:
        print(f"  {k['time_ms'] * 1e3:9.1f} us  {100 * k['share']:5.1f}%  {k['ops'][:28]:<28} {k['bound']:<7} "
              f"{k['name'][:50]}")
    for note in doc["notes"]:
        print(f"  note: {note}")
    return 0
