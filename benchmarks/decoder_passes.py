"""What our decoder passes buy on this machine, judged by generation, against the same tools used by hand.

For each decoder it builds (offline, random init) it runs, with onnxruntime on this CPU:

    original            the decoder as built
    ours:<pipeline>     each pipeline the planner runs on decoders (passes.pipelines: fused, int8-dynamic,
                        int8-weight, int4, fp16), verified after every pass by generation (planner.llm.generation)
    ort-dynamic         onnxruntime's quantize_dynamic with its defaults (QInt8 weights), by hand
    ort-nbits           onnxruntime's MatMulNBitsQuantizer with its defaults (block 128, asymmetric), by hand
    optimum-dynamic     optimum's ORTQuantizer, dynamic int8, avx512_vnni config (only when optimum is installed)
    plan --emit         what `plan MODEL --target host --emit` chooses (named in the table's last line)

and prints per model: decode ms per token (batch 1, one step at the mean context of a P + G workload, the
KV cache of that length fed in; again at --wide-batch, where the attention's cache traffic grows with the
batch while the weights are read once) and prefill ms (batch 1, P tokens), medians over interleaved rounds (each
round runs every model once, rotating the order: other processes share this CPU), each as a ratio to the
original, then the generation figures against the original: token agreement (teacher-forced, and free-running
greedy), the minimum per-step logit cosine, and the perplexity change on the bundled text.

Decoders: `llama` (models/llama_like.py, always available: RMSNorm, rotary, GQA, SwiGLU) and, with the
`export` extra installed (pip install torch==<cpu build> optimum-onnx; see pyproject.toml), `gpt2`, `llama-hf`
and `qwen2` exported by optimum from Hugging Face configs at the same size. Random-init weights give
near-uniform logits, so token agreement here is a harsh lower bound on what a trained model shows.

    python benchmarks/decoder_passes.py [--models llama,gpt2,llama-hf,qwen2] [--size small|base]
                                        [--rounds 30] [--threads 1] [--tokens 32] [--wide-batch 8]
                                        [--out results.json]

Timings mean something only on a quiet machine: the script says how busy the CPU was before it started.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import planner  # noqa: E402,F401  (first: passes imports planner.errors)
from models.llama_like import DecoderConfig, make_decoder  # noqa: E402
from passes import get_pipeline  # noqa: E402
from passes.base import PassContext  # noqa: E402
from passes.runner import Runner  # noqa: E402
from planner.llm.decoder import DECODE, PREFILL, phase_dims, phase_feeds, recognise  # noqa: E402
from planner.llm.generation import GenerationReference  # noqa: E402
from planner.llm.variants import decoder_pass_options  # noqa: E402
from planner.search.variants import PassOptions  # noqa: E402

# hidden, layers, heads, kv heads, intermediate; vocab 32000, 512 positions
SIZES = {"small": (512, 4, 8, 4, 1408), "base": (1024, 8, 16, 8, 2816)}
VOCAB, POSITIONS = 32000, 512
PROMPT, GEN = 128, 64  # the timed workload: decode at context P + G // 2
PIPELINES = ("fused", "int8-dynamic", "int8-weight", "int4", "fp16")
HF = ("gpt2", "llama-hf", "qwen2")


def _quiet():
    logging.getLogger().setLevel(logging.ERROR)
    return contextlib.redirect_stdout(io.StringIO())


# ---- the decoders ---------------------------------------------------------------------------------------------


def build(name: str, size: str, out: Path) -> Path:
    hidden, layers, heads, kv, inter = SIZES[size]
    path = out / f"{name}.onnx"
    if name == "llama":
        cfg = DecoderConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=inter, num_layers=layers,
                            num_heads=heads, num_kv_heads=kv, max_position=POSITIONS, name=f"llama-{size}")
        onnx.save(make_decoder(cfg)[0], str(path))
        return path
    return _export_hf(name, hidden, layers, heads, kv, inter, out)


def _export_hf(name: str, hidden: int, layers: int, heads: int, kv: int, inter: int, out: Path) -> Path:
    """optimum's exporter on a random-init Hugging Face model (needs the export extra)."""
    import torch
    import transformers as tf
    from optimum.exporters.onnx import onnx_export_from_model

    if name == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=layers, n_head=heads, n_embd=hidden, n_inner=inter,
                                                 vocab_size=VOCAB, n_positions=POSITIONS))
    elif name == "llama-hf":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(
            hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv, vocab_size=VOCAB, max_position_embeddings=POSITIONS))
    elif name == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(
            hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv, vocab_size=VOCAB, max_position_embeddings=POSITIONS))
    else:
        raise SystemExit(f"decoder_passes: unknown model '{name}'")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        onnx_export_from_model(model.eval(), tmp, task="text-generation-with-past", opset=18, do_validation=False,
                               device="cpu")
        m = onnx.load(str(next(Path(tmp).glob("*.onnx"))))
    path = out / f"{name}.onnx"
    onnx.save(m, str(path))
    return path


# ---- the rewrites -----------------------------------------------------------------------------------------------


def ours(model: onnx.ModelProto, ref: GenerationReference) -> dict[str, tuple[onnx.ModelProto | None, str]]:
    runner = Runner(model, ref, PassContext(options=decoder_pass_options(PassOptions())))
    out = {}
    for name in PIPELINES:
        r = runner.run(get_pipeline(name))
        out[f"ours:{name}"] = (r.model, r.rejected or " > ".join(r.applied))
    return out


def by_hand(path: Path, out: Path) -> dict[str, tuple[onnx.ModelProto | None, str]]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    res: dict[str, tuple[onnx.ModelProto | None, str]] = {}
    with _quiet():
        quantize_dynamic(str(path), str(out / "ort-dynamic.onnx"), weight_type=QuantType.QInt8)
        res["ort-dynamic"] = (onnx.load(str(out / "ort-dynamic.onnx")), "quantize_dynamic defaults")
        q = MatMulNBitsQuantizer(onnx.load(str(path)))
        q.process()
        res["ort-nbits"] = (q.model.model, "MatMulNBitsQuantizer defaults (block 128, asymmetric)")
    try:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
    except ImportError:
        res["optimum-dynamic"] = (None, "optimum not installed")
        return res
    folder = out / "optimum"
    folder.mkdir(exist_ok=True)
    onnx.save(onnx.load(str(path)), str(folder / "model.onnx"))
    with _quiet():
        quantizer = ORTQuantizer.from_pretrained(str(folder), file_name="model.onnx")
        quantizer.quantize(save_dir=str(folder / "q"),
                           quantization_config=AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False))
    res["optimum-dynamic"] = (onnx.load(str(next((folder / "q").glob("*.onnx")))), "ORTQuantizer avx512_vnni dynamic")
    return res


# ---- timing -------------------------------------------------------------------------------------------------------


def sessions(models: dict[str, onnx.ModelProto], threads: int) -> dict:
    import onnxruntime as ort

    out = {}
    for name, m in models.items():
        so = ort.SessionOptions()
        so.log_severity_level = 4
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        out[name] = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return out


def interleaved(sess: dict, feeds: dict[str, np.ndarray], rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each session, `rounds` rounds, each running every session once in a rotated order."""
    for s in sess.values():
        s.run(None, feeds)
    order = list(sess)
    times: dict[str, list[float]] = {n: [] for n in order}
    for r in range(rounds):
        k = r % len(order)
        for n in order[k:] + order[:k]:
            t0 = time.perf_counter()
            sess[n].run(None, feeds)
            times[n].append(time.perf_counter() - t0)
    return times


def _busy() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


# ---- one decoder -------------------------------------------------------------------------------------------------


def bench(name: str, size: str, rounds: int, threads: int, tokens: int, tmp: Path, wide: int) -> list[dict]:
    path = build(name, size, tmp)
    model = onnx.load(str(path))
    info = recognise(model)
    ref = GenerationReference(model, tokens=tokens)
    candidates = {"original": (model, "as built")}
    candidates |= ours(model, ref)
    candidates |= by_hand(path, tmp)
    emitted = tmp / f"{name}.emitted.onnx"
    p = planner.plan(path, targets=["host"], emit=str(emitted), prompt_len=PROMPT, gen_len=GEN, threads=threads)
    chosen = p.chosen.pipeline if p.chosen else "none"
    runnable = {k: m for k, (m, _) in candidates.items() if m is not None}
    dims = phase_dims(info, PROMPT, GEN)
    sess = sessions(runnable, threads)
    decode = interleaved(sess, phase_feeds(model, dims[DECODE], 1), rounds)
    decode_wide = interleaved(sess, phase_feeds(model, dims[DECODE], wide), max(5, rounds // 2))
    prefill = interleaved(sess, phase_feeds(model, dims[PREFILL], 1), max(5, rounds // 3))
    rows = []
    for k, (m, how) in candidates.items():
        row = {"model": f"{name}-{size}", "variant": k, "how": how, "emitted": k == f"ours:{chosen}"}
        if m is None:
            rows.append(row)
            continue
        row["decode_ms"] = statistics.median(decode[k]) * 1e3
        row["wide_batch"] = wide
        row["wide_decode_ms"] = statistics.median(decode_wide[k]) * 1e3
        row["prefill_ms"] = statistics.median(prefill[k]) * 1e3
        row["weight_mb"] = sum(t.ByteSize() for t in m.graph.initializer) / 1e6
        if k != "original":
            try:
                row["generation"] = ref.measure(m).to_dict()
            except Exception as e:  # noqa: BLE001  a broken rewrite is a row that says so
                row["generation"] = {"error": str(e).splitlines()[0][:80]}
        rows.append(row)
    base = next(r for r in rows if r["variant"] == "original")
    for r in rows:
        if "decode_ms" in r:
            r["decode_speedup"] = base["decode_ms"] / r["decode_ms"]
            r["wide_decode_speedup"] = base["wide_decode_ms"] / r["wide_decode_ms"]
            r["prefill_speedup"] = base["prefill_ms"] / r["prefill_ms"]
    rows.append({"model": f"{name}-{size}", "variant": "plan --emit", "how": f"chose {chosen}", "emitted": True})
    return rows


def table(rows: list[dict]) -> str:
    wide = next((r["wide_batch"] for r in rows if "wide_batch" in r), "B")
    head = ["model", "variant", "decode ms", "x orig", f"decode b{wide} ms", "x orig", "prefill ms", "x orig",
            "weights MB", "agree", "greedy", "cos min", "ppl %", "note"]
    lines = []
    for r in rows:
        g = r.get("generation") or {}
        if "error" in g:
            gen = ["-", "-", "-", "-"]
            note = g["error"]
        elif g:
            gen = [f"{g['agreement']:.3f}", f"{g['greedy_agreement']:.3f}", f"{g['cosine_min']:.4f}",
                   f"{100 * g['perplexity_change']:+.2f}"]
            note = r["how"]
        else:
            gen = ["-"] * 4
            note = r["how"]
        timing = ([f"{r['decode_ms']:.3f}", f"{r['decode_speedup']:.2f}", f"{r['wide_decode_ms']:.3f}",
                   f"{r['wide_decode_speedup']:.2f}", f"{r['prefill_ms']:.2f}", f"{r['prefill_speedup']:.2f}",
                   f"{r['weight_mb']:.1f}"] if "decode_ms" in r else ["-"] * 7)
        lines.append([r["model"], r["variant"] + (" *" if r.get("emitted") and r["variant"] != "plan --emit"
                                                  else ""), *timing, *gen, note[:60]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*x) for x in lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="llama," + ",".join(HF))
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--wide-batch", type=int, default=8, help="decode is also timed at this batch (default 8)")
    ap.add_argument("--out", help="write the rows as JSON too")
    args = ap.parse_args(argv)
    print(f"decoder_passes: {_busy()} before starting; {args.threads} intra-op thread(s), {args.rounds} decode "
          f"rounds, workload prompt {PROMPT} + {GEN} (decode at context {PROMPT + GEN // 2}), batch 1 and "
          f"{args.wide_batch}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        for name in [n.strip() for n in args.models.split(",") if n.strip()]:
            sub = Path(d) / name
            sub.mkdir()
            try:
                rows += bench(name, args.size, args.rounds, args.threads, args.tokens, sub, args.wide_batch)
            except ImportError as e:
                print(f"decoder_passes: {name} skipped: the export extra is not installed ({e})")
                continue
            print(table([r for r in rows if r["model"].startswith(name + "-")]) + "\n", flush=True)
    print("* = the pipeline `plan --target host --emit` chose. agree: teacher-forced token agreement; greedy: "
          "free-running; cos min: lowest per-step logit cosine; ppl %: perplexity change on the bundled text.")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
