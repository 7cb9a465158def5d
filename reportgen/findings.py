"""Pure findings: the metric tables (single quarter and year to date) -> comparisons and plain sentences that state
the values they compare, on the basis where each comparison holds, like for like.

Comparison words follow one rule, stated in the briefing's methodology: the subject is "in line with" a peer
when the two differ by at most 0.05 percentage points, "slightly" above or below within `slightly_pp`
percentage points (default 1), and plainly above or below beyond that. Ratios and growth rates are compared
in percentage points.

Each peer is compared on the single quarter where both it and the subject have a value, else on the year to date
(the first half for a Q2 edition), and the sentence says which. Where a peer's value is another definition (a
selling ratio that is really SG&A) the subject's value of that definition stands against it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import N_, NC_, is_missing, sup_marks

IN_LINE_PP = 0.05

#: the wording of every sentence (msgids of the catalogue); a workspace's templates/findings.toml may reword them
DEFAULT_TEMPLATES = {
    "headline_all": N_("{subject}'s {metric}, {value} in {period}, is {side} every peer's"),
    "headline_all_but": N_("{subject}'s {metric}, {value} in {period}, is {side} every peer's but {names}"),
    "headline_some": N_("{subject}'s {metric}, {value} in {period}, is {side} {count} of its {total} peers'"),
    "headline_none": N_("{subject}'s {metric} in {period}: no peer to compare with yet"),
    "headline_in_line_all": N_("{subject}'s {metric}, {value} in {period}, is in line with its peers'"),
    "headline_in_line": N_(", in line with {names}"),
    "headline_like_for_like": N_(", like for like"),
    "headline_coverage": N_(" ({count} of {total} peers have a figure)"),
    "possessive": N_("{name}'s"),
    "possessive_s": N_("{name}'"),  # a name ending in a plural s: Hisense Home Appliances'
    "group_sentence": N_("{group}: {clauses}."),
    "metric_sentence": N_("{clauses}."),
    "clause": N_("in {period}, {subject}'s {metric} of {value} is {comparisons}"),
    "clause_first": N_("In {period}, {subject}'s {metric} of {value} is {comparisons}"),
    "clause_same": N_("its {metric} of {value} is {comparisons}"),  # a second clause on the same basis
    # the subject's segment against the peer group it matches (expenses are not split by segment)
    "segment_sentence": N_("{group}, like with like: {clauses}; expense ratios exist only for the whole company."),
    "segment_clause": N_("in {period}, the {subject}'s {metric} of {value} is {comparisons}"),
    "peer_value": N_("{owner} {value}"),
    "largest_move": N_("The largest year-on-year move in {metric} was {company}'s {change}, to {value}."),
    "left_out": N_(
        "{companies} had not reported {quarter} figures when this edition was built and are left out of "
        "the comparisons."
    ),
    "not_available": N_("{metric}: no figure for {companies} on either basis (see the tables for why)."),
    "no_figures": N_("{companies}: no figures in the data, so left out of the comparisons."),
    "in_line": N_("in line with"),
    "slightly_above": N_("slightly above"),
    "slightly_below": N_("slightly below"),
    "above": N_("above"),
    "below": N_("below"),
    "amount": N_("RMB {value} million"),
    "and": N_(" and "),
    "list_sep": N_(", "),  # between the items of a list, and between the comparison groups of a clause
    "clause_sep": N_("; "),  # between the clauses of a sentence (one per basis and definition)
    "comparison": N_("{word} {peers}"),  # "below Midea's 9.1%"
    # between the comparison groups of a clause: "below A's 9.1%, slightly above B's"
    "comparison_sep": NC_("between comparisons", ", "),
}
#: placeholders each sentence may use (checked when a workspace rewords one)
PLACEHOLDERS = {k: frozenset(re.findall(r"{(\w+)}", v)) for k, v in DEFAULT_TEMPLATES.items()}
PLACEHOLDERS["peer_value"] |= {"peer"}  # the name alone, for a wording without the possessive
PLACEHOLDERS["clause_same"] |= {"subject", "period"}
PLACEHOLDERS["headline_all_but"] |= {"peers"}  # the names alone, where a language needs no possessive
PLACEHOLDERS["headline_in_line"] |= {"peers"}
POSITION_METRICS = ("revenue_yoy", "gross_margin", "rnd_ratio")
MOVE_METRICS = ("revenue_yoy", "gross_margin_yoy_pp")


@dataclass(frozen=True)
class View:
    """One basis of the metric table: `basis` ("quarter" or "ytd"), `period` as a reader reads it ("2025Q2", "the
    first half of 2025"), and its records by (company, metric)."""

    basis: str
    period: str
    by: dict


@dataclass(frozen=True)
class Comparison:
    """The subject against one peer on one metric: on which basis, which definition, and the word."""

    peer: str
    group: str
    basis: str
    metric: str  # the metric compared: the section metric, or its like-for-like other definition
    subject: dict  # the subject's record
    other: dict  # the peer's record
    word: str  # "below", "slightly above", ...
    side: str  # "above" | "below" | "in_line" (untranslated)

    @property
    def gap_pp(self) -> float:
        return (self.subject["value"] - self.other["value"]) * 100


@dataclass
class Findings:
    headline: str = ""
    sentences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)  # of the section metric, one per peer with a value
    segment_comparisons: list[Comparison] = field(default_factory=list)  # segments' gross margins against peers


def comparison_word(subject: float, peer: float, slightly_pp: float, words: dict) -> str:
    """'above', 'slightly below', 'in line with' ... for the subject's value against a peer's (fractions)."""
    return words[comparison_side(subject, peer, slightly_pp)]


def comparison_side(subject: float, peer: float, slightly_pp: float) -> str:
    """The key of the comparison word: in_line, slightly_above, slightly_below, above or below."""
    diff_pp = (subject - peer) * 100
    if abs(diff_pp) <= IN_LINE_PP + 1e-12:
        return "in_line"
    side = "above" if diff_pp > 0 else "below"
    return f"slightly_{side}" if abs(diff_pp) <= slightly_pp + 1e-12 else side


def _has(rec) -> bool:
    return rec is not None and not is_missing(rec.get("value"))


def _join(items: list[str], and_: str = " and ", sep: str = ", ") -> str:
    return items[0] if len(items) == 1 else sep.join(items[:-1]) + and_ + items[-1]


def compare(
    views: list[View], subject: str, groups, metric, slightly_pp: float, words: dict, catalogue: dict
) -> tuple[list[Comparison], list[str]]:
    """The subject against every peer on `metric`: on the first view (basis) where both have a value, like for like
    (a peer value flagged as another definition is compared on `metric.like_for_like`). Returns the comparisons and
    the peers that could not be compared on any basis."""
    out, gaps = [], []
    other_def = set(getattr(metric, "other_definition", ()) or ())
    for g in groups:
        for peer in g.members:
            found = None
            for view in views:
                mid = metric.id
                mine, theirs = view.by.get((subject, mid)), view.by.get((peer, mid))
                if not (_has(mine) and _has(theirs)):
                    continue
                if other_def & set(theirs["flags"]) and metric.like_for_like in catalogue:
                    mid = metric.like_for_like
                    mine, theirs = view.by.get((subject, mid)), view.by.get((peer, mid))
                    if not (_has(mine) and _has(theirs)):
                        continue
                side = comparison_side(mine["value"], theirs["value"], slightly_pp)
                found = Comparison(peer, g.id, view.basis, mid, mine, theirs, words[side], side)
                break
            if found:
                out.append(found)
            else:
                gaps.append(peer)
    return out, gaps


def _clauses(comps: list[Comparison], views: list[View], subject_name: str, names: dict, metrics: dict, t: dict,
             shown, first: bool, clause: str = "clause") -> list[str]:  # fmt: skip
    """One clause per (basis, definition) among the comparisons, in the views' order."""
    clauses = []
    order = {v.basis: i for i, v in enumerate(views)}
    periods = {v.basis: v.period for v in views}
    keys = sorted({(c.basis, c.metric) for c in comps}, key=lambda k: (order[k[0]], k[1] != comps[0].metric))
    for basis, mid in keys:
        chunk = [c for c in comps if (c.basis, c.metric) == (basis, mid)]
        by_word: dict[str, list[str]] = {}
        for c in chunk:
            peer = names[c.peer]
            by_word.setdefault(c.word, []).append(
                t["peer_value"].format(peer=peer, value=shown(c.other, mid), owner=possessive(peer, t))
            )
        comparisons = t["comparison_sep"].join(
            t["comparison"].format(word=w, peers=_join(items, t["and"], t["list_sep"])) for w, items in by_word.items()
        )
        if clauses and keys[len(clauses) - 1][0] == basis:
            template = t["clause_same"]
        else:
            template = t["clause_first"] if first and not clauses else t[clause]
        clauses.append(
            template.format(
                period=periods[basis],
                subject=subject_name,
                metric=metrics[mid].phrase or metrics[mid].label,
                value=shown(chunk[0].subject, mid),
                comparisons=comparisons,
            )
        )
    return clauses


def possessive(name: str, t: dict) -> str:
    """ "Midea's", "SERES's", "Hisense Home Appliances'" (a name ending in a lower-case s reads as a plural)."""
    return (t["possessive_s"] if name.endswith("s") else t["possessive"]).format(name=name)


def headline(comps: list[Comparison], subject_name: str, names: dict, metric, period: str, t: dict,
             value: str = "", without: int = 0) -> str:  # fmt: skip
    """The conclusion in one line: where the subject stands against its peers on the section metric, with the
    subject's value in `period`; peers in line with it named apart, "like for like" where a peer was compared on
    another definition (SG&A against SG&A), and how many peers had a figure when `without` of them had none."""
    phrase = metric.phrase or metric.label
    if not comps:
        return t["headline_none"].format(subject=subject_name, metric=phrase, period=period)
    common = {"subject": subject_name, "metric": phrase, "value": value, "period": period}
    below = [c for c in comps if c.side.endswith("below")]
    above = [c for c in comps if c.side.endswith("above")]
    level = [c for c in comps if c.side == "in_line"]
    if not below and not above:
        text = t["headline_in_line_all"].format(**common)
    else:
        side_key, majority, minority = ("below", below, above) if len(below) >= len(above) else ("above", above, below)
        side = t[side_key]
        if not minority:
            text = t["headline_all"].format(**common, side=side)
        elif len(minority) <= 2 and len(majority) >= 2:
            who = _join([possessive(names[c.peer], t) for c in minority], t["and"], t["list_sep"])
            plain = _join([names[c.peer] for c in minority], t["and"], t["list_sep"])
            text = t["headline_all_but"].format(**common, side=side, names=who, peers=plain)
        else:
            text = t["headline_some"].format(**common, side=side, count=len(majority), total=len(majority + minority))
        if level:
            who = _join([possessive(names[c.peer], t) for c in level], t["and"], t["list_sep"])
            text += t["headline_in_line"].format(names=who, peers=_join([names[c.peer] for c in level], t["and"]))
    if any(c.metric != metric.id for c in comps):
        text += t["headline_like_for_like"]
    if without:
        text += t["headline_coverage"].format(count=len(comps), total=len(comps) + without)
    return text


def build_findings(
    views: list[View],
    subject: str,
    names: dict,
    groups,
    metrics: dict,
    slightly_pp: float = 1.0,
    templates: dict | None = None,
    not_reported: list[str] = (),
    *,
    fmt: Callable[..., str],
    section_metric: str = "selling_expense_ratio",
    no_figures: list[str] = (),
    quarter: str = "",
    segments: list[tuple[str, str, str]] = (),
) -> Findings:
    """The headline, the key findings and their notes.

    views: the metric table on each basis, single quarter first; names: company id -> name as shown; groups:
    objects with id, label, members; metrics: metric id -> object with label, phrase, unit (and other_definition,
    like_for_like); templates: the wording (DEFAULT_TEMPLATES, translated and reworded by the caller);
    not_reported / no_figures: names of peers left out; fmt(value, unit, uncertainty): a figure as shown.
    """
    t = {**DEFAULT_TEMPLATES, **(templates or {})}
    out = Findings()
    subj_name = names.get(subject, subject)
    labels = {g.id: g.label for g in groups}

    def shown(rec, mid):
        return fmt(rec["value"], metrics[mid].unit, rec.get("uncertainty")) + sup_marks(rec["flags"])

    sm = metrics[section_metric]
    comps, gaps = compare(views, subject, groups, sm, slightly_pp, t, metrics)
    out.comparisons = comps
    own = next(((v, v.by[(subject, sm.id)]) for v in views if _has(v.by.get((subject, sm.id)))), None)
    if own:
        value = fmt(own[1]["value"], sm.unit, own[1].get("uncertainty"))
        left = set(not_reported) | set(no_figures)
        without = [p for p in gaps if names.get(p) not in left]
        out.headline = headline(comps, subj_name, names, sm, own[0].period, t, value, len(without))
    else:
        out.headline = headline([], subj_name, names, sm, views[0].period if views else quarter, t)
    for g in groups:
        mine = [c for c in comps if c.group == g.id]
        if mine:
            clauses = _clauses(mine, views, subj_name, names, metrics, t, shown, first=False)
            out.sentences.append(t["group_sentence"].format(group=labels[g.id], clauses=t["clause_sep"].join(clauses)))
        # the matching segment on its gross margin: like with like where the whole company is mostly other things
        for entity, segment_name, group_id in segments:
            if group_id != g.id or "gross_margin" not in metrics:
                continue
            seg_comps, _gaps = compare(views, entity, [g], metrics["gross_margin"], slightly_pp, t, metrics)
            if seg_comps:
                clauses = _clauses(seg_comps, views, segment_name, names, metrics, t, shown, False, "segment_clause")
                out.sentences.append(
                    t["segment_sentence"].format(group=labels[g.id], clauses=t["clause_sep"].join(clauses))
                )
                out.segment_comparisons += seg_comps
    left = set(not_reported) | set(no_figures)
    missing_names = [names[p] for p in gaps if names.get(p) and names[p] not in left]
    if not any(_has(v.by.get((subject, sm.id))) for v in views):
        missing_names = [subj_name]
    if missing_names:
        out.notes.append(
            t["not_available"].format(metric=sm.label, companies=_join(missing_names, t["and"], t["list_sep"]))
        )

    for mid in POSITION_METRICS:
        if mid not in metrics:
            continue
        m_comps, m_gaps = compare(views, subject, groups, metrics[mid], slightly_pp, t, metrics)
        if m_comps:
            clauses = _clauses(m_comps, views, subj_name, names, metrics, t, shown, first=True)
            out.sentences.append(t["metric_sentence"].format(clauses=t["clause_sep"].join(clauses)))
        gone = [names[p] for p in m_gaps if names.get(p) and names[p] not in left]
        if not any(_has(v.by.get((subject, mid))) for v in views):
            gone = [subj_name]  # the subject has no figure: that, not the peers', is what is missing
        if gone:
            out.notes.append(
                t["not_available"].format(metric=metrics[mid].label, companies=_join(gone, t["and"], t["list_sep"]))
            )

    first = views[0] if views else None
    everyone = [subject] + [c for g in groups for c in g.members]
    for mid in MOVE_METRICS if first else ():
        level = "revenue" if mid == "revenue_yoy" else "gross_margin"
        moves = [
            (abs(first.by[(c, mid)]["value"]), c)
            for c in everyone
            if _has(first.by.get((c, mid))) and _has(first.by.get((c, level)))
        ]
        if not moves:
            continue
        _, c = max(moves)
        lv = first.by[(c, level)]
        level_value = (
            shown(lv, level)
            if mid != "revenue_yoy"
            else t["amount"].format(value=fmt(lv["value"], "rmb_mn", lv.get("uncertainty")))
        )
        out.sentences.append(
            t["largest_move"].format(
                metric=metrics[level].phrase or metrics[level].label,
                company=names[c],
                change=shown(first.by[(c, mid)], mid),
                value=level_value,
            )
        )
    if not_reported:
        who = _join(list(not_reported), t["and"], t["list_sep"])
        out.notes.insert(0, t["left_out"].format(companies=who, quarter=quarter))
    if no_figures:
        out.notes.insert(0, t["no_figures"].format(companies=_join(list(no_figures), t["and"], t["list_sep"])))
    return out
