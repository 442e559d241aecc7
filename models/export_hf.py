"""Export real Hugging Face architectures with random weights to ONNX, fully offline, through optimum.

The configs are built here in code (no hub download, HF_HUB_OFFLINE is set), the weights are seeded random,
and optimum's ONNX exporter (the `optimum-onnx` package with optimum >= 2; `optimum.exporters.onnx` in older
optimum) writes the graphs exactly as it does for real checkpoints:

    gpt2        GPT2LMHeadModel, text-generation-with-past: past_key_values.{i}.key/value, present.{i}.*
    llama-gqa   LlamaForCausalLM with grouped-query attention (4 heads, 2 KV heads), text-generation-with-past
    bert        BertModel, feature-extraction
    vit         ViTForImageClassification, image-classification

Small sizes (hidden 64, 2 layers, vocab 256): each file is a few hundred KB, so they can be committed and
planned by tests that do not have torch. torch, transformers and optimum are an optional extra:

    pip install torch==2.13.0            # the CPU build; plain `torch` pulls GBs of CUDA
    pip install optimum-onnx             # brings optimum and a compatible transformers
    python models/export_hf.py [--out models/hf] [--only gpt2,llama-gqa]

Writes <out>/<name>.onnx (weights embedded) through a temporary folder and os.replace; prints each file's
inputs, outputs and size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HIDDEN, LAYERS, HEADS, FFN, VOCAB, POSITIONS = 64, 2, 4, 128, 256, 128
OPSET = 18  # what optimum recommends for these architectures
SEED = 0


def _models():
    """name -> (model factory, optimum task). Imported lazily: torch and transformers are optional."""
    import transformers as tf

    def gpt2():
        return tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=LAYERS, n_head=HEADS, n_embd=HIDDEN, n_inner=FFN,
                                                vocab_size=VOCAB, n_positions=POSITIONS))

    def llama_gqa():
        return tf.LlamaForCausalLM(tf.LlamaConfig(
            hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            num_key_value_heads=HEADS // 2, vocab_size=VOCAB, max_position_embeddings=POSITIONS))

    def bert():
        return tf.BertModel(tf.BertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                          intermediate_size=FFN, vocab_size=VOCAB, max_position_embeddings=POSITIONS))

    def vit():
        return tf.ViTForImageClassification(tf.ViTConfig(
            hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
            image_size=32, patch_size=8, num_labels=10))

    return {"gpt2": (gpt2, "text-generation-with-past"), "llama-gqa": (llama_gqa, "text-generation-with-past"),
            "bert": (bert, "feature-extraction"), "vit": (vit, "image-classification")}


NAMES = ("gpt2", "llama-gqa", "bert", "vit")


def _exporter():
    try:
        from optimum.exporters.onnx import onnx_export_from_model
    except ImportError as e:
        raise SystemExit(f"export_hf: optimum's ONNX exporter is missing ({e}); "
                         "pip install torch==2.13.0 optimum-onnx") from None
    return onnx_export_from_model


def export(name: str, out: Path) -> Path:
    """Export one architecture to <out>/<name>.onnx; returns the path."""
    import torch

    factory, task = _models()[name]
    export_fn = _exporter()
    torch.manual_seed(SEED)
    model = factory().eval()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.") as tmp:
        export_fn(model, tmp, task=task, opset=OPSET, do_validation=False, device="cpu")
        produced = sorted(Path(tmp).glob("*.onnx"))
        if len(produced) != 1 or any(Path(tmp).glob("*.onnx_data")) or any(Path(tmp).glob("*.onnx.data")):
            raise SystemExit(f"export_hf: {name}: expected one self-contained .onnx, got "
                             f"{[p.name for p in Path(tmp).iterdir()]}")
        target = out / f"{name}.onnx"
        os.replace(produced[0], target)
    return target


def describe(path: Path) -> str:
    import onnx

    m = onnx.load(path, load_external_data=False)

    def shape(vi):
        return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in vi.type.tensor_type.shape.dim) + "]"

    ins = ", ".join(f"{i.name} {shape(i)}" for i in m.graph.input[:4])
    more = f", ... ({len(m.graph.input)} inputs)" if len(m.graph.input) > 4 else ""
    outs = ", ".join(f"{o.name} {shape(o)}" for o in m.graph.output[:3])
    return f"{path.name}: {path.stat().st_size:,} B, {len(m.graph.node)} nodes; in {ins}{more}; out {outs}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "hf"), help="output folder (default models/hf)")
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(NAMES)}")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        print(f"export_hf: unknown model {unknown[0]!r} (known: {', '.join(NAMES)})", file=sys.stderr)
        return 2
    out = Path(args.out)
    for name in names:
        print(describe(export(name, out)))
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
