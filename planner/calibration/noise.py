"""How far a calibration can be trusted: the repeatability of its microbenchmarks, and the machine's speed
against the last quiet calibration.

A shared machine slows in bursts (a neighbour on the sibling hyperthread: +25-60% for seconds) or for a whole
calibration (a neighbour that never stops). The first shows as passes that disagree: a microbenchmark's
quickest time is kept only when a second pass confirms it (planner.calibration.run.confirm). The second shows
nowhere inside one calibration, only against an earlier one: the quiet probe (planner.ort.quiet) running
slower than it ran in the last calibration of this machine. Either way `plan calibrate` says so, with the
number, instead of letting every later prediction run slow in silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from planner.calibration.samples import Noise
from planner.calibration.store import Calibration

CONFIRM = 1.10  # the second-quickest pass within 10% of the quickest confirms it (quiet passes: within 2-4%)
UNCONFIRMED_WARN = 0.10  # warn when more than this share of the microbenchmarks stayed unconfirmed
PROBE_WARN = 1.15  # warn when the quiet probe ran this much slower than in the last calibration here
GEMM_WARN = 1.05  # warn when the fastest fp32 GEMM ran this much slower than in the last calibration here


def unconfirmed(times: Mapping[str, Sequence[float]], tolerance: float = CONFIRM) -> list[str]:
    """The microbenchmarks whose quickest time no other pass came within `tolerance` of (one pass: unconfirmed)."""
    out = []
    for label, ts in times.items():
        best = sorted(ts)
        if len(best) < 2 or best[1] > tolerance * best[0]:
            out.append(label)
    return out


def noise_of(times: Mapping[str, Sequence[float]], tolerance: float = CONFIRM) -> Noise:
    """How far apart each microbenchmark's two quickest passes were, and how many stayed unconfirmed."""
    spreads = sorted(sorted(ts)[1] / sorted(ts)[0] - 1.0 for ts in times.values() if len(ts) >= 2 and min(ts) > 0)
    median = spreads[len(spreads) // 2] if spreads else 0.0
    worst = spreads[int(0.9 * (len(spreads) - 1))] if spreads else 0.0
    return Noise(benches=len(times), unconfirmed=len(unconfirmed(times, tolerance)), median_spread=median,
                 p90_spread=worst)


def fastest_gemm(cal: Calibration) -> float | None:
    """A calibration's fastest fp32 GEMM rate, None when it has none."""
    curve = cal.rate_curves.get("gemm.fp32")
    return max(y for _, y in curve) if curve else None


def warnings(noise: Noise, probe_s: float | None, previous_probe_s: float | None,
             gemm_flops: float | None = None, previous_gemm_flops: float | None = None) -> list[str]:
    """One line per reason to distrust a calibration, each with its number; none when it can be trusted.

    `gemm_flops`: the fastest fp32 GEMM rate this calibration measured, against the last one's. The probe is a
    small in-cache MatMul and can pass while the cores run slower for the whole calibration: on a Zen 4 EPYC VM
    three calibrations within 31 minutes measured 111, 106 and 100 G FLOP/s with the probe at 43.0-43.2 us in
    all three, and every model prediction moved by as much."""
    out = []
    if noise.benches and noise.unconfirmed > UNCONFIRMED_WARN * noise.benches:
        out.append(f"{noise.unconfirmed} of {noise.benches} microbenchmarks could not be confirmed (no second pass "
                   f"within {CONFIRM - 1:.0%} of the quickest; median spread {noise.median_spread:.0%}, 90th "
                   f"percentile {noise.p90_spread:.0%}): the machine was busy in bursts")
    if probe_s and previous_probe_s and probe_s > PROBE_WARN * previous_probe_s:
        out.append(f"the quiet probe ran {probe_s / previous_probe_s:.2f}x as long as in this machine's last "
                   f"calibration ({probe_s * 1e6:.1f} us against {previous_probe_s * 1e6:.1f} us): a neighbour kept "
                   "the machine busy throughout, and every figure may be that much slow")
    if gemm_flops and previous_gemm_flops and gemm_flops * GEMM_WARN < previous_gemm_flops:
        out.append(f"the fastest fp32 GEMM ran at {gemm_flops / 1e9:.0f} G FLOP/s against "
                   f"{previous_gemm_flops / 1e9:.0f} in this machine's last calibration "
                   f"({gemm_flops / previous_gemm_flops - 1:+.0%}): the cores ran slower throughout, and every "
                   "compute-bound figure may be that much slow")
    return out
