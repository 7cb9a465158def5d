"""How a figure is shown: percent with one decimal, percentage points, RMB million with separators."""

from __future__ import annotations

from .model import is_missing

NOT_AVAILABLE = "n/a"


def fmt_value(value, unit: str) -> str:
    """6.7% for ratios, +30.5% for growth, +1.8 pp for point changes, 115,956 for RMB million; n/a when missing."""
    if is_missing(value):
        return NOT_AVAILABLE
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "growth":
        return f"{value * 100:+.1f}%"
    if unit == "pp":
        return f"{value * 100:+.1f} pp"
    if unit == "rmb_mn":
        return f"{value:,.0f}"
    return f"{value:,.2f}"
