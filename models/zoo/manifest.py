"""The built zoo's manifest.json: where the build writes it, how readers (benchmarks/fidelity.py) pick from it.

No torch or onnxruntime here: a reader of a zoo someone else built needs neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SPLIT_CHOICES = ("dev", "held-out", "all")


def default_dir() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/onnx-planner/zoo: beside the calibration, outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "onnx-planner" / "zoo"


def load(folder: Path | str) -> list[dict]:
    """The manifest's model records, each with `path` resolved against the folder (the zoo may have moved)."""
    folder = Path(folder).expanduser()
    doc = json.loads((folder / MANIFEST).read_text())
    if doc.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{folder / MANIFEST}: manifest version {doc.get('version')}, expected {MANIFEST_VERSION}")
    return [{**r, "path": str(folder / r["file"])} for r in doc["models"]]


def select(records: list[dict], split: str) -> list[dict]:
    """The records of one split ("all": both) that onnxruntime runs: what fidelity can score."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split {split!r} is not one of {SPLIT_CHOICES}")
    return [r for r in records if r.get("ort_runs") and (split == "all" or r["split"] == split)]
