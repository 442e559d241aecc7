"""How well does `plan predict --target host` match onnxruntime on this machine?  (issue #4)

    python benchmarks/fidelity.py [--threads 1] [--runs 10] [--rounds 1] [--calibration FILE | --calibrate]
                                  [--only NAME ...] [--json OUT.json] [--measured FILE]
                                  [--zoo [DIR] [--split dev|held-out|all]]

Runs `plan validate` (planner.calibration.validate) over a zoo of varied models: the onnx package's light CNNs (AlexNet,
DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512; their batch is fixed
at 1), the repository's models/ (a small CNN and an MLP at two batch sizes, the BERT-like encoder at two
batch/sequence bindings, the Llama-like decoder in a decode step with 32 past tokens and in a 16-token step
over 16 past ones) and an LSTM and a two-layer GRU built here with onnx.helper, at two batch sizes each.

With --zoo, the models are instead those of the zoo of issue #16 (built by `python -m models.zoo.build`; DIR
defaults to its cache, ${XDG_CACHE_HOME:-~/.cache}/onnx-planner/zoo), read from its manifest.json: the ones of
--split (default dev: the half one may study while changing the cost model; held-out is for scoring only) that
onnxruntime runs, at the manifest's dims. The results are then also printed per class (CNN, detector, encoder,
decoder, recurrent, int8, fp16, control flow: a model's class is its precision for int8 and fp16 variants, else
its family's kind) and, with --split all, per split. A zoo model the planner cannot predict is reported and left
out of the figures.

Order of events, so that no model's timing can reach any prediction: the calibration is read (or measured
with --calibrate, before any model runs, again up to three times while it reports that neighbours kept the
machine busy); then per model the prediction is made (the model is never run for
it: planner.ort.executed) and only after that the model is measured, in a child process. The R measurement rounds
(--rounds, default 3) interleave the models, and each model's figure is the quickest quartile of its runs in
its quietest round: a machine that others share slows down in bursts of several seconds (on this VM the median
of a window of ResNet-50 runs moves between 57 and 73 ms while the window minima stay within 3%), so a
figure taken inside a burst measures the neighbours, not the model. Rounds half a minute apart rarely all
land in bursts.

Prints per model the predicted and measured end-to-end latency and the error, then: the share of models
within +-10% and +-5% and the median absolute error, end to end; and per op type (summed over the matched
kernels of all models) the predicted and measured time and the error, with the per-kernel median absolute
error. "measured" is the quickest quartile of a round's run times with the CPU to itself (for one thread: the
computing thread's CPU time, planner.ort.measure.effective_seconds), in the round where it is lowest: the
statistic a calibration keeps for every microbenchmark (planner.calibration.timing.QUANTILE of its runs, the
quickest of its passes), so that prediction and ground truth are read off the machine alike. The quietest
round's median and the quickest run are printed beside it; on an idle machine all agree within a few
percent. (Before 2026-12-07 the figure was the quietest round's median.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.zoo import manifest as zoo_manifest  # noqa: E402

CALIBRATION_ATTEMPTS = 3  # --calibrate measures again while planner.ort.quiet reports a busy machine

LIGHT = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512"]


@dataclass
class Case:
    name: str
    path: Path
    dims: dict[str, int] = field(default_factory=dict)
    batch: int | None = None
    klass: str = ""  # the zoo's scoring class ("" for the built-in zoo)
    split: str = ""
    family: str = ""
    variant: str = ""


def build_rnn(path: Path, kind: str, hidden: int, inputs: int, layers: int = 1, seed: int = 0) -> Path:
    """X [sequence, batch, inputs] -> `layers` LSTM or GRU layers -> last hidden state -> Gemm to 10 -> Softmax."""
    rng = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3}[kind]
    nodes, inits = [], []
    prev, width = "x", inputs
    for i in range(layers):
        w = (rng.standard_normal((1, gates * hidden, width)) * 0.1).astype(np.float32)
        r = (rng.standard_normal((1, gates * hidden, hidden)) * 0.1).astype(np.float32)
        b = np.zeros((1, 2 * gates * hidden), np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(r, f"R{i}"),
                  numpy_helper.from_array(b, f"B{i}")]
        last = i == layers - 1
        outs = ["", f"h{i}"] if last else [f"y{i}"]
        nodes.append(helper.make_node(kind, [prev, f"W{i}", f"R{i}", f"B{i}"], outs, name=f"{kind.lower()}{i}",
                                      hidden_size=hidden))
        if not last:
            nodes.append(helper.make_node("Squeeze", [f"y{i}", "axis1"], [f"s{i}"], name=f"squeeze{i}"))
            prev, width = f"s{i}", hidden
    inits += [numpy_helper.from_array(np.array([1], np.int64), "axis1"),
              numpy_helper.from_array(np.array([-1, hidden], np.int64), "flat"),
              numpy_helper.from_array((rng.standard_normal((hidden, 10)) * 0.1).astype(np.float32), "Wc"),
              numpy_helper.from_array(np.zeros(10, np.float32), "bc")]
    nodes += [helper.make_node("Reshape", [f"h{layers - 1}", "flat"], ["hf"], name="flatten"),
              helper.make_node("Gemm", ["hf", "Wc", "bc"], ["logits"], name="classifier"),
              helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1)]
    graph = helper.make_graph(
        nodes, f"{kind.lower()}x{layers}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["sequence", "batch", inputs])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def zoo(workdir: Path) -> list[Case]:
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    cases = [Case(n, light / f"light_{n}.onnx") for n in LIGHT]
    m = ROOT / "models"
    cases += [
        Case("cnn b1", m / "cnn.onnx", batch=1), Case("cnn b8", m / "cnn.onnx", batch=8),
        Case("mlp b1", m / "mlp.onnx", batch=1), Case("mlp b64", m / "mlp.onnx", batch=64),
        Case("encoder b1 s128", m / "encoder.onnx", {"sequence": 128}, 1),
        Case("encoder b4 s64", m / "encoder.onnx", {"sequence": 64}, 4),
        Case("decoder b1 s1 past32", m / "decoder.onnx", {"sequence_length": 1, "past_sequence_length": 32}, 1),
        Case("decoder b2 s16 past16", m / "decoder.onnx", {"sequence_length": 16, "past_sequence_length": 16}, 2),
    ]
    lstm = build_rnn(workdir / "lstm.onnx", "LSTM", hidden=96, inputs=40)
    gru = build_rnn(workdir / "gru.onnx", "GRU", hidden=80, inputs=48, layers=2)
    cases += [Case("lstm b1 s50", lstm, {"sequence": 50}, 1), Case("lstm b16 s50", lstm, {"sequence": 50}, 16),
              Case("gru2 b1 s40", gru, {"sequence": 40}, 1), Case("gru2 b8 s40", gru, {"sequence": 40}, 8)]
    return cases


def zoo_cases(folder: Path, split: str) -> list[Case]:
    """The manifest's models of `split` that onnxruntime runs, at their dims."""
    return [Case(r["name"], Path(r["path"]), dict(r["dims"]), r.get("batch"), r["class"], r["split"], r["family"],
                 r["variant"]) for r in zoo_manifest.select(zoo_manifest.load(folder), split)]


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "-"


def summarize(errors: list[float]) -> dict:
    """Within 10% and 5%, the median |error|, and the bias: the median signed error and the share predicted too
    fast (an error spread evenly around zero is noise; one on one side is a term the model lacks, or a
    calibration taken in another state of the machine than the measurements)."""
    signed = [e for e in errors if math.isfinite(e)]
    a = [abs(e) for e in signed]
    if not a:
        return {"models": 0}
    return {"models": len(a), "within_10pct": sum(x <= 0.10 for x in a) / len(a),
            "within_5pct": sum(x <= 0.05 for x in a) / len(a), "median_abs_error": statistics.median(a),
            "median_error": statistics.median(signed), "too_fast": sum(e < 0 for e in signed) / len(signed)}


def _quartile(m) -> float:
    """A measurement round's figure: the QUANTILE (quickest quartile) of its runs with the CPU to itself."""
    from planner.calibration.timing import QUANTILE
    from planner.ort.profile import quantile_of

    return quantile_of(m.latency_runs_s, QUANTILE) if m.latency_runs_s else m.latency_s


def noise_floor(round_medians: list[list[float]]) -> dict:
    """How far one model's rounds stray from each other, over the models measured in two rounds or more: the
    slowest round's figure over the quickest's, less one. A prediction cannot be judged closer than the rounds
    of its own measurement agree (the figure is scored against the quickest round)."""
    spreads = sorted(max(r) / min(r) - 1 for r in round_medians if len(r) > 1 and min(r) > 0)
    if not spreads:
        return {"models": 0}
    return {"models": len(spreads), "median": statistics.median(spreads),
            "p90": spreads[min(len(spreads) - 1, math.ceil(0.9 * len(spreads)) - 1)],
            "over_10pct": sum(x > 0.10 for x in spreads) / len(spreads)}


def per_class(rows: list[dict]) -> dict:
    """Print and return the end-to-end figures per scoring class, and per split x class when both splits are
    in `rows`."""
    groups: dict[str, list[float]] = defaultdict(list)
    splits = sorted({r["split"] for r in rows})
    for r in rows:
        groups[r["class"]].append(r["error"])
        if len(splits) > 1:
            groups[f"{r['split']}/{r['class']}"].append(r["error"])
            groups[f"{r['split']}/all"].append(r["error"])
    out = {}
    print(f"\n{'class':<22} {'models':>6} {'within 10%':>10} {'within 5%':>9} {'median |err|':>12}")
    for name in sorted(groups, key=lambda k: (k.count("/"), k)):
        s = summarize(groups[name])
        out[name] = s
        if s["models"]:
            print(f"{name:<22} {s['models']:>6} {100 * s['within_10pct']:>9.0f}% {100 * s['within_5pct']:>8.0f}% "
                  f"{100 * s['median_abs_error']:>11.1f}%")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per model per round (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (default 3)")
    ap.add_argument("--calibration", help="calibration file (default: the user cache of 'plan calibrate')")
    ap.add_argument("--calibrate", action="store_true",
                    help="calibrate first, before any model is run (into --calibration FILE if given, else a "
                         "temporary file)")
    ap.add_argument("--only", nargs="*", help="run the cases whose name contains one of these")
    ap.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    ap.add_argument("--measured", metavar="FILE",
                    help="reuse the measurements in FILE if it exists, else measure and save them there: "
                         "versions of the code (or calibrations) compared against the same measurements")
    ap.add_argument("--zoo", nargs="?", const="", metavar="DIR",
                    help="score the zoo of issue #16 from DIR/manifest.json (default DIR: "
                         f"{zoo_manifest.default_dir()}) instead of the built-in zoo")
    ap.add_argument("--split", choices=zoo_manifest.SPLIT_CHOICES, default="dev",
                    help="with --zoo: which half to score (default dev; held-out is for scoring, never tuning)")
    args = ap.parse_args(argv)

    from planner.calibration.fit import fit
    from planner.calibration.host import calibrated_host, predict_ort
    from planner.calibration.store import save
    from planner.calibration.validate import compare
    from planner.model.loader import load_model
    from planner.ort.measure import measure, one_element_feeds

    with tempfile.TemporaryDirectory(prefix="planner-fidelity-") as tmp:
        work = Path(tmp)
        cal_path = args.calibration
        if args.calibrate:
            from planner.calibration.run import calibrate

            where = args.calibration or work / "calibration.json"
            tries = []  # (microbenchmarks run on a busy machine, calibration)
            for attempt in range(1, CALIBRATION_ATTEMPTS + 1):
                print(f"calibrating (attempt {attempt}) ...", file=sys.stderr, flush=True)
                m = calibrate(args.threads)
                tries.append((m.busy, attempt, fit(m)))
                if not m.busy:
                    break
                print(f"  the machine was busy for {m.busy} microbenchmarks", file=sys.stderr)
            cal_path = str(save(min(tries)[2], where))  # the quietest attempt
        host = calibrated_host(args.threads, cal_path)
        if host.calibration is None:
            print(f"fidelity: {host.notes[0]}", file=sys.stderr)
            return 2
        if args.zoo is not None:
            where = Path(args.zoo) if args.zoo else zoo_manifest.default_dir()
            if not (where / zoo_manifest.MANIFEST).exists():
                print(f"fidelity: no zoo at {where} (build it: python -m models.zoo.build --out {where})",
                      file=sys.stderr)
                return 2
            everything = zoo_cases(where, args.split)
        else:
            everything = zoo(work)
        cases = [c for c in everything if not args.only or any(s in c.name for s in args.only)]
        started = time.time()
        predictions = {}
        unpredicted = []
        for c in cases:  # every prediction before any measurement
            if args.zoo is None:
                predictions[c.name] = predict_ort(load_model(c.path), args.threads, c.dims, c.batch, cal_path)
                continue
            try:
                loaded = load_model(c.path)  # the one-element inputs as the measurement feeds them (an If's switch)
                predictions[c.name] = predict_ort(loaded, args.threads, c.dims, c.batch, cal_path,
                                                  values=one_element_feeds(loaded.model))
            except Exception as e:  # noqa: BLE001 - a zoo model the planner fails on is a finding, not the end
                unpredicted.append(f"{c.name}: {type(e).__name__}: {e}")
                print(f"fidelity: no prediction for {unpredicted[-1]}", file=sys.stderr)
        cases = [c for c in cases if c.name in predictions]
        measured: dict[str, list] = defaultdict(list)
        reuse = args.measured and Path(args.measured).exists()
        if reuse:
            from planner.ort.measure import Measurement

            saved = json.loads(Path(args.measured).read_text())
            for c in cases:
                if c.name not in saved:
                    print(f"fidelity: {args.measured} has no measurement of {c.name}", file=sys.stderr)
                    return 2
                measured[c.name] = [Measurement(**m) for m in saved[c.name]]
        for r in range(0 if reuse else args.rounds):
            for c in cases:
                dims = dict(predictions[c.name].analysis.binding.values)
                print(f"measuring {c.name} (round {r + 1}/{args.rounds})", file=sys.stderr, flush=True)
                measured[c.name].append(measure(c.path, dims, args.threads, args.runs,
                                                quiet_probe_s=host.calibration.probe_s,
                                                quiet_memory_probe_s=host.calibration.probe_memory_s))
        if args.measured and not reuse:
            from planner.atomic import write_atomic

            write_atomic(args.measured, json.dumps({k: [m.to_dict() for m in v] for k, v in measured.items()}) + "\n")
        cal = host.calibration
        rows, op_sum = [], defaultdict(lambda: [0.0, 0.0, 0])
        kernel_errors: dict[str, list[float]] = defaultdict(list)
        for c in cases:
            op = predictions[c.name]
            ms = measured[c.name]
            # each round's quickest quartile, the statistic a calibration keeps for its microbenchmarks
            # (planner.calibration.timing.QUANTILE of the runs, the quickest pass): the quietest round by it gives
            # the figure and the kernels
            best = min(ms, key=_quartile)
            eff = _quartile(best)
            median = min(m.latency_s for m in ms)  # the quietest round's median, printed beside it
            wall = min(m.latency_wall_s for m in ms)
            fastest = min(m.latency_best_s for m in ms)
            pred = op.prediction.latency_s
            kernels, _, _, _ = compare(op.prediction, best, op.target.launch_overhead_s, cal.profiler_bias_s)
            for k in kernels:
                s = op_sum[k.op_type]
                s[0] += k.predicted_us / 1e3
                s[1] += k.measured_us / 1e3
                s[2] += 1
                if k.measured_us > 0:
                    kernel_errors[k.op_type].append(k.error)
            rows.append({"name": c.name, "model": str(c.path.name), "class": c.klass, "split": c.split,
                         "family": c.family, "variant": c.variant, "dims": dict(op.analysis.binding.values),
                         "nodes": len(op.analysis.graph.nodes), "predicted_ms": pred * 1e3,
                         "measured_ms": eff * 1e3, "measured_median_ms": median * 1e3,
                         "median_error": pred / median - 1, "measured_wall_ms": wall * 1e3,
                         "cpu_share": statistics.median(m.cpu_share for m in ms),
                         "measured_best_ms": fastest * 1e3, "error": pred / eff - 1, "wall_error": pred / wall - 1,
                         "best_error": pred / fastest - 1,
                         "predicted_peak_memory_bytes": op.prediction.memory.total_bytes,
                         "measured_rss_peak_bytes": best.rss_peak_bytes,
                         "kernels": [{"name": k.name, "op_type": k.op_type, "family": k.family, "bound": k.bound,
                                      "predicted_us": k.predicted_us, "measured_us": k.measured_us}
                                     for k in kernels]})

    print(f"\nfidelity: {len(rows)} models, {args.threads} thread(s), {args.runs} runs x {args.rounds} round(s); "
          f"calibration {cal.created}{' (quick)' if cal.quick else ''}; {time.time() - started:.0f} s")
    for n in cal.notes:
        print(f"  calibration: {n}")
    busy = sum(m.busy for ms in measured.values() for m in ms)
    if busy:
        print(f"  {busy} of {sum(len(ms) for ms in measured.values())} measurement rounds ran on a busy machine")
    print(f"{'model':<24} {'nodes':>5} {'predicted':>11} {'measured':>11} {'error':>8}   {'median':>11} {'error':>8} "
          f"{'cpu':>5}   {'quickest':>11} {'error':>8}")
    for r in rows:
        print(f"{r['name']:<24} {r['nodes']:>5} {r['predicted_ms']:>8.3f} ms {r['measured_ms']:>8.3f} ms "
              f"{_pct(r['error']):>8}   {r['measured_median_ms']:>8.3f} ms {_pct(r['median_error']):>8} "
              f"{100 * r['cpu_share']:>4.0f}%   {r['measured_best_ms']:>8.3f} ms {_pct(r['best_error']):>8}")
    end = summarize([r["error"] for r in rows])
    median = summarize([r["median_error"] for r in rows])
    wall = summarize([r["wall_error"] for r in rows])
    best = summarize([r["best_error"] for r in rows])
    print(f"\nend to end: {100 * end['within_10pct']:.0f}% of models within +-10%, {100 * end['within_5pct']:.0f}% "
          f"within +-5%, median |error| {100 * end['median_abs_error']:.1f}%")
    print(f"  bias: median signed error {_pct(end['median_error'])}, {100 * end['too_fast']:.0f}% of models "
          "predicted faster than measured")
    for label, x in (("the quietest round's median", median), ("wall clock", wall), ("the quickest run", best)):
        print(f"  (against {label}: {100 * x['within_10pct']:.0f}% within +-10%, {100 * x['within_5pct']:.0f}% "
              f"within +-5%, median |error| {100 * x['median_abs_error']:.1f}%)")
    floor = noise_floor([[_quartile(m) for m in measured[c.name]] for c in cases])
    if floor["models"]:
        print(f"  noise floor: a model's slowest round over its quickest +{100 * floor['median']:.1f}% in median, "
              f"+{100 * floor['p90']:.1f}% at the 90th percentile; {100 * floor['over_10pct']:.0f}% of models "
              f"beyond 10%")
    classes = per_class(rows) if args.zoo is not None else {}
    for n in unpredicted:
        print(f"  no prediction: {n}")
    mem = [r["predicted_peak_memory_bytes"] / r["measured_rss_peak_bytes"] - 1 for r in rows
           if r.get("measured_rss_peak_bytes")]
    if mem:
        worst = max(mem, key=abs)
        print(f"peak memory (predicted against resident memory): {sum(abs(e) <= 0.15 for e in mem)} of {len(mem)} "
              f"within +-15%, {sum(abs(e) <= 0.2 for e in mem)} within +-20%, median |error| "
              f"{100 * statistics.median(abs(e) for e in mem):.0f}%, worst {_pct(worst)}")
    print(f"\n{'op type':<26} {'kernels':>7} {'predicted':>11} {'measured':>11} {'error':>8} {'kernel |err| med':>17} "
          f"{'within 10%':>10}")
    per_op = {}
    for op_type, (p, m, n) in sorted(op_sum.items(), key=lambda kv: -kv[1][1]):
        errs = [abs(e) for e in kernel_errors[op_type]]
        med = statistics.median(errs) if errs else float("nan")
        within = sum(e <= 0.10 for e in errs) / len(errs) if errs else float("nan")
        per_op[op_type] = {"kernels": n, "predicted_ms": p, "measured_ms": m, "error": p / m - 1 if m else None,
                           "kernel_median_abs_error": med, "kernel_within_10pct": within}
        print(f"{op_type:<26} {n:>7} {p:>8.3f} ms {m:>8.3f} ms {_pct(p / m - 1 if m else math.nan):>8} "
              f"{100 * med:>16.1f}% {100 * within:>9.0f}%")
    if args.json:
        from planner.atomic import write_atomic

        write_atomic(args.json, json.dumps({"threads": args.threads, "runs": args.runs, "rounds": args.rounds,
                                            "noise_floor": floor,
                                            "calibration": cal.created, "models": rows, "end_to_end": end,
                                            "end_to_end_wall": wall, "end_to_end_quickest": best,
                                            "peak_memory_errors": mem, "split": args.split if
                                            args.zoo is not None else None, "classes": classes,
                                            "unpredicted": unpredicted,
                                            "op_types": per_op}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
