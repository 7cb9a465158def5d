"""Pure metrics: the METRICS catalogue, its computation over normalized figures, and peer statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .model import N_, QUARTER, YTD, Reason, Term, is_missing, item_term, lowest_confidence, split_entity
from .normalize import Figure, Normalizer, missing
from .periods import Quarter

if TYPE_CHECKING:  # pandas loads with the first table, so `reportgen --help` (which lists the ids) stays fast
    import pandas as pd


# -- formulas: one small function per metric, named after its accounting inputs --------------------------------
def gross_margin_from_profit(gross_profit, revenue):
    """Gross profit / revenue."""
    return gross_profit / revenue


def gross_margin_from_cost(cost_of_revenue, revenue):
    """(Revenue - cost of revenue) / revenue."""
    return (revenue - cost_of_revenue) / revenue


def expense_ratio(expense, revenue):
    """An expense (a magnitude) / revenue."""
    return expense / revenue


def margin(profit, revenue):
    """A profit line (negative for a loss) / revenue."""
    return profit / revenue


def summed_ratio(first, second, revenue):
    """(Two expenses reported apart) / revenue: selling plus administrative expenses for an SG&A ratio."""
    return (first + second) / revenue


def identity(x):
    return x


@dataclass(frozen=True)
class Variant:
    """One way to compute a metric: canonical input items, a formula, and the flag it puts on the value."""

    inputs: tuple[str, ...]
    fn: Callable
    flag: str | None = None


@dataclass(frozen=True)
class Metric:
    id: str
    label: str  # a msgid of the catalogue, as a heading: "Gross margin"
    unit: str  # "rmb_mn" | "ratio" | "growth" | "pp"
    lower_is_better: bool | None
    definition: str
    variants: tuple[Variant, ...] = ()
    kind: str = "level"  # "level" | "yoy" | "qoq" | "yoy_pp"
    base: str | None = None  # the level metric a growth metric compares
    phrase: str = ""  # the label inside a sentence ("gross margin"), a msgid; defaults to the label
    short: str = ""  # a short column heading with its unit for terminal tables
    #: flags that make a value another definition (a selling ratio that is really SG&A): such values are left out
    #: of this metric's medians and ranks, and compared with `like_for_like` instead
    other_definition: tuple[str, ...] = ()
    like_for_like: str | None = None  # the metric the subject is compared on when a peer's value is that other one

    @property
    def term(self) -> Term:
        return Term(self.phrase or self.label)


METRICS: tuple[Metric, ...] = (
    Metric(
        "revenue",
        N_("Revenue"),
        "rmb_mn",
        None,
        N_("Revenue (CAS 营业收入), RMB million."),
        (Variant(("revenue",), identity),),
        phrase=N_("revenue"),
        short=N_("Rev RMBm"),
    ),
    Metric(
        "revenue_yoy",
        N_("Revenue growth YoY"),
        "growth",
        False,
        N_("Revenue / revenue of the same quarter a year earlier - 1."),
        kind="yoy",
        base="revenue",
        phrase=N_("revenue growth YoY"),
        short=N_("Rev YoY"),
    ),
    Metric(
        "revenue_qoq",
        N_("Revenue growth QoQ"),
        "growth",
        False,
        N_("Revenue / revenue of the previous quarter - 1 (single-quarter basis only)."),
        kind="qoq",
        base="revenue",
        phrase=N_("revenue growth QoQ"),
        short=N_("Rev QoQ"),
    ),
    Metric(
        "gross_margin",
        N_("Gross margin"),
        "ratio",
        False,
        N_("Gross profit / revenue; where no gross profit line is reported, (revenue - cost of revenue) / revenue."),
        (
            Variant(("gross_profit", "revenue"), gross_margin_from_profit),
            Variant(("cost_of_revenue", "revenue"), gross_margin_from_cost),
            Variant(("gross_margin",), identity),  # a margin printed without the amounts (a segment's)
        ),
        phrase=N_("gross margin"),
        short=N_("GM"),
    ),
    Metric(
        "gross_margin_yoy_pp",
        N_("Gross margin change YoY"),
        "pp",
        False,
        N_("Gross margin minus gross margin of the same quarter a year earlier, in percentage points."),
        kind="yoy_pp",
        base="gross_margin",
        phrase=N_("gross margin change YoY"),
        short=N_("GM YoY"),
    ),
    Metric(
        "selling_expense_ratio",
        N_("Selling-expense ratio"),
        "ratio",
        True,
        N_(
            "Selling expenses / revenue. US-GAAP issuers report only combined SG&A: their ratio is SG&A / revenue "
            "(flag sga_proxy). A ratio a source states without the amounts is shown as stated (flag stated_ratio)."
        ),
        (
            Variant(("selling_expenses", "revenue"), expense_ratio),
            Variant(("sga", "revenue"), expense_ratio, "sga_proxy"),
            Variant(("selling_expense_ratio",), identity),
        ),
        phrase=N_("selling-expense ratio"),
        short=N_("Selling"),
        other_definition=("sga_proxy",),
        like_for_like="sga_ratio",
    ),
    Metric(
        "sga_ratio",
        N_("SG&A ratio"),
        "ratio",
        True,
        N_(
            "Selling, general and administrative expenses / revenue: SG&A as reported, or selling plus "
            "administrative expenses where they are reported apart (flag sga_sum). The like-for-like measure "
            "against peers that report only SG&A."
        ),
        (
            Variant(("sga", "revenue"), expense_ratio),
            Variant(("selling_expenses", "admin_expenses", "revenue"), summed_ratio, "sga_sum"),
        ),
        phrase=N_("SG&A ratio"),
        short=N_("SG&A ratio"),
    ),
    Metric(
        "admin_expense_ratio",
        N_("Admin-expense ratio"),
        "ratio",
        True,
        N_("Administrative expenses / revenue."),
        (Variant(("admin_expenses", "revenue"), expense_ratio), Variant(("admin_expense_ratio",), identity)),
        phrase=N_("admin-expense ratio"),
        short=N_("Admin"),
    ),
    Metric(
        "rnd_ratio",
        N_("R&D intensity"),
        "ratio",
        None,
        N_("Research and development expenses / revenue."),
        (Variant(("rnd_expenses", "revenue"), expense_ratio), Variant(("rnd_ratio",), identity)),
        phrase=N_("R&D intensity"),
        short=N_("R&D"),
    ),
    Metric(
        "operating_margin",
        N_("Operating margin"),
        "ratio",
        False,
        N_(
            "Operating profit / revenue, each company's own operating profit line (Xiaomi's IFRS operating profit "
            "includes fair-value gains)."
        ),
        (Variant(("operating_profit", "revenue"), margin),),
        phrase=N_("operating margin"),
        short=N_("Op mgn"),
    ),
    Metric(
        "net_margin",
        N_("Net margin"),
        "ratio",
        False,
        N_(
            "Net profit attributable to shareholders / revenue; where that is not reported, net profit / revenue "
            "(flag total_net_profit)."
        ),
        (
            Variant(("net_profit_attributable", "revenue"), margin),
            Variant(("net_profit", "revenue"), margin, "total_net_profit"),
        ),
        phrase=N_("net margin"),
        short=N_("Net mgn"),
    ),
)
BY_ID = {m.id: m for m in METRICS}


@dataclass(frozen=True)
class Result:
    value: float | None
    flags: frozenset
    reason: Reason | str
    sources: tuple
    old_basis: frozenset = frozenset()  # policy changes the inputs predate (figures as first published)
    uncertainty: float = 0.0  # what the inputs' printing allows, in the value's unit
    confidence: str = ""  # the lowest confidence of the figures used ("" when none is known)
    note: Reason | str = ""  # a caveat on a value that is shown (e.g. a base as first published)


def propagate(fn: Callable, values: list[float], uncertainties: list[float]) -> float:
    """The uncertainty of fn(*values) from its inputs' (to first order): each input moved by its own uncertainty,
    the effects added, as a worst case. Works for any formula of the catalogue, so a new metric needs nothing."""
    base = fn(*values)
    total = 0.0
    for i, u in enumerate(uncertainties):
        if u:
            moved = list(values)
            moved[i] += u
            try:
                total += abs(fn(*moved) - base)
            except ZeroDivisionError:
                return float("inf")
    return total


def _quality(sources, flags) -> tuple[str, frozenset]:
    """The lowest confidence of the sources, and the flag that marks it where the value is shown."""
    conf = lowest_confidence(s.confidence for s in sources)
    extra = {"low": {"low_confidence"}, "medium": {"medium_confidence"}}.get(conf, set())
    return conf, frozenset(flags) | extra


def _inputs(norm: Normalizer, company, q, basis, items) -> list[Figure]:
    """The inputs of one formula, all of one vintage: a ratio never divides a restated figure by one as first
    published; where the latest figures mix the two, the figures as first published are used together."""
    figs = [norm.get(company, q, basis, item) for item in items]
    present = [f for f in figs if not f.missing]
    if len({f.vintage for f in present}) > 1:
        figs = [norm.get(company, q, basis, item, "published") for item in items]
        if any(f.missing for f in figs):
            return [missing(Reason.of("inputs_vintage_mix", items=tuple(item_term(i) for i in items), quarter=q))]
    return figs


def _level(norm: Normalizer, company, q, basis, metric: Metric, vintage: str | None = None) -> Result:
    """A level metric from the latest figures (one vintage per ratio), or from one `vintage` only."""
    reasons = []
    for v in metric.variants:
        if vintage:
            figs: list[Figure] = [norm.get(company, q, basis, item, vintage) for item in v.inputs]
        else:
            figs = _inputs(norm, company, q, basis, v.inputs)
        gaps = [f for f in figs if f.missing]
        if gaps:
            # Prefer the reason of a route this company reports at all (CAS issuers print no gross profit).
            usual = all(norm.reports(company, i) for i in v.inputs)
            reasons.append((0 if usual else 1, len(reasons), gaps[0].reason))
            continue
        if "revenue" in v.inputs[1:] and figs[v.inputs.index("revenue")].value <= 0:  # a ratio to revenue
            reasons.append((0, len(reasons), Reason.of("revenue_not_positive", quarter=q)))
            continue
        values = [f.value for f in figs]
        value = v.fn(*values)
        flags = frozenset().union(*(f.flags for f in figs)) | ({v.flag} if v.flag else set())
        if any(s.vintage == "restated" for f in figs for s in f.sources):
            flags |= {"restated"}
        old = frozenset().union(*(f.old_basis for f in figs))
        if old:
            flags |= {"old_basis"}
        sources = tuple(s for f in figs for s in f.sources)
        conf, flags = _quality(sources, flags)
        unc = propagate(v.fn, values, [f.uncertainty for f in figs])
        return Result(value, flags, "", sources, old, unc, conf)
    return Result(None, frozenset({"missing"}), min(reasons)[2] if reasons else Reason.of("no_formula"), ())


def compute_one(norm: Normalizer, company: str, q: Quarter, basis: str, metric: Metric) -> Result:
    """One metric for one company and quarter, with flags, the reason when missing, and its sources."""
    if metric.kind == "level":
        return _level(norm, company, q, basis, metric)
    if metric.kind == "share":
        return _share(norm, company, q, basis)
    base = BY_ID[metric.base]
    if metric.kind == "qoq" and basis == YTD:
        return Result(None, frozenset({"missing"}), Reason.of("qoq_ytd"), ())
    prior_q = q.shift(-1 if metric.kind == "qoq" else -4)
    now, prior = _level(norm, company, q, basis, base), _level(norm, company, prior_q, basis, base)
    if now.value is None:
        return Result(None, frozenset({"missing"}), now.reason, ())
    if prior.value is None:
        return Result(
            None,
            frozenset({"missing"}),
            Reason.of("no_prior", metric=base.term, quarter=prior_q, cause=prior.reason),
            (),
        )
    restated = {"restated"}
    if (
        not now.flags & restated
        and prior.flags & restated
        and norm.fiscal_year(company, q) == norm.fiscal_year(company, prior_q)
    ):
        # within one fiscal year a figure as first published is compared with the others as first published
        prior = _level(norm, company, prior_q, basis, base, "published")
        if prior.value is None:
            return Result(
                None,
                frozenset({"missing"}),
                Reason.of("prior_restated_only", metric=base.term, prior_quarter=prior_q, quarter=q),
                (),
            )
    flags = (now.flags | prior.flags) - {"old_basis", "low_confidence", "medium_confidence"}
    if now.old_basis:
        flags |= {"old_basis"}
    note: Reason | str = ""
    if now.old_basis != prior.old_basis:
        flags |= {"policy_change"}
        note = Reason.of("policy_change", policies=", ".join(sorted(now.old_basis ^ prior.old_basis)))
    # a later report restated the prior year, but only its figure as first published is at hand
    prior_year_restated = (company, norm.fiscal_year(company, prior_q)) in norm.restated_years
    if (
        not prior.flags & restated
        and prior_year_restated
        and not now.flags & restated
        and norm.fiscal_year(company, q) != norm.fiscal_year(company, prior_q)
    ):
        flags |= {"published_base"}
        note = note or Reason.of("published_base", quarter=prior_q, year=prior_q.year)
    sources = now.sources + prior.sources
    if metric.kind == "yoy_pp":
        value = now.value - prior.value
        unc = now.uncertainty + prior.uncertainty
    else:
        if prior.value <= 0:
            return Result(
                None, frozenset({"missing"}), Reason.of("prior_not_positive", metric=base.term, quarter=prior_q), ()
            )
        value = now.value / prior.value - 1
        unc = propagate(lambda a, b: a / b - 1, [now.value, prior.value], [now.uncertainty, prior.uncertainty])
    before = {s.definition for s in prior.sources if s.definition}
    after = {s.definition for s in now.sources if s.definition}
    if before and after and before != after:  # a segment whose scope the company changed in between
        flags |= {"definition_change"}
        note = note or Reason.of(
            "definition_change", quarter=q, now="; ".join(sorted(after)), prior_quarter=prior_q,
            before="; ".join(sorted(before)),
        )  # fmt: skip
    conf, flags = _quality(sources, flags)
    return Result(value, flags, "", sources, now.old_basis, unc, conf, note)


def _share(norm: Normalizer, entity: str, q: Quarter, basis: str) -> Result:
    """A segment's revenue as a share of its company's."""
    company, segment = split_entity(entity)
    if segment is None:
        return Result(None, frozenset({"missing"}), Reason.of("not_a_segment"), ())
    part, whole = _level(norm, entity, q, basis, BY_ID["revenue"]), _level(norm, company, q, basis, BY_ID["revenue"])
    for r in (part, whole):
        if r.value is None:
            return Result(None, frozenset({"missing"}), r.reason, ())
    if whole.value <= 0:
        return Result(None, frozenset({"missing"}), Reason.of("revenue_not_positive", quarter=q), ())
    sources = part.sources + whole.sources
    conf, flags = _quality(sources, (part.flags | whole.flags) - {"low_confidence", "medium_confidence"})
    unc = propagate(lambda a, b: a / b, [part.value, whole.value], [part.uncertainty, whole.uncertainty])
    return Result(part.value / whole.value, flags, "", sources, frozenset(), unc, conf)


#: a segment's share of its company's revenue: computed for segments only, so it is not in the catalogue
REVENUE_SHARE = Metric(
    "revenue_share",
    N_("Share of revenue"),
    "ratio",
    None,
    N_("A segment's revenue / its company's revenue, for the same period."),
    kind="share",
    phrase=N_("share of revenue"),
    short=N_("Share"),
)


#: what a segment has: revenue and gross profit per segment are published, expenses are not split
def metric_of(metric_id: str) -> Metric:
    """A metric of the catalogue, or the segments' share of revenue."""
    return REVENUE_SHARE if metric_id == REVENUE_SHARE.id else BY_ID[metric_id]


SEGMENT_METRIC_IDS = ("revenue", "revenue_yoy", "revenue_qoq", "gross_margin", "gross_margin_yoy_pp")
SEGMENT_METRICS = (*(BY_ID[m] for m in SEGMENT_METRIC_IDS), REVENUE_SHARE)


def compute_metrics(
    norm: Normalizer, companies: list[tuple], q: Quarter, basis: str = QUARTER, metric_ids=None
) -> pd.DataFrame:
    """The metric table: one row per (company, metric). companies: (id, name, name_zh, group), or with a fifth
    element, the segment id, for a segment's entity ("xiaomi.ev"): a segment gets SEGMENT_METRICS."""
    import pandas as pd

    records = []
    metrics = [BY_ID[m] for m in metric_ids] if metric_ids else METRICS
    for cid, name, name_zh, group, *segment in companies:
        segment = segment[0] if segment else None
        for m in SEGMENT_METRICS if segment else metrics:
            if segment and metric_ids and m.id not in metric_ids:
                continue
            r = compute_one(norm, cid, q, basis, m)
            records.append(
                {
                    "company": cid,
                    "segment": segment,
                    "name": name,
                    "name_zh": name_zh,
                    "group": group,
                    "quarter": str(q),
                    "basis": basis,
                    "metric": m.id,
                    "value": r.value,
                    "flags": sorted(r.flags),
                    "reason": r.reason,
                    "sources": sorted({s.ref() for s in r.sources}),
                    "urls": sorted({s.url for s in r.sources}),
                    "uncertainty": r.uncertainty if r.value is not None else None,
                    "confidence": r.confidence or None,
                    "note": r.note,
                }
            )
    return pd.DataFrame.from_records(
        records,
        columns=[
            "company",
            "segment",
            "name",
            "name_zh",
            "group",
            "quarter",
            "basis",
            "metric",
            "value",
            "flags",
            "reason",
            "sources",
            "urls",
            "uncertainty",
            "confidence",
            "note",
        ],
    )


#: a median (and mean) of fewer peers than this says nothing: the values are listed instead
MIN_MEDIAN = 3
#: a rank among fewer than this many (the subject included) is not a rank
MIN_RANK = 2


def peer_stats(table: pd.DataFrame, subject: str, groups) -> pd.DataFrame:
    """Per peer group and metric: median and mean of the peers (three or more values, of one definition: a
    selling ratio that is really SG&A counts for the SG&A ratio, not here), how many have a value, the values
    themselves, and the subject's rank with its direction ("lowest" first where lower is better)."""
    import pandas as pd

    rows = []
    subj = table[table.company == subject].set_index("metric")["value"]
    for g in groups:
        part = table[table.company.isin(g.members)]
        for m in METRICS:
            rows_m = part[(part.metric == m.id) & part.value.notna()]
            if m.other_definition:
                keep = [not (set(fl) & set(m.other_definition)) for fl in rows_m["flags"]]
                rows_m = rows_m.loc[keep]  # .loc: an empty mask must select no rows, not no columns
            vals = rows_m["value"].astype(float)
            used = sorted({f for fl in rows_m["flags"] for f in fl if f in ("sga_proxy", "stated_ratio", "sga_sum")})
            sv = subj.get(m.id)
            sv = None if is_missing(sv) else float(sv)
            ranked = int(len(vals)) + (1 if sv is not None else 0)
            rank = None
            if sv is not None and ranked >= MIN_RANK:
                better = (vals < sv) if m.lower_is_better else (vals > sv)
                rank = int(better.sum()) + 1
            enough = len(vals) >= MIN_MEDIAN
            rows.append(
                {
                    "group": g.id,
                    "metric": m.id,
                    "median": float(vals.median()) if enough else None,
                    "mean": float(vals.mean()) if enough else None,
                    "n": int(len(vals)),
                    "values": list(zip(rows_m["company"], vals.tolist())),
                    "subject_value": sv,
                    "subject_rank": rank,
                    "ranked": ranked,
                    "direction": "lowest" if m.lower_is_better else "highest",
                    # proxies and stated ratios among the values: the median and rank carry their marks
                    "flags": used,
                }
            )
    return pd.DataFrame.from_records(rows)
