"""GPU predictions against what GPUs really did: published measurements, planned one row at a time (issue #17).

    python benchmarks/gpu_published.py [--data benchmarks/data/gpu_published.csv] [--json OUT.json]

Reads the published rows (one measurement per row, with its source: benchmarks/data/gpu_published.csv, the
development set of ../shared/gpu-published.md), builds each row's model from code with its weights never
produced (Llama-shaped decoders by models/llama_like.py, BERT-base and ResNet-50 by models/published_shapes.py,
each as external-data metadata over a sparse file), plans it on the row's target, engine profile
(hwtargets/runtimes/), precision, batch, lengths and tensor-parallel degree, and prints predicted against
published with the error, per row and in total: the share within +-20%, the rows beyond +-50%.

Then the two questions the published curves answer without a row of their own:
  * the int4 / fp16 decode speed-up of a 7B-shaped decoder at batch 1 on a100-80gb and h100-sxm (published:
    1.5-2x on engines with int4 kernels);
  * the tensor-parallel degree a plan picks for a 70B-shaped decoder under a TPOT limit on a100-80gb and
    h100-sxm (the cheapest degree that meets it, not the largest).

No constant is fitted to these rows: efficiencies and overheads come from the target files, the runtime profiles
and docs/hwtargets-reference.md (microbenchmarks), and the rows only check them. Runs offline in seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.llama_like import LLAMA2_7B, DecoderConfig, build_decoder  # noqa: E402
from models.published_shapes import make_bert, make_resnet50, write  # noqa: E402
from planner.api import plan  # noqa: E402
from planner.calibration.host import get_target  # noqa: E402
from planner.llm.decoder import recognise  # noqa: E402
from planner.llm.plan import DecoderPlanner  # noqa: E402
from planner.model.analyze import Analyzer  # noqa: E402
from planner.model.loader import load_model  # noqa: E402
from planner.predict.predictor import Predictor  # noqa: E402
from planner.search.variants import PassOptions  # noqa: E402
from planner.targets.runtime import apply_profile, get_profile  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "gpu_published.csv"
DECODERS = {
    "llama2-7b": LLAMA2_7B,
    # Meta-Llama-3-8B config.json: 128256 vocab, 4096 hidden, 14336 FFN, 32 layers, 32 heads, 8 KV heads
    "llama3-8b": DecoderConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32,
                               num_heads=32, num_kv_heads=8, max_position=8192, dtype="float16",
                               rope_theta=500000.0, name="llama3-8b"),
    # Llama-2-70b config.json: 32000 vocab, 8192 hidden, 28672 FFN, 80 layers, 64 heads, 8 KV heads
    "llama2-70b": DecoderConfig(vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_layers=80,
                                num_heads=64, num_kv_heads=8, max_position=4096, dtype="float16",
                                name="llama2-70b"),
}
WITHIN, BEYOND = 0.20, 0.50


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    precision: str
    target: str
    runtime: str
    batch: int
    prompt_len: int | None
    gen_len: int | None
    seq_len: int | None
    tp: int
    metric: str
    measured: float  # in the metric's unit (tok/s rows converted to ms per token)
    engine: str
    source: str


def read_rows(path: Path) -> list[Row]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            value = float(r["measured"])
            if r["unit"] == "tok/s":  # a batch-1 decode rate: ms per output token
                value = 1e3 / value
            opt = {k: int(r[k]) if r[k] else None for k in ("prompt_len", "gen_len", "seq_len")}
            rows.append(Row(r["id"], r["model"], r["precision"], r["target"], r["runtime"], int(r["batch"]),
                            opt["prompt_len"], opt["gen_len"], opt["seq_len"], int(r["tp"]), r["metric"], value,
                            r["engine"], r["source"]))
    return rows


class Models:
    """Each (model, precision) built once into a temporary folder, weights as sparse external data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[tuple[str, str], str] = {}
        self.planners: dict[tuple, DecoderPlanner] = {}

    def path(self, model: str, precision: str) -> str:
        key = (model, precision)
        if key not in self.paths:
            name = f"{model}-{precision}"
            if model in DECODERS:
                weights, block = _decoder_weights(precision)
                p = build_decoder(DECODERS[model], self.folder / f"{name}.onnx", external_data=True, weights=weights,
                                  **({"block_size": block} if block else {}))
            else:
                location = f"{name}.onnx.data"
                if model == "bert-base":
                    m, size = make_bert(dtype="float16", int8=precision == "int8", location=location)
                else:
                    m, size = make_resnet50(dtype="float32" if precision == "tf32" else "float16", location=location)
                p = write(m, size, self.folder / f"{name}.onnx", location)
            self.paths[key] = str(p)
        return self.paths[key]

    def decoder(self, model: str, precision: str, prompt: int, gen: int) -> DecoderPlanner:
        key = (model, precision, prompt, gen)
        if key not in self.planners:
            loaded = load_model(self.path(model, precision))
            self.planners[key] = DecoderPlanner(loaded, recognise(loaded.model), prompt, gen)
        return self.planners[key]


def _decoder_weights(precision: str) -> tuple[str, int | None]:
    """(weights, block size) of a row's precision. gpt-fast's and torchao's int8 weight-only keep one scale per
    output channel; 8-bit MatMulNBits needs blocks, and 128 (one fp16 scale per 128 weights, 1.6% more bytes) is
    the nearest that divides every Llama K (4096, 11008, 14336) without padding."""
    if precision.startswith("int4-g"):
        return "int4", int(precision.removeprefix("int4-g"))
    if precision == "int8-weight":
        return "int8", 128
    return "dense", None


def target_for(row: Row):
    return apply_profile(get_target(row.target), get_profile(row.runtime))


def predict(row: Row, models: Models) -> float:
    target = target_for(row)
    if row.model in DECODERS:
        dp = models.decoder(row.model, row.precision, row.prompt_len or 1, max(row.gen_len or 1, 1))
        c = dp.configure(target, row.tp, row.batch, row.batch)
        return {"tpot_ms": c.tpot_s, "ttft_ms": c.ttft_s}[row.metric] * 1e3
    dims = {"sequence": row.seq_len} if row.seq_len else {}
    a = Analyzer(load_model(models.path(row.model, row.precision))).analyze(dims, batch=row.batch)
    latency = Predictor().predict(a, target).latency_s
    return row.batch / latency if row.metric == "throughput_per_s" else latency * 1e3


def speedup_int4(models: Models) -> list[tuple[str, float]]:
    out = []
    for name in ("a100-80gb", "h100-sxm"):
        target = apply_profile(get_target(name), get_profile("llm-engine"))
        fp16 = models.decoder("llama2-7b", "fp16", 128, 128).configure(target, 1, 1, 1).tpot_s
        int4 = models.decoder("llama2-7b", "int4-g64", 128, 128).configure(target, 1, 1, 1).tpot_s
        out.append((name, fp16 / int4))
    return out


def tp_choice(models: Models, max_tpot_ms: float) -> list[str]:
    """The degree a plan picks for Llama-2-70B under a TPOT limit, per target, and every degree's TPOT."""
    out = []
    for name in ("a100-80gb", "h100-sxm"):
        for runtime in ("llm-engine", "framework-eager"):
            p = plan(models.path("llama2-70b", "fp16"), targets=name, prompt_len=512, gen_len=128, batch=1,
                     max_tpot_ms=max_tpot_ms, tp=[2, 4, 8], runtime=runtime, passes=PassOptions("none"))
            per = p.model.decoder["tensor_parallel"][name]["by_devices"]
            tpots = ", ".join(f"TP{n} {v['tpot_ms']:.1f} ms" if isinstance(v, dict) else f"TP{n} rejected"
                              for n, v in sorted(per.items(), key=lambda kv: int(kv[0])))
            chosen = p.chosen.devices if p.chosen else None
            why = next((n.split("; ", 1)[1] for n in p.model.notes if "tensor-parallel degree" in n and "; " in n), "")
            out.append(f"{name:10s} {runtime:16s} TPOT <= {max_tpot_ms:g} ms: picks TP{chosen} ({tpots})")
            out.append(f"{'':10s} {'':16s} why: {why}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--json", help="write the per-row results here")
    args = ap.parse_args()
    rows = read_rows(Path(args.data))
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-published-") as tmp:
        models = Models(Path(tmp))
        print(f"{'id':5s} {'model':10s} {'precision':11s} {'target':10s} {'runtime':16s} {'b':>3s} {'tp':>2s} "
              f"{'metric':16s} {'published':>9s} {'predicted':>9s} {'error':>7s}")
        for row in rows:
            pred = predict(row, models)
            err = pred / row.measured - 1
            results.append({**row.__dict__, "predicted": pred, "error": err})
            flag = "" if abs(err) <= WITHIN else "  >20%" if abs(err) <= BEYOND else "  >50%"
            lengths = f"{row.metric}"
            print(f"{row.id:5s} {row.model:10s} {row.precision:11s} {row.target:10s} {row.runtime:16s} "
                  f"{row.batch:3d} {row.tp:2d} {lengths:16s} {row.measured:9.3f} {pred:9.3f} {err:+7.1%}{flag}")
        errs = [abs(r["error"]) for r in results]
        within = sum(e <= WITHIN for e in errs)
        beyond = [r["id"] for r in results if abs(r["error"]) > BEYOND]
        print(f"\n{len(results)} rows: {within} within +-20% ({within / len(results):.0%}), "
              f"{len(beyond)} beyond +-50%{' (' + ', '.join(beyond) + ')' if beyond else ''}; "
              f"median |error| {statistics.median(errs):.1%}")
        print("\nint4 (block 64) / fp16 decode speed-up, 7B-shaped decoder, batch 1, llm-engine "
              "(published 1.5-2.2x):")
        for name, s in speedup_int4(models):
            print(f"  {name:10s} {s:.2f}x")
        print("\nLlama-2-70B-shaped decoder, batch 1, prompt 512, 128 generated:")
        for line in tp_choice(models, 50.0):
            print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
