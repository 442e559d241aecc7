"""The roofline chart as hand-written SVG: the target's ceilings as lines, each kernel as a point.

    achieved FLOP/s = kernel FLOPs / predicted kernel time          (y, log scale)
    intensity       = kernel FLOPs / bytes at the kernel boundary   (x, log scale)

    attainable(I) = min(peak[dtype] x compute efficiency, I x bandwidth x memory efficiency)

Ceilings are drawn at the derated peaks the predictor uses, one per precision the plan's kernels ran at
(tf32, fp16, vector, ...), so every point sits on or under its roof; the gap below is the launch overhead.

Why hand-written and not matplotlib: the chart is a few dozen lines and circles on two log axes, which SVG
states directly. Written by hand it needs no optional dependency (so every report, in CI too, has its chart),
stays a few kilobytes of text inside the HTML, keeps each point's numbers and a hover tooltip on the element,
and can be checked by a test that parses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from planner.targets.target import Target

SVG_NS = "http://www.w3.org/2000/svg"
COLORS = {"compute": "#dd6b20", "memory": "#2b6cb0"}
CEILING_COLORS = ["#1a202c", "#805ad5", "#38a169", "#d53f8c", "#718096"]


@dataclass(frozen=True)
class Ceiling:
    key: str  # the peak key kernels report as peak_used: "fp16", "tf32", "vector", ...
    flops_per_s: float  # peak x compute efficiency: what the predictor times arithmetic with
    peak_flops_per_s: float  # the datasheet peak


@dataclass(frozen=True)
class Point:
    name: str
    ops: str
    bound: str
    intensity: float  # FLOP per byte
    achieved_flops_per_s: float
    time_ms: float
    share: float  # of the latency


def ceilings(target: Target, keys: Sequence[str]) -> list[Ceiling]:
    """The compute ceilings for the peak keys the kernels used, highest first; equal peaks share one line
    ("tf32, vector" on a GPU whose TF32 tensor rate equals its FP32 CUDA-core rate)."""
    by_peak: dict[float, list[str]] = {}
    for key in dict.fromkeys(keys):
        if key == "vector":
            peak = target.vector_flops_per_s
        elif key in target.matrix_flops_per_s:
            peak = target.matrix_flops_per_s[key]
        else:
            continue
        by_peak.setdefault(float(peak), []).append(key)
    return [Ceiling(", ".join(names), peak * target.compute_efficiency, peak)
            for peak, names in sorted(by_peak.items(), key=lambda kv: -kv[0])]


def memory_roof(target: Target) -> float:
    """Bytes per second the predictor moves data at: bandwidth x memory efficiency."""
    return target.mem_bw_bytes_per_s * target.memory_efficiency


def points(kernels: Sequence[dict[str, Any]]) -> tuple[list[Point], list[dict[str, Any]]]:
    """Kernels that have a place on log axes (arithmetic, bytes and time all positive), and those that do not."""
    drawn, skipped = [], []
    for k in kernels:
        flops, nbytes, ms = k.get("flops") or 0, k.get("bytes") or 0, k.get("time_ms") or 0.0
        if flops > 0 and nbytes > 0 and ms > 0:
            drawn.append(Point(str(k.get("name", "")), str(k.get("ops", "")), str(k.get("bound", "memory")),
                               flops / nbytes, flops / (ms / 1e3), ms, float(k.get("share") or 0.0)))
        else:
            skipped.append(k)
    return drawn, skipped


def _decades(lo: float, hi: float, min_span: int = 2) -> tuple[int, int]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    while b - a < min_span:  # widen evenly so a lone point is not drawn on the frame
        a -= 1
        if b - a < min_span:
            b += 1
    return a, b


def fmt_intensity(e: int) -> str:
    return f"{10.0 ** e:g}" if -3 <= e <= 4 else f"1e{e}"


def fmt_rate(e: int, unit: str = "FLOP/s") -> str:
    for p, name in ((15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, "")):
        if e >= p:
            return f"{10 ** (e - p):g} {name}{unit}"
    return f"1e{e} {unit}"


def fmt_si(v: float, unit: str) -> str:
    for div, name in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g} {name}{unit}"
    return f"{v:.3g} {unit}"


@dataclass(frozen=True)
class _Axes:
    """The plot area and its log-log scales: decades xa..xb of intensity, ya..yb of FLOP/s."""

    xa: int
    xb: int
    ya: int
    yb: int
    left: int
    top: int
    pw: int
    ph: int

    def X(self, v: float) -> float:
        return self.left + (math.log10(v) - self.xa) / (self.xb - self.xa) * self.pw

    def Y(self, v: float) -> float:
        return self.top + (self.yb - math.log10(v)) / (self.yb - self.ya) * self.ph


def roofline_svg(kernels: Sequence[dict[str, Any]], target: Target, width: int = 760, height: int = 460,
                 element_id: str = "roofline") -> str:
    """The chart for one plan on `target`; `kernels` are plan kernel dicts (all_kernels, or the top list)."""
    pts, _ = points(kernels)
    used = sorted({str(k.get("peak_used")) for k in kernels if k.get("peak_used") not in (None, "none")})
    ceils = ceilings(target, used) or ceilings(target, list(target.matrix_flops_per_s)[:1] or ["vector"])
    bw = memory_roof(target)
    ridges = [c.flops_per_s / bw for c in ceils]
    xs = [p.intensity for p in pts] + ridges
    ys = [p.achieved_flops_per_s for p in pts] + [c.flops_per_s for c in ceils]
    xa, xb = _decades(min(xs) / 2, max(xs) * 4)
    ya, yb = _decades(min(ys) / 2, max(ys) * 2)
    left, right, top, bottom = 78, 24, 20, 52
    ax = _Axes(xa, xb, ya, yb, left, top, width - left - right, height - top - bottom)
    title = f"Roofline of {target.full_name or target.name}"
    desc = (f"{len(pts)} kernels as points at (arithmetic intensity, achieved FLOP/s); memory roof "
            f"{fmt_si(bw, 'B/s')}; ceilings " + ", ".join(f"{c.key} {fmt_si(c.flops_per_s, 'FLOP/s')}" for c in ceils))
    out = [f'<svg xmlns="{SVG_NS}" id="{element_id}" class="roofline" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-labelledby="{element_id}-title {element_id}-desc" '
           f'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">',
           f'<title id="{element_id}-title">{escape(title)}</title>',
           f'<desc id="{element_id}-desc">{escape(desc)}</desc>',
           f'<rect x="{left}" y="{top}" width="{ax.pw}" height="{ax.ph}" fill="#ffffff" stroke="#a0aec0"/>']
    out += _grid(ax, height)
    out += _roof(ax, ceils, bw, max(ridges), target)
    out += _kernel_points(ax, pts)
    out += _legend(ax)
    out.append("</svg>")
    return "\n".join(out)


def _grid(ax: _Axes, height: int) -> list[str]:
    """Grid lines and ticks at every decade, and the axis titles."""
    X, Y, left, top, pw, ph = ax.X, ax.Y, ax.left, ax.top, ax.pw, ax.ph
    out = ['<g class="grid" stroke="#edf2f7">']
    for e in range(ax.xa + 1, ax.xb):
        out.append(f'<line x1="{X(10.0 ** e):.1f}" y1="{top}" x2="{X(10.0 ** e):.1f}" y2="{top + ph}"/>')
    for e in range(ax.ya + 1, ax.yb):
        out.append(f'<line x1="{left}" y1="{Y(10.0 ** e):.1f}" x2="{left + pw}" y2="{Y(10.0 ** e):.1f}"/>')
    out.append("</g>")
    out.append('<g class="ticks" fill="#4a5568">')
    for e in range(ax.xa, ax.xb + 1):
        out.append(f'<text x="{X(10.0 ** e):.1f}" y="{top + ph + 16}" text-anchor="middle">{fmt_intensity(e)}</text>')
    for e in range(ax.ya, ax.yb + 1):
        out.append(f'<text x="{left - 6}" y="{Y(10.0 ** e) + 4:.1f}" text-anchor="end">{fmt_rate(e, "")}</text>')
    out.append("</g>")
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle" fill="#2d3748">'
               "arithmetic intensity (FLOP per byte moved)</text>")
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#2d3748">'
               "achieved FLOP/s</text>")
    return out


def _roof(ax: _Axes, ceils: list, bw: float, ridge: float, target: Target) -> list[str]:
    """The memory diagonal up to the highest ridge, then one horizontal ceiling per precision, labelled."""
    X, Y, left, pw, ph = ax.X, ax.Y, ax.left, ax.pw, ax.ph
    lo_x = max(10.0 ** ax.xa, 10.0 ** ax.ya / bw)
    hi_x = min(ridge, 10.0 ** ax.xb)
    out = ['<g class="roof" fill="none" stroke-width="2">']
    out.append(f'<line class="memory-roof" data-bytes-per-s="{bw:.6g}" x1="{X(lo_x):.1f}" y1="{Y(lo_x * bw):.1f}" '
               f'x2="{X(hi_x):.1f}" y2="{Y(hi_x * bw):.1f}" stroke="#2d3748"/>')
    for i, c in enumerate(ceils):
        color = CEILING_COLORS[i % len(CEILING_COLORS)]
        x0 = max(c.flops_per_s / bw, 10.0 ** ax.xa)
        out.append(f'<line class="ceiling" data-key="{escape(c.key)}" data-flops-per-s="{c.flops_per_s:.6g}" '
                   f'x1="{X(x0):.1f}" y1="{Y(c.flops_per_s):.1f}" x2="{left + pw}" y2="{Y(c.flops_per_s):.1f}" '
                   f'stroke="{color}"' + (' stroke-dasharray="6 4"' if i else "") + "/>")
    out.append("</g>")
    out.append('<g class="roof-labels" font-size="11">')
    last_y = -1e9
    for i, c in enumerate(ceils):
        color = CEILING_COLORS[i % len(CEILING_COLORS)]
        y = Y(c.flops_per_s) - 5
        if y - last_y < 14:  # too close to the label above: write this one under its line
            y = Y(c.flops_per_s) + 14
        last_y = y
        out.append(f'<text x="{left + pw - 4}" y="{y:.1f}" text-anchor="end" fill="{color}">'
                   f"{escape(c.key)} {fmt_si(c.flops_per_s, 'FLOP/s')} (peak {fmt_si(c.peak_flops_per_s, '')}"
                   f" x {target.compute_efficiency:g})</text>")
    angle = -math.degrees(math.atan((ph / (ax.yb - ax.ya)) / (pw / (ax.xb - ax.xa))))
    lx = X(lo_x) + 8
    ly = Y(lo_x * bw) - 8
    out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" transform="rotate({angle:.1f} {lx:.1f} {ly:.1f})" fill="#2d3748">'
               f"memory {fmt_si(bw, 'B/s')} (x {target.memory_efficiency:g})</text>")
    out.append("</g>")
    return out


def _kernel_points(ax: _Axes, pts: list) -> list[str]:
    """One circle per kernel, its area its share of latency; largest first so small ones stay visible on top."""
    out = ['<g class="kernels" fill-opacity="0.7" stroke="#ffffff" stroke-width="0.8">']
    for p in sorted(pts, key=lambda p: -p.time_ms):
        r = 3 + 12 * math.sqrt(max(p.share, 0.0))
        tip = (f"{p.name} ({p.ops}): {p.time_ms:.4g} ms, {100 * p.share:.1f}% of latency, {p.bound}-bound, "
               f"{p.intensity:.3g} FLOP/B, {fmt_si(p.achieved_flops_per_s, 'FLOP/s')}")
        out.append(f'<circle class="kernel {escape(p.bound)}" cx="{ax.X(p.intensity):.1f}" '
                   f'cy="{ax.Y(p.achieved_flops_per_s):.1f}" r="{r:.1f}" fill="{COLORS.get(p.bound, "#718096")}" '
                   f'data-name="{escape(p.name)}" data-intensity="{p.intensity:.6g}" '
                   f'data-flops-per-s="{p.achieved_flops_per_s:.6g}" data-time-ms="{p.time_ms:.6g}">'
                   f"<title>{escape(tip)}</title></circle>")
    out.append("</g>")
    return out


def _legend(ax: _Axes) -> list[str]:
    lx0, ly0 = ax.left + 10, ax.top + 16
    out = ['<g class="legend" font-size="11" fill="#2d3748">']
    for i, (bound, color) in enumerate(COLORS.items()):
        out.append(f'<circle cx="{lx0 + 5}" cy="{ly0 + 16 * i - 4}" r="5" fill="{color}" fill-opacity="0.7"/>')
        out.append(f'<text x="{lx0 + 15}" y="{ly0 + 16 * i}">{bound}-bound kernel</text>')
    out.append(f'<text x="{lx0}" y="{ly0 + 32}">point area: share of latency</text>')
    out.append("</g>")
    return out
