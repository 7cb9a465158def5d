"""How a figure is shown: percent with one decimal, percentage points, RMB million with separators; never with
more digits than the figures behind it support."""

from __future__ import annotations

import math

from .model import is_missing

NOT_AVAILABLE = "n/a"
#: the true minus sign (U+2212), in tables, sentences and charts alike
MINUS = "\u2212"
#: the finest step each unit is shown in (as the value is stored: fractions for ratios, RMB million for amounts)
STEP = {"ratio": 0.001, "growth": 0.001, "pp": 0.001, "rmb_mn": 1.0}


def shown_step(unit: str, uncertainty: float | None = 0.0) -> float:
    """The step a value is rounded to: the unit's finest, or coarser when the value is known less well, so the
    last digit shown is uncertain by at most one (a value known to +/-5 million is shown to the nearest 10 million;
    a ratio known to +/-0.2 pp to the nearest 1 pp)."""
    step = STEP.get(unit, 0.01)
    u = uncertainty or 0.0
    if not math.isfinite(u):
        return float("inf")
    while u > step * (1 + 1e-9):
        step *= 10
    return step


def fmt_value(value, unit: str, uncertainty: float | None = 0.0) -> str:
    """6.7% for ratios, +30.5% for growth, +1.8 pp for point changes, 115,956 for RMB million; n/a when missing.
    With an `uncertainty` the value is rounded to what its inputs support (SERES' 2025Q2 revenue derived from a
    first quarter printed as 191.5亿 is known to +/-5 million: shown as 43,250, not 43,252)."""
    if is_missing(value):
        return NOT_AVAILABLE
    step = shown_step(unit, uncertainty)
    if not math.isfinite(step):
        return "~"
    coarse = step > STEP.get(unit, 0.01) * (1 + 1e-9)
    if unit in ("ratio", "growth", "pp"):
        sign = "+" if unit in ("growth", "pp") else ""
        pct = value * 100
        if coarse:  # whole percent, or whole tens of percent
            pct = round(pct / (step * 100)) * step * 100
        text = f"{pct:{sign}.{0 if coarse else 1}f}"
        return text.replace("-", MINUS) + (" pp" if unit == "pp" else "%")
    if unit == "rmb_mn":
        return f"{round(value / step) * step if coarse else value:,.0f}".replace("-", MINUS)
    return f"{value:,.2f}".replace("-", MINUS)
