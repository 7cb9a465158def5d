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

from .model import (
    BASIS_TERMS,
    EXPENSE_ITEMS,
    QUARTER,
    STATED_RATIOS,
    UNITS,
    YTD,
    Company,
    Reason,
    ReportedRow,
    Source,
    item_term,
)
from .periods import Quarter

__all__ = ["QUARTER", "YTD", "Figure", "Normalizer", "missing", "check_alignment"]
_NO_FLAGS, _STATED, _FX = frozenset(), frozenset({"stated_ratio"}), frozenset({"fx_converted"})
_CALENDARIZED = frozenset({"calendarized"})


@dataclass(frozen=True)
class Figure:
    """A normalized figure (RMB million, or a fraction for stated ratios) or a missing one with its reason."""

    value: float | None
    flags: frozenset = frozenset()
    sources: tuple[Source, ...] = ()
    reason: Reason | str = ""
    old_basis: frozenset = frozenset()  # ids of policy changes this figure predates
    uncertainty: float = 0.0  # RMB million (a fraction for stated ratios): the printing's, summed when derived

    @property
    def missing(self) -> bool:
        return self.value is None

    @property
    def vintage(self) -> str:
        return "restated" if any(s.vintage == "restated" for s in self.sources) else "published"


def missing(reason: Reason) -> Figure:
    return Figure(None, frozenset({"missing"}), (), reason)


def check_alignment(company: Company) -> None:
    """Refuse a company whose fiscal quarters do not end on calendar quarter ends."""
    company.check_aligned()


def _doubt(fig: Figure) -> int:
    """How doubtful a figure's sources are: 0 high confidence (or not said), 1 medium, 2 low."""
    return max(({"medium": 1, "low": 2}.get(s.confidence, 0) for s in fig.sources), default=0)


class Normalizer:
    """Normalized figures of a set of companies, computed on demand and memoized."""

    def __init__(self, companies: dict[str, Company], rows: list[ReportedRow], fx: dict, reported: set = frozenset()):
        self.companies = companies
        # (company, item, quarter, basis) -> (published, restated), each (value, row, flags, old_basis, uncertainty)
        # or None: a pair, not a dict per figure (a tenth of the memory of 10,000 companies). Source objects are
        # made only for the figures asked for.
        self._rows: dict[tuple, tuple[tuple | None, tuple | None]] = {}
        self._memo: dict[tuple, Figure] = {}
        self._vintage: str | None = None
        self._ytd_basis = False
        self.latest: dict[str, Quarter] = {}
        self._reported: set[tuple[str, str]] = set(reported)
        for cid in {r.company for r in rows}:
            companies[cid].check_aligned()
        self._periods: set[tuple[str, Quarter]] = set()
        #: (company, index of a fiscal year's first quarter) for fiscal years a later report restated
        self.restated_years: set[tuple[str, int]] = set()
        store, reported, latest, periods = self._rows, self._reported, self.latest, self._periods
        for r in rows:
            cid, item, q, vintage = r.company, r.item, r.quarter, r.vintage
            company = companies[cid]
            value, flags, unc = self._convert(r, fx)
            old = company.old_basis(item, q, vintage)
            key = (cid, item, q, r.basis)
            entry = (value, r, flags, old, unc)
            published, restated = store.get(key, (None, None))
            store[key] = (published, entry) if vintage == "restated" else (entry, restated)
            reported.add((cid, item))
            periods.add((cid, q))
            if vintage == "restated":
                self.restated_years.add((cid, company.fiscal_year_start(q) if company.aligned else 0))
            if item == "revenue":
                prev = latest.get(cid)
                if prev is None or q.index > prev.index:
                    latest[cid] = q

    @staticmethod
    def _convert(r: ReportedRow, fx: dict) -> tuple[float, frozenset, float]:
        """(value, flags, uncertainty) in RMB million, or as a fraction for a stated ratio."""
        value, flags, unc = Normalizer._convert_value(r, fx)
        return value, (flags | _CALENDARIZED) if r.calendarized else flags, unc

    @staticmethod
    def _convert_value(r: ReportedRow, fx: dict) -> tuple[float, frozenset, float]:
        if r.unit == "percent":
            return r.value / 100.0, _STATED, r.uncertainty / 100.0
        scale = UNITS[r.unit] / 1e6
        value = r.value * scale
        if r.item in EXPENSE_ITEMS:
            value = abs(value)
        if r.currency in ("RMB", "CNY"):
            return value, _NO_FLAGS, r.uncertainty * scale
        rate = fx[(r.currency, str(r.quarter), r.basis)][0]
        return value * rate, _FX, r.uncertainty * scale * rate

    # -- raw lookups -------------------------------------------------------------------------------------------
    def _row(self, company, item, q, basis, vintage=None):
        """(value, row, flags, old_basis) of a row; the restated vintage wins unless one is asked for."""
        found = self._rows.get((company, item, q, basis))
        if not found:
            return None
        published, restated = found
        wanted = vintage or self._vintage
        if wanted:
            return restated if wanted == "restated" else published if wanted == "published" else None
        return restated or published

    def _figure(self, row, extra=()) -> Figure:
        value, r, flags, old, unc = row
        return Figure(value, flags | frozenset(extra), (r.source(),), "", old, unc)

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
        n = c.fiscal_quarter(q)
        cum_basis = f"{3 * n}M"
        if item in STATED_RATIOS:
            row = self._row(company, item, q, "3M" if basis == QUARTER else cum_basis)
            return self._figure(row) if row else missing(Reason.of("no_stated", item=item_term(item), quarter=q))
        if basis == YTD or n == 1:
            self._ytd_basis = basis == YTD
            return self._ytd(c, q, n, item)
        tries = [self._direct_quarter, self._decumulate]
        if c.reporting == "ytd":
            tries.reverse()
        found, reasons = [], []
        for rank, f in enumerate(tries):
            fig = f(c, q, n, item)
            if "policy_refused" in fig.flags:
                # a source's single quarter here would be that same subtraction across two bases
                return fig
            if fig.missing:
                reasons.append(fig.reason)
            else:
                found.append((fig.uncertainty, rank, fig))
        if found:
            # Had two ways, the clearly more precise one wins (at most half the uncertainty); and a quarter printed
            # by the company or a source beats one derived from rounded cumulative figures that is no more precise
            # and no more certain (SERES 2025Q3: 481.33亿 as printed, not 1105.34亿 - 62,401.72). Otherwise the
            # company's usual way (listed first) stays.
            found.sort(key=lambda t: t[1])
            best = found[0]
            for cand in found[1:]:
                printed = (
                    tries[cand[1]] == self._direct_quarter
                    and 0 < best[0]
                    and cand[0] <= best[0]
                    and _doubt(cand[2]) <= _doubt(best[2])  # and of no lower confidence
                )
                if cand[0] < best[0] / 2 or printed:
                    best = cand
            return best[2]
        return missing(reasons[0])  # the reason of the way this company's figure is normally had

    def _direct_quarter(self, c, q, n, item) -> Figure:
        row = self._row(c.id, item, q, "3M")
        if not row:
            return missing(Reason.of("no_quarter_figure", item=item_term(item), quarter=q))
        extra = {"source_quarter"} if c.reporting == "ytd" and n > 1 else set()
        return self._figure(row, extra)

    def _decumulate(self, c, q, n, item) -> Figure:
        """Q_n = YTD_n - YTD_(n-1), from two figures of the same vintage and accounting basis."""
        b_now, b_prev = f"{3 * n}M", f"{3 * (n - 1)}M"
        prev_q = q.shift(-1)
        now_any, prev_any = self._row(c.id, item, q, b_now), self._row(c.id, item, prev_q, b_prev)
        if not now_any or not prev_any:
            which = tuple(
                Reason.of("period", basis=BASIS_TERMS[b], quarter=p)
                for b, p, r in ((b_now, q, now_any), (b_prev, prev_q, prev_any))
                if not r
            )
            return missing(Reason.of("cannot_derive", item=item_term(item), periods=which, quarter=q))
        problem, refused = None, False
        for vintage in (self._vintage,) if self._vintage else ("restated", "published"):
            now, prev = self._row(c.id, item, q, b_now, vintage), self._row(c.id, item, prev_q, b_prev, vintage)
            if not now or not prev:
                problem = Reason.of(
                    "vintage_mix_derive",
                    item=item_term(item),
                    basis=BASIS_TERMS[b_now],
                    quarter=q,
                    prior_basis=BASIS_TERMS[b_prev],
                    prior_quarter=prev_q,
                )
                continue
            if now[3] != prev[3]:
                problem = Reason.of(
                    "policy_derive",
                    item=item_term(item),
                    prior_basis=BASIS_TERMS[b_prev],
                    prior_quarter=prev_q,
                    policies=", ".join(sorted(now[3] ^ prev[3])),
                    basis=BASIS_TERMS[b_now],
                    quarter=q,
                )
                refused = True
                continue
            value = now[0] - prev[0]
            flags = (now[2] | prev[2]) | {"derived_ytd"}
            sources = (now[1].source(), prev[1].source())
            return Figure(value, frozenset(flags), sources, "", now[3] | prev[3], now[4] + prev[4])
        fig = missing(problem)
        return Figure(None, fig.flags | {"policy_refused"}, (), problem) if refused else fig

    def _ytd(self, c, q, n, item) -> Figure:
        """Year to date: the reported cumulative figure, else the sum of the fiscal year's single quarters."""
        if self._ytd_basis and c.fiscal_year_end != 12:
            return missing(Reason.of("fiscal_ytd", company=c.name, month=c.fiscal_year_end))
        row = self._row(c.id, item, q, f"{3 * n}M")
        if row:
            return self._figure(row)
        if n == 1:
            return missing(Reason.of("not_reported", item=item_term(item), quarter=q))
        parts = [self._direct_quarter(c, q.shift(k - n), k, item) for k in range(1, n + 1)]
        gaps = tuple(q.shift(k - n) for k, p in zip(range(1, n + 1), parts) if p.missing)
        if gaps:
            return missing(Reason.of("ytd_gaps", item=item_term(item), quarter=q, gaps=gaps))
        if len({p.vintage for p in parts}) > 1:
            return missing(Reason.of("ytd_vintage_mix", item=item_term(item), quarter=q))
        olds = {p.old_basis for p in parts}
        if len(olds) > 1:
            return missing(Reason.of("ytd_policy", item=item_term(item), quarter=q))
        flags = frozenset().union(*(p.flags for p in parts)) - {"source_quarter"} | {"summed_quarters"}
        sources = tuple(s for p in parts for s in p.sources)
        return Figure(sum(p.value for p in parts), flags, sources, "", olds.pop(), sum(p.uncertainty for p in parts))

    def fiscal_year(self, company: str, q: Quarter) -> int:
        """Index of the first quarter of the fiscal year that `q` belongs to."""
        return self.companies[company].fiscal_year_start(q)

    def reports(self, company: str, item: str) -> bool:
        """Whether the company reports the item in any period."""
        return (company, item) in self._reported

    def has_data(self, company: str, quarter: Quarter) -> bool:
        """Whether a revenue figure (single quarter) can be had for the company in that quarter."""
        return not self.get(company, quarter, QUARTER, "revenue").missing

    def has_reported(self, company: str, quarter: Quarter) -> bool:
        """Whether the company has any figure for a period ending in that quarter (it has reported)."""
        return (company, quarter) in self._periods
