"""Number formats used everywhere a figure is shown: percent with one decimal, RMB million with separators."""

from __future__ import annotations

import math

# Footnote marks for flags, shown next to a figure and explained in every table's legend.
FLAG_MARKS = {
    "sga_proxy": "a",
    "derived_ytd": "d",
    "stated_ratio": "s",
    "source_quarter": "c",
    "summed_quarters": "t",
    "policy_change": "p",
    "restated": "r",
    "total_net_profit": "n",
    "fx_converted": "x",
}
NOT_AVAILABLE = "n/a"


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_value(value, unit: str) -> str:
    """6.7% for ratios and growth, +1.8 pp for point changes, 115,956 for RMB million."""
    if is_missing(value):
        return NOT_AVAILABLE
    if unit in ("ratio",):
        return f"{value * 100:.1f}%"
    if unit == "growth":
        return f"{value * 100:+.1f}%"
    if unit == "pp":
        return f"{value * 100:+.1f} pp"
    if unit == "rmb_mn":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def marks(flags) -> str:
    """The footnote marks of a figure's flags, in a stable order."""
    return "".join(m for f, m in FLAG_MARKS.items() if f in set(flags or ()))


def pp(value) -> str:
    """A difference of two fractions in percentage points, unsigned: 0.012 -> '1.2 pp'."""
    return f"{abs(value) * 100:.1f} pp"
