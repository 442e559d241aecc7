"""`plan MODEL`: the main job. Plan a model on the targets asked for and print, or write, the plan."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from passes import get_pipeline
from planner.api import plan
from planner.atomic import write_atomic
from planner.commands.args import parse_dims, parse_values, positive_float, positive_int, threads, tp_degrees
from planner.errors import PlannerError
from planner.fleet.block import FleetRequest
from planner.fleet.slo import Slo
from planner.fleet.traffic import parse_traffic
from planner.output.console import table_renderer
from planner.output.deploy import write_deployment
from planner.output.fleet_text import fleet_line, render_fleet
from planner.output.plan_text import chosen_line, render_candidates, render_plan
from planner.output.progress import Progress
from planner.search.variants import DECODER_MAX_DRIFT, DEFAULT_MAX_DRIFT, PassOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("--target", default="a10g",
                   help="target name, comma-separated names, or 'all' (see 'plan targets'); default a10g")
    p.add_argument("--target-file", action="append", default=[], metavar="TOML",
                   help="add a target from a TOML file (repeatable)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                   help="bind a symbolic dim (repeatable); unbound dims get stated defaults")
    p.add_argument("--batch", type=positive_int, help="bind the batch dim (default: sweep 1, 2, 4, ...)")
    p.add_argument("--max-batch", type=positive_int, default=256, help="largest batch in the sweep (default 256)")
    p.add_argument("--max-latency-ms", type=positive_float, help="latency limit per batch")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON document")
    p.add_argument("--out", metavar="FILE", help="write the plan JSON to FILE (atomically)")
    p.add_argument("--top", type=positive_int, default=8, help="kernels shown at the terminal (default 8)")
    p.add_argument("--loop-trips", type=positive_int, metavar="N",
                   help="iterations of each Loop whose trip count the model does not fix (default 1)")
    p.add_argument("--value", action="append", default=[], metavar="NAME=V",
                   help="the value of a one-element input (repeatable), e.g. a mode switch or a sample rate: "
                        "an If it decides is costed by the branch that runs, not the larger")
    p.add_argument("--runtime", metavar="PROFILE",
                   help="the engine GPU targets serve with: ort-cuda (default), ort-cuda-graph, tensorrt, llm-engine, "
                        "framework-eager, framework-graph (hwtargets/runtimes/)")
    p.add_argument("--threads", type=threads, default=1,
                   help="onnxruntime intra-op threads for --target host (its calibration for them; default 1)")
    llm = p.add_argument_group("decoders (models with past key/value inputs)")
    llm.add_argument("--prompt-len", type=positive_int, help="prompt tokens per request (default 512)")
    llm.add_argument("--gen-len", type=positive_int, help="generated tokens per request (default 128)")
    llm.add_argument("--max-ttft-ms", type=positive_float, help="limit on the time to first token")
    llm.add_argument("--max-tpot-ms", type=positive_float, help="limit on the time per output token")
    llm.add_argument("--tp", type=tp_degrees, metavar="N[,N...]",
                     help="tensor-parallel degrees to try, from 1, 2, 4, 8 (default: all the target allows)")
    add_pass_arguments(p)
    add_fleet_arguments(p)
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only the chosen plan's line; no progress bar")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="every kernel and every configuration tried, with why each lost")


def add_fleet_arguments(p: argparse.ArgumentParser) -> None:
    g = add_traffic_arguments(p)
    g.add_argument("--emit-deploy", metavar="DIR",
                   help="write the chosen fleet's Triton model repository entry and Kubernetes manifest to DIR")


def add_traffic_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--qps / --traffic and the SLO flags (plan and plan check --metric monthly-cost share them)."""
    g = p.add_argument_group("fleet (traffic in, replicas and batching out; planner.fleet)")
    g.add_argument("--qps", metavar="RATE", help="Poisson arrivals at RATE requests/s: size a fleet for them")
    g.add_argument("--traffic", metavar="SPEC",
                   help="poisson:RATE, bursty:RATE[:CV], diurnal:PEAK[:TROUGH], or a CSV trace (arrival_s, and "
                        "for decoders prompt_tokens, output_tokens)")
    for q in (50, 95, 99):
        g.add_argument(f"--p{q}-ms", type=positive_float, metavar="MS", help=f"limit on the p{q} request latency")
    g.add_argument("--ttft-p95-ms", type=positive_float, metavar="MS", help="decoders: limit on the p95 TTFT")
    g.add_argument("--tpot-p95-ms", type=positive_float, metavar="MS", help="decoders: limit on the p95 TPOT")
    g.add_argument("--chunked-prefill", type=positive_int, metavar="TOKENS",
                   help="decoders: serve with chunked prefill, TOKENS an iteration (vLLM's max_num_batched_tokens); "
                        "default: prefill first")
    return g


def fleet_request(args: argparse.Namespace) -> FleetRequest | None:
    """Traffic and SLO from the arguments; None without traffic (an SLO alone is refused)."""
    traffic = parse_traffic(args.qps, args.traffic)
    slo = Slo.of({("latency", 50): args.p50_ms, ("latency", 95): args.p95_ms, ("latency", 99): args.p99_ms,
                  ("ttft", 95): args.ttft_p95_ms, ("tpot", 95): args.tpot_p95_ms})
    chunk = getattr(args, "chunked_prefill", None)
    if traffic is None and (slo or getattr(args, "emit_deploy", None) or chunk):
        raise PlannerError("--p50/--p95/--p99-ms, --ttft/--tpot-p95-ms, --chunked-prefill and --emit-deploy need "
                           "traffic: --qps RATE or --traffic SPEC")
    return None if traffic is None else FleetRequest(traffic, slo, chunked_prefill=chunk)


def _passes_mode(s: str) -> str:

    s = s.strip()
    if s in ("auto", "none"):
        return s
    for name in s.split(","):
        if name.strip():
            get_pipeline(name.strip())  # unknown names: a PlannerError listing the known ones
    return s


def _drift_limit(s: str) -> float:
    v = positive_float(s)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"'{s}' must be below 1 (it bounds 1 - cosine similarity)")
    return v


def add_pass_arguments(p: argparse.ArgumentParser) -> None:

    g = p.add_argument_group("passes (cleanup, fusion, quantization; verified with onnxruntime on this machine)")
    g.add_argument("--passes", type=_passes_mode, default="auto", metavar="auto|none|NAME[,NAME...]",
                   help="pipelines searched with targets and batches: auto (default: none, fused, int8-dynamic, "
                        "int4, fp16, and int8-static when --calibration is given), none (the model as stored), or "
                        "names. Each pipeline runs once per model with onnxruntime verification after every "
                        "pass: about 0.5-1.5 s for the shipped models")
    g.add_argument("--max-drift", type=_drift_limit, default=None, metavar="X",
                   help=f"reject pipelines whose outputs drift more than X from the original's: cosine "
                        f"similarity >= 1-X and, for classifier-like outputs, top-1 agreement >= 1-X (default "
                        f"{DEFAULT_MAX_DRIFT}: cosine >= 0.99, top-1 >= 0.99). Decoders, judged by generation: "
                        f"token agreement and per-step logit cosine >= 1-X, perplexity within +X (default "
                        f"{DECODER_MAX_DRIFT})")
    g.add_argument("--calibration", metavar="NPZ",
                   help="inputs (.npz, one array per graph input, first axis = batch) for int8-static calibration "
                        "and for measuring drift; default: seeded generated inputs")
    g.add_argument("--int4-block-size", type=positive_int, default=32, metavar="N",
                   help="block size of int4 weight quantization (power of two >= 16; default 32)")
    g.add_argument("--fp16-io", action="store_true",
                   help="fp16 pipeline: make graph inputs/outputs float16 too (default: keep float32 I/O)")
    g.add_argument("--emit", metavar="OUT.onnx", help="write the chosen candidate's model (atomically; never over "
                                                      "the input)")
    g.add_argument("--int4-asymmetric", action="store_true",
                   help="int4: a zero point per block (default: symmetric)")
    g.add_argument("--int4-float-lm-head", action="store_true",
                   help="int4 on a decoder: keep the lm_head (the MatMul writing logits) float")
    g.add_argument("--eval-text", metavar="FILE",
                   help="decoders: the text whose perplexity judges a pass (default: a bundled paragraph)")
    g.add_argument("--verify-tokens", type=positive_int, default=32, metavar="N",
                   help="decoders: greedy tokens generated per seeded prompt to verify a pass (default 32)")


def run(args: argparse.Namespace) -> int:

    fleet = fleet_request(args)
    with Progress("planning", enabled=not args.quiet) as bar:
        p = plan(args.model, targets=args.target, dims=parse_dims(args.dim), batch=args.batch,
                 max_latency_ms=args.max_latency_ms, target_files=args.target_file, max_batch=args.max_batch,
                 progress=bar.update, prompt_len=args.prompt_len, gen_len=args.gen_len,
                 max_ttft_ms=args.max_ttft_ms, max_tpot_ms=args.max_tpot_ms, tp=args.tp,
                 passes=PassOptions(args.passes, args.max_drift, args.calibration, args.int4_block_size,
                                    not args.fp16_io, not args.int4_asymmetric, not args.int4_float_lm_head,
                                    args.eval_text, args.verify_tokens),
                 emit=args.emit, loop_trips=args.loop_trips, threads=args.threads, fleet=fleet,
                 runtime=args.runtime, values=parse_values(args.value))
    if args.emit_deploy and p.fleet is not None:
        for todo in write_deployment(args.emit_deploy, p, args.model):
            print(f"plan: note: {todo}", file=sys.stderr)
    doc = json.dumps(p.to_dict(), indent=2)
    if args.out:

        write_atomic(args.out, doc + "\n", refuse={Path(args.model)})
    if args.json:
        print(doc)
    elif args.quiet:
        print(chosen_line(p) if p.fleet is None else fleet_line(p.fleet))
    else:
        table = table_renderer(sys.stdout)
        kernels = len(p.chosen.all_kernels) if args.verbose and p.chosen else args.top
        print(render_plan(p, top=kernels, table=table))
        if args.verbose:
            print("\n" + render_candidates(p, table=table))
        if p.fleet is not None:
            print("\n" + render_fleet(p.fleet, table=table))
    if p.fleet is not None:
        return 0 if p.fleet["chosen"] is not None else 1
    return 0 if p.chosen is not None else 1
