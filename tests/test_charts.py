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


def test_a_second_row_of_panels_sits_under_the_first_with_its_own_titles_and_scale():
    long = "Alpha, a segment with a long name"
    margins = [charts.Bar(long, 0.512, subject=True, text="51.2%"), charts.Bar("Beta", 0.3, text="30.0%")]
    c = charts.hbars(
        [("Selling, Q", BARS, 0.09, "peer median"), ("Selling, H1", BARS, 0.095, "peer median")],
        "Selling-expense ratio and gross margin",
        "S",
        "src",
        "alt",
        below=([("Gross margin, Q", margins, 0.35, "peer median"), ("Gross margin, H1", margins, None, "")],),
    )
    texts = _texts(c.svg)
    y = {t: y for _x, y, t in texts}
    short = charts._short(long)  # named, shortened to fit its column
    assert short.endswith("…") and long.startswith(short[:-1])
    assert y["Selling, Q"] == y["Selling, H1"] < y["Gamma"] < y["Gross margin, Q"] == y["Gross margin, H1"] < y[short]
    assert y["src"] > y[short]  # one source line, under both rows
    top = [t for _x, yy, t in texts if re.fullmatch(r"\d+%", t) and yy < y["Gross margin, Q"]]
    under = [t for _x, yy, t in texts if re.fullmatch(r"\d+%", t) and yy > y["Gross margin, Q"]]
    # each row its own scale from zero: the ratios' to about 12 %, the margins' past 51 %
    assert max(int(t[:-1]) for t in top) < 30 and max(int(t[:-1]) for t in under) >= 50, (top, under)
    assert "peer median 35.0%" in c.svg and c.marks == ["ᵃ"]


def test_value_and_median_labels_leave_room_for_the_next_panel_and_the_edge():
    """A value label beside the longest bar and a median label near a panel's edge stay inside their panel's
    share of the figure: they never run into the next panel's names or off the figure."""
    bars = [charts.Bar("Alpha", 0.269, subject=True, mark="ᵃᵗᵐ", text="26.9%"), charts.Bar("Beta", 0.05, text="5.0%")]
    c = charts.hbars([("Q", bars, 0.26, "peer SG&A median"), ("H1", bars, 0.26, "peer SG&A median")], "T", "S",
                     "src", "alt")  # fmt: skip
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', c.svg).group(1))
    names = sorted(x for x, _y, t in _texts(c.svg) if t == "Alpha")  # right-aligned: x is where a name ends
    second_panel_names_start = names[1] - charts._width("Alpha") * 1.12 * 7.6
    for x, _y, t in _texts(c.svg):
        if t.startswith(("26.9%", "peer SG&A median")):
            end = x + charts._width(t) * (7.2 if t.startswith("26.9") else 6.8) * 1.12
            assert end <= width, (t, x, end, width)  # inside the figure
            if x < second_panel_names_start:  # the first panel's labels end before the second's names begin
                assert end <= second_panel_names_start, (t, x, end)


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


# -- large peer groups stay readable ------------------------------------------------------------------------------
def _height(svg: str) -> float:
    return float(re.search(r'<svg [^>]*height="([\d.]+)pt"', svg).group(1))


def _peers(n: int, base: float = 0.05, step: float = 0.0013) -> list[charts.Bar]:
    """The subject and n peers with long and short names, values all different."""
    names = ["Zhejiang {} Huayang Electric Group Co.", "Pacific {}", "Golden Dragon Motors {}"]
    bars = [charts.Bar(names[i % 3].format(i), base + ((i * 7) % n) * step, text=f"p{i}") for i in range(n)]
    return [charts.Bar("Subject", base + 0.011, subject=True, text="subj"), *bars]


def test_thirty_peers_get_one_row_each_sorted_and_apart_and_the_chart_grows_with_them():
    small = charts.hbars([("", _peers(9), None, "")], "T", "S", "src", "alt")
    big = charts.hbars([("Q", _peers(30), 0.07, "median"), ("H1", _peers(30, 0.06), 0.08, "median")], "T", "S",
                       "src", "alt")  # fmt: skip
    assert _height(big.svg) > _height(small.svg) + 20 * charts.ROW_IN * 72  # about a row per bar more
    texts = _texts(big.svg)
    names = {charts._short(b.label): b.value for b in _peers(30)}
    assert len(names) == 31  # as the chart shows them, shortened, each name is another company's
    labels = [(x, y, t) for x, y, t in texts if t in names]
    left = sorted({round(x) for x, _y, _t in labels})
    for panel_x in (left[0], left[-1]):  # each panel: every name once, highest value on top, rows apart
        panel = sorted((y, t) for x, y, t in labels if abs(round(x) - panel_x) < 60)
        assert len(panel) == 31, panel
        ys = [y for y, _t in panel]
        assert all(b - a >= 9 for a, b in zip(ys, ys[1:])), ys  # 7.2 pt names never touch
    first = sorted((y, t) for x, y, t in labels if abs(round(x) - left[0]) < 60)
    want = sorted(names, key=names.get, reverse=True)
    assert [t for _y, t in first] == want
    assert all(y <= _height(big.svg) for _x, y, _t in texts)  # nothing below the chart


def test_a_ranking_taller_than_a_page_keeps_its_top_bottom_and_subject_and_says_what_it_leaves_out():
    bars = _peers(99)
    c = charts.hbars([("", bars, None, "")], "T", "S", "src", "alt", elided="{n} more, {low} to {high}")
    assert _height(c.svg) <= (0.42 + 0.62 + charts.ROW_IN * (charts.MAX_ROWS + 1)) * 72 + 1  # fits a page
    texts = [t for _x, _y, t in _texts(c.svg)]
    ranked = sorted(bars, key=lambda b: b.value, reverse=True)
    assert "subj" in texts and "Subject" in texts
    assert ranked[0].text in texts and ranked[-1].text in texts  # the highest and the lowest
    gaps = [t.strip() for t in texts if re.fullmatch(r"\d+ more, p\d+ to p\d+", t.strip())]
    shown = sum(1 for b in bars if b.text in texts)
    assert gaps and shown + sum(int(g.split()[0]) for g in gaps) == len(bars)  # every bar shown or counted


def test_a_trend_of_thirty_peers_names_the_subject_the_median_and_the_extremes_and_lists_the_others():
    quarters = ["2024Q1", "2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2"]
    peers = [charts.Series(f"Peer {i:02d}", tuple(0.05 + 0.001 * i + 0.0005 * k for k in range(6))) for i in range(30)]
    series = [charts.Series("Subject", (0.07,) * 6, subject=True), *peers,
              charts.Series("peer median", (0.065,) * 6, dashed=True)]  # fmt: skip
    c = charts.trend(quarters, series, "T", "S", "src", "alt", others="Others: {names}.")
    texts = _texts(c.svg)
    named = {t: y for _x, y, t in texts if t in {"Subject", "peer median"} or re.fullmatch(r"Peer \d\d", t)}
    top3, bottom3 = {"Peer 29", "Peer 28", "Peer 27"}, {"Peer 00", "Peer 01", "Peer 02"}
    assert set(named) == {"Subject", "peer median"} | top3 | bottom3
    ys = sorted(named.values())
    assert all(b - a >= 7 for a, b in zip(ys, ys[1:])), ys  # 7 pt names never overlap
    subtitle = next(y for _x, y, t in texts if t == "S")
    ticks = [y for _x, y, t in texts if t in quarters]
    assert ys[0] >= subtitle + 9 and ys[-1] <= min(ticks)  # inside the plot
    note = " ".join(t for _x, y, t in texts if y > max(ticks) and t != "src")
    assert note.startswith("Others: ") and note.endswith(".")
    listed = set(note.removeprefix("Others: ").rstrip(".").split(", "))
    assert listed == {p.label for p in peers} - top3 - bottom3  # every other peer named, in the note
    note_ys = [y for _x, y, t in texts if y > max(ticks) and t != "src"]
    assert max(note_ys) < next(y for _x, y, t in texts if t == "src") <= _height(c.svg)
    few = charts.trend(quarters, [series[0], *peers[:5], series[-1]], "T", "S", "src", "alt")
    assert not [t for _x, _y, t in _texts(few.svg) if t.startswith("Others")]  # seven lines: all named
    assert {f"Peer {i:02d}" for i in range(5)} <= {t for _x, _y, t in _texts(few.svg)}


def test_a_crowded_scatter_keeps_the_names_it_shows_apart_and_its_legend_inside_the_chart():
    pts = [charts.Point("Subject", 0.05, 0.08, -1, True)]
    pts += [charts.Point(f"Company {i}", -0.2 + (i * 37 % 100) / 250, 0.06 + (i * 53 % 100) / 2500, i % 12)
            for i in range(99)]  # fmt: skip
    groups = [f"Group {g}" for g in range(12)]
    c = charts.scatter(pts, groups, "T", "S", "growth", "ratio", "src", "alt")
    texts = _texts(c.svg)
    names = {p.label for p in pts}
    boxes = []  # (left, right, baseline, name): a name drawn left of its point ends at x
    for style, x, y, t in re.findall(r'<text style="([^"]*)" x="([-\d.]+)" y="([-\d.]+)"[^>]*>([^<]*)</text>', c.svg):
        if t in names:
            w = charts._width(t) * 7
            left = float(x) - w if "text-anchor: end" in style else float(x)
            boxes.append((left, left + w, float(y), t))
    shown = [t for *_b, t in boxes]
    assert "Subject" in shown and 5 <= len(shown) <= charts.MAX_SCATTER_NAMES  # the subject is always named
    for i, (l1, r1, y1, t1) in enumerate(boxes):
        for l2, r2, y2, t2 in boxes[i + 1 :]:
            assert abs(y1 - y2) >= 7 or r1 <= l2 or r2 <= l1, (t1, t2)
    note = next(t for _x, _y, t in texts if "unnamed" in t)
    assert note.startswith(f"{len(pts) - len(shown)} points unnamed")
    legend = [y for _x, y, t in texts if t in groups]
    assert len(legend) == len(groups) and max(legend) < _height(c.svg) - 10  # inside, above the source line
    subtitle = next(y for _x, y, t in texts if t == "S")
    assert all(y > subtitle + 7 for *_b, y, _t in boxes)  # no name runs into the title


# -- the chart cache ----------------------------------------------------------------------------------------------
def test_a_cached_chart_is_served_without_drawing_and_any_change_draws_it_again(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    args = ([("", BARS, 0.09, "peer median")], "T", "S", "src", "alt")
    with pytest.raises(RuntimeError), charts.cache_in(folder):  # a build that fails keeps nothing
        charts.hbars(*args)
        raise RuntimeError("the build failed")
    assert not folder.exists()
    with charts.cache_in(folder):
        first = charts.hbars(*args)
        assert not folder.exists()  # kept only when the block (the build) ends well
    assert len(list(folder.glob("*.json"))) == 1

    def no_drawing(*a, **k):
        raise AssertionError("drawn again")

    monkeypatch.setattr(charts, "_figure", no_drawing)
    with charts.cache_in(folder):
        again = charts.hbars(*args)
        assert (again.svg, again.alt, again.marks) == (first.svg, first.alt, first.marks)
        with pytest.raises(AssertionError, match="drawn again"):  # another figure is another chart
            charts.hbars([("", BARS[:-1], 0.09, "peer median")], "T", "S", "src", "alt")
        with pytest.raises(AssertionError, match="drawn again"):  # so is another word
            charts.hbars(*args[:-1], "another alt")
        with pytest.raises(AssertionError, match="drawn again"):  # and another language's typeface
            charts.hbars(*args, lang="zh-CN")
    entry = next(folder.glob("*.json"))
    entry.write_text('{"svg": "<script>alert(1)</script>", "alt": "alt", "marks": []}', encoding="utf-8")
    with pytest.raises(AssertionError, match="drawn again"), charts.cache_in(folder):  # a foreign entry: never used
        charts.hbars(*args)
    with pytest.raises(AssertionError, match="drawn again"):  # no cache: always drawn
        charts.hbars(*args)
