"""Transformers architectures exported through optimum's ONNX exporter, offline, random-init and seeded.

The config is the family's `config` table ("" for None, which TOML cannot write) passed to the model class's
own config class (no hub download; HF_HUB_OFFLINE is set), the weights are torch's seeded initialisation, and
optimum writes the graphs as it does for real checkpoints (opset 18, no validation, no post-processing: an
encoder-decoder gives encoder_model.onnx, decoder_model.onnx and decoder_with_past_model.onnx, of which the
family keeps the parts it lists).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OPSET = 18


def export(model: str, config: dict, task: str, parts: list[str], out: dict[str, Path], seed: int = 0) -> None:
    """Export transformers class `model` at `config` for optimum's `task`; move each kept part's file
    (optimum's stem, e.g. "model" or "encoder_model") to out[part]."""
    import torch
    import transformers as tf
    from optimum.exporters.onnx import onnx_export_from_model

    cls = getattr(tf, model)
    torch.manual_seed(seed)
    net = cls(cls.config_class(**{k: None if v == "" else v for k, v in config.items()})).eval()
    dest = next(iter(out.values())).parent
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".export.") as tmp:
        onnx_export_from_model(net, tmp, task=task, opset=OPSET, do_validation=False, device="cpu",
                               no_post_process=True)
        for part in parts:
            produced = Path(tmp) / f"{part}.onnx"
            if not produced.exists():
                raise RuntimeError(f"optimum wrote {sorted(p.name for p in Path(tmp).iterdir())}, not {part}.onnx")
            if any(Path(tmp).glob(f"{part}.onnx*data")):
                raise RuntimeError(f"{part}: optimum wrote external data; the zoo keeps one self-contained file")
            os.replace(produced, out[part])
