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


CNN_INIT = "cnn"
"""A family's `init`: BatchNorm scales 1 and shifts 0, convolution weights Kaiming-normal over fan-in (torch's own
BatchNorm initialisation, and the He scaling that keeps a ReLU/SiLU stack's activations at one magnitude), not
transformers' normal(0, initializer_range = 0.02) for both. With the latter every BatchNorm of EfficientNet scales
by about 0.02 and every convolution shrinks its input: by its 9th block every activation is a denormal or zero
(median |x| 8e-45 at the 11th), which an x86 core computes 100 times slower than normal floats, a model nobody
deploys (docs/fidelity.md, 2026-12-08). With this one the blocks' median |x| stays between 0.3 and 0.003."""
INITS = ("", CNN_INIT)


def export(model: str, config: dict, task: str, parts: list[str], out: dict[str, Path], seed: int = 0,
           init: str = "") -> None:
    """Export transformers class `model` at `config` for optimum's `task`; move each kept part's file
    (optimum's stem, e.g. "model" or "encoder_model") to out[part]. `init`: one of INITS."""
    import torch
    import transformers as tf
    from optimum.exporters.onnx import onnx_export_from_model

    cls = getattr(tf, model)
    torch.manual_seed(seed)
    net = cls(cls.config_class(**{k: None if v == "" else v for k, v in config.items()})).eval()
    if init not in INITS:
        raise ValueError(f"unknown init {init!r} (known: {', '.join(repr(i) for i in INITS)})")
    if init == CNN_INIT:
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    torch.nn.init.ones_(m.weight)
                    torch.nn.init.zeros_(m.bias)
                elif isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, mode="fan_in")
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
