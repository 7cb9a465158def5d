"""Charts that tell the truth: read back from the SVG they draw (text as text, with its position)."""

from __future__ import annotations

import re

import pytest

from reportgen import charts

TEXT = re.compile(r'<text [^>]*?x="([-\d.]+)" y="([-\d.]+)"[^>]*>([^<]*)</text>')


def _texts(svg: str) -> list[tuple[float, float, str]]:
    """(x, y, text) of every text drawn; y grows downwards."""
    return [(float(x), float(y), t) for x, y, t in TEXT.findall(svg)]


def _ticks(svg: str) -> list[str]:
    return [t for _x, _y, t in _texts(svg) if re.fullmatch(r"[−-]?\d+(\.\d+)?%", t)]


BARS = [
    charts.Bar("Beta", 0.091, text="9.1%"),
    charts.Bar("Alpha", 0.067, subject=True, text="6.7%"),
    charts.Bar("Gamma", 0.121, mark="ᵃ", hatched=True, text="12.1%"),
    charts.Bar("Delta", None, text="n/a: no single quarter; H1 2025 shown"),
    charts.Bar("Epsilon", 0.064, text="6.4%"),
]


def test_bars_are_sorted_with_the_highest_on_top_and_names_without_a_value_at_the_foot():
    c = charts.hbars([("", BARS, None, "")], "Title", "Subtitle", "Source", "alt")
    names = {t: y for _x, y, t in _texts(c.svg) if t in {"Alpha", "Beta", "Gamma", "Delta", "Epsilon"}}
    assert sorted(names, key=names.get) == ["Gamma", "Beta", "Alpha", "Epsilon", "Delta"]
    assert "n/a: no single quarter; H1 2025 shown" in c.svg  # an empty bar says why, where it stands
    assert c.marks == ["ᵃ"]  # the marks drawn, for the key under the chart


def test_ratio_axes_start_at_zero_with_at_most_one_decimal_and_a_true_minus():
    bar = charts.hbars([("Q", BARS, 0.09, "peer median")], "T", "S", "src", "alt")
    ticks = _ticks(bar.svg)
    assert ticks[0] == "0%" and all(re.fullmatch(r"\d+(\.\d)?%", t) for t in ticks), ticks
    trend = charts.trend(
        ["2025Q1", "2025Q2"],
        [charts.Series("Alpha", (0.065, 0.067), subject=True), charts.Series("Beta", (0.093, 0.091))],
        "T",
        "S",
        "src",
        "alt",
    )
    assert _ticks(trend.svg)[0] in ("0%", "0.0%")  # from zero, not from 6.5 %
    assert all(re.fullmatch(r"\d+(\.\d)?%", t) for t in _ticks(trend.svg))
    scatter = charts.scatter(
        [charts.Point("Alpha", 0.38, 0.066, -1, True), charts.Point("Beta", -0.16, 0.083, 0)],
        ["Peers"],
        "T",
        "S",
        "growth",
        "ratio",
        "src",
        "alt",
    )
    growth_ticks = _ticks(scatter.svg)
    assert any(t.startswith("−") for t in growth_ticks) and not any(t.startswith("-") for t in growth_ticks)
    negative = charts.hbars([("", [charts.Bar("Alpha", -0.02)], None, "")], "T", "S", "src", "alt")
    assert "−2.0%" in negative.svg and "-2.0%" not in negative.svg


def test_trend_names_every_line_inside_the_chart_and_says_when_a_line_ends_early():
    quarters = ["2024Q3", "2024Q4", "2025Q1", "2025Q2"]
    series = [
        charts.Series("Alpha", (0.07, 0.071, 0.065, 0.067), subject=True),
        charts.Series("Beta", (None, None, 0.096, None)),  # only a first quarter
        charts.Series("Gamma", (None, None, 0.093, 0.091)),
        charts.Series("Delta", (None, None, 0.094, 0.095)),
        charts.Series("peer median", (None, None, 0.094, 0.093), dashed=True),
    ]
    c = charts.trend(quarters, series, "T", "S", "src", "alt")
    texts = _texts(c.svg)
    labels = {t: (x, y) for x, y, t in texts if t.split(" (")[0] in {s.label for s in series}}
    assert set(labels) == {"Alpha", "Beta (2025Q1)", "Gamma", "Delta", "peer median"}
    ys = sorted(y for _x, y in labels.values())
    assert all(b - a >= 7 for a, b in zip(ys, ys[1:])), ys  # 7 pt type never overlaps
    subtitle = next(y for _x, y, t in texts if t == "S")
    assert ys[0] >= subtitle + 9  # no name runs up into the subtitle: they stay inside the plot


def test_scatter_labels_every_point_and_keeps_them_apart():
    pts = [charts.Point(n, x, y, g) for n, x, y, g in [
        ("Alpha", 0.38, 0.066, -1), ("Beta", 0.10, 0.101, 0), ("Gamma", 0.15, 0.092, 0),
        ("Hisense Home Appliances", 0.014, 0.099, 0), ("Delta", -0.02, 0.093, 1), ("Epsilon", -0.16, 0.083, 2),
    ]]  # fmt: skip
    c = charts.scatter(pts, ["A", "B", "C"], "T", "S", "growth", "ratio", "src", "alt")
    shown = {t: (x, y) for x, y, t in _texts(c.svg) if t in {p.label for p in pts}}
    assert set(shown) == {p.label for p in pts}  # every name in full
    boxes = sorted(shown.values(), key=lambda v: (v[1], v[0]))
    for (x1, y1), (x2, y2) in zip(boxes, boxes[1:]):
        assert abs(y1 - y2) >= 6 or abs(x1 - x2) >= 40, (x1, y1, x2, y2)


@pytest.mark.parametrize("kind", ["hbars", "trend", "scatter"])
def test_every_chart_carries_a_text_alternative(kind):
    alt = "Selling-expense ratio: Alpha 6.7%; Beta 9.1%"
    if kind == "hbars":
        c = charts.hbars([("", BARS, None, "")], "T", "S", "src", alt)
    elif kind == "trend":
        c = charts.trend(["2025Q2"], [charts.Series("Alpha", (0.067,), subject=True)], "T", "S", "src", alt)
    else:
        c = charts.scatter([charts.Point("Alpha", 0.3, 0.067, -1, True)], [], "T", "S", "x", "y", "src", alt)
    assert c.svg.startswith(f'<svg role="img" aria-label="{alt}"') and c.alt == alt
