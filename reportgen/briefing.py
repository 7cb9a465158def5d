"""The briefing as plain data for the template, built part by part (cover, findings, scorecard, one section per
peer group, growth against margin, methodology, sources) from one metric table and one set of peer statistics
computed once per build. Charts are SVG text; every word goes through the language's `Text`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from . import charts
from .findings import DEFAULT_TEMPLATES, build_findings
from .i18n import Text
from .metrics import BY_ID, METRICS, Metric, compute_one
from .model import FLAGS, N_, QUARTER, is_missing, marks, sup_marks
from .periods import Quarter

NOT_YET = N_("not yet reported")
NO_FIGURES = N_("no figures in the data")


@dataclass
class Facts:
    """What every part of the briefing is built from: the workspace's settings and data, the quarter, the metric
    table and peer statistics (computed once), and the language."""

    ctx: object  # pipeline.Context: settings, data, norm
    quarter: Quarter
    edition_date: date
    table: pd.DataFrame
    stats: pd.DataFrame
    text: Text
    templates: dict  # the workspace's rewording of the findings (templates/findings.toml)

    def __post_init__(self):
        self.settings = self.ctx.settings
        self.companies = self.ctx.data.companies
        self.records = self.table.to_dict("records")
        self.by = {(r["company"], r["metric"]): r for r in self.records}
        self.stat = {(r["group"], r["metric"]): r for r in self.stats.to_dict("records")}
        self.reported = {cid: self.ctx.norm.has_reported(cid, self.quarter) for cid in self.settings.companies}
        self.empty = set(getattr(self.ctx.data, "empty", ()))
        self.not_reported = [
            self.companies[c].name for c in self.settings.companies if not self.reported[c] and c not in self.empty
        ]
        self.no_figures = [self.companies[c].name for c in self.settings.companies if c in self.empty]
        self.section_metric: Metric = BY_ID[self.settings.section_metric]

    def person(self, cid: str) -> dict:
        c = self.companies[cid]
        return {
            "id": cid,
            "name": c.name,
            "name_zh": c.name_zh,
            "ticker": c.ticker,
            "standard": c.standard,
            "reported": self.reported[cid],
            "no_figures": cid in self.empty,
            "subject": cid == self.settings.subject,
        }

    def cell(self, rec, unit: str) -> dict:
        """A table cell: formatted value, footnote marks, and the reason when missing."""
        t = self.text
        if rec is None:
            return {"text": t.not_available, "marks": "", "missing": True, "title": ""}
        v = rec["value"]
        ok = not is_missing(v)
        return {
            "text": t.fmt(v if ok else None, unit, rec.get("uncertainty")),
            "marks": marks(rec["flags"]) if ok else "",
            "missing": not ok,
            "title": t.reason(rec["reason"]),
        }

    def not_yet(self, cid: str | None = None) -> dict:
        word = NO_FIGURES if cid in self.empty else NOT_YET
        return {"text": self.text.gettext(word), "marks": "", "missing": True, "title": ""}


def cover(f: Facts) -> dict:
    s, t = f.settings, f.text
    subj = f.companies[s.subject]
    latest = max(
        (q for q in (f.ctx.norm.latest.get(c) for c in s.companies) if q and q <= f.quarter), default=f.quarter
    )
    return {
        "title": t.gettext(s.title).format(subject=subj.name, quarter=f.quarter),
        "subject": f.person(s.subject),
        "author": s.author,
        "quarter": str(f.quarter),
        "edition_date": f.edition_date.isoformat(),
        "latest_filing": _period_end(latest),
        "confidentiality": s.confidentiality,
        "groups": [{"id": g.id, "label": g.label, "members": [f.person(c) for c in g.members]} for g in s.groups],
        "not_reported": f.not_reported,
    }


def key_findings(f: Facts) -> dict:
    s, t = f.settings, f.text
    metrics = {m.id: _Translated(m, t) for m in METRICS}
    found = build_findings(
        f.records,
        s.subject,
        s.groups,
        str(f.quarter),
        metrics,
        s.slightly_pp,
        t.templates(DEFAULT_TEMPLATES, f.templates),
        f.not_reported,
        fmt=t.fmt,
        no_figures=f.no_figures,
    )
    return {"findings": found.sentences, "notes": found.notes}


class _Translated:
    """A metric as a sentence shows it in one language: label and phrase translated, unit as is."""

    def __init__(self, metric: Metric, text: Text):
        self.id, self.unit = metric.id, metric.unit
        self.label = text.gettext(metric.label)
        self.phrase = text.gettext(metric.phrase) if metric.phrase else ""


def scorecard(f: Facts) -> dict:
    s, t = f.settings, f.text
    shown = [BY_ID[m] for m in s.metrics]

    def row(cid):
        cells = [f.cell(f.by.get((cid, m.id)), m.unit) if f.reported[cid] else f.not_yet(cid) for m in shown]
        return {**f.person(cid), "cells": cells}

    groups = []
    for g in s.groups:
        stats = [f.stat[(g.id, m.id)] for m in shown]
        medians = [
            {"text": t.fmt(st["median"] if st["n"] else None, m.unit), "n": st["n"], "marks": marks(st["flags"])}
            for st, m in zip(stats, shown)
        ]
        ranks = [
            f"{st['subject_rank']} of {st['ranked']}" if not is_missing(st["subject_rank"]) else "" for st in stats
        ]
        groups.append(
            {"id": g.id, "label": g.label, "rows": [row(c) for c in g.members], "medians": medians, "ranks": ranks}
        )
    return {
        "scorecard": {
            "metrics": [{"id": m.id, "label": t.gettext(m.label)} for m in shown],
            "subject": row(s.subject),
            "groups": groups,
        }
    }


def section(f: Facts, g) -> dict:
    """One peer group: bar chart of the section metric, its trend, and a table of growth and margins."""
    s, t = f.settings, f.text
    _ = t.gettext
    sm = f.section_metric
    label = _(sm.label)
    members = [s.subject] + list(g.members)
    med = f.stat[(g.id, sm.id)]
    bars = [
        charts.Bar(
            f.companies[c].name,
            None if is_missing(f.by[(c, sm.id)]["value"]) else f.by[(c, sm.id)]["value"],
            c == s.subject,
            sup_marks(f.by[(c, sm.id)]["flags"]),
        )
        for c in members
    ]
    bar_svg = charts.bar_chart(
        bars,
        f"{label}, {f.quarter}",
        _("{metric} (% of revenue)").format(metric=label),
        med["median"] if med["n"] else None,
        _("peer median"),
    )
    quarters = [f.quarter.shift(-k) for k in range(s.trend_quarters - 1, -1, -1)]
    series, dropped = [], []
    for c in members:
        results = [compute_one(f.ctx.norm, c, q, QUARTER, sm) for q in quarters]
        # Figures on a basis a later policy change replaced (e.g. before CAS Interpretation No. 18) are not
        # comparable with the rest of the line: left out, and the caption says so.
        dropped += [
            f"{f.companies[c].name} {q}" for q, r in zip(quarters, results) if r.old_basis and not is_missing(r.value)
        ]
        vals = tuple(None if r.old_basis else r.value for r in results)
        series.append(charts.Series(f.companies[c].name, vals, c == s.subject))
    trend_svg = charts.trend_chart(
        [str(q) for q in quarters],
        series,
        _("{metric}, last {n} quarters").format(metric=label, n=len(quarters)),
        _("{metric} (% of revenue)").format(metric=label),
        _("Calendar quarter"),
    )
    sm_change = Metric(f"{sm.id}_yoy_pp", "", "pp", sm.lower_is_better, "", kind="yoy_pp", base=sm.id)
    rows = []
    for c in members:
        if not f.reported[c]:
            rows.append({**f.person(c), "cells": [f.not_yet(c)] * 7})
            continue
        change = compute_one(f.ctx.norm, c, f.quarter, QUARTER, sm_change)
        prior = compute_one(f.ctx.norm, c, f.quarter.shift(-4), QUARTER, sm)
        # a prior-year figure on a basis a later policy change replaced is not shown beside this year's
        prior_reason = prior.reason or (
            _("as first published, before {policies}; not comparable").format(
                policies=", ".join(sorted(prior.old_basis))
            )
            if prior.old_basis
            else ""
        )
        cells = [
            f.cell(f.by[(c, "revenue")], "rmb_mn"),
            f.cell(f.by[(c, "revenue_yoy")], "growth"),
            f.cell(f.by[(c, "gross_margin")], "ratio"),
            f.cell(f.by[(c, "gross_margin_yoy_pp")], "pp"),
            f.cell(f.by[(c, sm.id)], sm.unit),
            f.cell(
                {
                    "value": None if prior.old_basis else prior.value,
                    "flags": sorted(prior.flags),
                    "reason": prior_reason,
                    "uncertainty": prior.uncertainty,
                },
                sm.unit,
            ),
            f.cell(
                {
                    "value": change.value,
                    "flags": sorted(change.flags),
                    "reason": change.reason,
                    "uncertainty": change.uncertainty,
                },
                "pp",
            ),
        ]
        rows.append({**f.person(c), "cells": cells})
    return {
        "id": g.id,
        "label": g.label,
        "bar_svg": bar_svg,
        "trend_svg": trend_svg,
        "rows": rows,
        "trend_dropped": dropped,
        "columns": [
            _("Revenue (RMB mn)"),
            _("Revenue YoY"),
            _("Gross margin"),
            _("Gross margin YoY"),
            label,
            f"{label}, {f.quarter.shift(-4)}",
            _("Change YoY"),
        ],
    }


def scatter(f: Facts) -> dict:
    """Revenue growth against gross margin, for every company with both."""
    s, t = f.settings, f.text
    points = []
    for cid in s.companies:
        g, m, r = (f.by[(cid, k)]["value"] for k in ("revenue_yoy", "gross_margin", "revenue"))
        if not (is_missing(g) or is_missing(m) or is_missing(r)):
            points.append(charts.Point(f.companies[cid].name, g, m, r, cid == s.subject))
    shown = {p.label for p in points}
    left_out = [f.companies[c].name for c in s.companies if f.reported[c] and f.companies[c].name not in shown]
    svg = (
        charts.scatter_chart(
            points,
            t.gettext("Revenue growth against gross margin, {quarter}").format(quarter=f.quarter),
            t.gettext("Revenue growth, year on year"),
            t.gettext("Gross margin"),
        )
        if points
        else ""
    )
    return {"scatter_svg": svg, "scatter_left_out": left_out}


def methodology(f: Facts) -> dict:
    t = f.text
    used = {fl for r in f.records if not is_missing(r["value"]) for fl in r["flags"]}
    return {
        "section_metric": t.gettext(f.section_metric.label),
        "metrics": [
            {
                "id": m.id,
                "label": t.gettext(m.label),
                "definition": t.gettext(m.definition),
                "lower_is_better": m.lower_is_better,
            }
            for m in METRICS
        ],
        "footnotes": [{"mark": fl.mark, "text": t.gettext(fl.note)} for fl in FLAGS if fl.mark and fl.id in used],
        "slightly_pp": f.settings.slightly_pp,
        "fx": [
            {"currency": k[0], "period": k[1], "basis": k[2], "rate": v[0]}
            for k, v in sorted(f.ctx.data.fx.items())
            if k[1] <= str(f.quarter)
        ],
    }


def sources(f: Facts) -> dict:
    """Every source document behind a figure shown: company, period, basis, labels, URL, file:line."""
    index = {f"{r.file}:{r.line}": r for r in f.ctx.data.rows}
    seen: dict[tuple, dict] = {}
    for rec in f.records:
        for ref in rec["sources"]:
            r = index.get(ref)
            if r is None:
                continue
            key = (r.company, str(r.quarter), r.basis, r.source_url)
            entry = seen.setdefault(
                key,
                {
                    "company": f.companies[r.company].name,
                    "period": str(r.quarter),
                    "basis": r.basis,
                    "labels": set(),
                    "url": r.source_url,
                    "refs": set(),
                    "vintage": r.vintage,
                },
            )
            entry["labels"].add(r.label)
            entry["refs"].add(ref)
    order = {c: i for i, c in enumerate(f.settings.companies)}
    out = []
    for key in sorted(seen, key=lambda k: (order.get(k[0], len(order)), k[1], int(k[2][:-1]), k[3])):
        e = seen[key]
        out.append(
            {
                **e,
                "labels": ", ".join(sorted(e["labels"])),
                "refs": ", ".join(sorted(e["refs"])),
                # only web addresses become links: a javascript: or file: URL in a data file stays text
                "link": e["url"].lower().startswith(("https://", "http://")),
            }
        )
    return {"sources": out}


def assemble(f: Facts) -> dict:
    """Everything the template shows, for one quarter (single-quarter basis)."""
    sections = [section(f, g) for g in f.settings.groups]
    b = {**cover(f), **key_findings(f), **scorecard(f), "sections": sections, **scatter(f), **methodology(f)}
    b.update(sources(f))
    b["chart_count"] = 2 * len(sections) + (1 if b["scatter_svg"] else 0)
    return b


def _period_end(q: Quarter) -> str:
    day = {3: 31, 6: 30, 9: 30, 12: 31}[q.end_month]
    return date(q.year, q.end_month, day).isoformat()
