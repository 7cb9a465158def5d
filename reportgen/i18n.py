"""The string seam: every word a reader sees (briefing, findings, missing-value reasons, mail) comes through one
message catalogue per language, gettext `.po` files under `reportgen/locale/` read with Babel. English is the
source language: its messages are the msgids themselves.

Extract the messages after changing a string (the README's "Development" section has the command):
    pybabel extract -F babel.cfg -k N_ -k NC_:1c,2 --omit-header --no-location --sort-output \
        -o reportgen/locale/reportgen.pot .
    pybabel update -D reportgen -i reportgen/locale/reportgen.pot -d reportgen/locale --no-fuzzy-matching
"""

from __future__ import annotations

import functools
import gettext as _gettext
import io
from collections.abc import Mapping
from pathlib import Path

from .formats import NOT_AVAILABLE, fmt_value
from .model import FLAG, ITEM, N_, NC_, Contextual, Reason, Term, is_missing, marks, sup_marks

DOMAIN = "reportgen"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: languages a briefing can be written in; the first is the default
LANGUAGES = ("en", "zh-CN")
#: the catalogue folder of each language (gettext's naming)
CATALOGUE = {"zh-CN": "zh_CN"}
#: Babel's locale for dates
BABEL_LOCALE = {"en": "en", "zh-CN": "zh_Hans_CN"}
#: the HTML lang attribute of each language
HTML_LANG = {"en": "en", "zh-CN": "zh-Hans"}


def check_language(lang: str, fail=ValueError) -> str:
    """`lang` if reportgen can write it; else fail(message naming the known ones)."""
    if lang not in LANGUAGES:
        raise fail(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    return lang


@functools.lru_cache(maxsize=8)
def translations(lang: str) -> _gettext.NullTranslations:
    """The catalogue of `lang` (English: none, the msgids are English). The compiled `.mo` is read where it is as
    new as its `.po` (the wheel's build compiles it: hatch_build.py); in a checkout where it is not, the `.po` is
    compiled in memory, so an edited translation shows at once."""
    check_language(lang)
    if lang == "en":
        return _gettext.NullTranslations()
    folder = LOCALE_DIR / CATALOGUE[lang] / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with open(mo, "rb") as fh:
            return _gettext.GNUTranslations(fh)
    return _gettext.GNUTranslations(io.BytesIO(compile_po(po)))


def compile_po(po: Path) -> bytes:
    """The `.mo` bytes of a `.po` file (Babel); fuzzy entries are left out, as msgfmt does."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po, "rb") as fh:
        catalog = read_po(fh)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


class Text:
    """One language's words and number formats, for everything a reader sees."""

    def __init__(self, lang: str = "en"):
        self.lang = lang
        self._t = translations(lang)

    # -- messages ----------------------------------------------------------------------------------------------
    def gettext(self, message: str) -> str:
        if isinstance(message, Contextual):
            return self._t.pgettext(message.context, message)
        return self._t.gettext(message) if message else message

    _ = gettext

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def reason(self, reason) -> str:
        """A missing-value reason in words."""
        if isinstance(reason, Reason):
            return reason.render(self.gettext, self.quarter)
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
        return self.gettext(N_("n/a")) if NOT_AVAILABLE == "n/a" else self.gettext(NOT_AVAILABLE)

    def fmt(self, value, unit: str, uncertainty: float | None = 0.0) -> str:
        """A figure as shown: 6.7%, +30.5%, +1.8 pp, 115,956 (RMB million; in Chinese 1,159.56 in 亿元), n/a; never
        with more digits than its `uncertainty` supports."""
        if is_missing(value):
            return self.not_available
        return fmt_value(value, unit, uncertainty, self.lang)

    def join(self, items) -> str:
        """'A, B and C' in this language."""
        items = [str(i) for i in items]
        if len(items) <= 1:
            return "".join(items)
        return self.gettext(", ").join(items[:-1]) + self.gettext(" and ") + items[-1]

    def seq(self, items) -> str:
        """Parts of one sentence: 'a; b' in this language."""
        return self.gettext("; ").join(str(i) for i in items)

    marks = staticmethod(marks)
    sup_marks = staticmethod(sup_marks)

    # -- periods -----------------------------------------------------------------------------------------------
    def quarter(self, quarter) -> str:
        """A calendar quarter as a reader says it: 2025Q2 (in Chinese 2025年第二季度)."""
        _ = self.gettext
        word = {1: _("{year}Q1"), 2: _("{year}Q2"), 3: _("{year}Q3"), 4: _("{year}Q4")}[quarter.q]
        return word.format(year=quarter.year)

    def quarter_short(self, quarter) -> str:
        """A quarter as a chart's axis writes it: 2025Q1 (in Chinese 2025年Q1)."""
        return self.gettext(NC_("chart axis", "{year}Q{n}")).format(year=quarter.year, n=quarter.q)

    def period(self, quarter, basis: str, fiscal_quarter: int | None = None, short: bool = False) -> str:
        """A period as a reader says it: 2025Q2; the first half of 2025 (short: H1 2025); the first nine months of
        2025 (9M 2025); the year 2025 (FY2025). `fiscal_quarter` defaults to the calendar quarter."""
        n = fiscal_quarter or quarter.q
        if basis == "quarter" or n == 1:
            return self.quarter(quarter)
        _ = self.gettext
        if short:
            word = {2: _("H1 {year}"), 3: _("9M {year}"), 4: _("FY{year}")}[n]
        else:
            word = {
                2: _("the first half of {year}"),
                3: _("the first nine months of {year}"),
                4: _("the year {year}"),
            }[n]
        return word.format(year=quarter.year)

    def date(self, d) -> str:
        """A date as a reader reads it: ISO in English (2026-11-30), Babel's long form in Chinese (2026年11月30日)."""
        if not hasattr(d, "isoformat"):
            return str(d)
        if self.lang == "en":
            return d.isoformat()
        from babel.dates import format_date

        return format_date(d, format="long", locale=BABEL_LOCALE[self.lang])

    @property
    def html_lang(self) -> str:
        return HTML_LANG[self.lang]


@functools.lru_cache(maxsize=8)
def text(lang: str = "en") -> Text:
    return Text(lang)
