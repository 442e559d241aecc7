"""Compare two configurations from plan documents: how much each headline number moved, and why.

Works on the JSON dicts (not the typed Plan) because one side is usually a baseline written by an earlier
run, possibly by an older planner: keys may be missing (read as unknown) and extra keys are ignored.

"Why" is the kernels: matched by the anchor node's name (the n-th kernel of a name matches the n-th one on
the other side, so unnamed or repeated names still pair up), the kernels that account for most of the
latency change are listed first. When a side has no complete kernel list (a baseline from before
`all_kernels`), the time by op type stands in and the comparison says so.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# metric name -> (plan key, label, unit). Cost and latency rise with time; memory with bytes.
METRICS: dict[str, tuple[str, str, str]] = {
    "cost": ("cost_per_million_usd", "cost per 1M inferences", "$"),
    "latency": ("latency_ms", "latency per batch", "ms"),
    "memory": ("peak_memory_bytes", "peak memory", "bytes"),
}
# Shown beside the gated metric, in this order.
HEADLINE = ("cost_per_million_usd", "latency_ms", "throughput_per_s", "peak_memory_bytes")
DECODER_KEYS = ("ttft_ms", "tpot_ms", "tokens_per_s", "kv_cache_bytes", "cost_per_million_input_tokens_usd",
                "cost_per_million_output_tokens_usd")
MEMORY_PARTS = ("weights", "activations", "workspace", "kv_cache", "runtime_copies", "arena")
ACCOUNT_FOR = 0.9  # list kernels until they explain this fraction of the total absolute change


def relative_change(old: float | None, new: float | None) -> float | None:
    """(new - old) / old; +inf when something appears from zero; None when either side is unknown."""
    if old is None or new is None:
        return None
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


@dataclass(frozen=True)
class Change:
    key: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def ratio(self) -> float | None:
        return relative_change(self.old, self.new)


@dataclass(frozen=True)
class KernelChange:
    name: str
    old_ops: str | None  # None: the kernel is new
    new_ops: str | None  # None: the kernel is gone
    old_ms: float | None
    new_ms: float | None
    old_flops: int | None = None
    new_flops: int | None = None

    @property
    def delta_ms(self) -> float:
        return (self.new_ms or 0.0) - (self.old_ms or 0.0)

    @property
    def status(self) -> str:
        if self.old_ops is None:
            return "added"
        if self.new_ops is None:
            return "removed"
        return "changed" if self.old_ops != self.new_ops else "same"


@dataclass(frozen=True)
class Comparison:
    old_config: str  # "a10g batch 256 fp32"
    new_config: str
    headline: list[Change]
    decoder: list[Change]
    memory_parts: list[Change]
    kernels: list[KernelChange]  # every matched or unmatched kernel, largest absolute change first
    by_op_type: list[Change]  # time_by_op_type_ms, largest absolute change first
    kernels_complete: bool  # both sides had every kernel; otherwise kernel matching covers top kernels only
    notes: list[str] = field(default_factory=list)

    def change(self, key: str) -> Change:
        for c in self.headline + self.decoder:
            if c.key == key:
                return c
        raise KeyError(key)

    def top_kernels(self, limit: int = 5, account_for: float = ACCOUNT_FOR) -> list[KernelChange]:
        """The few kernels whose change accounts for most of the total: stop at `account_for` or `limit`."""
        moved = [k for k in self.kernels if k.delta_ms != 0]
        total = sum(abs(k.delta_ms) for k in moved)
        out: list[KernelChange] = []
        covered = 0.0
        for k in moved:
            if len(out) >= limit or (total and covered >= account_for * total):
                break
            out.append(k)
            covered += abs(k.delta_ms)
        return out


def config_label(c: dict[str, Any]) -> str:
    parts = [str(c.get("target", "?")), f"batch {c.get('batch', '?')}"]
    if c.get("precision"):
        parts.append(str(c["precision"]))
    if c.get("passes"):
        parts.append("passes " + ",".join(map(str, c["passes"])))
    return " ".join(parts)


def _num(c: dict[str, Any], key: str) -> float | None:
    v = c.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _keyed(kernels: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Kernel list -> {(name, n): kernel}; the n-th kernel with a name (or, unnamed, with those ops)."""
    seen: Counter = Counter()
    out = {}
    for k in kernels:
        base = str(k.get("name") or f"<unnamed {k.get('ops', '?')}>")
        out[(base, seen[base])] = k
        seen[base] += 1
    return out


def kernel_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[KernelChange]:
    a, b = _keyed(old), _keyed(new)
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        ka, kb = a.get(key), b.get(key)
        out.append(KernelChange(
            name=key[0], old_ops=ka.get("ops", "?") if ka else None, new_ops=kb.get("ops", "?") if kb else None,
            old_ms=_num(ka, "time_ms") if ka else None, new_ms=_num(kb, "time_ms") if kb else None,
            old_flops=_num(ka, "flops") if ka else None, new_flops=_num(kb, "flops") if kb else None))
    out.sort(key=lambda k: -abs(k.delta_ms))
    return out


def _dict_changes(old: dict[str, Any], new: dict[str, Any], keys: list[str] | None = None) -> list[Change]:
    names = keys if keys is not None else list(dict.fromkeys(list(old) + list(new)))
    out = [Change(k, _num(old, k) or 0.0, _num(new, k) or 0.0) for k in names if k in old or k in new]
    return sorted(out, key=lambda c: -abs(c.delta or 0.0)) if keys is None else out


def compare_configs(old: dict[str, Any], new: dict[str, Any]) -> Comparison:
    """Compare one configuration (a plan's `chosen`, or a candidate) from each of two plans."""
    notes = []
    old_all, new_all = old.get("all_kernels"), new.get("all_kernels")
    complete = bool(old_all) and bool(new_all)
    if complete:
        kernels = kernel_changes(old_all, new_all)
    else:
        kernels = kernel_changes(old.get("kernels") or [], new.get("kernels") or [])
        notes.append("a plan lists only its top kernels (no 'all_kernels', written by an older planner): "
                     "kernels outside the top lists cannot be matched; see the time by op type")
    for k in ("precision", "passes"):
        if k in old and k in new and old[k] != new[k]:
            notes.append(f"{k} differs: {old[k]} -> {new[k]}")
    if old.get("fits") is True and new.get("fits") is False:
        notes.append("no longer fits in the target's memory")
    return Comparison(
        old_config=config_label(old), new_config=config_label(new),
        headline=[Change(k, _num(old, k), _num(new, k)) for k in HEADLINE],
        decoder=[Change(k, _num(old, k), _num(new, k)) for k in DECODER_KEYS
                 if old.get(k) is not None or new.get(k) is not None],  # null for models that are not decoders
        memory_parts=[c for c in _dict_changes(old.get("memory") or {}, new.get("memory") or {}, list(MEMORY_PARTS))
                      if c.old or c.new],
        kernels=kernels,
        by_op_type=_dict_changes(old.get("time_by_op_type_ms") or {}, new.get("time_by_op_type_ms") or {}),
        kernels_complete=complete, notes=notes,
    )


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """JSON form for `--json`: plain numbers, None for unknown; infinities become None like the plan's."""
    def num(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    def ch(x: Change) -> dict[str, Any]:
        return {"key": x.key, "old": num(x.old), "new": num(x.new), "delta": num(x.delta), "ratio": num(x.ratio)}

    return {
        "old_config": c.old_config, "new_config": c.new_config,
        "headline": [ch(x) for x in c.headline], "decoder": [ch(x) for x in c.decoder],
        "memory": [ch(x) for x in c.memory_parts],
        "kernels": [{"name": k.name, "status": k.status, "old_ops": k.old_ops, "new_ops": k.new_ops,
                     "old_ms": k.old_ms, "new_ms": k.new_ms, "delta_ms": k.delta_ms}
                    for k in c.kernels if k.delta_ms != 0 or k.status != "same"],
        "by_op_type_ms": [ch(x) for x in c.by_op_type if x.delta],
        "kernels_complete": c.kernels_complete, "notes": c.notes,
    }
