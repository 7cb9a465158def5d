"""The domain vocabulary every step shares: statement items, units and bases, companies and their policy changes,
the one table of flags, reported rows with their source, and the codes of missing-value reasons.

A leaf: imports only `periods` and `errors` (and the standard library), so readers, normalization, metrics,
findings and rendering can all use it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import PeriodError
from .periods import Quarter


def N_(message: str) -> str:
    """Marks a string for the message catalogue (extracted by pybabel) without translating it here."""
    return message


class Contextual(str):
    """A message with a context (gettext's msgctxt): the same English words meaning something else elsewhere, so a
    language can translate them apart (", " between comparisons is "，" in Chinese, between names "、")."""

    context: str = ""


def NC_(context: str, message: str) -> Contextual:
    """Marks a message with its context for the catalogue (pybabel's keyword NC_:1c,2)."""
    out = Contextual(message)
    out.context = context
    return out


# -- statement items ----------------------------------------------------------------------------------------------
#: the empty set of policy-change ids, shared (a new empty frozenset per figure costs 200 bytes each)
_NO_IDS: frozenset = frozenset()


@dataclass(frozen=True)
class Item:
    """A canonical statement item (or a ratio a source states without the amounts behind it)."""

    id: str
    label: str  # an English noun phrase, lower case, a msgid of the catalogue
    expense: bool = False  # kept as a magnitude: sources print expenses with either sign
    stated_ratio: bool = False


ITEMS: tuple[Item, ...] = (
    Item("revenue", N_("revenue")),
    Item("total_revenue", N_("total operating revenue (营业总收入)")),
    Item("cost_of_revenue", N_("cost of revenue"), expense=True),
    Item("gross_profit", N_("gross profit")),
    Item("selling_expenses", N_("selling expenses"), expense=True),
    Item("sga", N_("SG&A"), expense=True),
    Item("admin_expenses", N_("administrative expenses"), expense=True),
    Item("rnd_expenses", N_("R&D expenses"), expense=True),
    Item("operating_profit", N_("operating profit")),
    Item("net_profit", N_("net profit")),
    Item("net_profit_attributable", N_("attributable net profit")),
    Item("adjusted_net_profit", N_("adjusted net profit")),
    Item("selling_expense_ratio", N_("stated selling-expense ratio"), stated_ratio=True),
    Item("admin_expense_ratio", N_("stated admin-expense ratio"), stated_ratio=True),
    Item("rnd_ratio", N_("stated R&D ratio"), stated_ratio=True),
    Item("gross_margin", N_("stated gross margin"), stated_ratio=True),
)
ITEM: dict[str, Item] = {i.id: i for i in ITEMS}
STATED_RATIOS = tuple(i.id for i in ITEMS if i.stated_ratio)
EXPENSE_ITEMS = frozenset(i.id for i in ITEMS if i.expense)

# -- units, bases, vintages ---------------------------------------------------------------------------------------
#: unit code -> yuan per unit (None: a percentage, for stated ratios)
UNITS: dict[str, float | None] = {
    "yuan": 1.0,
    "thousand": 1e3,
    "ten_thousand": 1e4,
    "million": 1e6,
    "hundred_million": 1e8,
    "billion": 1e9,
    "percent": None,
}
#: units as Chinese statements print them -> unit code (a data file may use either)
UNIT_WORDS: dict[str, str] = {
    "元": "yuan",
    "千元": "thousand",
    "万元": "ten_thousand",
    "百万元": "million",
    "亿元": "hundred_million",
    "%": "percent",
}
#: period length as written in data files -> number of quarters
BASES = {"3M": 1, "6M": 2, "9M": 3, "12M": 4}
VINTAGES = ("published", "restated")
#: the two bases a metric table is computed on
QUARTER, YTD = "quarter", "ytd"
ALIGNED_YEAR_ENDS = (3, 6, 9, 12)


# -- companies ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyChange:
    """An accounting change that restates earlier periods (e.g. CAS Interpretation No. 18): figures as first
    published for periods before `effective` are on the old basis for `items`."""

    id: str
    title: str
    effective: Quarter
    items: tuple[str, ...]
    source: str = ""

    def predates(self, item: str, quarter: Quarter, vintage: str) -> bool:
        return item in self.items and vintage == "published" and quarter < self.effective


#: the separator of a segment's id within its company's: the metric table's entity "xiaomi.ev"
SEGMENT_SEP = "."
FISCAL_CALENDARS = ("52-53-week",)


@dataclass(frozen=True)
class Segment:
    """A reported segment (or line of business) of a company: its id, names and the peer group it is compared
    with ("" for none)."""

    id: str
    name: str
    name_zh: str
    group: str = ""

    def entity(self, company: str) -> str:
        return f"{company}{SEGMENT_SEP}{self.id}"


def split_entity(entity: str) -> tuple[str, str | None]:
    """("xiaomi", "ev") of "xiaomi.ev"; (company, None) of a whole company's id."""
    company, sep, segment = entity.partition(SEGMENT_SEP)
    return (company, segment) if sep else (entity, None)


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    name_zh: str
    ticker: str
    exchange: str
    standard: str
    currency: str
    fiscal_year_end: int
    reporting: str  # "ytd" (cumulative statements) or "quarterly"
    sector: str
    policy_changes: tuple[PolicyChange, ...] = ()
    line: int | None = None  # where the registry defines it
    #: the segments the company reports (the subject's are compared with the peer group each names)
    segments: tuple[Segment, ...] = ()
    #: "52-53-week": fiscal quarters end on a weekday near the month's end (data rows give the end date)
    fiscal_calendar: str = ""

    @property
    def aligned(self) -> bool:
        """Whether the fiscal quarters end on calendar quarter ends."""
        return self.fiscal_year_end in ALIGNED_YEAR_ENDS

    def fiscal_quarter(self, q: Quarter) -> int:
        """1-4: which quarter of its fiscal year the calendar quarter `q` is."""
        return q.fiscal_quarter(self.fiscal_year_end)

    def fiscal_year_start(self, q: Quarter) -> int:
        """Index of the first quarter of the fiscal year `q` belongs to (`q.index` when not aligned)."""
        return q.index - (self.fiscal_quarter(q) - 1) if self.aligned else q.index

    def old_basis(self, item: str, quarter: Quarter, vintage: str) -> frozenset:
        """Ids of the policy changes that a figure of `item` for `quarter` as `vintage` predates."""
        if not self.policy_changes:
            return _NO_IDS
        return frozenset(pc.id for pc in self.policy_changes if pc.predates(item, quarter, vintage))

    def check_aligned(self) -> None:
        """Refuse a company whose fiscal quarters do not end on calendar quarter ends."""
        if not self.aligned:
            raise PeriodError(
                f"{self.name}'s fiscal year ends in month {self.fiscal_year_end}, so its fiscal quarters do not "
                "end on calendar quarter ends and cannot be compared quarter by quarter. Remove it from the peer "
                "groups, or enter its figures re-cut to calendar quarters with fiscal_year_end = 12.",
                "data/companies.toml",
                self.line,
                "fiscal_year_end",
            )


# -- flags: the one table every output uses ----------------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    id: str
    mark: str  # footnote mark shown next to a figure ("" for none)
    note: str  # the footnote, a msgid of the catalogue

    @property
    def superscript(self) -> str:
        return SUPERSCRIPT.get(self.mark, self.mark)


#: in the order marks are written next to a figure
FLAGS: tuple[Flag, ...] = (
    Flag(
        "sga_proxy",
        "a",
        N_("SG&A used as a proxy: the company reports selling, general and administrative expenses combined"),
    ),
    Flag("derived_ytd", "d", N_("single quarter derived from cumulative year-to-date reports (e.g. Q2 = H1 - Q1)")),
    Flag("stated_ratio", "s", N_("ratio as stated by a source, without the amounts behind it")),
    Flag(
        "source_quarter",
        "c",
        N_("single-quarter figure as computed by a source or printed by the company, not by reportgen"),
    ),
    Flag("summed_quarters", "t", N_("year to date as the sum of single-quarter reports")),
    Flag(
        "policy_change",
        "p",
        N_(
            "compares figures across an accounting policy change (e.g. CAS Interpretation No. "
            "18) or with a year that a later report restated"
        ),
    ),
    Flag("restated", "r", N_("uses a figure as restated in a later report")),
    Flag(
        "old_basis",
        "o",
        N_(
            "as first published, on the basis before an accounting policy change (e.g. CAS "
            "Interpretation No. 18): not comparable with later periods"
        ),
    ),
    Flag(
        "published_base",
        "b",
        N_(
            "compared with a year that a later report restated, whose restated figure was not "
            "found: the base is the figure as first published"
        ),
    ),
    Flag("sga_sum", "g", N_("SG&A as selling plus administrative expenses (the company reports them apart)")),
    Flag("medium_confidence", "m", N_("medium confidence: from one secondary source")),
    Flag("low_confidence", "l", N_("low confidence: rounded, or sources disagree (see Sources)")),
    Flag("total_net_profit", "n", N_("net profit including minority interests (attributable figure not reported)")),
    Flag("fx_converted", "x", N_("converted to RMB at the period-average rate in data/fx.csv")),
    Flag(
        "definition_change",
        "v",
        N_("compares a segment across a change of its definition (its scope as the company reported it)"),
    ),
    Flag(
        "calendarized",
        "k",
        N_("a 52/53-week fiscal quarter, aligned to the calendar quarter whose end is within 15 days of its end"),
    ),
    Flag("missing", "", N_("not available")),
)
FLAG: dict[str, Flag] = {f.id: f for f in FLAGS}
#: footnote marks as Unicode superscripts, so plain text (mail, terminal) shows them too
SUPERSCRIPT = {
    "a": "ᵃ", "d": "ᵈ", "s": "ˢ", "c": "ᶜ", "t": "ᵗ", "p": "ᵖ", "r": "ʳ", "n": "ⁿ", "x": "ˣ", "o": "ᵒ", "b": "ᵇ",
    "m": "ᵐ", "l": "ˡ", "g": "ᵍ", "v": "ᵛ", "k": "ᵏ",
}  # fmt: skip
#: how sure a figure is, worst first; a metric carries the worst of the figures it uses
CONFIDENCE_ORDER = ("low", "medium", "high")


def lowest_confidence(values) -> str:
    """The worst of the confidences given ("" for unknown ones, ignored; "" when none is known)."""
    known = [v for v in values if v in CONFIDENCE_ORDER]
    return min(known, key=CONFIDENCE_ORDER.index) if known else ""


def marks(flags) -> str:
    """The footnote marks of a figure's flags, in the table's order: {'sga_proxy', 'restated'} -> 'ar'."""
    present = set(flags or ())
    return "".join(f.mark for f in FLAGS if f.mark and f.id in present)


def sup_marks(flags) -> str:
    """The footnote marks as superscripts: {'derived_ytd'} -> 'ᵈ'."""
    return "".join(SUPERSCRIPT.get(m, m) for m in marks(flags))


def is_missing(value) -> bool:
    """True for None and NaN: a figure that could not be had (never 0)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- reported rows ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Source:
    """The as-reported row behind a figure: where it is in the workspace and where it was published."""

    file: str
    line: int
    url: str
    label: str
    period: str
    basis: str
    vintage: str
    report: str = ""
    confidence: str = ""
    definition: str = ""  # a segment figure's definition (its scope) as the company reported it

    def ref(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class ReportedRow:
    """One figure as a company published it, checked and mapped to a canonical item, with its file and line."""

    company: str
    quarter: Quarter
    basis: str  # 3M, 6M, 9M, 12M
    label: str
    item: str
    value: float  # as printed, in `unit`
    unit: str
    currency: str
    vintage: str = "published"
    report: str = ""
    confidence: str = ""
    source_url: str = ""
    source_excerpt: str = ""
    file: str = ""
    line: int = 0
    published: str = ""  # the date the figure was published (YYYY-MM-DD), when the source gives it
    uncertainty: float = 0.0  # what the printing implies, in `unit`: 191.5 (亿) is +/-0.05, 432.55 +/-0.005
    definition: str = ""  # a segment's definition (scope) as the company reported it with this figure
    calendarized: bool = False  # a 52/53-week fiscal period aligned to the calendar quarter it ends nearest

    @property
    def months(self) -> int:
        return BASES[self.basis] * 3

    def source(self) -> Source:
        return Source(
            self.file,
            self.line,
            self.source_url,
            self.label,
            str(self.quarter),
            self.basis,
            self.vintage,
            self.report,
            self.confidence,
            self.definition,
        )


# -- missing-value reasons: codes with parameters, turned into words only when shown ------------------------------
class Term(str):
    """A parameter that is itself a message of the catalogue (an item or metric phrase): translated when shown."""

    __slots__ = ()


#: reason code -> English wording (a msgid). Parameters: `item` (a Term), `items` and `periods` (tuples, joined
#: with "and"), `cause` (a nested Reason), quarters, bases and plain text.
REASONS: dict[str, str] = {
    "no_stated": N_("no {item} for {quarter}"),
    "no_quarter_figure": N_("no three-month {item} reported for {quarter}"),
    "period": N_("{basis} to {quarter}"),
    "cannot_derive": N_("{item} {periods} not reported, so the single quarter {quarter} cannot be derived"),
    "vintage_mix_derive": N_(
        "{item} {basis} to {quarter} and {prior_basis} to {prior_quarter} exist only in different vintages "
        "(as first published vs restated); not subtracted across the two"
    ),
    "policy_derive": N_(
        "{item} {prior_basis} to {prior_quarter} predates the policy change {policies} that {basis} to {quarter} "
        "follows; not subtracted across the two bases"
    ),
    "fiscal_ytd": N_(
        "{company}'s fiscal year ends in month {month}: its year to date is not the calendar year to date the "
        "others show; compare single quarters instead"
    ),
    "not_reported": N_("{item} not reported for {quarter}"),
    "ytd_gaps": N_(
        "{item} year to date {quarter}: no cumulative figure, and no single-quarter figure for {gaps} to add up"
    ),
    "ytd_vintage_mix": N_(
        "{item} year to date {quarter}: its quarters mix figures as first published and restated; not added up"
    ),
    "ytd_policy": N_("{item} year to date {quarter}: its quarters straddle a policy change; not added up"),
    "inputs_vintage_mix": N_(
        "{items} for {quarter} exist only in different vintages (as first published vs restated); not combined"
    ),
    "revenue_not_positive": N_("revenue for {quarter} is not positive, so no ratio to it"),
    "no_formula": N_("no formula applies"),
    "qoq_ytd": N_("quarter-on-quarter growth is defined on the single-quarter basis only"),
    "no_prior": N_("no {metric} for {quarter}: {cause}"),
    "prior_restated_only": N_(
        "{metric} for {prior_quarter} exists only as restated and {quarter} only as first published; not compared "
        "across the two"
    ),
    "prior_not_positive": N_("{metric} for {quarter} is not positive"),
    "definition_change": N_(
        "compares the segment as defined in {quarter} ({now}) with its definition in {prior_quarter} ({before})"
    ),
    "not_a_segment": N_("a share of revenue is a segment's; this is the whole company"),
    "published_base": N_(
        "compared with {quarter} as first published: a later report restated {year}, and the restated figure was "
        "not found"
    ),
    "policy_change": N_(
        "compares figures before and after the policy change {policies}: part of the change is the accounting, "
        "not the business"
    ),
    "no_figures": N_("no figures in the data for this company"),
}


@dataclass(frozen=True)
class Reason:
    """Why a figure is missing: a code of REASONS and its parameters. str() gives the English wording."""

    code: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, code: str, **params) -> Reason:
        if code not in REASONS:
            raise KeyError(f"unknown reason code {code!r}")
        return cls(code, tuple(params.items()))

    def render(self, gettext=N_, quarter=str) -> str:
        """The reason in words, each message passed through `gettext` (identity: English) and each quarter through
        `quarter` (2025Q1, or 2025年第一季度)."""

        def word(v):
            if isinstance(v, Reason):
                return v.render(gettext, quarter)
            if isinstance(v, Quarter):
                return quarter(v)
            if isinstance(v, Term):
                return gettext(v)
            if isinstance(v, tuple):
                parts = [word(x) for x in v]
                return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + gettext(" and ") + parts[-1]
            return str(v)

        return gettext(REASONS[self.code]).format(**{k: word(v) for k, v in self.params})

    def __str__(self) -> str:
        return self.render()

    def __contains__(self, text: str) -> bool:  # `"vintages" in reason`, as with the text it replaces
        return text in str(self)


#: the period lengths as a reason names them ("3M to 2025Q1"), translatable
BASIS_TERMS = {"3M": Term(N_("3M")), "6M": Term(N_("6M")), "9M": Term(N_("9M")), "12M": Term(N_("12M"))}


def item_term(item: str) -> Term:
    return Term(ITEM[item].label)
