"""External data that points outside the model's folder is refused, and no file outside that folder is opened.

Two independent witnesses, neither needing strace:
  * a Python audit hook records every `open` event (builtins.open, io.open, os.open, pathlib) during the run;
  * the outside "secret" is a FIFO. Opening a FIFO for reading blocks until a writer appears, from Python or
    from C++ alike, and a non-blocking open for writing succeeds only while some reader holds it open. A
    watchdog thread probes it throughout the run: a reader, anywhere in the process, would be caught (and then
    released, so a failing test fails instead of hanging).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from planner.cli import main

_RECORDING: list[str] | None = None
_PROBE_THREADS: set[int] = set()  # the FIFO watchdog's own probes are not the planner's doing


def _hook(event: str, args: tuple) -> None:
    if (_RECORDING is not None and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike))
            and threading.get_ident() not in _PROBE_THREADS):
        _RECORDING.append(os.fsdecode(args[0]))


sys.addaudithook(_hook)  # hooks cannot be removed; this one records only while a test asks it to


class _FifoWatch:
    """Catches any reader of `fifo` while active."""

    def __init__(self, fifo: Path) -> None:
        self.fifo, self.caught, self._stop = fifo, False, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        _PROBE_THREADS.add(threading.get_ident())
        while not self._stop.wait(0.01):
            self._probe()

    def _probe(self) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader, as it should be
                raise
            return
        self.caught = True
        os.close(fd)  # the reader sees end-of-file and goes on

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        _PROBE_THREADS.discard(self._t.ident)


def _external_model(location: str, shape=(4, 3)) -> onnx.ModelProto:
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=shape, data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", "0"), ("length", str(int(np.prod(shape)) * 4))):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", shape[0]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", shape[1]])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _run_recording(argv: list[str]) -> tuple[int, list[str]]:
    global _RECORDING
    _RECORDING = []
    try:
        code = main(argv)
    finally:
        opened, _RECORDING = _RECORDING, None
    return code, opened


def _inside(path: str, folder: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == folder or folder in real.parents


@pytest.mark.parametrize("kind", ["dotdot", "nested_dotdot", "absolute", "symlink"])
def test_escaping_location_refused_and_nothing_outside_opened(tmp_path, capsys, kind):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    secret = tmp_path / "secret.bin"
    os.mkfifo(secret)
    location = {"dotdot": "../secret.bin", "nested_dotdot": "sub/../../secret.bin", "absolute": str(secret),
                "symlink": "w.bin"}[kind]
    if kind == "symlink":
        os.symlink(secret, model_dir / "w.bin")
    p = model_dir / "m.onnx"
    p.write_bytes(_external_model(location).SerializeToString())
    with _FifoWatch(secret) as watch:
        code, opened = _run_recording([str(p), "--target", "a10g"])
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err and err.count("\n") == 1, err
    assert not watch.caught, "something opened the file outside the model's folder"
    real_tmp = Path(os.path.realpath(tmp_path))
    outside = [f for f in opened if _inside(f, real_tmp) and not _inside(f, Path(os.path.realpath(model_dir)))]
    assert outside == []
    assert [f for f in opened if _inside(f, Path(os.path.realpath(model_dir)))] == [str(p)]  # the model, only


def test_the_fifo_witness_catches_a_reader(tmp_path):
    """The witness itself: a deliberate read of the FIFO while watched is caught (and does not hang)."""
    fifo = tmp_path / "secret.bin"
    os.mkfifo(fifo)
    with _FifoWatch(fifo) as watch:
        with open(fifo, "rb") as f:
            assert f.read() == b""
    assert watch.caught


def test_model_over_2gb_of_external_data_plans_without_reading_it(tmp_path, capsys):
    """3 GiB of weights in a sparse file (no disk used): planned from metadata; the data file is never opened."""
    k, n = 1024, 768 * 1024  # [1024, 786432] float32 = 3 GiB
    model_dir = tmp_path / "big"
    model_dir.mkdir()
    data = model_dir / "weights.bin"
    with open(data, "wb") as f:
        f.truncate(k * n * 4)
    p = model_dir / "big.onnx"
    p.write_bytes(_external_model("weights.bin", (k, n)).SerializeToString())
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    code, opened = _run_recording([str(p), "--target", "a100-80gb", "--batch", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"]["weight_bytes"] == k * n * 4
    assert doc["model"]["flops"] == 2 * 1 * k * n
    assert str(data) not in opened and not any(os.path.realpath(f) == str(data.resolve()) for f in opened)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before
    assert sorted(os.listdir(model_dir)) == ["big.onnx", "weights.bin"]
