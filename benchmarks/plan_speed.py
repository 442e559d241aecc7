"""How long planning takes per model across every bundled target (median of several runs).

Includes Llama-shaped decoders whose weights live in sparse external data that is never read: planning time
and peak memory must stay small however big the weights are.

    python benchmarks/plan_speed.py [--runs 5] [--skip-70b]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import planner  # noqa: E402
from models.llama_like import LLAMA2_7B, LLAMA3_70B, build_decoder  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_plan(path: Path, runs: int, **kw) -> tuple[float, float, planner.Plan]:
    """First run (pass pipelines run and are verified with onnxruntime) and the median of the rest (cached)."""
    times = []
    p = None
    for _ in range(runs):
        t0 = time.perf_counter()
        p = planner.plan(path, targets="all", **kw)
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:] or times), p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-70b", action="store_true")
    args = ap.parse_args()
    cases = [(ROOT / "models" / f, {}) for f in ("mlp.onnx", "cnn.onnx", "encoder.onnx", "decoder.onnx")]
    cases += [(LIGHT / f, {}) for f in ("light_resnet50.onnx", "light_densenet121.onnx", "light_inception_v2.onnx")]
    tmp = Path(tempfile.mkdtemp(prefix="plan-speed-"))
    big = [("llama2-7b", LLAMA2_7B)] + ([] if args.skip_70b else [("llama3-70b", LLAMA3_70B)])
    for name, cfg in big:
        d = tmp / name
        d.mkdir()
        cases.append((build_decoder(cfg, d / "model.onnx", external_data=True, sparse=True),
                      {"prompt_len": 1023, "gen_len": 2, "max_batch": 8}))  # decode at past 1023
    print(f"{'model':28} {'nodes':>6} {'weights':>10} {'targets':>7} {'candidates':>10} {'first s':>8} {'median s':>9} "
          f"{'peak RSS MB':>11}")
    for path, kw in cases:
        first, sec, p = time_plan(path, args.runs, **kw)
        label = path.name if path.parent.name in ("models", "light") else f"{path.parent.name}/{path.name}"
        print(f"{label:28} {p.model.nodes:6d} {p.model.weight_bytes / 1e9:9.2f}G {len(p.best_per_target):7d} "
              f"{len(p.candidates):10d} {first:8.3f} {sec:9.3f} {_peak_rss_mb():11.0f}")
    print(f"\n{args.runs} runs each (first: pass pipelines run and verified; median of the rest: their results "
          "cached in the process); every bundled target; batch sweep 1..256; peak RSS is the process maximum so far")


if __name__ == "__main__":
    main()
