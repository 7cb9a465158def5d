"""Charts as SVG text, drawn by matplotlib's object API (no pyplot state); matplotlib is imported lazily."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

PALETTE = {"subject": "#e8590c", "peer": "#4c6ef5", "median": "#343a40", "grid": "#dee2e6", "muted": "#adb5bd"}
LINE_COLORS = ["#4c6ef5", "#15aabf", "#82c91e", "#be4bdb", "#fab005", "#868e96", "#12b886", "#fd7e14"]
FONT = ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # a fraction
    subject: bool = False
    mark: str = ""


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple  # fractions or None, one per quarter
    subject: bool = False


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    size: float  # revenue, RMB million
    subject: bool = False


def _plain(text: str) -> str:
    """Text drawn as written: matplotlib reads $...$ as math (a name like "A$B$C" would fail or change)."""
    return str(text).replace("$", r"\$")


def _short(label: str, n: int = 18) -> str:
    """Keep axis labels from overrunning their neighbours: long names end in an ellipsis."""
    return label if len(label) <= n else label[: n - 1] + "…"


def _wrap(label: str, width: int = 13) -> str:
    """A long name on two lines under its bar (then shortened)."""
    import textwrap

    lines = textwrap.wrap(label, width) or [label]
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _figure(w=6.6, h=2.5):
    import matplotlib

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # keep text as text: selectable and searchable in the PDF
            "svg.hashsalt": "reportgen",  # stable element ids, so rebuilding gives identical bytes
            "font.family": FONT,
            "font.size": 8.5,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.edgecolor": PALETTE["muted"],
            "axes.titlesize": 9.5,
            "axes.titleweight": "bold",
        }
    )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.add_subplot()


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "reportgen"})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE so it can sit inside HTML


def _pct(ax, axis="y"):
    from matplotlib.ticker import PercentFormatter

    # decimals=None: as many decimals as the tick spacing needs (6.5% is not labelled 6%)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))


def bar_chart(bars: list[Bar], title: str, ylabel: str, median: float | None, median_label: str) -> str:
    """Bars for one metric (subject in its own colour), a dashed line at the group median, n/a where missing."""
    fig, ax = _figure()
    xs = range(len(bars))
    values = [0.0 if b.value is None else b.value for b in bars]
    colors = [PALETTE["subject"] if b.subject else PALETTE["peer"] for b in bars]
    ax.bar(xs, values, color=colors, width=0.62)
    top = max([abs(v) for v in values] + [abs(median or 0), 0.01])
    for x, b in zip(xs, bars):
        text = "n/a" if b.value is None else f"{b.value * 100:.1f}%{b.mark}"
        ax.text(
            x,
            (b.value or 0) + top * 0.03 * (1 if (b.value or 0) >= 0 else -3),
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            color=PALETTE["muted"] if b.value is None else "#212529",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},  # readable over the median line
        )
    if median is not None:  # named in the title, so its label never sits on a bar
        ax.axhline(median, color=PALETTE["median"], linestyle="--", linewidth=1)
        title = f"{title}; {median_label} {median * 100:.1f}% (dashed)"
    ax.set_xticks(list(xs), [_plain(_wrap(b.label)) for b in bars])
    ax.set_ylabel(_plain(ylabel))
    ax.set_title(_plain(title), loc="left")
    ax.set_ylim(min(0, min(values) * 1.2), top * 1.25)
    ax.yaxis.grid(True, color=PALETTE["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    _pct(ax)
    return _svg(fig)


def trend_chart(quarters: list[str], series: list[Series], title: str, ylabel: str, xlabel: str) -> str:
    """One line per company over the quarters shown; gaps where a value is missing."""
    fig, ax = _figure()
    xs = list(range(len(quarters)))
    for i, s in enumerate(series):
        if all(v is None for v in s.values):
            continue  # no point to draw: left out of the legend too (the caption says gaps are missing data)
        ys = [math.nan if v is None else v for v in s.values]
        color = PALETTE["subject"] if s.subject else LINE_COLORS[i % len(LINE_COLORS)]
        ax.plot(
            xs,
            ys,
            marker="o",
            markersize=3.5,
            linewidth=2.4 if s.subject else 1.4,
            color=color,
            label=_plain(_short(s.label, 24)),
        )
    ax.set_xticks(xs, quarters)
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    ax.set_title(_plain(title), loc="left")
    ax.yaxis.grid(True, color=PALETTE["grid"], linewidth=0.6)
    _pct(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7.5)
    return _svg(fig)


def scatter_chart(points: list[Point], title: str, xlabel: str, ylabel: str) -> str:
    """Revenue growth (x) against gross margin (y); point area grows with revenue."""
    fig, ax = _figure(6.6, 3.6)
    biggest = max([p.size for p in points] + [1.0])
    for p in points:
        area = 30 + 570 * max(p.size, 0) / biggest
        ax.scatter(
            [p.x],
            [p.y],
            s=area,
            alpha=0.75,
            color=PALETTE["subject"] if p.subject else PALETTE["peer"],
            edgecolors="white",
            linewidths=0.8,
        )
        ax.annotate(_plain(_short(p.label)), (p.x, p.y), xytext=(6, 4), textcoords="offset points", fontsize=7.5)
    ax.axvline(0, color=PALETTE["muted"], linewidth=0.8)
    ax.margins(0.12, 0.15)
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    ax.set_title(_plain(title), loc="left")
    ax.grid(True, color=PALETTE["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    _pct(ax, "x")
    _pct(ax, "y")
    return _svg(fig)
