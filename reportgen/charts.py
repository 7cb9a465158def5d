"""Charts as SVG text, drawn by matplotlib's object API (no pyplot state); matplotlib is imported lazily.

The house style (The Economist's and the FT's): sorted horizontal bars, the subject in one strong colour and
everyone else in grey, hatching for a value of another definition (SG&A standing in for selling expenses), ratio
axes from zero with one-decimal ticks, direct labels, the source under the chart. Each chart has a fixed layout
(margins computed from its labels) and is drawn once.

Large peer groups stay readable: bars grow the chart a row at a time (and a chart taller than a page keeps the top
and bottom of the ranking, the subject, and one row saying how many are left out); a trend with more lines than
names fit labels the subject, the peer median and the top and bottom peers, and draws the others thin and grey,
named in a note under it; a crowded scatter labels the points whose names fit and leaves the rest to the text
alternative. Every chart is set in its language's typeface (`lang`, see FONTS); the words it adds itself (`elided`,
`others`, `unnamed`) are passed in, translated by the caller.

With `CACHE_DIR` set (the pipeline sets it to a folder of the workspace's output/), each chart's SVG is kept under
a hash of everything that shapes it (its arguments, this module's source, the matplotlib release), so a rebuild
with the same figures neither draws it again nor imports matplotlib.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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
#: the typefaces of a chart's text by the language it is written in (the page's own: a Chinese edition is set in
#: Noto Sans CJK SC throughout, its digits and Latin letters too)
FONTS = {"en": ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"], "zh-CN": ["Noto Sans CJK SC", "sans-serif"]}
WIDTH_IN = 6.9  # the text column of an A4 page, in inches
#: the height of a bar's row, in inches
ROW_IN = 0.16
#: bar rows of one panel at most: 40 rows (7.6 in with the titles) fit a page; beyond, the middle of the ranking is
#: left out
MAX_ROWS = 40
#: lines of a trend named at their ends at most; with more, the top and bottom TREND_EXTREMES peers are named
MAX_NAMED_LINES = 8
TREND_EXTREMES = 3
#: points of a scatter named at most; with more, the subject and those farthest from the middle
MAX_SCATTER_NAMES = 16

#: where charts are cached (None: not cached); see `cached` and `cache_in`
CACHE_DIR: Path | None = None
#: the cache's folder name in a workspace's output/ (state beside the ledger, not an edition)
CACHE_NAME = ".chart-cache"
#: cached charts kept at most; the least recently used go first
CACHE_ENTRIES = 512


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


# -- the chart cache --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _style_key() -> str:
    """What shapes every chart besides its arguments: this module's source (style, layout, code) and the
    matplotlib release (read from its version file: importing matplotlib is what a cache hit saves)."""
    import importlib.util

    h = hashlib.sha256(Path(__file__).read_bytes())
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        version = Path(spec.origin).with_name("_version.py")
        h.update(version.read_bytes() if version.exists() else spec.origin.encode())
    return h.hexdigest()


def _cache_key(kind: str, args: tuple, kwargs: dict) -> str:
    # dataclass reprs name every field, and floats repr exactly: equal reprs draw equal charts
    text = repr((kind, args, sorted(kwargs.items())))
    return hashlib.sha256(f"{_style_key()}\n{text}".encode()).hexdigest()


def _cache_read(path: Path) -> Chart | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        svg, alt, marks = data["svg"], data["alt"], data["marks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # what _svg makes and nothing else: a damaged or foreign entry is drawn again, never embedded
    low = svg.lower() if isinstance(svg, str) else ""
    if not (low.startswith("<svg ") and low.rstrip().endswith("</svg>")) or "<script" in low or "foreignobject" in low:
        return None
    if not isinstance(alt, str) or not isinstance(marks, list) or not all(isinstance(m, str) for m in marks):
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return Chart(svg, alt, marks)


def _cache_write(folder: Path, path: Path, chart: Chart) -> None:
    """Written whole or not at all (a temporary file renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"svg": chart.svg, "alt": chart.alt, "marks": chart.marks}, fh, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prune(folder: Path) -> None:
    """At most CACHE_ENTRIES entries: the least recently used go first."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[: max(0, len(entries) - CACHE_ENTRIES)]:
        old.unlink(missing_ok=True)


#: charts drawn since the cache was opened, by entry name: written to it only when the block ends without an error
#: (a failed build leaves nothing behind in output/); a forked worker hands its own to the parent (`take`, `keep`)
_NEW: dict[str, Chart] = {}


@contextlib.contextmanager
def cache_in(folder: Path | None):
    """Charts drawn inside this block are served from, and on its successful end kept in, `folder` (None: not
    cached); the setting before comes back after it. Forked workers inherit it. A cache that cannot be written is
    no error: the charts are drawn again next time."""
    global CACHE_DIR
    before, CACHE_DIR = CACHE_DIR, folder
    _NEW.clear()
    try:
        yield
        if folder is not None and _NEW:
            with contextlib.suppress(OSError):
                for name, chart in _NEW.items():
                    _cache_write(Path(folder), Path(folder) / name, chart)
                _prune(Path(folder))
    finally:
        _NEW.clear()
        CACHE_DIR = before


def take() -> dict[str, Chart]:
    """The charts this process drew for the cache since the last call (a worker returns them with its result)."""
    new = dict(_NEW)
    _NEW.clear()
    return new


def keep(entries: dict[str, Chart]) -> None:
    """Charts a worker drew, to be cached with this process's own when the block of `cache_in` ends."""
    _NEW.update(entries)


def cached(fn):
    """Serve a chart from CACHE_DIR when one with the same key was drawn before; draw it otherwise."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        folder = CACHE_DIR
        if folder is None:
            return fn(*args, **kwargs)
        name = f"{_cache_key(fn.__name__, args, kwargs)}.json"
        path = Path(folder) / name
        chart = _NEW.get(name) or (_cache_read(path) if path.exists() else None)
        if chart is None:
            chart = _NEW[name] = fn(*args, **kwargs)
        return chart

    return wrapper


def _plain(text: str) -> str:
    """Text drawn as written: matplotlib reads $...$ as math (a name like "A$B$C" would fail or change)."""
    return str(text).replace("$", r"\$")


def _short(label: str, n: int = 24) -> str:
    """Keep labels from overrunning their neighbours: long names end in an ellipsis."""
    return label if len(label) <= n else label[: n - 1] + "…"


def _width(text: str) -> float:
    """Rough width of a label in ems (CJK characters count double)."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.58 for ch in text)


def _figure(w: float, h: float, lang: str = "en"):
    import matplotlib

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # keep text as text: selectable and searchable in the PDF
            "svg.hashsalt": "reportgen",  # stable element ids, so rebuilding gives identical bytes
            "font.family": FONTS.get(lang, FONTS["en"]),
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


@dataclass(frozen=True)
class _Gap:
    """A row standing for the bars left out of the middle of a ranking too long for a page."""

    text: str


def _value_text(b: Bar) -> str:
    return b.text or f"{b.value * 100:.1f}%".replace("-", "\u2212")


def _order(bars: list[Bar], elided: str) -> list[Bar | _Gap]:
    """A panel's rows from the foot up: names without a value, then the bars from the lowest value to the highest.
    Beyond MAX_ROWS the middle of the ranking is left out (the subject never), each run of left-out bars one row
    that says how many and their range."""
    shown = sorted([b for b in bars if b.value is not None], key=lambda b: b.value)
    missing = [b for b in bars if b.value is None]
    if len(missing) + len(shown) <= MAX_ROWS:
        return [*missing, *shown]
    subjects = sum(b.subject for b in shown)
    ends = max(2, MAX_ROWS - len(missing) - 2 * subjects - 1)  # each subject can split the gap in two
    top, bottom = (ends + 1) // 2, ends // 2
    keep = [i < bottom or i >= len(shown) - top or b.subject for i, b in enumerate(shown)]
    rows: list[Bar | _Gap] = list(missing)
    run: list[Bar] = []
    for b, kept in zip(shown, keep, strict=True):
        if not kept:
            run.append(b)
            continue
        if run:
            rows.append(_Gap(elided.format(n=len(run), low=_value_text(run[0]), high=_value_text(run[-1]))))
            run = []
        rows.append(b)
    return rows


@cached
def hbars(
    panels: list[tuple[str, list[Bar], float | None, str]],
    title: str,
    subtitle: str,
    source: str,
    alt: str,
    elided: str = "{n} more, {low} to {high}",
    lang: str = "en",
    below: tuple = (),
) -> Chart:
    """Sorted horizontal bars, one panel per basis side by side (never in one set of bars): panels are (panel title,
    bars, median or None, median label). The subject in its colour, peers grey, hatched bars for another
    definition; one x scale from zero for every panel of a row; value labels at the bar ends, clear of the median
    line. `below` adds rows of panels under the first (another measure of the same companies, its own scale), so
    that related measures share one title, subtitle and source line.
    The chart grows a row at a time; a panel of more than MAX_ROWS rows keeps the top and the bottom of the ranking
    and the subject, and says what it leaves out in a row of its own (`elided`, with {n}, {low} and {high})."""
    rows_of_panels = [list(panels), *[list(r) for r in below]]
    orders = [[_order(bars, elided) for _, bars, _, _ in row] for row in rows_of_panels]
    label_em = max(  # the subject's names are set in bold, a tenth wider
        (
            _width(_short(b.label)) * (1.12 if b.subject else 1)
            for row in rows_of_panels
            for _, bars, _, _ in row
            for b in bars
        ),
        default=4.0,
    )
    heads = _wrap(_plain(title), (WIDTH_IN - 0.16) * 0.88, 9.5)  # bold type is wider than _width counts
    lines = _wrap(_plain(subtitle), WIDTH_IN - 0.16, 7.5)
    sub_in = 0.38 + 0.16 * (len(heads) - 1)
    head_in, ticks_in, source_in, row_in = sub_in + 0.04 + 0.13 * len(lines), 0.24, 0.18, ROW_IN
    blocks = []  # per row of panels: (space above its axes for the panel titles, bar rows)
    for row, row_orders in zip(rows_of_panels, orders, strict=True):
        titled = any(ptitle for ptitle, *_ in row)
        blocks.append((0.31 if titled else 0.05, max([len(o) for o in row_orders] + [1])))
    h = head_in + sum(above + row_in * n + ticks_in for above, n in blocks) + source_in
    fig = _figure(WIDTH_IN, h, lang)
    left_in = 0.15 + label_em * 7.6 / 72
    gap_in = 0.25
    marks = []
    top_in = head_in
    for row, row_orders, (above, n_rows) in zip(rows_of_panels, orders, blocks, strict=True):
        axes_top = top_in + above
        axes_h = row_in * n_rows
        top_in = axes_top + axes_h + ticks_in
        n = len(row)
        medians = any(median is not None for _, _, median, _ in row)  # a median's label sits over the bars
        panel_w = (WIDTH_IN - 0.15 - n * left_in - (n - 1) * gap_in) / n
        top = [v for _, bars, med, _ in row for v in [b.value for b in bars if b.value is not None] + [med or 0]]
        hi = max(top + [0.01]) * 1.18
        for i, (_, bars, _, _) in enumerate(row):  # room for each value label beside its bar: short of the next
            beyond = gap_in * 0.6 if i < n - 1 else 0.05  # panel's names, or of the figure's edge
            for b in bars:
                if b.value is not None and b.value > 0:
                    bold = 1.12 if b.subject else 1
                    room = panel_w + beyond - _width(_value_text(b) + b.mark) * bold * 7.2 / 72 - 0.04
                    hi = max(hi, b.value * panel_w / max(room, panel_w * 0.3))
        for i, ((ptitle, _bars, median, median_label), order) in enumerate(zip(row, row_orders, strict=True)):
            x0 = 0.08 + i * (left_in + panel_w + gap_in) + left_in
            ax = fig.add_axes([x0 / WIDTH_IN, 1 - (axes_top + axes_h) / h, panel_w / WIDTH_IN, axes_h / h])
            marks += _bar_panel(ax, order, hi, median, median_label, marks)
            if ptitle:  # over the panel's names and bars (a long title has its whole width), level across the row
                fig.text((x0 - left_in + 0.1) / WIDTH_IN, 1 - (axes_top - (0.17 if medians else 0.05)) / h,
                         _plain(ptitle), fontsize=8, fontweight="bold", va="bottom")  # fmt: skip
    fig.text(0.08 / WIDTH_IN, 1 - 0.2 / h, "\n".join(heads), fontsize=9.5, fontweight="bold", va="top", linespacing=1.2)
    fig.text(
        0.08 / WIDTH_IN, 1 - sub_in / h, "\n".join(lines), fontsize=7.5, color="#495057", va="top", linespacing=1.2
    )
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt, marks)


def _bar_panel(ax, order, hi: float, median, median_label: str, seen: list[str]) -> list[str]:
    """One panel of `hbars`: its bars from the foot up, value labels, the median line; the marks it adds."""
    marks = []
    ys = range(len(order))  # highest at the top; names without a value at the foot, marked n/a
    for y, b in zip(ys, order):
        if isinstance(b, _Gap):
            ax.text(0, y, " " + b.text, va="center", ha="left", fontsize=7, color=PALETTE["muted"])
            continue
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
        marks += [ch for ch in b.mark if ch not in marks and ch not in seen]
    ax.set_yticks(list(ys), ["\u22ee" if isinstance(b, _Gap) else _plain(_short(b.label)) for b in order])
    for tick, b in zip(ax.get_yticklabels(), order):
        if isinstance(b, Bar) and b.subject:
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
        text = f"{median_label} {median * 100:.1f}%"
        # centred on the line where it fits over the panel, else moved sideways as far as it must (its start is
        # then never past the line, nor its end past the panel's edge)
        from matplotlib.transforms import blended_transform_factory

        width = _width(text) * 6.8 / 72 / (ax.get_position().width * WIDTH_IN)  # in panel widths
        start = min(max(median / hi - width / 2, 0.0), 1.03 - width)
        ax.text(
            min(start, median / hi),
            len(order) - 0.35,
            text,
            ha="left",
            va="bottom",
            fontsize=6.8,
            color=PALETTE["median"],
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            transform=blended_transform_factory(ax.transAxes, ax.transData),
        )
    return marks


def _last(s: Series) -> tuple[int, float]:
    """(index, value) of a series' last value."""
    i = max(i for i, v in enumerate(s.values) if v is not None)
    return i, s.values[i]


def _wrap(text: str, width_in: float, size: float) -> list[str]:
    """`text` in lines no wider than `width_in` at `size` points, broken after a comma where one fits (a list of
    names keeps each name on one line), else between words."""

    def fits(t):
        return _width(t) * size / 72 <= width_in

    words = []
    for chunk in text.split(", "):
        words += [chunk] if fits(chunk) else chunk.split(" ")
        words[-1] += ","
    words[-1] = words[-1][:-1]
    lines, cur = [], ""
    for w in words:
        if cur and not fits(f"{cur} {w}"):
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return [*lines, cur] if cur else lines


@cached
def trend(
    quarters: list[str],
    series: list[Series],
    title: str,
    subtitle: str,
    source: str,
    alt: str,
    others: str = "Others (thin grey lines): {names}.",
    lang: str = "en",
) -> Chart:
    """One line per company over the quarters shown (gaps where a value is missing), the peer median dashed; the y
    axis from zero with one-decimal ticks; names at the line ends, nudged apart, instead of a legend.

    With more than MAX_NAMED_LINES lines, the subject, the peer median and the TREND_EXTREMES peers highest and
    lowest at their last value are named; the other peers are thin grey lines without a name, listed under the
    chart by `others` (a sentence with {names}, in the reader's language)."""
    drawn = [s for s in series if any(v is not None for v in s.values)]
    grey: list[Series] = []
    if len(drawn) > MAX_NAMED_LINES:
        peers = sorted((s for s in drawn if not s.subject and not s.dashed), key=lambda s: _last(s)[1])
        n = max(0, min(TREND_EXTREMES, (MAX_NAMED_LINES - (len(drawn) - len(peers))) // 2))
        extremes = {id(s) for s in peers[len(peers) - n :] + peers[:n]}
        grey = [s for s in drawn if not s.subject and not s.dashed and id(s) not in extremes]  # in the given order
    grey_ids = {id(s) for s in grey}
    named = [s for s in drawn if id(s) not in grey_ids]
    names = {}
    for s in named:
        last = _last(s)[0]
        names[id(s)] = _short(s.label)
        if last < len(quarters) - 1:  # its line ends earlier: say when, so the name at the edge does not mislead
            names[id(s)] += f" ({quarters[last]})"
    note = _wrap(others.format(names=", ".join(_short(s.label) for s in grey)), WIDTH_IN - 0.16, 6.5) if grey else []
    bottom_in = 0.42 + 0.13 * len(note)
    h = 1.73 + bottom_in
    fig = _figure(WIDTH_IN, h, lang)
    right_in = min(2.4, max(1.0, 0.3 + max((_width(n) for n in names.values()), default=0) * 7 / 72))
    ax = fig.add_axes(
        [0.55 / WIDTH_IN, bottom_in / h, (WIDTH_IN - 0.55 - right_in) / WIDTH_IN, (h - bottom_in - 0.62) / h]
    )
    xs = list(range(len(quarters)))
    for s in grey:  # under the named lines
        ys = [math.nan if v is None else v for v in s.values]
        ax.plot(xs, ys, linewidth=0.6, color=PALETTE["muted"], alpha=0.8, zorder=2)
    ends = []
    color_i = 0
    for s in named:
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
        last = _last(s)[0]
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
    for y, s, color, _last_i in ends:
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
    for i, text in enumerate(note):  # between the quarter labels and the source line
        y_in = 0.06 + 0.13 * (len(note) - i)
        fig.text(0.08 / WIDTH_IN, y_in / h, _plain(text), fontsize=6.5, color="#495057", va="bottom")
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt)


def _labels_apart(fig, ax, points, crowd: list[Point] | None = None) -> int:
    """Names beside their points, moved up or down (in points of type) until none overlaps another: a cluster of
    companies stays readable. A name that finds no free place inside the plot is left out (never the subject's):
    the point stays, and the text alternative names it. With `crowd` (every point drawn, of which `points` are
    the ones to name, most important first), names also keep clear of the other points and of the legend beside
    the plot, and stay near their point. Returns how many names were drawn."""
    placed: list[tuple[float, float, float, float]] = []
    to_px = ax.transData.transform
    scale = fig.dpi / 72
    (left, bottom), (right, top) = ax.transAxes.transform([(0, 0), (1, 1)])
    leader = {"arrowstyle": "-", "color": PALETTE["muted"], "linewidth": 0.5}
    subject_boxes, markers = [], []
    for p in points:  # the subject's place is kept first: no peer's name may take it
        if p.subject:
            x, y = to_px((p.x, p.y))
            label = _plain(_short(p.label))
            subject_boxes.append((x + 5 * scale, y + 3 * scale, x + (_width(label) * 7 + 9) * scale, y + 12 * scale))
    if crowd is not None:
        r = 3 * scale
        markers = [(x - r, y - r, x + r, y + r) for x, y in (to_px((p.x, p.y)) for p in crowd)]
    steps = 12 if crowd is None else 4
    drawn = 0
    for p in points if crowd is not None else sorted(points, key=lambda p: (p.y, p.x)):
        x, y = to_px((p.x, p.y))
        label = _plain(_short(p.label))
        w, h = (_width(label) * 7 + 4) * scale, 9 * scale
        others = placed if p.subject else placed + subject_boxes
        if crowd is not None:
            own = (x - 3 * scale, y - 3 * scale, x + 3 * scale, y + 3 * scale)
            others = others + [m for m in markers if m != own]
        # up from the point first, then (near the top of a crowd) down from it
        step = h * 0.95
        tries = [3 * scale + k * step for k in range(steps)] + [-(h + 3 * scale) - k * step for k in range(steps)]
        sides = (1,) if crowd is None else (1, -1)  # right of the point; in a crowd, else left of it
        for side, dy in ((side, dy) for side in sides for dy in tries):
            x0 = x + 5 * scale if side > 0 else x - 5 * scale - w
            box = (x0, y + dy, x0 + w, y + dy + h)
            inside = box[3] <= top + 10 * scale and box[1] >= bottom
            if crowd is not None:
                inside = inside and left <= box[0] and box[2] <= right
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in others):
                break
        else:
            if not p.subject:
                continue
            side, dy = 1, 3 * scale
            box = (x + 5 * scale, y + dy, x + 5 * scale + w, y + dy + h)
        placed.append(box)
        drawn += 1
        ax.annotate(
            label,
            (p.x, p.y),
            xytext=(5 * side, dy / scale),
            textcoords="offset points",
            ha="left" if side > 0 else "right",
            fontsize=7,
            color=PALETTE["text"],
            fontweight="bold" if p.subject else "normal",
            arrowprops=leader if abs(dy) > 4 * scale else None,
        )
    return drawn


def _by_distance(points: list[Point]) -> list[Point]:
    """The subject first, then the points farthest from the middle of the cloud (each axis scaled by its spread)."""
    import statistics

    mx, my = statistics.median(p.x for p in points), statistics.median(p.y for p in points)
    sx = (max(p.x for p in points) - min(p.x for p in points)) or 1.0
    sy = (max(p.y for p in points) - min(p.y for p in points)) or 1.0
    return sorted(points, key=lambda p: (not p.subject, -(((p.x - mx) / sx) ** 2 + ((p.y - my) / sy) ** 2)))


@cached
def scatter(
    points: list[Point],
    groups: list[str],
    title: str,
    subtitle: str,
    xlabel: str,
    ylabel: str,
    source: str,
    alt: str,
    unnamed: str = "{n} points unnamed for lack of room; the tables give every company.",
    lang: str = "en",
) -> Chart:
    """The section metric (y) against revenue growth (x) for every company with both, coloured by peer group. The
    chart grows with the number of groups, so that the legend beside it stays inside it. With more than
    MAX_SCATTER_NAMES points, the subject and the points farthest from the middle are named where their names fit,
    and a note under the chart (`unnamed`, with {n}) says how many are not."""
    crowded = len(points) > MAX_SCATTER_NAMES
    bottom_in = 0.55 + (0.18 if crowded else 0)
    h = max(2.1 + (0.8 if crowded else 0), 1.3 + 0.15 * len(groups)) + bottom_in - 0.55  # a crowd gets more room
    fig = _figure(WIDTH_IN, h, lang)
    ax = fig.add_axes([0.7 / WIDTH_IN, bottom_in / h, (WIDTH_IN - 0.9 - 1.4) / WIDTH_IN, (h - bottom_in - 0.65) / h])
    for p in points:
        color = PALETTE["subject"] if p.subject else GROUP_COLORS[p.group % len(GROUP_COLORS)]
        ax.scatter([p.x], [p.y], s=55 if p.subject else 32, color=color, edgecolors="white", linewidths=0.8, zorder=3)
    ys = [p.y for p in points] + [0.0]
    ax.set_ylim(0, max(ys) * 1.18 + 0.005)
    xs = [p.x for p in points] + [0.0]
    pad = (max(xs) - min(xs)) * 0.12 + 0.02
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    if crowded:
        named = _labels_apart(fig, ax, _by_distance(points)[:MAX_SCATTER_NAMES], crowd=points)
        note = unnamed.format(n=len(points) - named)
        fig.text(0.08 / WIDTH_IN, 0.19 / h, _plain(note), fontsize=6.5, color="#495057", va="bottom")
    else:
        _labels_apart(fig, ax, points)
    ax.axvline(0, color=PALETTE["muted"], linewidth=0.8)
    ax.grid(True, color=PALETTE["grid"], linewidth=0.6)
    ax.set_axisbelow(True)
    _pct_axis(ax.xaxis)
    _pct_axis(ax.yaxis)
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    handles = [
        ax.scatter([], [], s=32, color=GROUP_COLORS[i % len(GROUP_COLORS)], label=_plain(_short(g, 22)))
        for i, g in enumerate(groups)
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=7)
    fig.text(0.08 / WIDTH_IN, 1 - 0.2 / h, _plain(title), fontsize=9.5, fontweight="bold", va="top")
    fig.text(0.08 / WIDTH_IN, 1 - 0.38 / h, _plain(subtitle), fontsize=7.5, color="#495057", va="top")
    fig.text(0.08 / WIDTH_IN, 0.06 / h, _plain(source), fontsize=6.5, color="#868e96", va="bottom")
    return Chart(_svg(fig, alt), alt)
