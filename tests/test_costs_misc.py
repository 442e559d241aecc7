import math

from costs_helpers import cost

from planner.costs import ZERO


def test_dft_real_and_complex():
    batch, n = 4, 512
    log_n = math.ceil(math.log2(n))
    assert cost("DFT", [(batch, n, 1)], [(batch, n, 2)], {"axis": 1}).flops == batch * 5 * n * log_n // 2
    assert cost("DFT", [(batch, n, 2)], [(batch, n, 2)]).flops == batch * 5 * n * log_n


def test_stft():
    batch, frames, length = 2, 100, 400
    bins = length // 2 + 1
    c = cost("STFT", [(batch, 16000, 1), ((), "int64"), (length,), ((), "int64")], [(batch, frames, bins, 2)])
    per_frame = 5 * length * math.ceil(math.log2(length)) // 2 + length
    assert c.flops == batch * frames * per_frame


def test_windows_and_random():
    n = 400
    assert cost("HannWindow", [((), "int64")], [(n,)]).flops == 5 * n
    assert cost("BlackmanWindow", [((), "int64")], [(n,)]).flops == 9 * n
    assert cost("RandomNormal", [], [(n, 8)], {"shape": [n, 8]}).flops == 8 * n * 8
    assert cost("RandomUniformLike", [(n,)], [(n,)]).flops == 4 * n


def test_non_max_suppression():
    b, classes, boxes = 1, 80, 1000
    c = cost("NonMaxSuppression", [(b, boxes, 4), (b, classes, boxes)], [((100, 3), "int64")])
    assert c.flops == b * classes * (boxes * 10 + 12 * boxes * 100)


def test_sequence_views():
    assert cost("SequenceLength", [None], [((), "int64")]) == ZERO
    assert cost("SequenceEmpty", [], [None]) == ZERO
