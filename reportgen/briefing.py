"""The briefing as plain data for the template, built part by part from the metric tables of both bases (single
quarter and year to date) and their peer statistics, each computed once per build. Every word goes through the
language's `Text`; charts are SVG text with a text alternative.

Parts, in reading order: the answer (page 1: a headline that states the conclusion, one chart, three takeaways,
the data's as-of date), what changed since the previous edition of the quarter, the key findings, a scorecard per
basis, one section per peer group, the section metric against growth, methodology, and the sources.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlparse

from . import charts
from .findings import DEFAULT_TEMPLATES, View, build_findings
from .formats import NOT_AVAILABLE, fmt_value
from .i18n import Text
from .metrics import BY_ID, METRICS, MIN_MEDIAN, Metric, compute_one, metric_of
from .model import FLAG, FLAGS, N_, QUARTER, SUPERSCRIPT, YTD, is_missing, marks, split_entity, sup_marks
from .periods import Quarter

NOT_YET = N_("not yet reported")
NO_FIGURES = N_("no figures in the data")
KIND_RANK = {"company": 0, "exchange": 0, "copy": 1, "release": 1, "news": 2, "aggregator": 3, "web": 4}
KIND_LABEL = {
    "company": N_("company filing"),
    "exchange": N_("exchange filing"),
    "copy": N_("copy of a company filing"),
    "release": N_("company release"),
    "news": N_("news report"),
    "aggregator": N_("aggregator page"),
    "web": N_("web page"),
}


@dataclass
class Facts:
    """What every part of the briefing is built from: the workspace (settings, data, normalizer), the quarter, the
    metric table and peer statistics per basis (computed once), the language, the workspace's rewording of the
    findings, and the previous edition of this quarter (its manifest) for "what changed"."""

    ctx: object  # pipeline.Context: settings, data, norm
    quarter: Quarter
    edition_date: date
    tables: dict  # basis -> metric table (DataFrame)
    stats: dict  # basis -> peer statistics (DataFrame)
    text: Text
    templates: dict
    previous: dict | None = None
    documents: dict = field(default_factory=dict)  # source address prefix -> (kind, issuer)

    def __post_init__(self):
        s = self.settings = self.ctx.settings
        self.companies = self.ctx.data.companies
        lang = self.text.lang
        #: the peer groups with their labels in this language
        self.groups = [replace(g, label=g.label_in(lang)) for g in s.groups]
        self.subject = s.subject
        fq = self.companies[s.subject].fiscal_quarter(self.quarter)
        self.bases = [QUARTER] + ([YTD] if fq > 1 and YTD in self.tables else [])
        self.period = {b: self.text.period(self.quarter, b, fq) for b in self.bases}
        self.period_short = {b: self.text.period(self.quarter, b, fq, short=True) for b in self.bases}
        self.records = {b: self.tables[b].to_dict("records") for b in self.bases}
        self.by = {b: {(r["company"], r["metric"]): r for r in self.records[b]} for b in self.bases}
        self.stat = {
            b: {(r["group"], r["metric"]): _no_nan(r) for r in self.stats[b].to_dict("records")} for b in self.bases
        }
        self.empty = set(getattr(self.ctx.data, "empty", ()))
        self.reported = {cid: self.ctx.norm.has_reported(cid, self.quarter) for cid in s.companies}
        self.not_reported = [self.name(c) for c in s.companies if not self.reported[c] and c not in self.empty]
        self.no_figures = [self.name(c) for c in s.companies if c in self.empty]
        self.section_metric: Metric = BY_ID[s.section_metric]
        self.rows = {f"{r.file}:{r.line}": r for r in self.ctx.data.rows}

    # -- small helpers shared by the parts -----------------------------------------------------------------------
    def name(self, cid: str) -> str:
        """A company's name in this language (a Chinese edition uses the Chinese names); a segment's entity
        ("xiaomi.ev") reads "Xiaomi, smart EV segment"."""
        company, segment = split_entity(cid)
        c = self.companies[company]
        name = (c.name_zh or c.name) if self.text.lang == "zh-CN" else c.name
        if segment is None:
            return name
        seg = self.segment(cid)
        return self.text.gettext("{company}, {segment}").format(company=name, segment=self.segment_name(seg))

    def segment(self, entity: str):
        company, segment = split_entity(entity)
        return next(s for s in self.companies[company].segments if s.id == segment)

    def segment_name(self, seg) -> str:
        return (seg.name_zh or seg.name) if self.text.lang == "zh-CN" else seg.name

    def segments_of(self, group_id: str) -> list[str]:
        """The entities of the subject's segments compared with `group_id` that have figures."""
        subject = self.companies[self.subject]
        out = []
        for seg in subject.segments:
            entity = seg.entity(subject.id)
            if seg.group == group_id and any(
                not is_missing((self.by[b].get((entity, m)) or {}).get("value"))
                for b in self.bases
                for m in ("revenue", "gross_margin")
            ):
                out.append(entity)
        return out

    def person(self, cid: str) -> dict:
        c = self.companies[cid]
        return {
            "id": cid,
            "name": self.name(cid),
            "name_zh": c.name_zh if self.text.lang != "zh-CN" else "",  # beside the English name only
            "ticker": c.ticker,
            "standard": c.standard,
            "reported": self.reported[cid],
            "no_figures": cid in self.empty,
            "subject": cid == self.subject,
        }

    def shown(self, rec, unit: str) -> str:
        return self.text.fmt(rec["value"], unit, rec.get("uncertainty"))

    def cell(self, rec, unit: str, notes: Notes | None = None) -> dict:
        """A table cell: the value as shown, its marks, and, when missing, a numbered note saying why (under the
        table)."""
        t = self.text
        if rec is None:
            return {"text": t.not_available, "marks": "", "missing": True, "title": "", "note": ""}
        v = rec["value"]
        if is_missing(v):
            why = t.reason(rec.get("reason"))
            return {
                "text": t.not_available,
                "marks": "",
                "missing": True,
                "title": why,
                "note": notes.number(why) if notes is not None and why else "",
            }
        return {
            "text": t.fmt(v, unit, rec.get("uncertainty")),
            "marks": marks(rec["flags"]),
            "missing": False,
            "title": t.reason(rec.get("note")),
            "note": notes.number(t.reason(rec["note"])) if notes is not None and rec.get("note") else "",
        }

    def unsplit(self, why: str, notes: Notes | None = None) -> dict:
        """A cell a segment cannot have (its company does not split expenses by segment), with the note saying so."""
        return {"text": self.text.not_available, "marks": "", "missing": True, "title": why,
                "note": notes.number(why) if notes is not None else ""}  # fmt: skip

    def absent(self, cid: str) -> dict:
        word = NO_FIGURES if cid in self.empty else NOT_YET
        return {"text": self.text.gettext(word), "marks": "", "missing": True, "title": "", "note": ""}

    def key(self, *mark_strings: str) -> list[dict]:
        """The footnotes for the marks used (in the flag table's order): the key under a chart or table."""
        used = set("".join(mark_strings))
        return [{"mark": f.mark, "text": self.text.gettext(f.note)} for f in FLAGS if f.mark and f.mark in used]

    def page_one_basis(self) -> str:
        """The basis with the most companies on the section metric (the single quarter when tied)."""
        sm = self.section_metric.id

        def count(b):
            return sum(1 for c in self.settings.companies if not is_missing(self.by[b][(c, sm)]["value"]))

        return max(self.bases, key=lambda b: (count(b), b == QUARTER))


def _no_nan(rec: dict) -> dict:
    """A statistics record with NaN (pandas' missing) turned into None, so `is None` means what it says."""
    return {k: (None if isinstance(v, float) and is_missing(v) else v) for k, v in rec.items()}


class Notes:
    """Numbered notes under a table: each distinct reason once ("1 Haier: ...")."""

    def __init__(self):
        self.items: list[str] = []

    def number(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return str(self.items.index(text) + 1)


# -- the answer: page 1 ------------------------------------------------------------------------------------------
def _findings(f: Facts):
    t = f.text
    views = [View(b, f.period[b], f.by[b]) for b in f.bases]
    metrics = {m.id: _Translated(m, t) for m in METRICS}
    names = {c: f.name(c) for c in f.settings.companies}
    return build_findings(
        views,
        f.subject,
        names,
        f.groups,
        metrics,
        f.settings.slightly_pp,
        t.templates(DEFAULT_TEMPLATES, f.templates),
        f.not_reported,
        fmt=t.fmt,
        section_metric=f.section_metric.id,
        no_figures=f.no_figures,
        quarter=t.quarter(f.quarter),
        segments=[(e, f.segment_name(f.segment(e)), g.id) for g in f.groups for e in f.segments_of(g.id)],
    )


class _Translated:
    """A metric as a sentence shows it in one language: label and phrase translated, the rest as is."""

    def __init__(self, metric: Metric, text: Text):
        self.id, self.unit = metric.id, metric.unit
        self.label = text.gettext(metric.label)
        self.phrase = text.gettext(metric.phrase) if metric.phrase else ""
        self.other_definition, self.like_for_like = metric.other_definition, metric.like_for_like
        self.lower_is_better = metric.lower_is_better


def _bars(f: Facts, basis: str, members: list[str], with_sga: bool) -> tuple[list[charts.Bar], str]:
    """Bars of the section metric for the subject and `members` on one basis; the subject's SG&A ratio beside
    them, hatched, where a member's value is an SG&A proxy. Returns the bars and their marks."""
    sm = f.section_metric
    by = f.by[basis]
    bars, used = [], ""
    proxies = False
    for c in [f.subject, *members]:
        rec = by[(c, sm.id)]
        if is_missing(rec["value"]):
            bars.append(charts.Bar(f.name(c), None, c == f.subject, text=_why_no_bar(f, basis, c)))
            continue
        proxy = bool(set(sm.other_definition) & set(rec["flags"]))
        proxies |= proxy
        mk = sup_marks(rec["flags"])
        used += marks(rec["flags"])
        bars.append(charts.Bar(f.name(c), rec["value"], c == f.subject, mk, proxy, f.shown(rec, sm.unit)))
    if with_sga and proxies and sm.like_for_like:
        rec = by[(f.subject, sm.like_for_like)]
        if not is_missing(rec["value"]):
            label = f.text.gettext("{name} (SG&A)").format(name=f.name(f.subject))
            used += marks(rec["flags"])
            bars.append(charts.Bar(label, rec["value"], True, sup_marks(rec["flags"]), True, f.shown(rec, "ratio")))
    return bars, used


def _why_no_bar(f: Facts, basis: str, cid: str) -> str:
    """What a bar without a value says, briefly, where it stands: no figures in the data, not yet reported, or no
    single quarter but the year to date in the other panel, or n/a (the table's note says more)."""
    t = f.text
    if cid in f.empty:
        return t.gettext(NO_FIGURES)
    if not f.reported.get(cid, True):
        return t.gettext(NOT_YET)
    others = [b for b in f.bases if b != basis and not is_missing(f.by[b][(cid, f.section_metric.id)]["value"])]
    if basis == QUARTER and others:
        return t.gettext("n/a: no single quarter; {period} shown").format(period=f.period_short[others[0]])
    return t.not_available


def answer(f: Facts, found) -> dict:
    """Page 1: the headline (generated from the comparisons), one sorted bar chart of the section metric for every
    company with a value, three takeaways, and the data's as-of date beside the edition date."""
    t, s, sm = f.text, f.settings, f.section_metric
    _ = t.gettext
    basis = f.page_one_basis()
    label = _(sm.label)
    peers = [c for c in s.companies if c != f.subject]
    bars, used = _bars(f, basis, peers, with_sga=True)
    bars = [b for b in bars if b.value is not None]
    alt = _("{metric}, {period}: {values}").format(
        metric=label, period=f.period[basis], values=t.seq(f"{b.label} {b.text}" for b in bars)
    )
    title = _("{metric}, {period}").format(metric=label, period=f.period[basis])
    subtitle = _("Every company with a figure, sorted; hatched: SG&A where a company reports only SG&A")
    chart = (
        charts.hbars([("", bars, None, "")], title, subtitle, _source_line(f), alt, **_chart_words(t)) if bars else None
    )
    return {
        "headline": found.headline,
        "dek": _dek(f, found),
        "chart": chart,
        "chart_key": f.key(used),
        "takeaways": _takeaways(f, found, basis),
        "as_of": _as_of(f),
    }


def _dek(f: Facts, found) -> str:
    """One line under the headline: the subject's value on each basis, and how peers are compared."""
    t, sm = f.text, f.section_metric
    _ = t.gettext
    values = [
        _("{value} ({period})").format(value=f.shown(f.by[b][(f.subject, sm.id)], sm.unit), period=f.period_short[b])
        for b in f.bases
        if not is_missing(f.by[b][(f.subject, sm.id)]["value"])
    ]
    how = (
        _(
            "each peer compared on the single quarter where it publishes one, on {ytd} otherwise; SG&A against "
            "SG&A where a peer reports only SG&A"
        ).format(ytd=f.period[YTD])
        if YTD in f.bases
        else _("SG&A against SG&A where a peer reports only SG&A")
    )
    if not values:
        return ""  # the headline already says there is nothing to compare
    return _("{subject}: {values}; {how}.").format(subject=f.name(f.subject), values=t.join(values), how=how)


def _takeaways(f: Facts, found, basis: str) -> list[str]:
    """The gap to each group's median, the change from a year ago, and the main caveat."""
    t, sm = f.text, f.section_metric
    _ = t.gettext
    gaps = []
    for g in f.groups:
        st = f.stat[basis][(g.id, sm.id)]
        mine = f.by[basis][(f.subject, sm.id)]
        metric, own = sm, mine
        if st["median"] is None and sm.like_for_like:  # a group of SG&A reporters: SG&A against SG&A
            alt = f.stat[basis][(g.id, sm.like_for_like)]
            if alt["median"] is not None:
                st, metric, own = alt, BY_ID[sm.like_for_like], f.by[basis][(f.subject, sm.like_for_like)]
        if is_missing(own["value"]):
            continue
        if st["median"] is not None:
            gaps.append(
                _("{group} median {median} ({metric}), {gap}").format(
                    group=g.label,
                    median=t.fmt(st["median"], "ratio"),
                    metric=_(metric.phrase or metric.label),
                    gap=t.fmt(own["value"] - st["median"], "pp", own.get("uncertainty")),
                )
            )
        elif st["values"]:
            listed = t.gettext(", ").join(f"{f.name(c)} {t.fmt(v, 'ratio')}" for c, v in st["values"])
            gaps.append(_("{group}: fewer than three peers, no median ({values})").format(group=g.label, values=listed))
    out = []
    if gaps:
        out.append(_("Against each group's median, {period}: {gaps}.").format(period=f.period[basis], gaps=t.seq(gaps)))
    change = compute_one(f.ctx.norm, f.subject, f.quarter, QUARTER, _change_metric(sm))
    prior = compute_one(f.ctx.norm, f.subject, f.quarter.shift(-4), QUARTER, sm)
    now = f.by[QUARTER][(f.subject, sm.id)]
    if not is_missing(change.value) and not is_missing(now["value"]):
        out.append(
            _("A year ago: {subject}'s {metric} was {prior} in {prior_q}; now {now}, {change}.").format(
                subject=f.name(f.subject),
                metric=_(sm.phrase or sm.label),
                prior=t.fmt(prior.value, sm.unit, prior.uncertainty),
                prior_q=t.quarter(f.quarter.shift(-4)),
                now=f.shown(now, sm.unit),
                change=t.fmt(change.value, "pp", change.uncertainty),
            )
        )
    out.append(_caveat(f, found))
    return [x for x in out if x]


def _caveat(f: Facts, found) -> str:
    """The main caveat: peers compared on the year to date, and peers that report only SG&A."""
    t = f.text
    _ = t.gettext
    parts = []
    ytd = [f.name(c.peer) for c in found.comparisons if c.basis == YTD]
    if ytd:
        parts.append(
            _("{names}: no single quarter can be had, so {period} is compared").format(
                names=_list(t, ytd), period=f.period[YTD]
            )
        )
    proxies = [f.name(c.peer) for c in found.comparisons if c.metric != f.section_metric.id]
    if proxies:
        parts.append(
            _("{names} report only SG&A, set against {subject}'s SG&A ratio (selling plus administrative)").format(
                names=_list(t, proxies), subject=f.name(f.subject)
            )
        )
    if not parts:
        return ""
    return _("Caveat: {parts}.").format(parts=t.seq(parts))


def _list(t: Text, items: list[str]) -> str:
    return t.join(items)


def _change_metric(sm: Metric) -> Metric:
    return Metric(f"{sm.id}_yoy_pp", "", "pp", sm.lower_is_better, "", kind="yoy_pp", base=sm.id)


def _rows_shown(f: Facts):
    """(reference, source row) of every figure the briefing shows, on every basis (a row once per use)."""
    for b in f.bases:
        for rec in f.records[b]:
            if is_missing(rec["value"]):
                continue
            for ref in rec["sources"]:
                row = f.rows.get(ref)
                if row is not None:
                    yield ref, row


def _as_of(f: Facts) -> dict:
    """The latest publication date among the figures shown (when the data record it), and the edition's date."""
    dates, undated = [], set()
    for ref, row in _rows_shown(f):
        if row.published:
            dates.append(row.published)
        else:
            undated.add(ref)
    latest = max(dates, default="")  # every figure used counts, whatever the edition's date
    ends = max(
        (q for q in (f.ctx.norm.latest.get(c) for c in f.settings.companies) if q and q <= f.quarter),
        default=f.quarter,
    )
    t = f.text
    return {
        "published": t.date(date.fromisoformat(latest)) if latest else "",
        "undated": len(undated),  # source rows without a recorded publication date
        "period_end": t.date(_period_end(ends)),
        "edition": t.date(f.edition_date),
    }


def _source_line(f: Facts) -> str:
    return f.text.gettext("Source: company reports and filings as listed under Sources; reportgen calculations.")


# -- what changed since the previous edition of this quarter ------------------------------------------------------
def _shown_metrics(f: Facts) -> dict[str, set[str]]:
    """Which metrics the briefing shows for each company (the scorecard's and the section metric; the SG&A ratio
    where a group shows it beside proxies) and for each segment (revenue, its growth, gross margin)."""
    sm = f.section_metric
    base = set(f.settings.metrics) | {sm.id}
    out = {c: set(base) for c in f.settings.companies}
    if sm.like_for_like:
        for g in f.groups:
            if any(set(sm.other_definition) & set(f.by[b][(m, sm.id)]["flags"]) for b in f.bases for m in g.members):
                for c in (f.subject, *g.members):
                    out[c].add(sm.like_for_like)
        out[f.subject].add(sm.like_for_like)  # page 1 shows the subject's SG&A ratio beside proxies
    for g in f.groups:
        for entity in f.segments_of(g.id):
            out[entity] = {"revenue", "revenue_yoy", "gross_margin"}
    return out


def snapshot(f: Facts, found) -> dict:
    """What the reader sees, in a form the next edition can compare with: every figure as shown (with the
    documents behind it) and every comparison's direction."""
    shown = {}
    visible = _shown_metrics(f)
    for b in f.bases:
        for rec in f.records[b]:
            if rec["metric"] not in visible.get(rec["company"], ()):
                continue  # a figure the briefing does not show cannot have changed for its reader
            unit = metric_of(rec["metric"]).unit
            reports = sorted({f.rows[r].report for r in rec["sources"] if r in f.rows})
            # the figure as shown, and as English shows it: the key that says whether it changed in any language
            key = fmt_value(rec["value"], unit, rec.get("uncertainty"), "en")
            shown[f"{b}|{rec['company']}|{rec['metric']}"] = [f.shown(rec, unit), reports, sorted(rec["flags"]), key]
    comparisons = {c.peer: [c.side, c.basis, c.metric] for c in found.comparisons}
    return {"figures": shown, "comparisons": comparisons}


def changes(f: Facts, found, snap: dict) -> dict:
    """The box that opens a re-run edition of the same quarter: peers added, figures changed old -> new with the
    reason, findings that flipped. When nothing a reader sees changed since the edition it replaces, the box of
    that edition is kept (so a rebuild changes no word)."""
    prev = f.previous or {}
    old = prev.get("snapshot")
    if not old:
        return {"items": [], "since": ""}
    t = f.text
    _ = t.gettext
    items = []
    old_fig, new_fig = old.get("figures", {}), snap["figures"]
    na = t.not_available
    sm = f.section_metric.id
    for c in f.settings.companies:
        key = f"{QUARTER}|{c}|revenue"
        if key in new_fig and new_fig[key][0] != na and (key not in old_fig or old_fig[key][0] == na):
            items.append(_("{name} reported: now in the comparisons").format(name=f.name(c)))
    order = {m.id: i for i, m in enumerate(METRICS)}
    changed = []

    def missing(a: list) -> bool:
        return a[0] == na or (len(a) > 3 and a[3] == NOT_AVAILABLE)

    def same(a: list, b: list) -> bool:  # by the language-independent key where both have one
        return a[3] == b[3] if len(a) > 3 and len(b) > 3 else a[0] == b[0]

    for key, (text, reports, *rest) in new_fig.items():
        before = old_fig.get(key)
        if before is None or same(before, new_fig[key]) or missing(before) or missing(new_fig[key]):
            continue
        basis, company, metric = key.split("|")
        flags, old_flags = (rest or [[]])[0], (old_fig[key][2:] or [[]])[0]
        if "restated" in flags and "restated" not in old_flags:
            why = _("restated in a later report")
        elif reports != old_fig[key][1]:
            why = _("now from {reports}").format(reports=t.gettext(", ").join(reports))
        else:
            why = _("the data behind it changed")
        changed.append(
            (
                metric != sm,
                order.get(metric, 99),
                _("{name}, {metric} ({period}): {old} → {new} ({why})").format(
                    name=f.name(company),
                    metric=_(metric_of(metric).label),
                    period=f.period_short.get(basis, basis),
                    old=old_fig[key][0],
                    new=text,
                    why=why,
                ),
            )
        )
    items += [line for *_k, line in sorted(changed)[:12]]
    if len(changed) > 12:
        items.append(_("… and {n} more figures (the metric table has them all)").format(n=len(changed) - 12))

    def direction(side: str) -> str:
        return "above" if side.endswith("above") else "below" if side.endswith("below") else "in_line"

    words = t.templates(DEFAULT_TEMPLATES, f.templates)
    for peer, (side, basis, _metric) in snap["comparisons"].items():
        before = old.get("comparisons", {}).get(peer)
        if not before:
            continue
        if direction(before[0]) != direction(side):  # a finding flips when its direction does, not its degree
            items.append(
                _("Finding flipped: {subject} is now {now} {peer} (was {was})").format(
                    subject=f.name(f.subject), now=words[side], peer=f.name(peer), was=words[before[0]]
                )
            )
        elif before[1] != basis and basis in f.period:
            items.append(_("{peer} is now compared on {period}").format(peer=f.name(peer), period=f.period[basis]))
    if not items:  # nothing a reader sees changed: the replaced edition's box stays as it was
        return prev.get("changes_box") or {"items": [], "since": ""}
    since = prev.get("edition_date", "")
    try:
        since = t.date(date.fromisoformat(since))
    except (TypeError, ValueError):
        pass
    return {"items": items, "since": since}


# -- the findings, the scorecards, the sections --------------------------------------------------------------------
def key_findings(f: Facts, found) -> dict:
    """The sentences, their notes, and the key to the marks they use (read off the superscripts)."""
    from .model import SUPERSCRIPT

    back = {v: k for k, v in SUPERSCRIPT.items()}
    used = "".join(back.get(ch, "") for s in found.sentences for ch in s)
    return {"findings": found.sentences, "notes": found.notes, "findings_key": f.key(used)}


def scorecards(f: Facts) -> dict:
    """One scorecard per basis: companies by group, the workspace's metrics; a group's median only over three or
    more peers of one definition, the subject's rank with its direction, never over fewer than two."""
    t, s = f.text, f.settings
    _ = t.gettext
    shown = [BY_ID[m] for m in s.metrics]
    cards = []
    for b in f.bases:
        notes = Notes()
        used = ""

        def row(cid, b=b, notes=notes):
            nonlocal used
            if not f.reported[cid] and cid != f.subject:
                return {**f.person(cid), "cells": [f.absent(cid) for _m in shown]}
            cells = [f.cell(f.by[b].get((cid, m.id)), m.unit, notes) for m in shown]
            used += "".join(c["marks"] for c in cells)
            return {**f.person(cid), "cells": cells}

        groups = []
        for g in f.groups:
            medians, ranks = [], []
            for m in shown:
                st = f.stat[b][(g.id, m.id)]
                medians.append(
                    {
                        "text": t.fmt(st["median"], m.unit) if st["median"] is not None else "–",
                        "n": st["n"],
                        "marks": marks(st["flags"]) if st["median"] is not None else "",
                    }
                )
                ranks.append(_rank_text(t, st))
            used += "".join(x["marks"] for x in medians)
            groups.append(
                {"id": g.id, "label": g.label, "rows": [row(c) for c in g.members], "medians": medians, "ranks": ranks}
            )
        subject_row = row(f.subject)
        cards.append(
            {
                "basis": b,
                "caption": _("Scorecard, {period}").format(period=f.period[b]),
                "metrics": [{"id": m.id, "label": t.gettext(m.label)} for m in shown],
                "subject": subject_row,
                "groups": groups,
                "notes": notes.items,
                "key": f.key(used),
            }
        )
    return {"scorecards": cards}


def _rank_text(t: Text, st: dict) -> str:
    """ "lowest of 5", "2nd lowest of 5" (the direction says which end is best); nothing among fewer than two."""
    rank = st["subject_rank"]
    if is_missing(rank) or rank is None:
        return ""
    _ = t.gettext
    rank, n = int(rank), int(st["ranked"])
    word = _("lowest") if st["direction"] == "lowest" else _("highest")
    if rank == 1:
        return _("{word} of {n}").format(word=word, n=n)
    ordinal = {2: _("2nd"), 3: _("3rd")}.get(rank, _("{n}th").format(n=rank))
    return _("{ordinal} {word} of {n}").format(ordinal=ordinal, word=word, n=n)


def section(f: Facts, g, gi: int) -> dict:
    """One peer group: bars of the section metric on each basis side by side, its single-quarter trend against the
    peer median, and a table of growth and margins where every n/a says why."""
    t, s, sm = f.text, f.settings, f.section_metric
    _ = t.gettext
    label = _(sm.label)
    panels, used, values_text = [], "", []
    margins = _segment_margins(f, g)
    for b in f.bases:
        bars, mk = _bars(f, b, list(g.members), with_sga=True)
        used += mk
        median, median_label = _group_median(f, g, b)
        ptitle = (
            f.period_short[b]
            if margins is None
            else _("{metric}, {period}").format(metric=label, period=f.period_short[b])
        )
        panels.append((ptitle, bars, median, median_label))
        items = [f"{x.label} {x.text}" for x in bars]
        items += [f"{median_label} {t.fmt(median, 'ratio')}"] if median is not None else []
        values_text.append(_("{name}: {values}").format(name=f.period[b], values=t.seq(items)))
    alt = _("{metric}, {group}. {values}").format(metric=label, group=g.label, values=t.gettext(". ").join(values_text))
    title = _("{metric}: {subject} and {group}").format(metric=label, subject=f.name(f.subject), group=g.label)
    subtitle = _("Each basis in its own panel; hatched: SG&A; dashed: the peers' median where three or more")
    below = ()
    if margins is not None:  # the segment's gross margin under the section metric: one figure, one source line
        m_panels, m_used, m_alt = margins
        used += m_used
        below = (tuple(m_panels),)
        alt += " " + m_alt
        title = _("{metric} and gross margin: {subject} and {group}").format(
            metric=label, subject=f.name(f.subject), group=g.label
        )
    bar = charts.hbars(panels, title, subtitle, _source_line(f), alt, **_chart_words(t), below=below)
    quarters = [f.quarter.shift(-k) for k in range(s.trend_quarters - 1, -1, -1)]
    series, without = [], []
    per_quarter: dict[Quarter, list[float]] = {q: [] for q in quarters}
    trend_marks = set()
    for c in [f.subject, *g.members]:
        results = [compute_one(f.ctx.norm, c, q, QUARTER, sm) for q in quarters]
        vals = []
        other = set()
        for q, r in zip(quarters, results):
            ok = not is_missing(r.value) and not r.old_basis  # figures on a replaced basis are not on the line
            vals.append(r.value if ok else None)
            if ok:
                other |= set(sm.other_definition) & set(r.flags)
            if ok and c != f.subject and not set(sm.other_definition) & set(r.flags):
                per_quarter[q].append(r.value)
        if any(v is not None for v in vals):
            # a line of another definition (SG&A) carries its mark, keyed under the chart
            mark = "".join(SUPERSCRIPT[FLAG[fl].mark] for fl in sorted(other))
            trend_marks.update(FLAG[fl].mark for fl in other)
            series.append(charts.Series(f.name(c) + mark, tuple(vals), c == f.subject))
        elif c != f.subject:
            without.append(f.name(c))
    if trend_marks and sm.like_for_like:  # the subject's SG&A line beside the SG&A reporters'
        like = BY_ID[sm.like_for_like]
        vals = [compute_one(f.ctx.norm, f.subject, q, QUARTER, like) for q in quarters]
        values = tuple(None if is_missing(r.value) or r.old_basis else r.value for r in vals)
        if any(v is not None for v in values):
            trend_marks.add(FLAG["sga_sum"].mark)
            name = _("{name} (SG&A)").format(name=f.name(f.subject)) + SUPERSCRIPT[FLAG["sga_sum"].mark]
            series.insert(1, charts.Series(name, values, True, dashed=False))
    med = tuple(statistics.median(v) if len(v) >= MIN_MEDIAN else None for v in per_quarter.values())
    if any(v is not None for v in med):
        series.append(charts.Series(_("peer median"), med, dashed=True))
    subtitle = _("{metric}, single quarters; dashed: the peers' median where three or more.").format(metric=label)
    if without:
        subtitle += " " + _("No single-quarter figures: {names}.").format(names=_list(t, without))
    alt_lines = [
        _("{name}: {values}").format(
            name=x.label,
            values=t.gettext(", ").join(
                f"{t.quarter(q)} {t.fmt(v, 'ratio') if v is not None else t.not_available}"
                for q, v in zip(quarters, x.values)
            ),
        )
        for x in series
    ]
    trend = charts.trend(
        [t.quarter_short(q) for q in quarters],
        series,
        _("{metric}, the last {n} quarters").format(metric=label, n=len(quarters)),
        subtitle,
        _source_line(f),
        t.seq(alt_lines),
        others=_("Others (thin grey lines): {names}."),
        lang=t.lang,
    )
    notes = Notes()
    change_metric = _change_metric(sm)
    rows = []
    table_marks = ""
    for c in [f.subject, *g.members]:
        if not f.reported[c] and c != f.subject:
            rows.append({**f.person(c), "cells": [f.absent(c)] * (5 + len(f.bases))})
            continue
        by_q = f.by[QUARTER]
        change = compute_one(f.ctx.norm, c, f.quarter, QUARTER, change_metric)
        cells = [
            f.cell(by_q[(c, "revenue")], "rmb_mn", notes),
            f.cell(by_q[(c, "revenue_yoy")], "growth", notes),
            f.cell(by_q[(c, "gross_margin")], "ratio", notes),
        ]
        cells += [f.cell(f.by[b][(c, sm.id)], sm.unit, notes) for b in f.bases]
        cells.append(
            f.cell(
                {
                    "value": change.value,
                    "flags": sorted(change.flags),
                    "reason": change.reason,
                    "uncertainty": change.uncertainty,
                    "note": change.note,
                },
                "pp",
                notes,
            )
        )
        if sm.like_for_like and any(
            set(sm.other_definition) & set(f.by[b][(m, sm.id)]["flags"]) for b in f.bases for m in g.members
        ):
            cells.append(f.cell(by_q[(c, sm.like_for_like)], "ratio", notes))
        table_marks += "".join(x["marks"] for x in cells)
        rows.append({**f.person(c), "cells": cells})
        if c == f.subject:  # the matching segment beside the whole company, labelled as such
            for entity in f.segments_of(g.id):
                seg_cells = [
                    f.cell(by_q.get((entity, "revenue")), "rmb_mn", notes),
                    f.cell(by_q.get((entity, "revenue_yoy")), "growth", notes),
                    f.cell(by_q.get((entity, "gross_margin")), "ratio", notes),
                ]
                why = _("expenses are not split by segment: expense ratios exist only for the whole company")
                seg_cells += [f.unsplit(why, notes)] * (len(cells) - len(seg_cells))
                table_marks += "".join(x["marks"] for x in seg_cells)
                rows.append({**f.person(f.subject), "name": f.name(entity), "name_zh": "", "segment": True,
                             "subject": False, "cells": seg_cells})  # fmt: skip
    columns = [_("Revenue, RMB mn"), _("Revenue YoY"), _("Gross margin")]
    columns += [_("{metric}, {period}").format(metric=label, period=f.period_short[b]) for b in f.bases]
    columns.append(_("{metric}, change YoY").format(metric=label))
    width = max(len(r["cells"]) for r in rows)
    if width > len(columns):
        columns.append(_("SG&A ratio"))
    for r in rows:
        r["cells"] += [{"text": "", "marks": "", "missing": False, "title": "", "note": ""}] * (width - len(r["cells"]))
    return {
        "id": g.id,
        "label": g.label,
        "bar": bar,
        "bar_key": f.key(used),
        "trend": trend,
        "trend_key": f.key("".join(trend_marks)),
        "rows": rows,
        "columns": columns,
        "caption": _("{group}: growth, margin and {metric} ({period} unless marked)").format(
            group=g.label, metric=label, period=f.period[QUARTER]
        ),
        "notes": notes.items,
        "key": f.key(table_marks),
    }


def _segment_margins(f: Facts, g):
    """Where the subject has a segment matching the group: panels of the gross margins of the subject, the segment
    and the peers, one per basis, with the marks they use and their text alternative (None where there is no
    segment). Expenses are not split by segment, so the gross margin is the like-with-like comparison."""
    entities = f.segments_of(g.id)
    if not entities:
        return None
    t = f.text
    _ = t.gettext
    panels, used, values = [], "", []
    for b in f.bases:
        bars = []
        for c in [f.subject, *entities, *g.members]:
            rec = f.by[b].get((c, "gross_margin"))
            if rec is None or is_missing(rec["value"]):
                continue
            used += marks(rec["flags"])
            bars.append(charts.Bar(f.name(c), rec["value"], c == f.subject or c in entities,
                                   sup_marks(rec["flags"]), False, f.shown(rec, "ratio")))  # fmt: skip
        st = f.stat[b][(g.id, "gross_margin")]
        ptitle = _("{metric}, {period}").format(metric=_("Gross margin"), period=f.period_short[b])
        panels.append((ptitle, bars, st["median"], _("peer median")))
        values.append(_("{name}: {values}").format(name=f.period[b], values=t.seq(f"{x.label} {x.text}" for x in bars)))
    alt = _("Gross margin, {group}. {values}").format(group=g.label, values=t.gettext(". ").join(values))
    return panels, used, alt


def _chart_words(t: Text) -> dict:
    """What a bar chart says in the reader's language beyond its figures, and the typeface it is set in."""
    return {"elided": t.gettext("{n} more, {low} to {high}"), "lang": t.lang}


def _group_median(f: Facts, g, basis: str) -> tuple[float | None, str]:
    """The median drawn on a group's bars: of the section metric's own definition when three or more peers have it,
    else of the SG&A ratio when three or more report it; never of a mix."""
    sm = f.section_metric
    _ = f.text.gettext
    st = f.stat[basis][(g.id, sm.id)]
    if st["median"] is not None:
        return st["median"], _("peer median")
    if sm.like_for_like:
        alt = f.stat[basis][(g.id, sm.like_for_like)]
        if alt["median"] is not None:
            return alt["median"], _("peer SG&A median")
    return None, ""


def scatter(f: Facts) -> dict:
    """The section metric against revenue growth, for every company with both, coloured by peer group."""
    t, sm = f.text, f.section_metric
    _ = t.gettext
    basis = f.page_one_basis()
    by = f.by[basis]
    points, left_out, used = [], [], set()
    for gi, g in enumerate([None, *f.groups]):
        members = [f.subject] if g is None else list(g.members)
        for c in members:
            x, y = by[(c, "revenue_yoy")], by[(c, sm.id)]
            if is_missing(x["value"]) or is_missing(y["value"]):
                if f.reported.get(c, True):
                    left_out.append(f.name(c))
                continue
            # a ratio of another definition (SG&A standing for selling) is marked where it stands, keyed below
            other = set(sm.other_definition) & set(y["flags"])
            mark = "".join(SUPERSCRIPT[FLAG[fl].mark] for fl in sorted(other))
            used.update(FLAG[fl].mark for fl in other)
            points.append(charts.Point(f.name(c) + mark, x["value"], y["value"], gi - 1, g is None))
    if not points:
        return {"scatter": None, "scatter_left_out": left_out, "scatter_key": []}
    label = _(sm.label)
    chart = charts.scatter(
        points,
        [g.label for g in f.groups],
        _("{metric} against revenue growth, {period}").format(metric=label, period=f.period[basis]),
        _("Each company with both figures; colour: peer group"),
        _("Revenue growth, year on year"),
        label,
        _source_line(f),
        t.seq(
            _("{name}: {growth}, {ratio}").format(name=p.label, growth=t.fmt(p.x, "growth"), ratio=t.fmt(p.y, "ratio"))
            for p in points
        ),
        unnamed=_("{n} points unnamed for lack of room; the tables give every company."),
        lang=t.lang,
    )
    return {"scatter": chart, "scatter_left_out": left_out, "scatter_key": f.key("".join(used))}


# -- methodology and sources ---------------------------------------------------------------------------------------
def methodology(f: Facts) -> dict:
    t = f.text
    used = {fl for b in f.bases for r in f.records[b] if not is_missing(r["value"]) for fl in r["flags"]}
    return {
        "section_metric": t.gettext(f.section_metric.label),
        "section_phrase": t.gettext(f.section_metric.phrase or f.section_metric.label),
        "metrics": [{"id": m.id, "label": t.gettext(m.label), "definition": t.gettext(m.definition)} for m in METRICS],
        "footnotes": [{"mark": fl.mark, "text": t.gettext(fl.note)} for fl in FLAGS if fl.mark and fl.id in used],
        "slightly_pp": f.settings.slightly_pp,
        "fx": [
            {"currency": k[0], "period": k[1], "basis": k[2], "rate": v[0]}
            for k, v in sorted(f.ctx.data.fx.items())
            if k[1] <= str(f.quarter)
        ],
    }


def _document_kind(f: Facts, url: str) -> tuple[str, str]:
    p = urlparse(url)
    where = (p.netloc + p.path).lower()
    best = max((k for k in f.documents if where.startswith(k)), key=len, default=None)
    return f.documents[best] if best else ("web", p.netloc or url)


def sources(f: Facts) -> dict:
    """Per company, the documents behind the figures shown: issuer, kind, title (the report), date and address;
    the company's own filings first, aggregator pages labelled as such, medium and low confidence marked."""
    t = f.text
    docs: dict[str, dict] = {}
    for _ref, row in _rows_shown(f):
        kind, issuer = _document_kind(f, row.source_url)
        owner = split_entity(row.company)[0]  # a segment's documents are its company's
        d = docs.setdefault(
            (owner, row.source_url),
            {
                "company": owner,
                "url": row.source_url,
                "kind": kind,
                "kind_label": t.gettext(KIND_LABEL[kind]),
                "issuer": issuer,
                "titles": set(),
                "published": "",
                "confidence": set(),
                "link": row.source_url.lower().startswith(("https://", "http://")),
                # the address as shown: without its scheme (the link keeps it), so that most entries take one line
                "shown": re.sub(r"(?i)^https?://", "", row.source_url),
            },
        )
        d["titles"].add(row.report or f"{row.quarter} {row.basis}")
        d["published"] = max(d["published"], row.published)
        if row.confidence:
            d["confidence"].add(row.confidence)
    order = {c: i for i, c in enumerate(f.settings.companies)}
    out = []
    for cid in sorted({d["company"] for d in docs.values()}, key=lambda c: order.get(c, len(order))):
        mine = [d for d in docs.values() if d["company"] == cid]
        mine.sort(key=lambda d: (KIND_RANK[d["kind"]], d["published"] or "9", sorted(d["titles"])[0], d["url"]))
        entries = []
        for d in mine:
            worst = "low" if "low" in d["confidence"] else ("medium" if "medium" in d["confidence"] else "")
            entries.append(
                {
                    **d,
                    "titles": t.seq(sorted(d["titles"])),
                    "mark": {"low": "l", "medium": "m"}.get(worst, ""),
                }
            )
        out.append({"company": f.name(cid), "name_zh": f.person(cid)["name_zh"], "documents": entries})
    return {"sources": out, "sources_key": f.key("lm")}


def assemble(f: Facts) -> dict:
    """Everything the template shows."""
    found = _findings(f)
    snap = snapshot(f, found)
    words = f.settings.words(f.text.lang)
    b = {
        "title": f.text.gettext(words["title"]).format(subject=f.name(f.subject), quarter=f.text.quarter(f.quarter)),
        "subject": f.person(f.subject),
        "author": f.text.gettext(words["author"]),
        "quarter": f.text.quarter(f.quarter),
        "quarter_id": str(f.quarter),
        "edition_date": f.text.date(f.edition_date),
        "html_lang": f.text.html_lang,
        "confidentiality": f.text.gettext(words["confidentiality"]),
        "groups": [{"id": g.id, "label": g.label, "members": [f.person(c) for c in g.members]} for g in f.groups],
        "not_reported": f.not_reported,
        "periods": [{"basis": b, "label": f.period[b], "short": f.period_short[b]} for b in f.bases],
        **answer(f, found),
        "changes": changes(f, found, snap),
        **key_findings(f, found),
        **scorecards(f),
        "sections": [section(f, g, i) for i, g in enumerate(f.groups)],
        **scatter(f),
        **methodology(f),
        **sources(f),
        "snapshot": snap,
    }
    b["chart_count"] = 1 + 2 * len(b["sections"]) + (1 if b["scatter"] else 0)
    return b


def _period_end(q: Quarter) -> date:
    day = {3: 31, 6: 30, 9: 30, 12: 31}[q.end_month]
    return date(q.year, q.end_month, day)
