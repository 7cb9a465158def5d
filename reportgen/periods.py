"""Quarter value type: parsing `2025Q2`, arithmetic, ranges and fiscal-year alignment."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import PeriodError

_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, e.g. Quarter(2025, 2) for April-June 2025."""

    year: int
    q: int

    @classmethod
    def parse(cls, text: str) -> "Quarter":
        m = _QUARTER.match(str(text).strip())
        if not m:
            raise PeriodError(f"'{text}' is not a quarter; write it like 2025Q2 (year, Q, 1-4)")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"

    def __hash__(self) -> int:  # quarters key most lookups; hashing the index beats hashing a field tuple
        return self.year * 4 + self.q

    @property
    def index(self) -> int:
        """Quarters since year 0, so that differences count quarters."""
        return self.year * 4 + self.q - 1

    @classmethod
    def from_index(cls, index: int) -> "Quarter":
        return cls(index // 4, index % 4 + 1)

    def shift(self, n: int) -> "Quarter":
        """The quarter n quarters later (earlier when n < 0)."""
        return Quarter.from_index(self.index + n)

    @property
    def end_month(self) -> int:
        return self.q * 3

    def fiscal_quarter(self, fiscal_year_end: int) -> int:
        """1-4: which quarter of its fiscal year this calendar quarter is, for a year ending in that month."""
        if fiscal_year_end not in (3, 6, 9, 12):
            raise PeriodError(f"fiscal year ending in month {fiscal_year_end} does not align with calendar quarters")
        return (self.end_month - fiscal_year_end - 1) % 12 // 3 + 1


def parse_range(text: str) -> list[Quarter]:
    """`2025Q2` -> [2025Q2]; `2024Q3..2025Q2` -> every quarter from the first to the last."""
    if ".." in text:
        a, b = (Quarter.parse(t) for t in text.split("..", 1))
        if b < a:
            raise PeriodError(f"'{text}': the range ends before it starts")
        return [Quarter.from_index(i) for i in range(a.index, b.index + 1)]
    return [Quarter.parse(text)]
