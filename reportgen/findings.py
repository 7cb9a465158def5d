"""Pure findings: the metric table -> plain sentences that state the values they compare.

Comparison words follow one rule, stated in the briefing's methodology: the subject is "in line with" a peer
when the two differ by at most 0.05 percentage points, "slightly" above or below within `slightly_pp`
percentage points (default 1), and plainly above or below beyond that. Ratios and growth rates are compared
in percentage points.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import N_, is_missing, sup_marks

IN_LINE_PP = 0.05

#: the wording of every sentence (msgids of the catalogue); a workspace's templates/findings.toml may reword them
DEFAULT_TEMPLATES = {
    "headline": N_("{subject}'s revenue was RMB {revenue} million in {quarter}, {growth} year on year."),
    "position": N_("{subject}'s {metric} of {value} is {comparisons}."),
    "group_clause": N_("{words} ({group})"),
    "largest_move": N_("The largest year-on-year move in {metric} was {company}'s {change}, to {value}."),
    "left_out": N_(
        "{companies} had not reported {quarter} figures when this edition was built and are left out of "
        "the comparisons."
    ),
    "not_available": N_("{metric} is not available for {companies} in {quarter} (see Methodology)."),
    "no_figures": N_("{companies}: no figures in the data, so left out of the comparisons."),
    "in_line": N_("in line with"),
    "slightly_above": N_("slightly above"),
    "slightly_below": N_("slightly below"),
    "above": N_("above"),
    "below": N_("below"),
    "growth_up": N_("up {value}"),
    "growth_down": N_("down {value}"),
    "growth_unknown": N_("with no year-earlier figure to compare"),
    "amount": N_("RMB {value} million"),
    "and": N_(" and "),
}
#: placeholders each sentence may use (checked when a workspace rewords one)
PLACEHOLDERS = {k: frozenset(re.findall(r"{(\w+)}", v)) for k, v in DEFAULT_TEMPLATES.items()}
POSITION_METRICS = ("selling_expense_ratio", "gross_margin", "revenue_yoy", "rnd_ratio")
MOVE_METRICS = ("revenue_yoy", "gross_margin_yoy_pp")


@dataclass
class Findings:
    sentences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def comparison_word(subject: float, peer: float, slightly_pp: float, words: dict) -> str:
    """'above', 'slightly below', 'in line with' ... for the subject's value against a peer's (fractions)."""
    diff_pp = (subject - peer) * 100
    if abs(diff_pp) <= IN_LINE_PP + 1e-12:
        return words["in_line"]
    side = "above" if diff_pp > 0 else "below"
    return words[f"slightly_{side}"] if abs(diff_pp) <= slightly_pp + 1e-12 else words[side]


def _phrase(metric) -> str:
    """The metric's label inside a sentence: 'Revenue growth YoY' -> 'revenue growth YoY' (keeps R&D)."""
    if getattr(metric, "phrase", ""):
        return metric.phrase
    label = metric.label
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def _join(items: list[str], and_: str = " and ") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + and_ + items[-1]


def build_findings(
    records: list[dict],
    subject: str,
    groups,
    quarter: str,
    metrics: dict,
    slightly_pp: float = 1.0,
    templates: dict | None = None,
    not_reported: list[str] = (),
    *,
    fmt: Callable[..., str],
    no_figures: list[str] = (),
) -> Findings:
    """Sentences for the key-findings section.

    records: metric-table rows (company, name, metric, value, flags); groups: objects with id, label, members;
    metrics: metric id -> object with label and unit; templates: the wording (DEFAULT_TEMPLATES, translated and
    reworded by the caller); not_reported: names of peers with no data yet; fmt(value, unit, uncertainty): a figure as
    shown.
    """
    t = {**DEFAULT_TEMPLATES, **(templates or {})}

    def join(items):
        return _join(items, t["and"])

    by = {(r["company"], r["metric"]): r for r in records}
    names = {r["company"]: r["name"] for r in records}
    subj_name = names.get(subject, subject)
    out = Findings()

    def val(company, metric):
        r = by.get((company, metric))
        return (r["value"], r["flags"]) if r and not is_missing(r["value"]) else (None, ())

    def shown(company, metric):
        v, flags = val(company, metric)
        u = (by.get((company, metric)) or {}).get("uncertainty")
        return fmt(v, metrics[metric].unit, u) + sup_marks(flags)

    rev, _ = val(subject, "revenue")
    growth, _ = val(subject, "revenue_yoy")
    if rev is not None:
        if growth is None:
            g = t["growth_unknown"]
        else:
            g = t["growth_up" if growth >= 0 else "growth_down"].format(value=fmt(abs(growth), "ratio"))
        out.sentences.append(
            t["headline"].format(subject=subj_name, revenue=fmt(rev, "rmb_mn"), quarter=quarter, growth=g)
        )

    for m in POSITION_METRICS:
        sv, _ = val(subject, m)
        if sv is None:
            continue
        clauses, gaps = [], []
        for g in groups:
            by_word: dict[str, list[str]] = {}
            for member in g.members:
                pv, _ = val(member, m)
                if pv is None:
                    if names.get(member) and names[member] not in not_reported and names[member] not in no_figures:
                        gaps.append(names[member])
                    continue
                word = comparison_word(sv, pv, slightly_pp, t)
                by_word.setdefault(word, []).append(f"{names[member]} {shown(member, m)}")
            if by_word:
                words = ", ".join(f"{w} {join(items)}" for w, items in by_word.items())
                clauses.append(t["group_clause"].format(words=words, group=g.label))
        if clauses:
            out.sentences.append(
                t["position"].format(
                    subject=subj_name,
                    metric=_phrase(metrics[m]),
                    value=shown(subject, m),
                    comparisons="; ".join(clauses),
                )
            )
        if gaps:
            out.notes.append(t["not_available"].format(metric=metrics[m].label, companies=join(gaps), quarter=quarter))

    everyone = [subject] + [c for g in groups for c in g.members]
    for m in MOVE_METRICS:
        level = "revenue" if m == "revenue_yoy" else "gross_margin"
        # the sentence states the change and the level it led to, so both must be known
        moves = [(abs(val(c, m)[0]), c) for c in everyone if val(c, m)[0] is not None and val(c, level)[0] is not None]
        if not moves:
            continue
        _, c = max(moves)
        level_value = (
            shown(c, level) if m != "revenue_yoy" else t["amount"].format(value=fmt(val(c, level)[0], "rmb_mn"))
        )
        out.sentences.append(
            t["largest_move"].format(
                metric=_phrase(metrics[level]), company=names[c], change=shown(c, m), value=level_value
            )
        )
    if not_reported:
        out.notes.insert(0, t["left_out"].format(companies=join(list(not_reported)), quarter=quarter))
    if no_figures:
        out.notes.insert(0, t["no_figures"].format(companies=join(list(no_figures))))
    return out
