"""Zoo models that no library ships as a class to export offline, assembled from library layers and exported
with torch.onnx.export (the TorchScript exporter, opset 17, as most shipped recurrent and OCR models were).

    conv_rnn  audio: features [batch_size, features, time] -> two Conv1d (kernel 3, stride 2) + ReLU -> an
              nn.LSTM or nn.GRU stack over time -> a Linear per frame: logits [frames, batch_size, outputs]
              (speech recognizers and voice-activity detectors are built this way)
    crnn      text recognition: image [batch_size, 1, 32, width] -> Conv2d + ReLU + MaxPool stages, a
              convolution collapsing the height -> a bidirectional nn.LSTM stack over the width -> Linear
    db_text   a DB-style text detector (no library has one without a hub download, so it is assembled): a
              transformers ResNetBackbone (four stages) -> FPN (1x1 laterals, nearest Resize x2 top-down,
              3x3 smoothing, Resize to 1/4 and Concat) -> head Conv3x3+BN+ReLU, ConvTranspose x2 +BN+ReLU,
              ConvTranspose x2, Sigmoid: a probability map at full resolution

torch and transformers are imported inside the functions: they are an optional extra.
"""

from __future__ import annotations

from pathlib import Path

OPSET = 17


def _conv_rnn(cell: str, features: int, channels: int, hidden: int, layers: int, bidirectional: bool,
              outputs: int):
    import torch
    from torch import nn

    class ConvRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = nn.Sequential(nn.Conv1d(features, channels, 3, stride=2, padding=1), nn.ReLU(),
                                       nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
            self.rnn = getattr(nn, cell)(channels, hidden, num_layers=layers, bidirectional=bidirectional)
            self.out = nn.Linear(hidden * (2 if bidirectional else 1), outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.front(x).permute(2, 0, 1)  # [frames, batch, channels]
            y, _ = self.rnn(y)
            return self.out(y)

    return ConvRNN(), {"features": ("batch_size", features, "time")}, ["logits"], \
        {"features": {0: "batch_size", 2: "time"}, "logits": {0: "frames", 1: "batch_size"}}


def _crnn(cell: str, height: int, channels: list[int], hidden: int, layers: int, bidirectional: bool,
          outputs: int):
    import torch
    from torch import nn

    class CRNN(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, cin = [], 1
            for i, c in enumerate(channels):
                pool = (2, 2) if i < len(channels) - 1 else (2, 1)
                blocks += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool)]
                cin = c
            self.convs = nn.Sequential(*blocks)
            self.collapse = nn.Conv2d(cin, cin, (height // 2 ** len(channels), 1))
            self.rnn = getattr(nn, cell)(cin, hidden, num_layers=layers, bidirectional=bidirectional)
            self.out = nn.Linear(hidden * (2 if bidirectional else 1), outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.collapse(self.convs(x)).squeeze(2).permute(2, 0, 1)  # [width / 4, batch, channels]
            y, _ = self.rnn(y)
            return self.out(y)

    return CRNN(), {"image": ("batch_size", 1, height, "width")}, ["logits"], \
        {"image": {0: "batch_size", 3: "width"}, "logits": {0: "steps", 1: "batch_size"}}


def _db_text(hidden_sizes: list[int], depths: list[int], inner: int, image: int):
    import torch
    import transformers as tf
    from torch import nn
    from torch.nn import functional as F

    class DBText(nn.Module):
        def __init__(self):
            super().__init__()
            cfg = tf.ResNetConfig(embedding_size=hidden_sizes[0], hidden_sizes=hidden_sizes, depths=depths,
                                  layer_type="basic", out_features=["stage1", "stage2", "stage3", "stage4"])
            self.backbone = tf.ResNetBackbone(cfg)
            self.laterals = nn.ModuleList(nn.Conv2d(c, inner, 1) for c in hidden_sizes)
            self.smooth = nn.ModuleList(nn.Conv2d(inner, inner // 4, 3, padding=1) for _ in hidden_sizes)
            q = inner // 4
            self.head = nn.Sequential(nn.Conv2d(inner, q, 3, padding=1), nn.BatchNorm2d(q), nn.ReLU(),
                                      nn.ConvTranspose2d(q, q, 2, stride=2), nn.BatchNorm2d(q), nn.ReLU(),
                                      nn.ConvTranspose2d(q, 1, 2, stride=2), nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = list(self.backbone(x).feature_maps)  # strides 4, 8, 16, 32
            lat = [conv(f) for conv, f in zip(self.laterals, feats, strict=True)]
            for i in range(len(lat) - 2, -1, -1):
                lat[i] = lat[i] + F.interpolate(lat[i + 1], scale_factor=2.0, mode="nearest")
            outs = [F.interpolate(s(p), scale_factor=2.0 ** i, mode="nearest") if i else s(p)
                    for i, (s, p) in enumerate(zip(self.smooth, lat, strict=True))]
            return self.head(torch.cat(outs, dim=1))

    return DBText(), {"pixel_values": ("batch_size", 3, image, image)}, ["probability_map"], \
        {"pixel_values": {0: "batch_size"}, "probability_map": {0: "batch_size"}}


BUILDERS = {"conv_rnn": _conv_rnn, "crnn": _crnn, "db_text": _db_text}


def export(model: str, config: dict, path: Path, seed: int = 0) -> Path:
    """torch.onnx.export of builder `model` with the family's config to path (a temporary name: the caller
    moves it into place)."""
    import torch

    torch.manual_seed(seed)
    net, inputs, output_names, dynamic = BUILDERS[model](**config)
    net.eval()
    example = tuple(torch.randn(*[2 if d == "batch_size" else 64 if isinstance(d, str) else d for d in shape])
                    for shape in inputs.values())
    with torch.no_grad():
        torch.onnx.export(net, example, str(path), input_names=list(inputs), output_names=output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return path
