"""Pure normalization: labels -> canonical items, units -> RMB million, FX, year-to-date de-cumulation,
restatement choice, lineage and flags. Imports no I/O.

Rules (see DESIGN.md, "Why normalization is the heart of it"):
- A-share issuers publish cumulative year-to-date statements; a single quarter is the difference of two
  cumulative figures (Q2 = H1 - Q1, Q4 = FY - 9M) and is flagged `derived_ytd`.
- A figure may exist as first published and as restated by a later report; the restated one is used, and a
  difference is only taken between two figures of the same vintage.
- A policy change (e.g. CAS Interpretation No. 18, which moved assurance-type warranty costs from 销售费用 to
  营业成本 from the FY2024 reports) puts figures as first published before it on an old basis: nothing is
  subtracted across the two bases, and comparisons across them are flagged `policy_change`.
- Amounts are RMB million; expenses are magnitudes (sources print them with either sign).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PeriodError
from .loaders import EXPENSE_ITEMS, ITEM_LABELS, STATED_RATIOS, UNITS, Company
from .periods import Quarter

QUARTER, YTD = "quarter", "ytd"
_NO_FLAGS, _STATED, _FX = frozenset(), frozenset({"stated_ratio"}), frozenset({"fx_converted"})


@dataclass(frozen=True)
class Source:
    """One as-reported row behind a figure."""

    file: str
    line: int
    url: str
    label: str
    period: str
    basis: str
    vintage: str
    report: str = ""
    confidence: str = ""

    def ref(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Figure:
    """A normalized figure (RMB million, or a fraction for stated ratios) or a missing one with its reason."""

    value: float | None
    flags: frozenset = frozenset()
    sources: tuple[Source, ...] = ()
    reason: str = ""
    old_basis: frozenset = frozenset()  # ids of policy changes this figure predates

    @property
    def missing(self) -> bool:
        return self.value is None

    @property
    def vintage(self) -> str:
        return "restated" if any(s.vintage == "restated" for s in self.sources) else "published"


def missing(reason: str) -> Figure:
    return Figure(None, frozenset({"missing"}), (), reason)


def check_alignment(company: Company) -> None:
    """Refuse a company whose fiscal quarters do not end on calendar quarter ends."""
    if company.fiscal_year_end not in (3, 6, 9, 12):
        raise PeriodError(
            f"{company.name}'s fiscal year ends in month {company.fiscal_year_end}, so its fiscal quarters do not "
            "end on calendar quarter ends and cannot be compared quarter by quarter. Remove it from the peer "
            "groups, or enter its figures re-cut to calendar quarters with fiscal_year_end = 12.",
            "data/companies.toml",
            company.line,
            "fiscal_year_end",
        )


class Normalizer:
    """Normalized figures of a set of companies, computed on demand and memoized."""

    def __init__(self, companies: dict[str, Company], rows: list[dict], fx: dict, reported: set = frozenset()):
        self.companies = companies
        # (company, item, quarter, basis) -> vintage -> (value, row, flags, old_basis); Source objects are made
        # only for the figures asked for.
        self._rows: dict[tuple, dict[str, tuple[float, dict, frozenset, frozenset]]] = {}
        self._memo: dict[tuple, Figure] = {}
        self._vintage: str | None = None
        self._ytd_basis = False
        self.latest: dict[str, Quarter] = {}
        self._reported: set[tuple[str, str]] = set(reported)
        for cid in {r["company"] for r in rows}:
            check_alignment(companies[cid])
        none = frozenset()
        self._periods: set[tuple[str, Quarter]] = set()
        #: (company, index of a fiscal year's first quarter) for fiscal years a later report restated
        self.restated_years: set[tuple[str, int]] = set()
        store, reported, latest, periods = self._rows, self._reported, self.latest, self._periods
        for r in rows:
            cid, item, q, vintage = r["company"], r["item"], r["quarter"], r["vintage"]
            value, flags = self._convert(r, fx)
            changes = companies[cid].policy_changes
            old = (
                frozenset(pc.id for pc in changes if item in pc.items and vintage == "published" and q < pc.effective)
                if changes
                else none
            )
            key = (cid, item, q, r["basis"])
            found = store.get(key)
            if found is None:
                store[key] = {vintage: (value, r, flags, old)}
            else:
                found[vintage] = (value, r, flags, old)
            reported.add((cid, item))
            periods.add((cid, q))
            if vintage == "restated":
                fye = companies[cid].fiscal_year_end
                self.restated_years.add((cid, q.index - (q.fiscal_quarter(fye) - 1) if fye in (3, 6, 9, 12) else 0))
            if item == "revenue":
                prev = latest.get(cid)
                if prev is None or q.index > prev.index:
                    latest[cid] = q

    @staticmethod
    def _convert(r: dict, fx: dict) -> tuple[float, frozenset]:
        if r["unit"] == "percent":
            return r["value"] / 100.0, _STATED
        value = r["value"] * UNITS[r["unit"]] / 1e6
        if r["item"] in EXPENSE_ITEMS:
            value = abs(value)
        if r["currency"] in ("RMB", "CNY"):
            return value, _NO_FLAGS
        return value * fx[(r["currency"], str(r["quarter"]), r["basis"])][0], _FX

    # -- raw lookups -------------------------------------------------------------------------------------------
    def _row(self, company, item, q, basis, vintage=None):
        """(value, source, flags, old_basis) of a row; the restated vintage wins unless one is asked for."""
        found = self._rows.get((company, item, q, basis))
        if not found:
            return None
        if vintage or self._vintage:
            return found.get(vintage or self._vintage)
        return found.get("restated") or found.get("published")

    @staticmethod
    def _source(r: dict) -> Source:
        return Source(
            r["file"],
            r["line"],
            r["source_url"],
            r["label"],
            str(r["quarter"]),
            r["basis"],
            r["vintage"],
            r.get("report", ""),
            r.get("confidence", ""),
        )

    def _figure(self, row, extra=()) -> Figure:
        value, r, flags, old = row
        return Figure(value, flags | frozenset(extra), (self._source(r),), "", old)

    # -- public ------------------------------------------------------------------------------------------------
    def get(self, company: str, quarter: Quarter, basis: str, item: str, vintage: str | None = None) -> Figure:
        """The normalized figure of one item for one quarter, single-quarter or year-to-date basis.

        The latest (restated) figure is used unless `vintage` asks for 'published' or 'restated' only.
        """
        key = (company, quarter, basis, item, vintage)
        if key not in self._memo:
            self._vintage = vintage
            try:
                self._memo[key] = self._compute(company, quarter, basis, item)
            finally:
                self._vintage = None
        return self._memo[key]

    def _compute(self, company, q, basis, item) -> Figure:
        c = self.companies[company]
        n = q.fiscal_quarter(c.fiscal_year_end)
        cum_basis = f"{3 * n}M"
        if item in STATED_RATIOS:
            row = self._row(company, item, q, "3M" if basis == QUARTER else cum_basis)
            return self._figure(row) if row else missing(f"no {ITEM_LABELS[item]} for {q}")
        if basis == YTD or n == 1:
            self._ytd_basis = basis == YTD
            return self._ytd(c, q, n, item)
        tries = [self._direct_quarter, self._decumulate]
        if c.reporting == "ytd":
            tries.reverse()
        reasons = []
        for f in tries:
            fig = f(c, q, n, item)
            if not fig.missing:
                return fig
            if "policy_refused" in fig.flags:
                # a source's single quarter here would be that same subtraction across two bases
                return fig
            reasons.append(fig.reason)
        return missing(reasons[0])  # the reason of the way this company's figure is normally had

    def _direct_quarter(self, c, q, n, item) -> Figure:
        row = self._row(c.id, item, q, "3M")
        if not row:
            return missing(f"no three-month {ITEM_LABELS[item]} reported for {q}")
        extra = {"source_quarter"} if c.reporting == "ytd" and n > 1 else set()
        return self._figure(row, extra)

    def _decumulate(self, c, q, n, item) -> Figure:
        """Q_n = YTD_n - YTD_(n-1), from two figures of the same vintage and accounting basis."""
        b_now, b_prev = f"{3 * n}M", f"{3 * (n - 1)}M"
        prev_q = q.shift(-1)
        now_any, prev_any = self._row(c.id, item, q, b_now), self._row(c.id, item, prev_q, b_prev)
        if not now_any or not prev_any:
            which = [f"{b} to {p}" for b, p, r in ((b_now, q, now_any), (b_prev, prev_q, prev_any)) if not r]
            return missing(
                f"{ITEM_LABELS[item]} {' and '.join(which)} not reported, so the single quarter {q} cannot be derived"
            )
        problem, refused = "", False
        for vintage in (self._vintage,) if self._vintage else ("restated", "published"):
            now, prev = self._row(c.id, item, q, b_now, vintage), self._row(c.id, item, prev_q, b_prev, vintage)
            if not now or not prev:
                problem = (
                    f"{ITEM_LABELS[item]} {b_now} to {q} and {b_prev} to {prev_q} exist only in different vintages "
                    "(as first published vs restated); not subtracted across the two"
                )
                continue
            if now[3] != prev[3]:
                ids = ", ".join(sorted(now[3] ^ prev[3]))
                problem = (
                    f"{ITEM_LABELS[item]} {b_prev} to {prev_q} predates the policy change {ids} that {b_now} to {q} "
                    "follows; not subtracted across the two bases"
                )
                refused = True
                continue
            value = now[0] - prev[0]
            flags = (now[2] | prev[2]) | {"derived_ytd"}
            return Figure(value, frozenset(flags), (self._source(now[1]), self._source(prev[1])), "", now[3] | prev[3])
        fig = missing(problem)
        return Figure(None, fig.flags | {"policy_refused"}, (), problem) if refused else fig

    def _ytd(self, c, q, n, item) -> Figure:
        """Year to date: the reported cumulative figure, else the sum of the fiscal year's single quarters."""
        if self._ytd_basis and c.fiscal_year_end != 12:
            return missing(
                f"{c.name}'s fiscal year ends in month {c.fiscal_year_end}: its year to date is not the calendar "
                "year to date the others show; compare single quarters instead"
            )
        row = self._row(c.id, item, q, f"{3 * n}M")
        if row:
            return self._figure(row)
        if n == 1:
            return missing(f"{ITEM_LABELS[item]} not reported for {q}")
        parts = [self._direct_quarter(c, q.shift(k - n), k, item) for k in range(1, n + 1)]
        gaps = [str(q.shift(k - n)) for k, p in zip(range(1, n + 1), parts) if p.missing]
        if gaps:
            return missing(
                f"{ITEM_LABELS[item]} year to date {q}: no cumulative figure, and no single-quarter "
                f"figure for {', '.join(gaps)} to add up"
            )
        if len({p.vintage for p in parts}) > 1:
            return missing(
                f"{ITEM_LABELS[item]} year to date {q}: its quarters mix figures as first published and restated; "
                "not added up"
            )
        olds = {p.old_basis for p in parts}
        if len(olds) > 1:
            return missing(f"{ITEM_LABELS[item]} year to date {q}: its quarters straddle a policy change; not added up")
        flags = frozenset().union(*(p.flags for p in parts)) - {"source_quarter"} | {"summed_quarters"}
        return Figure(sum(p.value for p in parts), flags, tuple(s for p in parts for s in p.sources), "", olds.pop())

    def fiscal_year(self, company: str, q: Quarter) -> int:
        """Index of the first quarter of the fiscal year that `q` belongs to."""
        fye = self.companies[company].fiscal_year_end
        return q.index - (q.fiscal_quarter(fye) - 1) if fye in (3, 6, 9, 12) else q.index

    def reports(self, company: str, item: str) -> bool:
        """Whether the company reports the item in any period."""
        return (company, item) in self._reported

    def has_data(self, company: str, quarter: Quarter) -> bool:
        """Whether a revenue figure (single quarter) can be had for the company in that quarter."""
        return not self.get(company, quarter, QUARTER, "revenue").missing

    def has_reported(self, company: str, quarter: Quarter) -> bool:
        """Whether the company has any figure for a period ending in that quarter (it has reported)."""
        return (company, quarter) in self._periods
