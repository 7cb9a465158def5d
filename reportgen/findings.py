"""Pure findings: the metric table -> plain sentences that state the values they compare.

Comparison words follow one rule, stated in the briefing's methodology: the subject is "in line with" a peer
when the two differ by at most 0.05 percentage points, "slightly" above or below within `slightly_pp`
percentage points (default 1), and plainly above or below beyond that. Ratios and growth rates are compared
in percentage points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .formats import FLAG_MARKS, fmt_value

IN_LINE_PP = 0.05
SUPERSCRIPT = {"a": "ᵃ", "d": "ᵈ", "s": "ˢ", "c": "ᶜ", "t": "ᵗ", "p": "ᵖ", "r": "ʳ", "n": "ⁿ", "x": "ˣ"}

DEFAULT_TEMPLATES = {
    "headline": "{subject}'s revenue was RMB {revenue} million in {quarter}, {growth} year on year.",
    "position": "{subject}'s {metric} of {value} is {comparisons}.",
    "group_clause": "{words} ({group})",
    "largest_move": "The largest year-on-year move in {metric} was {company}'s {change}, to {value}.",
    "left_out": "{companies} had not reported {quarter} figures when this edition was built and are left out of "
    "the comparisons.",
    "not_available": "{metric} is not available for {companies} in {quarter} (see Methodology).",
    "in_line": "in line with",
    "slightly_above": "slightly above",
    "slightly_below": "slightly below",
    "above": "above",
    "below": "below",
}
POSITION_METRICS = ("selling_expense_ratio", "gross_margin", "revenue_yoy", "rnd_ratio")
MOVE_METRICS = ("revenue_yoy", "gross_margin_yoy_pp")


@dataclass
class Findings:
    sentences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sup_marks(flags) -> str:
    """Footnote marks as Unicode superscripts, so plain text (mail) shows them too."""
    return "".join(SUPERSCRIPT.get(m, m) for f, m in FLAG_MARKS.items() if f in set(flags or ()))


def comparison_word(subject: float, peer: float, slightly_pp: float, words: dict) -> str:
    """'above', 'slightly below', 'in line with' ... for the subject's value against a peer's (fractions)."""
    diff_pp = (subject - peer) * 100
    if abs(diff_pp) <= IN_LINE_PP + 1e-12:
        return words["in_line"]
    side = "above" if diff_pp > 0 else "below"
    return words[f"slightly_{side}"] if abs(diff_pp) <= slightly_pp + 1e-12 else words[side]


def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _phrase(label: str) -> str:
    """'Revenue growth YoY' -> 'revenue growth YoY' (keeps acronyms such as R&D)."""
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def build_findings(
    records: list[dict],
    subject: str,
    groups,
    quarter: str,
    metrics: dict,
    slightly_pp: float = 1.0,
    templates: dict | None = None,
    not_reported: list[str] = (),
) -> Findings:
    """Sentences for the key-findings section.

    records: metric-table rows (company, name, metric, value, flags); groups: objects with id, label, members;
    metrics: metric id -> object with label and unit; not_reported: names of peers with no data yet.
    """
    t = {**DEFAULT_TEMPLATES, **(templates or {})}
    by = {(r["company"], r["metric"]): r for r in records}
    names = {r["company"]: r["name"] for r in records}
    subj_name = names.get(subject, subject)
    out = Findings()

    def val(company, metric):
        r = by.get((company, metric))
        return (r["value"], r["flags"]) if r and _ok(r["value"]) else (None, ())

    def shown(company, metric):
        v, flags = val(company, metric)
        return fmt_value(v, metrics[metric].unit) + sup_marks(flags)

    rev, _ = val(subject, "revenue")
    growth, _ = val(subject, "revenue_yoy")
    if rev is not None:
        g = (
            f"{'up' if (growth or 0) >= 0 else 'down'} {abs(growth) * 100:.1f}%"
            if growth is not None
            else "with no year-earlier figure to compare"
        )
        out.sentences.append(t["headline"].format(subject=subj_name, revenue=f"{rev:,.0f}", quarter=quarter, growth=g))

    for m in POSITION_METRICS:
        sv, sflags = val(subject, m)
        if sv is None:
            continue
        clauses, gaps = [], []
        for g in groups:
            by_word: dict[str, list[str]] = {}
            for member in g.members:
                pv, _ = val(member, m)
                if pv is None:
                    if names.get(member) and names[member] not in not_reported:
                        gaps.append(names[member])
                    continue
                word = comparison_word(sv, pv, slightly_pp, t)
                by_word.setdefault(word, []).append(f"{names[member]} {shown(member, m)}")
            if by_word:
                words = ", ".join(f"{w} {_join(items)}" for w, items in by_word.items())
                clauses.append(t["group_clause"].format(words=words, group=g.label))
        if clauses:
            out.sentences.append(
                t["position"].format(
                    subject=subj_name,
                    metric=_phrase(metrics[m].label),
                    value=shown(subject, m),
                    comparisons="; ".join(clauses),
                )
            )
        if gaps:
            out.notes.append(t["not_available"].format(metric=metrics[m].label, companies=_join(gaps), quarter=quarter))

    everyone = [subject] + [c for g in groups for c in g.members]
    for m in MOVE_METRICS:
        level = "revenue" if m == "revenue_yoy" else "gross_margin"
        # the sentence states the change and the level it led to, so both must be known
        moves = [(abs(val(c, m)[0]), c) for c in everyone if val(c, m)[0] is not None and val(c, level)[0] is not None]
        if not moves:
            continue
        _, c = max(moves)
        level_value = shown(c, level) if m != "revenue_yoy" else f"RMB {fmt_value(val(c, level)[0], 'rmb_mn')} million"
        out.sentences.append(
            t["largest_move"].format(
                metric=_phrase(metrics[level].label), company=names[c], change=shown(c, m), value=level_value
            )
        )
    if not_reported:
        out.notes.insert(0, t["left_out"].format(companies=_join(list(not_reported)), quarter=quarter))
    return out
