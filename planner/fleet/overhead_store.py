"""This machine's measured serving overhead on disk, beside its calibration: one entry per machine and threads.

    $XDG_CACHE_HOME/onnx-planner/serving.json  (else ~/.cache/...)
    {"schema_version": 1, "overheads": {"<fingerprint> | threads=1": {"per_batch_s", "per_request_s",
                                         "latency_s", "timer_late_s", "source", "samples": [...]}}}

Why a file of its own and not a field of the calibration: the calibration measures onnxruntime's kernels
(`plan calibrate`); this measures a server around onnxruntime (benchmarks/fleet_load.py --overhead), another
program with another life. A file from another machine or thread count changes nothing, as with calibrations.
Which overhead a target's fleet assumes: `for_target`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planner.atomic import write_atomic
from planner.calibration.store import DEFAULT_THREADS, entry_key, read_table
from planner.calibration.store import default_path as calibration_path
from planner.fleet.overhead import OverheadError, ServingOverhead, published
from planner.targets.host import host_fingerprint

SCHEMA_VERSION = 1
HOST = "host"


def default_path() -> Path:
    return calibration_path().with_name("serving.json")


def read_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    return read_table(path, "overheads", SCHEMA_VERSION, OverheadError, "serving-overhead")


def save(overhead: ServingOverhead, threads: int = DEFAULT_THREADS, path: str | os.PathLike | None = None,
         extra: Mapping[str, Any] | None = None) -> Path:
    """Add or replace this machine's entry for `threads` (`extra`: the samples it was fitted from)."""
    p = Path(path) if path is not None else default_path()
    if path is None:
        p.parent.mkdir(parents=True, exist_ok=True)
    entries = read_file(p)
    entries[entry_key(host_fingerprint(), threads)] = {**overhead.to_dict(), **(extra or {})}
    doc = {"schema_version": SCHEMA_VERSION, "overheads": dict(sorted(entries.items()))}
    return write_atomic(p, json.dumps(doc, indent=1) + "\n")


def find(threads: int = DEFAULT_THREADS, path: str | os.PathLike | None = None) -> ServingOverhead | None:
    """This machine's measured overhead at `threads`, or None where none was measured."""
    p = Path(path) if path is not None else default_path()
    entry = read_file(p).get(entry_key(host_fingerprint(), threads))
    return None if entry is None else ServingOverhead.from_dict(entry, f"{p}")


def for_target(target: str, threads: int = DEFAULT_THREADS, path: str | os.PathLike | None = None
               ) -> ServingOverhead:
    """The overhead a target's fleet assumes: `host` its measured one where there is one, every other target
    (and an unmeasured host) Triton's published figures."""
    if target == HOST:
        measured = find(threads, path)
        if measured is not None:
            return measured
    return published()
