"""write_atomic: whole file or nothing, ordinary permissions, never over the input."""

from __future__ import annotations

import os
import stat

import pytest

from planner.atomic import write_atomic
from planner.errors import PlannerError


def test_new_file_gets_umask_mode_and_replacement_keeps_mode(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_atomic(tmp_path / "a.json", "{}\n")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.chmod(p, 0o640)
        write_atomic(p, "[]\n")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "[]\n"
    finally:
        os.umask(old)


def test_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "b.json", "x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_refuses_input_and_missing_folder(tmp_path):
    src = tmp_path / "m.onnx"
    src.write_bytes(b"model")
    with pytest.raises(PlannerError, match="overwrite the input"):
        write_atomic(src, b"x", refuse={src})
    assert src.read_bytes() == b"model"
    with pytest.raises(PlannerError, match="does not exist"):
        write_atomic(tmp_path / "nope" / "c.json", "x")
