"""The string seam: every word a reader sees (briefing, findings, missing-value reasons, mail) comes through one
message catalogue per language, gettext `.po` files under `reportgen/locale/` read with Babel. English is the
source language: its messages are the msgids themselves.

Extract the messages after changing a string (the README's "Development" section has the command):
    pybabel extract -F babel.cfg -o reportgen/locale/reportgen.pot .
"""

from __future__ import annotations

import functools
import gettext as _gettext
from collections.abc import Mapping
from pathlib import Path

from .formats import NOT_AVAILABLE, fmt_value
from .model import FLAG, ITEM, Reason, Term, marks, sup_marks

DOMAIN = "reportgen"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: languages a briefing can be written in; the first is the default
LANGUAGES = ("en",)


@functools.lru_cache(maxsize=8)
def translations(lang: str) -> _gettext.NullTranslations:
    """The catalogue of `lang` (English: none, the msgids are English)."""
    if lang == "en":
        return _gettext.NullTranslations()
    raise ValueError(f"no catalogue for language {lang!r}; known: {', '.join(LANGUAGES)}")


class Text:
    """One language's words and number formats, for everything a reader sees."""

    def __init__(self, lang: str = "en"):
        self.lang = lang
        self._t = translations(lang)

    # -- messages ----------------------------------------------------------------------------------------------
    def gettext(self, message: str) -> str:
        return self._t.gettext(message) if message else message

    _ = gettext

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def reason(self, reason) -> str:
        """A missing-value reason in words."""
        if isinstance(reason, Reason):
            return reason.render(self.gettext)
        return self.gettext(reason) if isinstance(reason, Term) else str(reason or "")

    def item(self, item_id: str) -> str:
        return self.gettext(ITEM[item_id].label)

    def flag_note(self, flag_id: str) -> str:
        return self.gettext(FLAG[flag_id].note)

    def templates(self, defaults: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Sentence templates in this language, with a workspace's rewording on top."""
        return {**{k: self.gettext(v) for k, v in defaults.items()}, **(overrides or {})}

    # -- figures -----------------------------------------------------------------------------------------------
    @property
    def not_available(self) -> str:
        return self.gettext(NOT_AVAILABLE)

    def fmt(self, value, unit: str, uncertainty: float | None = 0.0) -> str:
        """A figure as shown: 6.7%, +30.5%, +1.8 pp, 115,956 (RMB million), n/a; never with more digits than its
        `uncertainty` supports."""
        return fmt_value(value, unit, uncertainty)

    marks = staticmethod(marks)
    sup_marks = staticmethod(sup_marks)

    # -- periods -----------------------------------------------------------------------------------------------
    def period(self, quarter, basis: str, fiscal_quarter: int | None = None, short: bool = False) -> str:
        """A period as a reader says it: 2025Q2; the first half of 2025 (short: H1 2025); the first nine months of
        2025 (9M 2025); the year 2025 (FY2025). `fiscal_quarter` defaults to the calendar quarter."""
        n = fiscal_quarter or quarter.q
        if basis == "quarter" or n == 1:
            return str(quarter)
        _ = self.gettext
        if short:
            word = {2: _("H1 {year}"), 3: _("9M {year}"), 4: _("FY{year}")}[n]
        else:
            word = {2: _("the first half of {year}"), 3: _("the first nine months of {year}"), 4: _("the year {year}")}[
                n
            ]
        return word.format(year=quarter.year)

    def date(self, d) -> str:
        """A date as a reader reads it (ISO in English: 2026-11-30)."""
        return d.isoformat() if hasattr(d, "isoformat") else str(d)


@functools.lru_cache(maxsize=8)
def text(lang: str = "en") -> Text:
    return Text(lang)
