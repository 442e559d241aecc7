"""The zoo as data: families.toml read, checked and expanded into the models the build writes and fidelity scores.

Pure Python (no torch, no onnxruntime), so that the tests and benchmarks/fidelity.py read the same catalog that
models/zoo/build.py builds from. One family gives one file per part and variant, and one model entry per binding
of that file's dims: a decoder's decode step and its prefill are two entries of one file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAMILIES_FILE = Path(__file__).with_name("families.toml")

FAMILY_CLASSES = ("cnn", "detector", "encoder", "encoder-decoder", "decoder", "recurrent", "vision-transformer",
                  "dual-encoder", "control-flow")
# The classes issue #16 scores by; int8 and fp16 cut across families (a variant's class is its precision).
SCORING_CLASSES = ("cnn", "detector", "encoder", "decoder", "recurrent", "int8", "fp16", "control-flow")
SPLITS = ("dev", "held-out")
SOURCES = ("optimum", "db-text", "torch-nn", "onnx-helper")
VARIANTS = ("fp32", "int8-dynamic", "int8-qoperator", "int8-qdq", "fp16")
# Which variants a family gets unless it lists its own: every family is built in both int8 formats where
# onnxruntime's quantizers take it; static QOperator (QLinearConv) for convolutional classes, where people ship it.
DEFAULT_VARIANTS = {
    "cnn": ("fp32", "int8-dynamic", "int8-qoperator", "int8-qdq", "fp16"),
    "detector": ("fp32", "int8-dynamic", "int8-qoperator", "int8-qdq", "fp16"),
    "recurrent": ("fp32", "int8-dynamic", "int8-qdq", "fp16"),
    "control-flow": ("fp32",),
}
DEFAULT_OTHER = ("fp32", "int8-dynamic", "int8-qdq", "fp16")
# A family class's scoring class when the variant is fp32 (encoder-decoder parts carry their own).
BASE_SCORING = {"cnn": "cnn", "detector": "detector", "encoder": "encoder", "decoder": "decoder",
                "recurrent": "recurrent", "vision-transformer": "encoder", "dual-encoder": "encoder",
                "control-flow": "control-flow"}
SPLIT_SEED = 16  # issue #16: the alphabetically first family of each class is dev when SPLIT_SEED % 2 == 0


@dataclass(frozen=True)
class Part:
    """One ONNX file a family yields before variants: `name` is optimum's file stem ("model" when it writes one)."""

    name: str
    scoring_class: str
    dims: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Family:
    name: str
    klass: str
    source: str
    model: str
    config: dict
    task: str | None
    parts: tuple[Part, ...]
    variants: tuple[str, ...]
    minus_one: tuple[str, ...]
    split: str
    init: str = ""  # hf.INITS: weights drawn otherwise than transformers' initializer_range (hf.export)


@dataclass(frozen=True)
class Entry:
    """One scored model: a file (family, part, variant) at one binding of its dims."""

    name: str
    family: str
    family_class: str
    part: str
    variant: str
    binding: str
    dims: dict[str, int]
    split: str
    scoring_class: str
    file: str  # relative to the zoo folder


def variant_class(variant: str, base: str) -> str:
    """The scoring class of a model: its precision for int8 / fp16 variants, else its family's kind."""
    if variant.startswith("int8"):
        return "int8"
    if variant == "fp16":
        return "fp16"
    return base


def _family(raw: dict) -> Family:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a family without a name: {raw}")
    klass = raw.get("class")
    if klass not in FAMILY_CLASSES:
        raise ValueError(f"{name}: class {klass!r} is not one of {FAMILY_CLASSES}")
    if raw.get("split") not in SPLITS:
        raise ValueError(f"{name}: split {raw.get('split')!r} is not one of {SPLITS}")
    if raw.get("source") not in SOURCES:
        raise ValueError(f"{name}: source {raw.get('source')!r} is not one of {SOURCES}")
    if klass == "encoder-decoder":
        if "parts" not in raw or "dims" in raw:
            raise ValueError(f"{name}: an encoder-decoder lists parts (each with class and dims), not dims")
        parts = tuple(Part(p, v["class"], v["dims"]) for p, v in raw["parts"].items())
        for p in parts:
            if p.scoring_class not in SCORING_CLASSES:
                raise ValueError(f"{name}: part {p.name} has class {p.scoring_class!r}")
    else:
        if "dims" not in raw or "parts" in raw:
            raise ValueError(f"{name}: dims (one table per binding) are required, parts only for encoder-decoders")
        parts = (Part("model", BASE_SCORING[klass], raw["dims"]),)
    for p in parts:
        if not p.dims or not all(isinstance(b, dict) and all(isinstance(v, int) and v >= 0 for v in b.values())
                                 for b in p.dims.values()):
            raise ValueError(f"{name}: every binding is a table of dim = non-negative integer")
    variants = tuple(raw.get("variants", DEFAULT_VARIANTS.get(klass, DEFAULT_OTHER)))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "fp32" not in variants:
        raise ValueError(f"{name}: variants {list(variants)} (known: {VARIANTS}; fp32 is always built)")
    if raw["source"] == "optimum" and not raw.get("task"):
        raise ValueError(f"{name}: an optimum export needs its task")
    return Family(name, klass, raw["source"], raw.get("model", ""), dict(raw.get("config", {})), raw.get("task"),
                  parts, variants, tuple(raw.get("minus_one", ())), raw["split"], str(raw.get("init", "")))


def load_families(path: Path | str = FAMILIES_FILE) -> list[Family]:
    """The families of the data file, checked: unique names, known classes, sources, variants and splits."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    families = [_family(r) for r in raw.get("family", [])]
    names = [f.name for f in families]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"families named twice: {dupes}")
    return families


def split_rule(families: list[Family], seed: int = SPLIT_SEED) -> dict[str, str]:
    """The split the data file must hold: within each class, by name, alternating dev / held-out from seed % 2."""
    out = {}
    for klass in FAMILY_CLASSES:
        names = sorted(f.name for f in families if f.klass == klass)
        for i, n in enumerate(names):
            out[n] = SPLITS[(i + seed) % 2]
    return out


def file_name(family: str, part: str, variant: str) -> str:
    """Where a built file lives inside the zoo folder."""
    stem = family if part == "model" else f"{family}.{part}"
    return f"{family}/{stem}.{variant}.onnx"


def entries(families: list[Family]) -> list[Entry]:
    """Every scored model: family x part x variant x binding, in the data file's order."""
    out = []
    for f in families:
        for part in f.parts:
            for variant in f.variants:
                for binding, dims in part.dims.items():
                    pname = "" if part.name == "model" else f" {part.name.replace('_model', '')}"
                    out.append(Entry(
                        name=f"{f.name}{pname} {variant} {binding}", family=f.name, family_class=f.klass,
                        part=part.name, variant=variant, binding=binding, dims=dict(dims), split=f.split,
                        scoring_class=variant_class(variant, part.scoring_class),
                        file=file_name(f.name, part.name, variant)))
    return out
