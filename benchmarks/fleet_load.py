"""Does the fleet simulator predict a real server on this machine?  (issue #18)

    python benchmarks/fleet_load.py [--seconds 20] [--max-batch 8] [--max-delay-ms 2] [--threads 1]
                                    [--only cnn encoder decoder] [--calibrate] [--json OUT.json]

For each of models/cnn.onnx, models/encoder.onnx and models/decoder.onnx:

1. Predict (nothing has run yet): `plan MODEL --target host --passes none --max-batch B` gives the latency of
   each batch on this machine (host's stored calibration, made by `plan calibrate`; --calibrate makes it first),
   from which the predicted saturation throughput of one replica is B / latency(B).
2. Serve: a worker process (multiprocessing, spawn) holds one onnxruntime session (--threads intra-op threads)
   behind a queue (a pipe) with the dynamic batcher of planner.fleet.batcher: a batch leaves when B requests wait or the
   oldest has waited the max delay, at most B; its inputs are one request's inputs concatenated B times.
3. Load: the main process sends open-loop Poisson arrivals at 10% ("light"), 70% and 90% of the predicted
   capacity for --seconds each; a request's latency runs from its scheduled arrival to the end of its batch's
   run, so a late sender cannot hide queueing. The simulator is run on the very same arrival times.
4. Saturate: a backlog of requests sent at once; the measured throughput is requests / time to drain.

Prints, per model and load, predicted and measured p50 and p99 and their errors, then the predicted and
measured saturation throughput. The issue's bar: p50 and p99 within +-20%, saturation within +-15%.

The decoder is served one forward per request (a prefill of --prompt-len tokens with an empty cache, batched
dynamically) and predicted by the decoder plan's TTFT at each batch: continuous batching is simulated by
planner.fleet.llm but is not driven against a real server here. The first 10% of each load's requests are
dropped from both sides, as in the simulator. Run it on a quiet machine: other processes on the same cores
show up as queueing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.api import plan  # noqa: E402
from planner.calibration.host import calibrated_host  # noqa: E402
from planner.fleet.batcher import WARMUP, simulate  # noqa: E402
from planner.fleet.block import decoder_curves, service_curves  # noqa: E402
from planner.fleet.search import ServiceCurve  # noqa: E402
from planner.fleet.traffic import poisson  # noqa: E402
from planner.search.variants import PassOptions  # noqa: E402

MODELS = {"cnn": ROOT / "models" / "cnn.onnx", "encoder": ROOT / "models" / "encoder.onnx",
          "decoder": ROOT / "models" / "decoder.onnx"}
LOADS = (("light", 0.1), ("70%", 0.7), ("90%", 0.9))


# ---- the server (worker process) -----------------------------------------------------------------------------


def _one_request(model_path: str, dims: dict[str, int], decoder_dims: dict[str, int] | None, sess) -> dict:
    """One request's inputs (batch 1): the decoder's prefill feeds, or seeded synthetic ones."""
    if decoder_dims is not None:
        import onnx

        from planner.llm.decoder import phase_feeds

        return phase_feeds(onnx.load(model_path, load_external_data=False), decoder_dims, 1)
    from planner.ort.measure import synthetic_feeds

    return synthetic_feeds(sess, dims)


def serve(model_path: str, dims: dict[str, int], decoder_dims: dict[str, int] | None, max_batch: int,
          max_delay_s: float, threads: int, requests: Connection, results: Connection) -> None:
    """The dynamic batcher over one onnxruntime session: (id, arrival) in, (ids, done, size) out. Pipes, not
    multiprocessing.Queue: a few microseconds a message instead of tens, which at thousands of requests a
    second would otherwise be the server's cost, not the model's."""
    from planner.ort.session import make_session, session_options

    sess = make_session(model_path, session_options(threads))
    one = _one_request(model_path, dims, decoder_dims, sess)
    for b in range(1, max_batch + 1):  # warm every batch size once
        sess.run(None, {k: np.concatenate([v] * b) for k, v in one.items()})
    results.send("ready")
    stop = False
    while not stop:
        first = requests.recv()
        if first is None:
            break
        batch = [first]
        deadline = first[1] + max_delay_s
        while len(batch) < max_batch:
            wait = deadline - time.perf_counter()
            if not requests.poll(max(0.0, wait)):
                break
            nxt = requests.recv()
            if nxt is None:
                stop = True
                break
            batch.append(nxt)
        sess.run(None, {k: np.concatenate([v] * len(batch)) for k, v in one.items()})
        results.send(([i for i, _ in batch], time.perf_counter(), len(batch)))


# ---- the load generator (main process) -----------------------------------------------------------------------


def drive(requests: Connection, results: Connection, arrivals: np.ndarray) -> np.ndarray:
    """Send open-loop arrivals (s from now); latency of each request from its scheduled arrival."""
    t0 = time.perf_counter() + 0.05
    scheduled = t0 + arrivals

    def send():
        for i, t in enumerate(scheduled):
            delay = t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            requests.send((i, float(t)))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    done = np.zeros(len(arrivals))
    left = len(arrivals)
    while left:
        ids, t, _ = results.recv()
        done[ids] = t
        left -= len(ids)
    sender.join()
    return done - scheduled


def _pct(latency: np.ndarray) -> tuple[float, float]:
    kept = latency[int(len(latency) * WARMUP):]
    p50, p99 = np.percentile(kept, [50, 99])
    return float(p50), float(p99)


def _err(pred: float, meas: float) -> str:
    return f"{100 * (pred / meas - 1):+.0f}%"


def curve_for(name: str, threads: int, max_batch: int, prompt_len: int) -> tuple[ServiceCurve, dict, dict | None]:
    """The host's predicted latency by batch, the plan's dims, and the decoder's prefill dims (or None)."""
    if name == "decoder":
        p = plan(MODELS[name], targets="host", max_batch=max_batch, threads=threads, prompt_len=prompt_len,
                 gen_len=1)
        c = next(c for c in decoder_curves(p, prompt_len, 1) if c.devices == 1)
        curve = ServiceCurve("host", "none", c.batches, c.prefill_s, c.price_usd_per_hour)
        return curve, {}, dict(p.model.decoder["phase_dims"]["prefill"])
    p = plan(MODELS[name], targets="host", max_batch=max_batch, threads=threads, passes=PassOptions("none"))
    return service_curves(p)[0], dict(p.model.dims), None


def bench(name: str, args: argparse.Namespace, rows: list[dict]) -> None:
    curve, dims, decoder_dims = curve_for(name, args.threads, args.max_batch, args.prompt_len)
    b, delay = args.max_batch, args.max_delay_ms / 1e3
    if b not in curve.batches:
        b = max(curve.batches)
    capacity = curve.capacity_per_s(b)
    print(f"{name}: predicted latency by batch (ms): "
          + ", ".join(f"{x}: {s * 1e3:.3g}" for x, s in zip(curve.batches, curve.latency_s, strict=True))
          + f"; capacity at batch {b}: {capacity:.4g} req/s", file=sys.stderr, flush=True)
    ctx = mp.get_context("spawn")
    serve_in, requests = ctx.Pipe(duplex=False)  # (receiving end, sending end)
    results, serve_out = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=serve, args=(str(MODELS[name]), dims, decoder_dims, b, delay, args.threads,
                                             serve_in, serve_out), daemon=True)
    worker.start()
    try:
        if not results.poll(300) or results.recv() != "ready":
            raise RuntimeError("the server did not start")
        for label, frac in LOADS:
            rate = frac * capacity
            n = max(50, round(rate * args.seconds))
            arrivals, _ = poisson(rate).arrivals(1, n, seed=args.seed)
            arrivals = arrivals - arrivals[0]
            measured = _pct(drive(requests, results, arrivals))
            sim = simulate(arrivals, curve.service_s, b, delay)
            rows.append({"model": name, "load": label, "rate_per_s": rate, "requests": n,
                         "p50_pred_ms": sim.p50_s * 1e3, "p50_meas_ms": measured[0] * 1e3,
                         "p99_pred_ms": sim.p99_s * 1e3, "p99_meas_ms": measured[1] * 1e3})
        n = max(4 * b, round(capacity * args.seconds / 2))
        started = time.perf_counter()
        drive(requests, results, np.zeros(n))
        rows.append({"model": name, "load": "saturation", "requests": n, "capacity_pred_per_s": capacity,
                     "capacity_meas_per_s": n / (time.perf_counter() - started - 0.05)})
    finally:
        requests.send(None)
        worker.join(timeout=30)


def table(rows: list[dict]) -> str:
    head = (f"{'model':8} {'load':10} {'req/s':>8} {'n':>6} {'p50 pred':>9} {'p50 meas':>9} {'err':>6} "
            f"{'p99 pred':>9} {'p99 meas':>9} {'err':>6}")
    out = [head, "-" * len(head)]
    for r in rows:
        if r["load"] == "saturation":
            out.append(f"{r['model']:8} {'saturation':10} {'':>8} {r['requests']:>6} predicted "
                       f"{r['capacity_pred_per_s']:.4g} req/s, measured {r['capacity_meas_per_s']:.4g} req/s, "
                       f"error {_err(r['capacity_pred_per_s'], r['capacity_meas_per_s'])}")
        else:
            out.append(f"{r['model']:8} {r['load']:10} {r['rate_per_s']:>8.4g} {r['requests']:>6} "
                       f"{r['p50_pred_ms']:>9.3g} {r['p50_meas_ms']:>9.3g} "
                       f"{_err(r['p50_pred_ms'], r['p50_meas_ms']):>6} {r['p99_pred_ms']:>9.3g} "
                       f"{r['p99_meas_ms']:>9.3g} {_err(r['p99_pred_ms'], r['p99_meas_ms']):>6}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of traffic per load (default 20)")
    ap.add_argument("--max-batch", type=int, default=8, help="the batcher's max batch (default 8)")
    ap.add_argument("--max-delay-ms", type=float, default=2.0, help="the batcher's max queue delay (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--prompt-len", type=int, default=32, help="decoder: prompt tokens per request (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", choices=list(MODELS), help="some of the models")
    ap.add_argument("--calibrate", action="store_true", help="run `plan calibrate` first (about 50 s)")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if args.calibrate:
        from planner.calibration.fit import fit
        from planner.calibration.run import calibrate
        from planner.calibration.store import save

        print("calibrating ...", file=sys.stderr, flush=True)
        save(fit(calibrate(args.threads)))
    host = calibrated_host(args.threads)
    print(f"fleet_load: {host.notes[0]}", file=sys.stderr)
    rows: list[dict] = []
    for name in args.only or list(MODELS):
        bench(name, args, rows)
    print(f"max batch {args.max_batch}, max queue delay {args.max_delay_ms:g} ms, {args.threads} thread(s), "
          f"{args.seconds:g} s per load; {host.notes[0]}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
