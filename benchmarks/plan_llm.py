"""Planning Llama-2-7B and Llama-3-70B shaped decoders whose weights are never read: time, memory, the numbers.

Each model is built by models/llama_like.py with sparse external data (13.5 GB / 141 GB files of zeros that take
no disk space) and planned in its own process, so that the peak RSS printed is that model's alone.

    python benchmarks/plan_llm.py [--runs 3] [--targets h100-sxm,a10g] [--skip-70b]

Prints per model: nodes, weight bytes, planning time (median of --runs plans, each from a fresh Analyzer; wall
and CPU, which differ when the machine is shared), peak RSS; then the plan's numbers: 7B fp16 decode at batch 1
on h100-sxm against weights / bandwidth, the int4 (MatMulNBits) ratio, and what the 70B gets (it does not fit
one 80 GB device).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT, GEN = 512, 128


def _one(path: str, runs: int, targets: str) -> dict:
    """Plan one model `runs` times in this process; the numbers as JSON."""
    import planner
    from planner.calibration.host import get_target
    from planner.llm.decoder import DECODE, recognise
    from planner.llm.plan import DecoderPlanner
    from planner.model.loader import load_model

    times, cpu, p = [], [], None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        p = planner.plan(path, targets=targets, prompt_len=PROMPT, gen_len=GEN)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    c = p.chosen
    out = {"nodes": p.model.nodes, "weight_bytes": p.model.weight_bytes, "times_s": times,
           "median_s": statistics.median(times), "median_cpu_s": statistics.median(cpu),
           "candidates": len(p.candidates),
           "chosen": None if c is None else {k: getattr(c, k) for k in (
               "target", "devices", "batch", "ttft_ms", "tpot_ms", "tokens_per_s", "cost_per_million_input_tokens_usd",
               "cost_per_million_output_tokens_usd", "cost_per_million_usd", "peak_memory_bytes", "bound")},
           "tensor_parallel": p.model.decoder["tensor_parallel"], "affine": p.model.decoder["phases_affine_in_batch"],
           "kv_check": p.model.decoder["kv_cache_check"], "notes": p.model.notes}
    # decode at batch 1 on one h100-sxm (even where it does not fit: the time is still what the roofline says)
    h100 = get_target("h100-sxm")
    loaded = load_model(path)
    dp = DecoderPlanner(loaded, recognise(loaded.model), PROMPT, GEN)
    d = dp.configure(h100, 1, 1, 1).decode
    out["h100_b1"] = {"tpot_ms": d.seconds * 1e3, "roofline_ms": d.roofline_s * 1e3, "memory_ms": d.memory_s * 1e3,
                      "launch_ms": d.launch_s * 1e3, "eager_ms": d.eager_seconds * 1e3, "bytes": d.bytes,
                      "bound": d.bound, "kernels": dp.phase(DECODE, (True, False)).kernels,
                      "weights_over_bw_ms": dp.weight_bytes / h100.mem_bw_bytes_per_s * 1e3}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--targets", default="h100-sxm")
    ap.add_argument("--skip-70b", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: plan this model in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.runs, args.targets)))
        return
    from models.llama_like import LLAMA2_7B, LLAMA3_70B, build_decoder

    tmp = Path(tempfile.mkdtemp(prefix="plan-llm-"))
    cases = [("llama2-7b fp16", LLAMA2_7B, "dense"), ("llama2-7b int4", LLAMA2_7B, "int4")]
    if not args.skip_70b:
        cases.append(("llama3-70b fp16", LLAMA3_70B, "dense"))
    results = {}
    print(f"targets {args.targets}; prompt {PROMPT}, generate {GEN}; {args.runs} plans per model, each process "
          "fresh\n")
    print(f"{'model':16} {'build s':>7} {'nodes':>6} {'weights':>9} {'median s':>8} {'cpu s':>6} {'runs s':>18} "
          f"{'peak RSS MB':>11}")
    for name, cfg, weights in cases:
        t0 = time.perf_counter()
        path = build_decoder(cfg, tmp / f"{name.replace(' ', '-')}.onnx", external_data=True, weights=weights)
        built = time.perf_counter() - t0
        run = subprocess.run([sys.executable, __file__, "--one", str(path), "--runs", str(args.runs), "--targets",
                              args.targets], capture_output=True, text=True, check=True)
        r = results[name] = json.loads(run.stdout.strip().splitlines()[-1])
        runs = " ".join(f"{t:.2f}" for t in r["times_s"])
        print(f"{name:16} {built:7.2f} {r['nodes']:6d} {r['weight_bytes'] / 1e9:8.2f}G {r['median_s']:8.2f} "
              f"{r['median_cpu_s']:6.2f} {runs:>18} {r['peak_rss_mb']:11.0f}")
    print("\ndecode at batch 1 on one h100-sxm (3.35 TB/s, memory efficiency 0.9, decode replayed as a graph):")
    for name, r in results.items():
        b = r["h100_b1"]
        print(f"  {name:16} {b['tpot_ms']:6.2f} ms/token ({b['bound']}-bound): roofline {b['roofline_ms']:.2f} "
              f"(bytes {b['bytes'] / 1e9:.2f} GB) + launch {b['launch_ms']:.2f} ({b['kernels']} kernels); "
              f"weights/bandwidth {b['weights_over_bw_ms']:.2f} ms; eager launches {b['eager_ms']:.2f} ms")
    if "llama2-7b fp16" in results and "llama2-7b int4" in results:
        a, b = results["llama2-7b fp16"], results["llama2-7b int4"]
        print(f"  int4 / fp16: weights {b['weight_bytes'] / a['weight_bytes']:.3f}, bytes per token "
              f"{b['h100_b1']['bytes'] / a['h100_b1']['bytes']:.3f}, roofline "
              f"{b['h100_b1']['roofline_ms'] / a['h100_b1']['roofline_ms']:.3f}, time per token "
              f"{b['h100_b1']['tpot_ms'] / a['h100_b1']['tpot_ms']:.3f}")
    print("\nchosen plans (cheapest per request that fits):")
    for name, r in results.items():
        c = r["chosen"]
        if c is None:
            print(f"  {name:16} no plan")
            continue
        print(f"  {name:16} {c['target']} x {c['devices']} at batch {c['batch']}: TTFT {c['ttft_ms']:.1f} ms, TPOT "
              f"{c['tpot_ms']:.2f} ms, {c['tokens_per_s']:,.0f} tokens/s, ${c['cost_per_million_input_tokens_usd']:.3f}"
              f" / 1M in, ${c['cost_per_million_output_tokens_usd']:.3f} / 1M out, "
              f"{c['peak_memory_bytes'] / 1e9:.1f} GB per device")
        for t, tp in r["tensor_parallel"].items():
            for n, v in tp["by_devices"].items():
                what = (f"batch {v['batch']} (fits up to {v['max_batch_fits']}), TPOT {v['tpot_ms']:.2f} ms, "
                        f"${v['cost_per_million_output_tokens_usd']:.3f} / 1M out" if isinstance(v, dict) else v)
                print(f"      {t} x {n}: {what}")
            print(f"      cheapest degree on {t}: {tp['cheapest_devices']}")


if __name__ == "__main__":
    main()
