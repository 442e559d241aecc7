"""Write files so that a reader never sees half of one: temporary file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from planner.errors import PlannerError


def write_atomic(path: str | os.PathLike, data: bytes | str, refuse: set[Path] | None = None) -> Path:
    """Write `data` to `path` atomically; `refuse` lists paths that must never be overwritten (the input)."""
    target = Path(path)
    if refuse and any(target.resolve() == r.resolve() for r in refuse):
        raise PlannerError(f"{target}: refusing to overwrite the input model")
    if target.is_dir():
        raise PlannerError(f"{target}: is a directory")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise PlannerError(f"{target}: folder {folder} does not exist")
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
