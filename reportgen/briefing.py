"""Assemble the briefing as plain data (dict) from the metric table: cover, findings, scorecard, sections,
growth-vs-margin, methodology and sources. Charts are SVG text."""

from __future__ import annotations

import math
from datetime import date

from . import charts
from .findings import build_findings, sup_marks
from .formats import FLAG_MARKS, NOT_AVAILABLE, fmt_value, marks
from .metrics import BY_ID, FLAG_NOTES, METRICS, Metric, compute_metrics, compute_one, peer_stats
from .normalize import QUARTER
from .periods import Quarter

NOT_YET = "not yet reported"


def _ok(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _cell(rec, unit):
    """A table cell: formatted value, footnote marks, and the reason when missing."""
    if rec is None:
        return {"text": NOT_AVAILABLE, "marks": "", "missing": True, "title": ""}
    v = rec["value"]
    return {
        "text": fmt_value(v if _ok(v) else None, unit),
        "marks": marks(rec["flags"]) if _ok(v) else "",
        "missing": not _ok(v),
        "title": rec["reason"],
    }


def assemble(ctx, quarter: Quarter, edition_date: date, templates: dict | None = None) -> dict:
    """Everything the template shows, for one quarter (single-quarter basis)."""
    s = ctx.settings
    table = compute_metrics(ctx.norm, ctx.company_rows(), quarter, QUARTER)
    records = table.to_dict("records")
    by = {(r["company"], r["metric"]): r for r in records}
    companies = ctx.data.companies
    reported = {cid: ctx.norm.has_reported(cid, quarter) for cid in s.companies}
    not_reported = [companies[c].name for c in s.companies if not reported[c]]
    stats = peer_stats(table, s.subject, s.groups)
    stat = {(r["group"], r["metric"]): r for r in stats.to_dict("records")}
    subj = companies[s.subject]

    def person(cid):
        c = companies[cid]
        return {
            "id": cid,
            "name": c.name,
            "name_zh": c.name_zh,
            "ticker": c.ticker,
            "standard": c.standard,
            "reported": reported[cid],
            "subject": cid == s.subject,
        }

    findings = build_findings(records, s.subject, s.groups, str(quarter), BY_ID, s.slightly_pp, templates, not_reported)
    shown_metrics = [BY_ID[m] for m in s.metrics]

    def row(cid):
        cells = [
            (
                _cell(by.get((cid, m.id)), m.unit)
                if reported[cid]
                else {"text": NOT_YET, "marks": "", "missing": True, "title": ""}
            )
            for m in shown_metrics
        ]
        return {**person(cid), "cells": cells}

    scorecard = {
        "metrics": [{"id": m.id, "label": m.label} for m in shown_metrics],
        "subject": row(s.subject),
        "groups": [],
    }
    for g in s.groups:
        medians = [
            {
                "text": fmt_value(stat[(g.id, m.id)]["median"] if stat[(g.id, m.id)]["n"] else None, m.unit),
                "n": stat[(g.id, m.id)]["n"],
                "marks": marks(stat[(g.id, m.id)]["flags"]),
            }
            for m in shown_metrics
        ]
        ranks = [stat[(g.id, m.id)] for m in shown_metrics]
        scorecard["groups"].append(
            {
                "id": g.id,
                "label": g.label,
                "rows": [row(c) for c in g.members],
                "medians": medians,
                "ranks": [f"{r['subject_rank']} of {r['ranked']}" if _ok(r["subject_rank"]) else "" for r in ranks],
            }
        )

    sm: Metric = BY_ID[s.section_metric]
    sm_change = Metric(
        f"{sm.id}_yoy_pp", f"{sm.label} change YoY", "pp", sm.lower_is_better, "", kind="yoy_pp", base=sm.id
    )
    quarters = [quarter.shift(-k) for k in range(s.trend_quarters - 1, -1, -1)]
    sections = []
    for g in s.groups:
        members = [s.subject] + list(g.members)
        med = stat[(g.id, sm.id)]
        bars = [
            charts.Bar(
                companies[c].name,
                by[(c, sm.id)]["value"] if _ok(by[(c, sm.id)]["value"]) else None,
                c == s.subject,
                sup_marks(by[(c, sm.id)]["flags"]),
            )
            for c in members
        ]
        bar_svg = charts.bar_chart(
            bars,
            f"{sm.label}, {quarter}",
            f"{sm.label} (% of revenue)",
            med["median"] if med["n"] else None,
            "peer median",
        )
        series, dropped = [], []
        for c in members:
            results = [compute_one(ctx.norm, c, q, QUARTER, sm) for q in quarters]
            # Figures on a basis a later policy change replaced (e.g. before CAS Interpretation No. 18) are not
            # comparable with the rest of the line: left out, and the caption says so.
            dropped += [f"{companies[c].name} {q}" for q, r in zip(quarters, results) if r.old_basis and _ok(r.value)]
            vals = tuple(None if r.old_basis else r.value for r in results)
            series.append(charts.Series(companies[c].name, vals, c == s.subject))
        trend_svg = charts.trend_chart(
            [str(q) for q in quarters],
            series,
            f"{sm.label}, last {len(quarters)} quarters",
            f"{sm.label} (% of revenue)",
        )
        rows = []
        for c in members:
            change = compute_one(ctx.norm, c, quarter, QUARTER, sm_change)
            prior = compute_one(ctx.norm, c, quarter.shift(-4), QUARTER, sm)
            rows.append(
                {
                    **person(c),
                    "cells": [
                        _cell(by[(c, "revenue")], "rmb_mn"),
                        _cell(by[(c, "revenue_yoy")], "growth"),
                        _cell(by[(c, "gross_margin")], "ratio"),
                        _cell(by[(c, "gross_margin_yoy_pp")], "pp"),
                        _cell(by[(c, sm.id)], sm.unit),
                        # a prior-year figure on a basis a later policy change replaced is not shown beside this year's
                        _cell(
                            {
                                "value": None if prior.old_basis else prior.value,
                                "flags": sorted(prior.flags),
                                "reason": prior.reason
                                or (
                                    "as first published, before "
                                    + ", ".join(sorted(prior.old_basis))
                                    + "; not comparable"
                                    if prior.old_basis
                                    else ""
                                ),
                            },
                            sm.unit,
                        ),
                        _cell({"value": change.value, "flags": sorted(change.flags), "reason": change.reason}, "pp"),
                    ]
                    if reported[c]
                    else [{"text": NOT_YET, "marks": "", "missing": True, "title": ""}] * 7,
                }
            )
        sections.append(
            {
                "id": g.id,
                "label": g.label,
                "bar_svg": bar_svg,
                "trend_svg": trend_svg,
                "rows": rows,
                "trend_dropped": dropped,
                "columns": [
                    "Revenue (RMB mn)",
                    "Revenue YoY",
                    "Gross margin",
                    "Gross margin YoY",
                    f"{sm.label}",
                    f"{sm.label}, {quarter.shift(-4)}",
                    "Change YoY",
                ],
            }
        )

    points = []
    for cid in s.companies:
        g, m, r = by[(cid, "revenue_yoy")]["value"], by[(cid, "gross_margin")]["value"], by[(cid, "revenue")]["value"]
        if _ok(g) and _ok(m) and _ok(r):
            points.append(charts.Point(companies[cid].name, g, m, r, cid == s.subject))
    left_out = [
        companies[c].name for c in s.companies if reported[c] and not any(p.label == companies[c].name for p in points)
    ]
    scatter_svg = (
        charts.scatter_chart(
            points, f"Revenue growth against gross margin, {quarter}", "Revenue growth, year on year", "Gross margin"
        )
        if points
        else ""
    )

    used_flags = {f for r in records if _ok(r["value"]) for f in r["flags"]}
    sources = _sources(ctx, records)
    latest = max((q for q in (ctx.norm.latest.get(c) for c in s.companies) if q and q <= quarter), default=quarter)
    return {
        "title": s.title.format(subject=subj.name, quarter=quarter),
        "subject": person(s.subject),
        "author": s.author,
        "quarter": str(quarter),
        "edition_date": edition_date.isoformat(),
        "latest_filing": _period_end(latest),
        "confidentiality": s.confidentiality,
        "groups": [{"id": g.id, "label": g.label, "members": [person(c) for c in g.members]} for g in s.groups],
        "not_reported": not_reported,
        "findings": findings.sentences,
        "notes": findings.notes,
        "scorecard": scorecard,
        "sections": sections,
        "section_metric": sm.label,
        "scatter_svg": scatter_svg,
        "scatter_left_out": left_out,
        "metrics": [
            {"id": m.id, "label": m.label, "definition": m.definition, "lower_is_better": m.lower_is_better}
            for m in METRICS
        ],
        "footnotes": [{"mark": FLAG_MARKS[f], "text": FLAG_NOTES[f]} for f in FLAG_MARKS if f in used_flags],
        "slightly_pp": s.slightly_pp,
        "fx": [
            {"currency": k[0], "period": k[1], "basis": k[2], "rate": v[0]}
            for k, v in sorted(ctx.data.fx.items())
            if k[1] <= str(quarter)
        ],
        "sources": sources,
        "chart_count": 2 * len(sections) + (1 if scatter_svg else 0),
    }


def _period_end(q: Quarter) -> str:
    day = {3: 31, 6: 30, 9: 30, 12: 31}[q.end_month]
    return date(q.year, q.end_month, day).isoformat()


def _sources(ctx, records) -> list[dict]:
    """Every source document behind a figure shown: company, period, basis, labels, URL, file:line."""
    index = {}
    for r in ctx.data.rows:
        index[f"{r['file']}:{r['line']}"] = r
    seen = {}
    for rec in records:
        for ref in rec["sources"]:
            r = index.get(ref)
            if not r:
                continue
            key = (r["company"], str(r["quarter"]), r["basis"], r["source_url"])
            entry = seen.setdefault(
                key,
                {
                    "company": ctx.data.companies[r["company"]].name,
                    "period": str(r["quarter"]),
                    "basis": r["basis"],
                    "labels": set(),
                    "url": r["source_url"],
                    "refs": set(),
                    "vintage": r["vintage"],
                },
            )
            entry["labels"].add(r["label"])
            entry["refs"].add(ref)
    order = {c: i for i, c in enumerate(ctx.settings.companies)}
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
    return out
