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
        # mkstemp makes 0600 files; an output should get the mode any new file gets (0666 less the umask),
        # or keep the mode of the file it replaces.
        umask = os.umask(0)
        os.umask(umask)
        mode = (target.stat().st_mode & 0o7777) if target.exists() else (0o666 & ~umask)
        os.fchmod(fd, mode)
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
