"""Charts as SVG text, drawn by matplotlib's object API (no pyplot state); matplotlib is imported lazily.

The house style (The Economist's and the FT's): sorted horizontal bars, the subject in one strong colour and
everyone else in grey, hatching for a value of another definition (SG&A standing in for selling expenses), ratio
axes from zero with one-decimal ticks, direct labels, the source under the chart. Each chart has a fixed layout
(margins computed from its labels) and is drawn once.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

PALETTE = {
    "subject": "#d9480f",
    "subject_light": "#ffa94d",
    "peer": "#868e96",
    "median": "#212529",
    "grid": "#e9ecef",
    "muted": "#adb5bd",
    "text": "#212529",
}
#: one colour per peer group (scatter), the subject's own apart
GROUP_COLORS = ["#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#5c940d", "#c2255c", "#495057"]
LINE_COLORS = ["#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#5c940d", "#c2255c", "#495057"]
FONT = ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"]
WIDTH_IN = 6.9  # the text column of an A4 page, in inches


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # a fraction
    subject: bool = False
    mark: str = ""  # footnote marks as superscripts
    hatched: bool = False  # another definition (an SG&A ratio standing for a selling ratio)
    text: str = ""  # the value as shown (formatted by the caller, in the reader's language)


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple  # fractions or None, one per quarter
    subject: bool = False
    dashed: bool = False  # the peer median


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    group: int = 0  # index of the peer group (colour); -1 for the subject
    subject: bool = False


@dataclass
class Chart:
    """An SVG chart and the text that says what it shows (for readers who cannot see it)."""

    svg: str
    alt: str
    marks: list[str] = field(default_factory=list)  # marks drawn on it: the key goes under it


def _plain(text: str) -> str:
    """Text drawn as written: matplotlib reads $...$ as math (a name like "A$B$C" would fail or change)."""
    return str(text).replace("$", r"\$")


def _short(label: str, n: int = 24) -> str:
    """Keep labels from overrunning their neighbours: long names end in an ellipsis."""
    return label if len(label) <= n else label[: n - 1] + "…"


def _width(text: str) -> float:
    """Rough width of a label in ems (CJK characters count double)."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.58 for ch in text)


def _figure(w: float, h: float):
    import matplotlib

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # keep text as text: selectable and searchable in the PDF
            "svg.hashsalt": "reportgen",  # stable element ids, so rebuilding gives identical bytes
            "font.family": FONT,
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.edgecolor": PALETTE["muted"],
            "axes.titlesize": 9,
            "axes.titleweight": "bold",
            "axes.unicode_minus": True,  # a true minus sign, as in the tables
            "hatch.linewidth": 0.8,
        }
    )
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _svg(fig, alt: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "reportgen", "Title": alt})
    text = buf.getvalue()
    svg = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE so it can sit inside HTML
    from html import escape

    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(alt, quote=True)}" ', 1)
    # <title>: the text alternative a tagged PDF gives the figure (WeasyPrint reads it), and a tooltip on screen
    start = svg.index(">") + 1
    return f"{svg[:start]}\n <title>{escape(alt, quote=False)}</title>{svg[start:]}"


def _pct_axis(axis, step: float | None = None):
    """Percent ticks with at most one decimal (none where every tick is a whole percent), a true minus sign."""
    from matplotlib.ticker import Formatter, MaxNLocator

    class Percent(Formatter):
        def format_ticks(self, values):
            whole = all(abs(v * 100 - round(v * 100)) < 1e-9 for v in values)
            return [f"{v * 100:.{0 if whole else 1}f}%".replace("-", "\u2212") for v in values]

        def __call__(self, x, pos=None):
            return f"{x * 100:.1f}%".replace("-", "\u2212")

    axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(Percent())


def hbars(
    panels: list[tuple[str, list[Bar], float | None, str]],
    title: str,
    subtitle: str,
    source: str,
    alt: str,
) -> Chart:
    """Sorted horizontal bars, one panel per basis side by side (never in one set of bars): panels are (panel title,
    bars, median or None, median label). The subject in its colour, peers grey, hatched bars for another
    definition; one x scale from zero for every panel; value labels at the bar ends, clear of the median line."""
    rows = max([len(b) for _, b, _, _ in panels] + [1])
    label_em = max((_width(_short(b.label)) for _, bars, _, _ in panels for b in bars), default=4.0)
    titled = any(ptitle for ptitle, *_ in panels)
    bottom_in, top_in = 0.42, (0.95 if titled else 0.62)
    h = bottom_in + top_in + 0.18 * rows
    fig = _figure(WIDTH_IN, h)
    top = [v for _, bars, med, _ in panels for v in [b.value for b in bars if b.value is not None] + [med or 0]]
    hi = max(top + [0.01]) * 1.18
    n = len(panels)
    left_in = 0.15 + label_em * 7.6 / 72
    gap_in = 0.25
    panel_w = (WIDTH_IN - 0.15 - n * left_in - (n - 1) * gap_in) / n
    marks = []
    for i, (ptitle, bars, median, median_label) in enumerate(panels):
        x0 = 0.08 + i * (left_in + panel_w + gap_in) + left_in
        ax = fig.add_axes([x0 / WIDTH_IN, bottom_in / h, panel_w / WIDTH_IN, (h - bottom_in - top_in) / h])
        shown = sorted([b for b in bars if b.value is not None], key=lambda b: b.value)
        missing = [b for b in bars if b.value is None]
        order = missing + shown  # highest at the top; names without a value at the foot, marked n/a
        ys = range(len(order))
        for y, b in zip(ys, order):
            if b.value is None:
                ax.text(0, y, " " + (b.text or "n/a"), va="center", ha="left", fontsize=7, color=PALETTE["muted"])
                continue
            color = PALETTE["subject"] if b.subject else PALETTE["peer"]
            ax.barh(
                y,
                b.value,
                height=0.66,
                color="white" if b.hatched else color,
                edgecolor=color,
                hatch="////" if b.hatched else None,
                linewidth=0.9,
            )
            label = (b.text or f"{b.value * 100:.1f}%".replace("-", "\u2212")) + b.mark
            ax.text(
                max(b.value, 0) + hi * 0.012,
                y,
                label,
                va="center",
                ha="left",
                fontsize=7.2,
                color=PALETTE["text"],
                fontweight="bold" if b.subject else "normal",
                zorder=4,  # above the median line, on white: the line never crosses the figure
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.4},
            )
            marks += [ch for ch in b.mark if ch not in marks]
        ax.set_yticks(list(ys), [_plain(_short(b.label)) for b in order])
        for tick, b in zip(ax.get_yticklabels(), order):
            if b.subject:
                tick.set_fontweight("bold")
                tick.set_color(PALETTE["subject"])
        ax.set_xlim(0, hi)
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.xaxis.grid(True, color=PALETTE["grid"], linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        _pct_axis(ax.xaxis)
        if median is not None:
            ax.axvline(median, color=PALETTE["median"], linestyle=(0, (3, 2)), linewidth=0.9, zorder=3)
            ax.text(
                median,
                len(order) - 0.35,
                f"{median_label} {median * 100:.1f}%",
                ha="center",
                va="bottom",
                fontsize=6.8,
                color=PALETTE["median"],
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
        if ptitle:
            ax.set_title(_plain(ptitle), loc="left", fontsize=8, fontweight="bold", pad=13 if median is not None else 5)
    fig.text(0.08 / WIDTH_IN, 1 - 0.2 / h, _plain(title), fontsize=9.5, fontweight="bold", va="top")
    fig.text(0.08 / WIDTH_IN, 1 - 0.38 / h, _plain(subtitle), fontsize=7.5, color="#495057", va="top")
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt, marks)


def trend(
    quarters: list[str],
    series: list[Series],
    title: str,
    subtitle: str,
    source: str,
    alt: str,
) -> Chart:
    """One line per company over the quarters shown (gaps where a value is missing), the peer median dashed; the y
    axis from zero with one-decimal ticks; names at the line ends, nudged apart, instead of a legend."""
    h = 2.15
    fig = _figure(WIDTH_IN, h)
    drawn = [s for s in series if any(v is not None for v in s.values)]
    names = {}
    for s in drawn:
        last = max(i for i, v in enumerate(s.values) if v is not None)
        names[id(s)] = _short(s.label)
        if last < len(quarters) - 1:  # its line ends earlier: say when, so the name at the edge does not mislead
            names[id(s)] += f" ({quarters[last]})"
    right_in = min(2.4, max(1.0, 0.3 + max((_width(n) for n in names.values()), default=0) * 7 / 72))
    ax = fig.add_axes([0.55 / WIDTH_IN, 0.42 / h, (WIDTH_IN - 0.55 - right_in) / WIDTH_IN, (h - 0.42 - 0.62) / h])
    xs = list(range(len(quarters)))
    ends = []
    color_i = 0
    for s in drawn:
        ys = [math.nan if v is None else v for v in s.values]
        if s.subject:
            color, width = PALETTE["subject"], 2.2
        elif s.dashed:
            color, width = PALETTE["median"], 1.3
        else:
            color, width = LINE_COLORS[color_i % len(LINE_COLORS)], 1.1
            color_i += 1
        ax.plot(
            xs,
            ys,
            marker="o",
            markersize=2.8,
            linewidth=width,
            color=color,
            linestyle=(0, (3, 2)) if s.dashed else "-",
            zorder=4 if s.subject else 3,
        )
        last = next((i for i in range(len(ys) - 1, -1, -1) if not math.isnan(ys[i])), None)
        if last is not None:
            ends.append([ys[last], s, color, last])
    values = [v for s in drawn for v in s.values if v is not None]
    hi = max(values + [0.01]) * 1.12
    ax.set_ylim(0, hi)
    # names at the right edge, nudged apart so they never overlap and never leave the axis
    ends.sort(key=lambda e: e[0])
    gap = hi * 0.1
    for i in range(1, len(ends)):
        ends[i][0] = max(ends[i][0], ends[i - 1][0] + gap)
    if ends and ends[-1][0] > hi:
        ends[-1][0] = hi
        for i in range(len(ends) - 2, -1, -1):
            ends[i][0] = min(ends[i][0], ends[i + 1][0] - gap)
    for y, s, color, _last in ends:
        ax.annotate(
            _plain(names[id(s)]),
            xy=(xs[-1], y),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color=color,
            fontweight="bold" if s.subject else "normal",
            annotation_clip=False,
        )
    ax.set_xticks(xs, quarters)
    ax.set_xlim(-0.3, len(xs) - 0.7)
    ax.yaxis.grid(True, color=PALETTE["grid"], linewidth=0.6)
    _pct_axis(ax.yaxis)
    fig.text(0.08 / WIDTH_IN, 1 - 0.2 / h, _plain(title), fontsize=9.5, fontweight="bold", va="top")
    fig.text(0.08 / WIDTH_IN, 1 - 0.38 / h, _plain(subtitle), fontsize=7.5, color="#495057", va="top")
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt)


def _labels_apart(fig, ax, points) -> None:
    """Names beside their points, moved up or down (in points of type) until none overlaps another: a cluster of
    companies stays readable."""
    placed: list[tuple[float, float, float, float]] = []
    to_px = ax.transData.transform
    scale = fig.dpi / 72
    for p in sorted(points, key=lambda p: (p.y, p.x)):
        x, y = to_px((p.x, p.y))
        label = _plain(_short(p.label))
        w, h = (_width(label) * 7 + 4) * scale, 9 * scale
        dy = 3 * scale
        for _ in range(12):
            box = (x + 5 * scale, y + dy, x + 5 * scale + w, y + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
            dy += h * 0.95
        placed.append(box)
        ax.annotate(
            label,
            (p.x, p.y),
            xytext=(5, dy / scale),
            textcoords="offset points",
            fontsize=7,
            color=PALETTE["text"],
            fontweight="bold" if p.subject else "normal",
            arrowprops={"arrowstyle": "-", "color": PALETTE["muted"], "linewidth": 0.5} if dy > 4 * scale else None,
        )


def scatter(
    points: list[Point],
    groups: list[str],
    title: str,
    subtitle: str,
    xlabel: str,
    ylabel: str,
    source: str,
    alt: str,
) -> Chart:
    """The section metric (y) against revenue growth (x) for every company with both, coloured by peer group."""
    h = 2.8
    fig = _figure(WIDTH_IN, h)
    ax = fig.add_axes([0.7 / WIDTH_IN, 0.55 / h, (WIDTH_IN - 0.9 - 1.4) / WIDTH_IN, (h - 0.55 - 0.65) / h])
    for p in points:
        color = PALETTE["subject"] if p.subject else GROUP_COLORS[p.group % len(GROUP_COLORS)]
        ax.scatter([p.x], [p.y], s=55 if p.subject else 32, color=color, edgecolors="white", linewidths=0.8, zorder=3)
    ys = [p.y for p in points] + [0.0]
    ax.set_ylim(0, max(ys) * 1.18 + 0.005)
    xs = [p.x for p in points] + [0.0]
    pad = (max(xs) - min(xs)) * 0.12 + 0.02
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    _labels_apart(fig, ax, points)
    ax.axvline(0, color=PALETTE["muted"], linewidth=0.8)
    ax.grid(True, color=PALETTE["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    _pct_axis(ax.xaxis)
    _pct_axis(ax.yaxis)
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    handles = [
        ax.scatter([], [], s=32, color=GROUP_COLORS[i % len(GROUP_COLORS)], label=_plain(g))
        for i, g in enumerate(groups)
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=7)
    fig.text(0.08 / WIDTH_IN, 1 - 0.2 / h, _plain(title), fontsize=9.5, fontweight="bold", va="top")
    fig.text(0.08 / WIDTH_IN, 1 - 0.38 / h, _plain(subtitle), fontsize=7.5, color="#495057", va="top")
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt)
