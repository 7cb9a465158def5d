"""The package's exceptions: each names the file, line and field a user must fix."""

from __future__ import annotations

import unicodedata


def visible(text: str) -> str:
    """Text with invisible and control characters written as escapes (a zero-width space shows as \\u200b), so a
    message never hides what is wrong. Line breaks between lines of a message stay."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        if ch in "\n" or ch == " " or not (cat.startswith("C") or cat in ("Zs", "Zl", "Zp")):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


class ReportgenError(Exception):
    """Base class: a problem a user can fix, located at path:line in field."""

    exit_code = 1

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field

    def location(self) -> str:
        """`FILE:LINE: field` (each part only when known)."""
        parts = []
        if self.path:
            parts.append(self.path if self.line is None else f"{self.path}:{self.line}")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return visible(f"{loc}: {self.message}" if loc else self.message)


class DataError(ReportgenError):
    """A data file (registry, financials, label map, FX) is malformed or inconsistent."""


class ConfigError(ReportgenError):
    """reportgen.toml is malformed or names something that does not exist."""


class PeriodError(ReportgenError):
    """A quarter is malformed, or there is no data for it."""


class RenderError(ReportgenError):
    """A template or chart could not be rendered."""


class DeliveryError(ReportgenError):
    """Mail could not be built or delivered."""


class Problems(ReportgenError):
    """Several problems found at once (validate); str() lists one per line."""

    def __init__(self, problems: list[ReportgenError]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
