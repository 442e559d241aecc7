"""The rate a refined family gets from a calibration with its own curve and from one written before the split."""

from __future__ import annotations

from planner.calibration.rates import CalibratedRates
from planner.targets.catalog import bundled_targets


def refined_rates(plain: str, refined: str, plain_rate: float, refined_rate: float,
                  family: str | None = None, intensity: float = 50.0) -> tuple[float, float, float]:
    """(the refined family's FLOP rate with both flat fp32 curves, the plain family's with both, the refined
    family's from a calibration holding the plain curve only). `family`: the family asked for (default
    `refined`; a further refinement of it falls back to its curve)."""
    t = bundled_targets()["a10g"]
    flat = lambda r: ((1.0, r), (1e3, r))  # noqa: E731
    both = CalibratedRates(rate_curves={f"{plain}.fp32": flat(plain_rate), f"{refined}.fp32": flat(refined_rate)})
    older = CalibratedRates(rate_curves={f"{plain}.fp32": flat(plain_rate)})
    asked = family or refined
    return (both.flops_per_s("matrix", asked, "fp32", 1e15, intensity, t),
            both.flops_per_s("matrix", plain, "fp32", 1e15, intensity, t),
            older.flops_per_s("matrix", asked, "fp32", 1e15, intensity, t))
