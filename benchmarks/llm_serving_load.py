"""Does the fleet's continuous-batching simulation predict a real decode loop on this machine?  (issue #18)

    python benchmarks/llm_serving_load.py [--model models/decoder.onnx | llama-small] [--prompt-len 32] [--gen-len 32]
                                          [--max-seqs 8] [--seconds 20] [--threads 1] [--json OUT.json]

1. Predict (nothing has run yet): `plan MODEL --target host --passes none` at these lengths gives the decoder's
   TTFT and TPOT by batch on this machine (host's stored calibration, `plan calibrate`); planner.fleet.llm turns
   them into a replica's curve, its capacity at --max-seqs sequences in flight, and the simulation below.
2. Serve: one onnxruntime session runs the scheduler planner.fleet.llm simulates (continuous batching, prefill
   first): at each iteration the requests that have arrived are admitted up to --max-seqs in flight and
   prefilled together (one forward of their prompts with an empty cache: the first token), or else every
   sequence in flight takes one decode step (one forward of the batch: each sequence's cache left-padded to the
   longest, the attention mask zero over the padding, its own positions; greedy tokens). Requests leave after
   --gen-len tokens. Arrivals are open-loop Poisson times fixed before the run and admitted from the clock in
   the same process, so no sender competes for the CPU and a late iteration cannot hide queueing: TTFT runs
   from the scheduled arrival to the end of the prefill that made the first token, TPOT from there to the last
   token over the tokens after the first.
3. Loads: 10% ("light"), 70% and 90% of the predicted capacity for --seconds each, and saturation (a backlog
   of requests at once: requests / time to drain). The simulator runs on the very same arrival times; the
   first 10% of requests are dropped from both sides.

Prints per load predicted and measured TTFT p50/p95, TPOT p50/p95 and output tokens/s with their errors, and
"bus": the streaming probe's time just before the load against the calibration's (x1.25: neighbours on the
memory bus make every weight read a quarter slower than the prediction assumes; planner.ort.quiet),
the saturation throughput, and (the model's part of any miss) each iteration's measured Run against the
curve's prefill(k) and decode(b, contexts). What the server does that a real engine avoids (copying each
sequence's cache into a padded batch every step) is in the measured iteration time beside the Run.
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402

from planner.api import plan  # noqa: E402
from planner.atomic import write_atomic  # noqa: E402
from planner.calibration.host import calibrated_host  # noqa: E402
from planner.fleet.batcher import WARMUP  # noqa: E402
from planner.fleet.block import decoder_curves  # noqa: E402
from planner.fleet.llm import DecoderCurve, simulate_continuous  # noqa: E402
from planner.fleet.slo import PERCENTILES  # noqa: E402
from planner.fleet.traffic import poisson  # noqa: E402
from planner.llm.decoder import DecoderInfo, recognise  # noqa: E402
from planner.ort.quiet import QuietGate  # noqa: E402
from planner.search.variants import PassOptions  # noqa: E402

LOADS = (("light", 0.1), ("70%", 0.7), ("90%", 0.9))
# --model llama-small: a random-init Llama-shaped decoder of 178 MB built here (models.llama_like), the size
# benchmarks/decoder_passes.py calls small
LLAMA_SMALL = dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_layers=4, num_heads=8,
                   num_kv_heads=4, max_position=512, name="llama-small")


def model_path(arg: str, folder: Path) -> Path:
    if arg != "llama-small":
        return Path(arg)
    from models.llama_like import DecoderConfig, make_decoder

    path = folder / "llama-small.onnx"
    onnx.save(make_decoder(DecoderConfig(**LLAMA_SMALL))[0], str(path))
    return path


class DecodeServer:
    """One onnxruntime session behind the prefill-first continuous-batching scheduler (module docstring, 2)."""

    def __init__(self, model_path: Path, info: DecoderInfo, threads: int, prompt_len: int, gen_len: int,
                 max_seqs: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.info, self.prompt_len, self.gen_len, self.max_seqs = info, prompt_len, gen_len, max_seqs
        self.past = [p.name for p in info.past]
        self.kv_shape = (info.kv_heads, info.head_dim)
        self.vocab = min(info.vocab_size or 100, 1000)
        self.iterations: list[dict] = []

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
        t0 = time.perf_counter()
        out = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})
        return out, time.perf_counter() - t0

    def _prefill(self, ids: list[int], rng: np.random.Generator) -> tuple[list[dict], float]:
        k, p = len(ids), self.prompt_len
        feeds = {"input_ids": rng.integers(0, self.vocab, (k, p), dtype=np.int64),
                 "attention_mask": np.ones((k, p), np.int64),
                 "position_ids": np.tile(np.arange(p, dtype=np.int64), (k, 1))}
        for name in self.past:
            feeds[name] = np.zeros((k, *self.kv_shape[:1], 0, self.kv_shape[1]), np.float32)
        out, run_s = self._run(feeds)
        logits, presents = out[0], out[1:]
        seqs = [{"id": i, "cache": [np.ascontiguousarray(t[j]) for t in presents], "context": p,
                 "token": int(np.argmax(logits[j, -1])), "left": self.gen_len - 1} for j, i in enumerate(ids)]
        return seqs, run_s

    def _decode(self, running: list[dict]) -> float:
        b = len(running)
        longest = max(s["context"] for s in running)
        mask = np.zeros((b, longest + 1), np.int64)
        feeds = {"input_ids": np.array([[s["token"]] for s in running], np.int64),
                 "position_ids": np.array([[s["context"]] for s in running], np.int64)}
        for n, name in enumerate(self.past):
            padded = np.zeros((b, self.kv_shape[0], longest, self.kv_shape[1]), np.float32)
            for j, s in enumerate(running):
                padded[j, :, longest - s["context"]:, :] = s["cache"][n]
            feeds[name] = padded
        for j, s in enumerate(running):
            mask[j, longest - s["context"]:] = 1
        feeds["attention_mask"] = mask
        out, run_s = self._run(feeds)
        logits, presents = out[0], out[1:]
        for j, s in enumerate(running):
            pad = longest - s["context"]
            s["cache"] = [np.ascontiguousarray(t[j, :, pad:, :]) for t in presents]
            s["context"] += 1
            s["token"] = int(np.argmax(logits[j, -1]))
            s["left"] -= 1
        return run_s

    def serve(self, arrivals_s: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """First-token and last-token times (seconds from the start) of each request."""
        rng = np.random.default_rng(seed)
        n = len(arrivals_s)
        first, done = np.zeros(n), np.zeros(n)
        waiting: deque[int] = deque()
        running: list[dict] = []
        nxt, finished = 0, 0
        self.iterations = []
        t0 = time.perf_counter()
        while finished < n:
            now = time.perf_counter() - t0
            while nxt < n and arrivals_s[nxt] <= now:
                waiting.append(nxt)
                nxt += 1
            if not running and not waiting:
                time.sleep(max(arrivals_s[nxt] - now, 0.0))
                continue
            started = time.perf_counter()
            new = [waiting.popleft() for _ in range(min(len(waiting), self.max_seqs - len(running)))]
            if new:
                seqs, run_s = self._prefill(new, rng)
                end = time.perf_counter() - t0
                for s in seqs:
                    first[s["id"]] = end
                running += seqs
                log = {"kind": "prefill", "size": len(new), "tokens": len(new) * self.prompt_len}
            else:
                contexts = sum(s["context"] for s in running)
                run_s = self._decode(running)
                end = time.perf_counter() - t0
                log = {"kind": "decode", "size": len(running), "contexts": contexts}
            self.iterations.append({**log, "run_s": run_s, "iteration_s": time.perf_counter() - started})
            for s in [s for s in running if s["left"] <= 0]:
                done[s["id"]] = end
                finished += 1
                running.remove(s)
        return first, done


def percentiles(arrivals_s: np.ndarray, first: np.ndarray, done: np.ndarray, gen_len: int) -> dict[str, float]:
    start = int(len(arrivals_s) * WARMUP)
    ttft = (first - arrivals_s)[start:]
    tpot = (done - first)[start:] / max(gen_len - 1, 1)
    out = {}
    for name, v in (("ttft", ttft), ("tpot", tpot)):
        for q, x in zip(PERCENTILES, np.percentile(v, PERCENTILES), strict=True):
            out[f"{name}_p{q}"] = float(x)
    out["tokens_per_s"] = len(arrivals_s) * gen_len / float(done.max() - arrivals_s[0])
    return out


def predicted_curve(model: Path, prompt_len: int, gen_len: int, max_seqs: int, threads: int
                    ) -> tuple[DecoderCurve, float | None]:
    """The host replica's curve, and the calibration's quiet memory-bus probe time (None: not recorded)."""
    host = calibrated_host(threads)
    for note in host.notes:
        print(f"llm_serving_load: {note}", file=sys.stderr)
    p = plan(model, targets="host", passes=PassOptions("none"), prompt_len=prompt_len, gen_len=gen_len,
             max_batch=max_seqs, threads=threads)
    curve = next(c for c in decoder_curves(p, prompt_len, gen_len, [host.target]) if c.devices == 1)
    return curve, host.calibration.probe_memory_s if host.calibration else None


def run_curve_check(iterations: list[dict], prompt_len: int, curve: DecoderCurve) -> list[dict]:
    """Each iteration's measured Run (median by kind and size) against the curve's time for it."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for it in iterations:
        groups.setdefault((it["kind"], it["size"]), []).append(it)
    rows = []
    for (kind, size), its in sorted(groups.items()):
        if kind == "prefill":
            predicted = curve.prefill(size, size * prompt_len)
        else:
            predicted = statistics.median(curve.decode(size, it["contexts"]) for it in its)
        rows.append({"kind": kind, "size": size, "count": len(its), "predicted_ms": predicted * 1e3,
                     "run_ms": statistics.median(it["run_s"] for it in its) * 1e3,
                     "iteration_ms": statistics.median(it["iteration_s"] for it in its) * 1e3})
    return rows


def _err(pred: float, meas: float) -> str:
    return f"{100 * (pred / meas - 1):+.0f}%" if meas > 0 else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "decoder.onnx"),
                    help="a decoder with a KV cache, or llama-small (built here)")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--gen-len", type=int, default=32)
    ap.add_argument("--max-seqs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        args.model = model_path(args.model, Path(tmp))
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    info = recognise(onnx.load(str(args.model), load_external_data=False))
    if info is None or info.kv_heads is None or info.head_dim is None:
        raise SystemExit(f"llm_serving_load: {args.model} is not a decoder with a [batch, heads, past, size] cache")
    curve, bus_s = predicted_curve(args.model, args.prompt_len, args.gen_len, args.max_seqs, args.threads)
    gate = QuietGate(args.threads, memory=True, reference_memory_s=bus_s)
    capacity = curve.capacity_per_s(args.max_seqs)
    print(f"{args.model.name}: prompt {args.prompt_len}, {args.gen_len} tokens out, max {args.max_seqs} in flight, "
          f"{args.threads} thread(s); predicted capacity {capacity:.4g} req/s "
          f"({capacity * args.gen_len:.4g} tokens/s)")
    server = DecodeServer(args.model, info, args.threads, args.prompt_len, args.gen_len, args.max_seqs)
    server.serve(np.zeros(2))  # warm up
    results = []
    head = f"{'load':<11}{'req/s':>8}{'n':>6}  " + "  ".join(
        f"{m:>22}" for m in ("TTFT p50 pred/meas", "TTFT p95 pred/meas", "TPOT p50 pred/meas",
                             "TPOT p95 pred/meas", "tokens/s pred/meas"))
    print(head + "  bus")
    iterations: list[dict] = []
    for label, share in LOADS:
        rate = share * capacity
        n = max(20, int(rate * args.seconds))
        arrivals, _ = poisson(rate).arrivals(1, n, args.seed)
        arrivals = arrivals - arrivals[0]
        lengths = (np.full(n, args.prompt_len), np.full(n, args.gen_len))
        gate.wait(5.0)
        bus = gate.probe_memory() / bus_s if bus_s else None  # the memory bus now against the calibration's
        sim = simulate_continuous(arrivals, *lengths, curve, args.max_seqs)
        pred = {f"{m}_p{q}": sim.percentiles_s[(m, q)] for m in ("ttft", "tpot") for q in PERCENTILES}
        pred["tokens_per_s"] = sim.tokens_per_s
        meas = percentiles(arrivals, *server.serve(arrivals, args.seed), args.gen_len)
        iterations += server.iterations
        cells = []
        for key, scale in (("ttft_p50", 1e3), ("ttft_p95", 1e3), ("tpot_p50", 1e3), ("tpot_p95", 1e3),
                           ("tokens_per_s", 1)):
            cells.append(f"{pred[key] * scale:.3g}/{meas[key] * scale:.3g} {_err(pred[key], meas[key]):>5}")
        print(f"{label:<11}{rate:>8.4g}{n:>6}  " + "  ".join(f"{c:>22}" for c in cells)
              + (f"  x{bus:.2f}" if bus else ""), flush=True)
        results.append({"load": label, "rate_per_s": rate, "requests": n, "predicted": pred, "measured": meas,
                        "memory_bus_vs_calibration": bus})
    n = 4 * args.max_seqs * 4
    burst = np.zeros(n)
    sim = simulate_continuous(burst, np.full(n, args.prompt_len), np.full(n, args.gen_len), curve, args.max_seqs)
    first, done = server.serve(burst, args.seed)
    iterations += server.iterations
    sim_rate = sim.tokens_per_s / args.gen_len  # requests / time to drain, as measured
    meas_rate = n / float(done.max())
    print(f"saturation: predicted {sim_rate:.4g} req/s, measured {meas_rate:.4g} req/s, "
          f"error {_err(sim_rate, meas_rate)}")
    checks = run_curve_check(iterations, args.prompt_len, curve)
    print("iterations (median): kind size count  predicted ms  Run ms (error)  whole iteration ms", file=sys.stderr)
    for r in checks:
        print(f"  {r['kind']:<8}{r['size']:>4}{r['count']:>7}  {r['predicted_ms']:>10.3f}  {r['run_ms']:>8.3f} "
              f"({_err(r['predicted_ms'], r['run_ms'])})  {r['iteration_ms']:>8.3f}", file=sys.stderr)
    if args.json:
        write_atomic(args.json, json.dumps({"model": str(args.model), "loads": results,
                                            "saturation": {"predicted_per_s": sim_rate, "measured_per_s": meas_rate},
                                            "iterations": checks}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
