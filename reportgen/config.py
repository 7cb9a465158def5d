"""reportgen.toml -> frozen Settings: subject, peer groups, metrics shown, mail lists, schedule."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

CONFIG_NAME = "reportgen.toml"


@dataclass(frozen=True)
class Group:
    id: str
    label: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class MailList:
    name: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = "{title}"
    attach: tuple[str, ...] = ("pdf",)


@dataclass(frozen=True)
class Settings:
    """Workspace settings with their defaults. Amount units are RMB million throughout."""

    #: company id of the subject
    subject: str = "xiaomi"
    #: cover title; {subject} and {quarter} are filled in
    title: str = "{subject} vs peers: {quarter} briefing"
    author: str = "Strategy & Investor Relations"
    confidentiality: str = "Internal: for the management team only."
    #: scorecard metrics in order
    metrics: tuple[str, ...] = (
        "revenue",
        "revenue_yoy",
        "gross_margin",
        "selling_expense_ratio",
        "admin_expense_ratio",
        "rnd_ratio",
        "operating_margin",
        "net_margin",
    )
    #: the metric charted per peer group
    section_metric: str = "selling_expense_ratio"
    #: comparison within this many percentage points is "slightly"
    slightly_pp: float = 1.0
    trend_quarters: int = 6
    min_peers_reported: int = 5
    #: publish a newer quarter before min_peers_reported peers have data
    publish_partial: bool = False
    groups: tuple[Group, ...] = ()
    owner: str = ""
    mail_lists: tuple[MailList, ...] = ()
    schedule_cron: str = "0 8 1 * *"
    path: str = CONFIG_NAME
    #: the file's text, so later cross-checks can name a line
    source_text: str = field(default="", repr=False, compare=False)

    def group_of(self, company: str) -> str | None:
        for g in self.groups:
            if company in g.members:
                return g.id
        return None

    @property
    def companies(self) -> tuple[str, ...]:
        """The subject then every peer, in group order."""
        seen = [self.subject]
        for g in self.groups:
            seen += [m for m in g.members if m not in seen]
        return tuple(seen)


_REPORT_KEYS = {
    "subject": str,
    "title": str,
    "author": str,
    "confidentiality": str,
    "metrics": list,
    "section_metric": str,
    "slightly_pp": (int, float),
    "trend_quarters": int,
    "min_peers_reported": int,
    "publish_partial": bool,
    "owner": str,
}
_TOP_KEYS = {"report", "groups", "mail", "schedule"}
_SECRET_KEYS = {"password", "smtp_password", "pass", "secret"}


def check_placeholders(template: str, allowed: set[str], fail) -> None:
    """Raise fail(message) unless `template` is a valid str.format template using only `allowed` names."""
    import string

    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise fail(f"not a valid template ({e}); write a literal brace as {{{{ or }}}}") from None
    bad = sorted(n for n in names if n not in allowed)
    if bad:
        known = ", ".join("{" + a + "}" for a in sorted(allowed))
        raise fail(f"unknown placeholder {{{bad[0]}}}; this text can use {known}")


def line_of(text: str, key: str, section: str | None = None) -> int | None:
    """1-based line where `key = ...` (or the table `[section]`) is written, searching after `section`."""
    lines = text.splitlines()
    start = 0
    if section:
        pat = re.compile(r"^\s*\[+\s*" + re.escape(section) + r"\s*\]+")
        for i, ln in enumerate(lines):
            if pat.match(ln):
                start = i
                break
    kpat = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
    for i in range(start, len(lines)):
        if kpat.match(lines[i]):
            return i + 1
    tpat = re.compile(r"^\s*\[+\s*(?:[\w.]+\.)?" + re.escape(key) + r"\s*\]+")
    for i, ln in enumerate(lines):
        if tpat.match(ln):
            return i + 1
    return None


def read_toml(path: Path, rel: str | None = None, error=ConfigError) -> tuple[dict, str]:
    """Parse a TOML file; a syntax error becomes an error at its line (named `rel` in messages)."""
    rel = rel or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error("file not found", rel) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8", rel) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        # Python < 3.14 has no lineno attribute; the message ends "(at line N, column M)".
        m = re.search(r"\(at line (\d+), column \d+\)$", str(e))
        line = getattr(e, "lineno", None) or (int(m.group(1)) if m else None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)$", "", getattr(e, "msg", str(e)))
        raise error(f"not valid TOML: {msg}", rel, line) from None


def load_settings(workspace: Path) -> Settings:
    """Read and check <workspace>/reportgen.toml; a missing file gives the defaults."""
    path = Path(workspace) / CONFIG_NAME
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_NAME} here; run 'reportgen init DIR' to create a workspace, or pass -C DIR", path
        )
    rel = CONFIG_NAME
    data, text = read_toml(path, rel)

    def err(msg, key, section=None):
        return ConfigError(msg, rel, line_of(text, key, section), key)

    for k in data:
        if k not in _TOP_KEYS:
            raise err(f"unknown table '{k}'; known: {', '.join(sorted(_TOP_KEYS))}", k)
    report = data.get("report", {})
    kw: dict = {}
    for k, v in report.items():
        if k in _SECRET_KEYS:
            raise err(
                "secrets do not belong in the workspace; set REPORTGEN_SMTP_PASSWORD in the environment", k, "report"
            )
        if k not in _REPORT_KEYS:
            raise err(f"unknown key; known keys: {', '.join(sorted(_REPORT_KEYS))}", k, "report")
        typ = _REPORT_KEYS[k]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            want = "a list" if typ is list else (typ.__name__ if isinstance(typ, type) else "a number")
            raise err(f"must be {want}, not {v!r}", k, "report")
        kw[k] = tuple(v) if isinstance(v, list) else v
    if "title" in kw:
        check_placeholders(kw["title"], {"subject", "quarter"}, lambda m: err(m, "title", "report"))
    if "slightly_pp" in kw and not (0 <= kw["slightly_pp"] <= 100):
        raise err("must be between 0 and 100 percentage points", "slightly_pp", "report")
    if "trend_quarters" in kw and not (2 <= kw["trend_quarters"] <= 40):
        raise err("must be between 2 and 40", "trend_quarters", "report")

    groups = []
    for gid, g in data.get("groups", {}).items():
        if not isinstance(g, dict):
            raise err("each group is a table with label and members", gid)
        for k in g:
            if k not in ("label", "members"):
                raise err(f"unknown key in group '{gid}'; known keys: label, members", k, f"groups.{gid}")
        members = g.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise err("members must be a list of company ids", "members", f"groups.{gid}")
        if not members:
            raise err(f"peer group '{gid}' has no members", "members", f"groups.{gid}")
        groups.append(Group(gid, str(g.get("label", gid)), tuple(members)))
    kw["groups"] = tuple(groups)

    mail = data.get("mail", {})
    for k in mail:
        if k in _SECRET_KEYS:
            raise err(
                "secrets do not belong in the workspace; set REPORTGEN_SMTP_PASSWORD in the environment", k, "mail"
            )
        if k not in ("owner", "lists"):
            raise err("unknown key in [mail]; known keys: owner, lists", k, "mail")
    kw["owner"] = str(mail.get("owner", report.get("owner", "")))
    lists = []
    for name, spec in mail.get("lists", {}).items():
        sec = f"mail.lists.{name}"
        for k in spec:
            if k in _SECRET_KEYS:
                raise err(
                    "secrets do not belong in the workspace; set REPORTGEN_SMTP_PASSWORD in the environment", k, sec
                )
            if k not in ("to", "cc", "bcc", "subject", "attach"):
                raise err("unknown key; known keys: to, cc, bcc, subject, attach", k, sec)

        def addrs(k, spec=spec, sec=sec):
            v = spec.get(k, [])
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
                raise err("must be a list of addresses", k, sec)
            return tuple(v)

        attach = tuple(spec.get("attach", ["pdf"]))
        for a in attach:
            if a not in ("pdf", "html", "xlsx"):
                raise err(f"unknown attachment '{a}'; choose from pdf, html, xlsx", "attach", sec)
        if "subject" in spec:
            check_placeholders(
                str(spec["subject"]), {"title", "quarter", "edition_date"}, lambda m, sec=sec: err(m, "subject", sec)
            )
        lists.append(
            MailList(name, addrs("to"), addrs("cc"), addrs("bcc"), str(spec.get("subject", "{title}")), attach)
        )
    kw["mail_lists"] = tuple(lists)

    sched = data.get("schedule", {})
    for k in sched:
        if k != "cron":
            raise err("unknown key in [schedule]; known key: cron", k, "schedule")
    if "cron" in sched:
        kw["schedule_cron"] = str(sched["cron"])
    kw["path"] = rel
    kw["source_text"] = text
    return Settings(**kw)
