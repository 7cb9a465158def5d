"""How a figure is shown: percent with one decimal, percentage points, RMB million with separators; never with
more digits than the figures behind it support."""

from __future__ import annotations

import math

from .model import is_missing

NOT_AVAILABLE = "n/a"  # the msgid of the catalogue (marked for extraction in i18n)
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


#: how each language writes a figure: Babel's locale, the unit of amounts in text and tables (RMB million, or 亿元
#: = 100 million with two decimals as Chinese readers expect) and the word after a percentage-point change
STYLE = {
    "en": {"locale": "en", "amount_scale": 1.0, "amount_decimals": 0, "pp": " pp"},
    "zh-CN": {"locale": "zh_Hans_CN", "amount_scale": 100.0, "amount_decimals": 2, "pp": "个百分点"},
}


def _number(value: float, decimals: int, locale: str, sign: bool = False) -> str:
    """A number in the locale's digits and grouping (Babel), a true minus sign, `+` when asked."""
    import decimal

    from babel.numbers import format_decimal

    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    digits = len(f"{abs(value):.0f}") + decimals + 2  # a finite float has at most 309 digits before the point
    with decimal.localcontext() as ctx:  # Babel rounds in the current context: room for every digit shown
        ctx.prec = max(ctx.prec, digits)
        text = format_decimal(abs(value), format=pattern, locale=locale, decimal_quantization=True)
    if round(value, decimals) < 0:
        return MINUS + text
    return ("+" if sign else "") + text


def fmt_value(value, unit: str, uncertainty: float | None = 0.0, lang: str = "en") -> str:
    """6.7% for ratios, +30.5% for growth, +1.8 pp for point changes, 115,956 for RMB million (in Chinese: 1,159.56,
    in 亿元, and +1.8个百分点); n/a when missing. With an `uncertainty` the value is rounded to what its inputs
    support (SERES' 2025Q2 revenue derived from a first quarter printed as 191.5亿 is known to +/-5 million: shown
    as 43,250, not 43,252)."""
    if is_missing(value):
        return NOT_AVAILABLE
    style = STYLE.get(lang, STYLE["en"])
    step = shown_step(unit, uncertainty)
    if not math.isfinite(step):
        return "~"
    coarse = step > STEP.get(unit, 0.01) * (1 + 1e-9)
    if unit in ("ratio", "growth", "pp"):
        pct = value * 100
        if coarse:  # whole percent, or whole tens of percent
            pct = round(pct / (step * 100)) * step * 100
        text = _number(pct, 0 if coarse else 1, style["locale"], sign=unit in ("growth", "pp"))
        return text + (style["pp"] if unit == "pp" else "%")
    if unit == "rmb_mn":
        scale = style["amount_scale"]
        decimals = style["amount_decimals"]
        shown_in = step / scale  # the step in the unit shown: 1 million is 0.01亿
        while decimals > 0 and shown_in > 10**-decimals * (1 + 1e-9):
            decimals -= 1
        amount = round(value / step) * step if coarse else value
        return _number(amount / scale, decimals, style["locale"])
    return _number(value, 2, style["locale"])
