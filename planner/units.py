"""Numbers as people read them: bytes, FLOPs, plain figures. One definition each, for every message and table."""

from __future__ import annotations


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{int(n)} B"


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def fmt_flops(x: float) -> str:
    for unit, div in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{int(x)} FLOP"


def fmt_gb(n: float) -> str:
    """Memory sizes in reasons and notes ("needs 3.20 GB, t4 has 16.00 GB"): always GB, two decimals."""
    return f"{n / 1e9:.2f} GB"
