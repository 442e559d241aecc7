"""Fuzz the loader and planner with mutated small models (harness.fuzz) and count outcomes.

    python benchmarks/fuzz_models.py --iterations 5000 --seconds 600
    python benchmarks/fuzz_models.py --replay 1:1234          # one mutant again, with its traceback

A planned model and a one-line refusal are fine. A traceback, an "internal error", a case past --timeout, a
file left behind, a worker killed by a signal (a segfault in a native library) or silent for --timeout + 30 s
(a hang in native code, which the in-process alarm cannot interrupt) is a crash. Cases run in a worker process
that streams one result per line, so a native crash costs one case, not the run: the parent records it and
starts a new worker at the next iteration. Exit status 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # harness/ lives at the repository root

from harness.fuzz import args_for, mutant, run_mutant
from harness.outcome import CRASHED, PLANNED, REFUSED, reason_group


def worker(seed: int, start: int, end: int, deadline: float, timeout: float, max_memory_gb: float) -> int:
    """Runs iterations start..end-1 (until `deadline`, a time.time()), one JSON line per result.

    Its address space is capped: a memory bomb becomes a MemoryError (the CLI's "out of memory", counted as a
    crash) instead of the kernel's OOM killer picking some process on a shared machine.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(max_memory_gb * 2**30), hard))
    with tempfile.TemporaryDirectory(prefix="fuzz_") as tmp:
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        os.chdir(cwd)
        for i in range(start, end):
            if time.time() > deadline:
                break
            print(json.dumps({"i": i, "started": True}), flush=True)
            mt = mutant(seed, i)
            o = run_mutant(mt, Path(tmp) / "model", args_for(seed, i), timeout, watch=cwd)
            print(json.dumps({"i": i, "kind": o.kind, "message": o.message, "steps": mt.steps,
                              "seed_model": mt.seed_name}), flush=True)
    return 0


def replay(spec: str, timeout: float) -> int:
    seed, i = (int(x) for x in spec.split(":"))
    mt = mutant(seed, i)
    with tempfile.TemporaryDirectory(prefix="fuzz_replay_") as tmp:
        o = run_mutant(mt, Path(tmp) / "model", args_for(seed, i), timeout)
    print(f"seed model {mt.seed_name}; mutations: {'; '.join(mt.steps)}; args: {' '.join(args_for(seed, i))}")
    print(f"{o.kind}: {o.message}")
    if o.detail:
        print(o.detail)
    return 1 if o.kind == CRASHED else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=300.0, help="stop after this long even if iterations remain")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--max-memory-gb", type=float, default=8.0, help="address-space cap of the worker")
    ap.add_argument("--replay", metavar="SEED:ITER")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.replay:
        return replay(a.replay, a.timeout)
    if a.worker:
        return worker(a.seed, a.start, a.iterations, a.deadline, a.timeout, a.max_memory_gb)

    t0 = time.time()
    deadline = t0 + a.seconds
    counts: Counter = Counter()
    refused: Counter = Counter()
    crashes: list[dict] = []
    by_seed_model: Counter = Counter()
    nxt = 0
    while nxt < a.iterations and time.time() < deadline:
        cmd = [sys.executable, __file__, "--worker", "--seed", str(a.seed), "--start", str(nxt),
               "--iterations", str(a.iterations), "--deadline", str(deadline), "--timeout", str(a.timeout),
               "--max-memory-gb", str(a.max_memory_gb)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        in_flight, hung = None, False
        while True:
            # A hang in native code ignores the worker's own alarm: the parent gives each case a grace period.
            ready, _, _ = select.select([proc.stdout], [], [], a.timeout + 30)
            if not ready:
                proc.kill()
                hung = True
                break
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            r = json.loads(line)
            if r.get("started"):
                in_flight = r["i"]
                continue
            in_flight = None
            nxt = r["i"] + 1
            counts[r["kind"]] += 1
            by_seed_model[(r["seed_model"], r["kind"])] += 1
            if r["kind"] == REFUSED:
                refused[reason_group(r["message"])] += 1
            elif r["kind"] == CRASHED:
                crashes.append(r)
        code = proc.wait()
        if in_flight is not None:  # the worker died inside a case: a native crash, a hang, or killed
            why = f"no result in {a.timeout + 30:g} s: hang" if hung else (
                f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}")
            crashes.append({"i": in_flight, "kind": CRASHED, "message": f"worker died ({why})", "steps": []})
            counts[CRASHED] += 1
            nxt = in_flight + 1
    total = sum(counts.values())
    print(f"fuzz: seed {a.seed}, {total} mutants in {time.time() - t0:.0f} s: planned {counts[PLANNED]}, "
          f"refused {counts[REFUSED]}, crashes {counts[CRASHED]}")
    for (seed_model, kind), n in sorted(by_seed_model.items()):
        print(f"  {seed_model:16s} {kind:8s} {n}")
    print("refusal reasons (most common 15):")
    for reason, n in refused.most_common(15):
        print(f"  {n:5d}  {reason}")
    for r in crashes:
        print(f"CRASH {a.seed}:{r['i']}  {r['message']}  ({'; '.join(r['steps'])})  "
              f"replay: python benchmarks/fuzz_models.py --replay {a.seed}:{r['i']}")
    return 1 if crashes else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
