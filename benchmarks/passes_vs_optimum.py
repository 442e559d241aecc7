"""What our passes buy on this machine: original vs the model `plan --target host --emit` writes vs optimum.

For each model (the zoo's mlp, cnn, encoder, and a bigger BERT-like encoder built here) it measures with
onnxruntime on this machine, same session options for all (ORT_ENABLE_ALL, the same intra-op threads, CPU EP,
intra-op spinning off so that one session's idle threads do not slow the next one in the interleaved rounds):

    original    the model as shipped
    ours        planner.plan(model, targets=["host"], emit=...) — the chosen candidate's model
    optimum     for transformer models: optimum's ORTOptimizer (O2) then ORTQuantizer (dynamic int8,
                avx512_vnni config), the usual optimum recipe; skipped with a note when optimum is not installed
                (optional extra, best in its own venv given as --optimum-python: pip install torch==2.13.0
                optimum-onnx onnxruntime==<this one's version>)

and prints the latency of each (median over interleaved rounds: other processes share this CPU, so rounds
alternate between the models and medians are reported, with the spread), each speedup over the original, ours
over optimum, and each model's drift against the original on seeded inputs (cosine, max abs err, top-1 for
classifier outputs) — inputs drawn with a different seed from the ones the planner verified with.

    python benchmarks/passes_vs_optimum.py [--models mlp,cnn,encoder,encoder-base] [--batch 1,8]
                                           [--rounds 30] [--threads 2] [--out results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The planner is imported inside the functions that use it: the --optimum-worker process runs in another
# interpreter (with optimum, without the planner).

ZOO = ROOT / "models"
# Real architectures outside our zoo, at their published sizes with random weights, exported by optimum in
# --optimum-python (torch stays out of this interpreter): (transformers config class, its arguments, the
# optimum task). MiniLM: all-MiniLM-L12's shape; DistilBERT and ViT-base: their configs' defaults.
HF = {
    "minilm": ("BertConfig", {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12,
                              "intermediate_size": 1536}, "feature-extraction"),
    "distilbert": ("DistilBertConfig", {}, "feature-extraction"),
    "vit-base": ("ViTConfig", {}, "image-classification"),
}
TRANSFORMERS = {"encoder", "encoder-base", *HF}
# encoder-base: BERT-like like models/encoder.onnx, closer to a real small BERT (MiniLM-sized layers)
BASE = {"ENC_VOCAB": 8192, "ENC_MAX_POSITION": 512, "ENC_HIDDEN": 384, "ENC_HEADS": 12, "ENC_INTERMEDIATE": 1536,
        "ENC_LAYERS": 4}
SEQUENCE = 128
IMAGE = {"num_channels": 3, "height": 224, "width": 224}  # optimum's ViT export leaves them symbolic


@contextlib.contextmanager
def _encoder_dims(values: dict[str, int]):
    """make_encoder reads its sizes from module constants: set them for one build, then restore them."""
    import models.build_models as bm

    saved = {k: getattr(bm, k) for k in values}
    for k, v in values.items():
        setattr(bm, k, v)
    try:
        yield bm
    finally:
        for k, v in saved.items():
            setattr(bm, k, v)


def model_path(name: str, work: Path, python: str | None = None) -> Path:
    if name in HF:
        d = work / f"hf-{name}"
        if not (d / "model.onnx").exists():
            if python is None:
                export_worker(name, d)
            else:
                import subprocess

                r = subprocess.run([python, __file__, "--export-worker", name, str(d)], capture_output=True, text=True)
                if r.returncode != 0:
                    tail = (r.stderr.strip().splitlines() or ["?"])[-1]
                    raise SystemExit(f"passes_vs_optimum: exporting {name} failed in {python}: {tail[:200]}")
        return d / "model.onnx"
    if name == "encoder-base":
        out = work / "encoder-base.onnx"
        if not out.exists():
            with _encoder_dims(BASE) as bm:
                onnx.save(bm.make_encoder(), str(out))
        return out
    return ZOO / f"{name}.onnx"


def export_worker(name: str, d: Path) -> Path:
    """Random-init `name` (HF) exported by optimum's exporter, offline: d/model.onnx and d/config.json."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from optimum.exporters.onnx import main_export

    cls, kwargs, task = HF[name]
    torch.manual_seed(0)
    config = getattr(transformers, cls)(**kwargs)
    auto = transformers.AutoModelForImageClassification if task == "image-classification" else transformers.AutoModel
    src = d / "pt"
    auto.from_config(config).save_pretrained(src)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main_export(str(src), output=str(d), task=task, no_post_process=True)
    return d / "model.onnx"


def bert_config(name: str) -> dict:
    """The config.json optimum reads (model type, heads, hidden size) for our BERT-like encoders."""
    import models.build_models as bm

    d = BASE if name == "encoder-base" else {k: getattr(bm, k) for k in BASE}
    return {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": d["ENC_VOCAB"],
            "hidden_size": d["ENC_HIDDEN"], "num_attention_heads": d["ENC_HEADS"],
            "num_hidden_layers": d["ENC_LAYERS"], "intermediate_size": d["ENC_INTERMEDIATE"],
            "max_position_embeddings": d["ENC_MAX_POSITION"], "hidden_act": "gelu", "type_vocab_size": 2,
            "layer_norm_eps": 1e-12}


def optimum_model(name: str, src: Path, work: Path, python: str | None) -> tuple[Path | None, str]:
    """optimum's recipe: ORTOptimizer O2, then ORTQuantizer dynamic int8 (avx512_vnni). (path, note).

    Runs in `python` (an interpreter with optimum installed) when given, else here if optimum imports."""
    d = work / f"optimum-{name}"
    d.mkdir(exist_ok=True)
    (d / "model.onnx").write_bytes(src.read_bytes())
    config = src.parent / "config.json"
    (d / "config.json").write_text(config.read_text() if name in HF else json.dumps(bert_config(name)))
    if python:
        import subprocess

        r = subprocess.run([python, __file__, "--optimum-worker", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"optimum failed in {python}: {tail[:160]}"
        out = Path(r.stdout.strip().splitlines()[-1])
        return out, RECIPE + _prepass_note(d)
    try:
        return optimum_worker(d), RECIPE + _prepass_note(d)
    except ImportError as e:  # optional extra
        return None, f"optimum not installed ({str(e).splitlines()[0][:80]}; see --optimum-python)"


def _prepass_note(d: Path) -> str:
    return " (+ symbolic shape inference before ORTQuantizer: it fails without on this onnxruntime)" \
        if (d / "q" / "NOTE").exists() else ""


RECIPE = "ORTOptimizer O2 + ORTQuantizer dynamic int8 (AutoQuantizationConfig.avx512_vnni, per tensor)"


def optimum_worker(d: Path) -> Path:
    """ORTOptimizer O2, then ORTQuantizer dynamic int8. With onnxruntime 1.31, ORTQuantizer fails on the O2
    graph ("Unable to find data type for ...": the contrib ops' outputs carry no type and optimum passes no
    DefaultTensorType); the workaround is onnxruntime's symbolic shape inference on the O2 model first, which
    adds those types and changes nothing else. The note in the results says when it was needed."""
    from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        opt = ORTOptimizer.from_pretrained(d, file_names=["model.onnx"])
        opt.optimize(save_dir=d / "o2", optimization_config=AutoOptimizationConfig.O2())
        o2 = next((d / "o2").glob("*.onnx"))
        try:
            ORTQuantizer.from_pretrained(d / "o2", file_name=o2.name).quantize(save_dir=d / "q",
                                                                                quantization_config=qconfig)
        except RuntimeError as e:
            if "Unable to find data type" not in str(e):
                raise
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            typed = SymbolicShapeInference.infer_shapes(onnx.load(str(o2)), auto_merge=True)
            onnx.save(typed, str(o2))
            (d / "q" / "NOTE").parent.mkdir(exist_ok=True)
            (d / "q" / "NOTE").write_text("symbolic shape inference pre-pass\n")
            ORTQuantizer.from_pretrained(d / "o2", file_name=o2.name).quantize(save_dir=d / "q",
                                                                                quantization_config=qconfig)
    return next((d / "q").glob("*.onnx"))


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads must not steal the next
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def measure(paths: dict[str, Path], feeds: dict, rounds: int, threads: int) -> dict[str, dict]:
    """Interleaved rounds (each round runs every model once, in a rotating order); medians and quartiles."""
    sessions = {k: session(p, threads) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, feeds)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    names = list(sessions)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            sessions[k].run(None, feeds)
            times[k].append(time.perf_counter() - t0)
    out = {}
    for k, ts in times.items():
        a = np.array(ts) * 1e3
        out[k] = {"median_ms": float(np.median(a)), "p25_ms": float(np.percentile(a, 25)),
                  "p75_ms": float(np.percentile(a, 75))}
    return out


def drift(original: Path, other: Path, feeds: dict) -> dict:
    from passes.verify import compare

    a = [np.asarray(x) for x in session(original, 1).run(None, feeds)]
    b = [np.asarray(x) for x in session(other, 1).run(None, feeds)]
    names = [o.name for o in onnx.load(str(original), load_external_data=False).graph.output]
    return compare(a, [x.astype(np.float32) if x.dtype == np.float16 else x for x in b], names,
                   "generated (seed 7)").to_dict()


def run(models: list[str], batches: list[int], rounds: int, threads: int, optimum_python: str | None = None
        ) -> list[dict]:
    from passes.verify import generate_inputs
    from planner.api import plan
    from planner.search.variants import PassOptions

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in models:
            src = model_path(name, work, optimum_python)
            ours = work / f"{name}.ours.onnx"
            t0 = time.perf_counter()
            image = name in HF and HF[name][2] == "image-classification"
            p = plan(src, targets=["host"], passes=PassOptions("auto"), emit=str(ours), dims=IMAGE if image else None)
            plan_s = time.perf_counter() - t0
            row = {"model": name, "plan_seconds": round(plan_s, 2), "chosen_pipeline": p.chosen.pipeline,
                   "chosen_batch": p.chosen.batch, "chosen_passes": p.chosen.passes,
                   "pipelines": {r["pipeline"]: r.get("rejected") for r in p.pipelines}}
            paths = {"original": src, "ours": ours}
            if name in TRANSFORMERS:
                opt, note = optimum_model(name, src, work, optimum_python)
                row["optimum"] = note
                if opt is not None:
                    paths["optimum"] = opt
            m = onnx.load(str(src))
            row["weights_bytes"] = {k: sum(t.ByteSize() for t in onnx.load(str(v)).graph.initializer)
                                    for k, v in paths.items()}
            row["runs"] = []
            for b in batches:
                seq = IMAGE if image else {"sequence_length" if name in HF else "sequence": SEQUENCE}
                feeds = generate_inputs(m, batch=b, seed=7, dims=seq if name in TRANSFORMERS else None)
                lat = measure(paths, feeds, rounds, threads)
                entry = {"batch": b, "latency": lat,
                         "drift": {k: drift(src, v, feeds) for k, v in paths.items() if k != "original"}}
                base = lat["original"]["median_ms"]
                entry["speedup_vs_original"] = {k: base / v["median_ms"] for k, v in lat.items()}
                if "optimum" in lat:
                    entry["ours_vs_optimum"] = lat["optimum"]["median_ms"] / lat["ours"]["median_ms"]
                row["runs"].append(entry)
            results.append(row)
            print_row(row)
    return results


def print_row(row: dict) -> None:
    print(f"\n{row['model']}: plan chose '{row['chosen_pipeline']}' ({' > '.join(row['chosen_passes']) or 'as stored'})"
          f" in {row['plan_seconds']} s; weights " + ", ".join(f"{k} {v / 1e6:.2f} MB"
                                                          for k, v in row['weights_bytes'].items()))
    if "optimum" in row:
        print(f"  optimum: {row['optimum']}")
    for e in row["runs"]:
        print(f"  batch {e['batch']}:")
        for k, v in e["latency"].items():
            d = e["drift"].get(k)
            dtext = "" if d is None else (f"  drift cos {d['cosine']:.5f} max abs {d['max_abs_err']:.3g}"
                                          + (f" top-1 {d['top1']:.3f}" if d.get("top1") is not None else ""))
            print(f"    {k:9s} {v['median_ms']:9.3f} ms (p25 {v['p25_ms']:.3f}, p75 {v['p75_ms']:.3f})  "
                  f"x{e['speedup_vs_original'][k]:.2f} vs original{dtext}")
        if "ours_vs_optimum" in e:
            print(f"    ours vs optimum: x{e['ours_vs_optimum']:.2f} (>1: ours faster)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,cnn,encoder,encoder-base",
                    help=f"also {', '.join(HF)}: real architectures exported by optimum (needs --optimum-python)")
    ap.add_argument("--batch", default="1,8", help="batch sizes to time (comma-separated)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else (os.cpu_count() or 1))
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--optimum-python", metavar="PYTHON",
                    help="an interpreter with optimum installed, to keep torch out of this one (onnxruntime.tools "
                         "imports torch whenever it is installed, which slows every plan by seconds)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    print(f"onnxruntime CPU, {args.threads} intra-op threads, ORT_ENABLE_ALL for every model; "
          f"medians of {args.rounds} interleaved rounds (the CPU is shared: read the spread)")
    res = run([m.strip() for m in args.models.split(",") if m.strip()],
              [int(b) for b in args.batch.split(",")], args.rounds, args.threads, args.optimum_python)
    if args.out:
        from planner.atomic import write_atomic

        write_atomic(args.out, json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--export-worker":  # run by model_path in --optimum-python
        print(export_worker(sys.argv[2], Path(sys.argv[3])))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--optimum-worker":  # run by optimum_model in --optimum-python
        print(optimum_worker(Path(sys.argv[2])))
        sys.exit(0)
    sys.exit(main())
