"""reportgen.toml -> frozen Settings: subject, peer groups, metrics shown, mail lists, schedule."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, Problems, visible
from .i18n import LANGUAGES
from .model import N_

CONFIG_NAME = "reportgen.toml"


@dataclass(frozen=True)
class Group:
    id: str
    label: str
    members: tuple[str, ...]
    #: the label in other languages (`labels = { "zh-CN" = "家电" }`); a language without one reads `label`
    labels: tuple[tuple[str, str], ...] = ()

    def label_in(self, lang: str) -> str:
        return dict(self.labels).get(lang, self.label)


@dataclass(frozen=True)
class MailList:
    name: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = "{title}"
    attach: tuple[str, ...] = ("pdf",)
    #: the language its members read; empty: the report's language
    language: str = ""


@dataclass(frozen=True)
class Settings:
    """Workspace settings with their defaults. Amount units are RMB million throughout."""

    #: company id of the subject
    subject: str = "xiaomi"
    #: cover title; {subject} and {quarter} are filled in (the default is translated into each language)
    title: str = N_("{subject} vs peers: {quarter} briefing")
    #: the language of the briefing: "en" or "zh-CN"
    language: str = "en"
    #: title, author and confidentiality in other languages ([report.zh-CN]): (language, key, text)
    translations: tuple[tuple[str, str, str], ...] = ()
    author: str = N_("Strategy & Investor Relations")
    confidentiality: str = N_("Internal: for the management team only. Do not forward outside the company.")
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
    #: the lists get an edition only once someone ran `reportgen approve` for it; the owner gets a preview first
    require_approval: bool = False
    schedule_cron: str = "0 8 1 * *"
    path: str = CONFIG_NAME
    #: the file's text, so later cross-checks can name a line
    source_text: str = field(default="", repr=False, compare=False)

    def words(self, lang: str) -> dict[str, str]:
        """Title, author and confidentiality as a briefing in `lang` shows them: the workspace's own words for that
        language ([report.zh-CN]), else its English ones, which the catalogue translates when they are the
        defaults."""
        own = {k: v for lg, k, v in self.translations if lg == lang}
        return {k: own.get(k, getattr(self, k)) for k in _TRANSLATABLE}

    def list_language(self, mail_list: MailList) -> str:
        return mail_list.language or self.language

    @property
    def languages(self) -> tuple[str, ...]:
        """The report's language, then every other language a mailing list reads: what a build writes."""
        out = [self.language]
        out += [m.language for m in self.mail_lists if m.language and m.language not in out]
        return tuple(out)

    def group_of(self, company: str) -> str | None:
        for g in self.groups:
            if company in g.members:
                return g.id
        return None

    @property
    def companies(self) -> tuple[str, ...]:
        """The subject then every peer, in group order."""
        return tuple(dict.fromkeys([self.subject, *(m for g in self.groups for m in g.members)]))


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
    "language": str,
}
_TOP_KEYS = {"report", "groups", "mail", "schedule"}
_TRANSLATABLE = ("title", "author", "confidentiality")
_SECRET_KEYS = {"password", "smtp_password", "pass", "secret"}


def check_placeholders(template: str, allowed: set[str], fail) -> None:
    """Raise fail(message) unless `template` is a valid str.format template whose replacement fields are plain
    `{name}`s from `allowed`: no format spec (`{revenue:,.0f}`), no conversion (`{x!r}`), no attribute or index."""
    import string

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise fail(f"not a valid template ({e}); write a literal brace as {{{{ or }}}}") from None
    known = ", ".join("{" + a + "}" for a in sorted(allowed))
    for name, spec, conv in fields:
        if name not in allowed:
            raise fail(f"unknown placeholder {{{name}}}; this text can use {known}")
        if spec or conv:
            written = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise fail(f"{written}: write {{{name}}} alone; the value comes formatted (no format spec or conversion)")


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


def workspace_path(root: Path, rel: str, error=ConfigError) -> Path:
    """`root / rel`, refused unless it resolves inside the workspace `root`: a symlink (or `..`) that leads out of
    the workspace is never read, whatever points there."""
    root = Path(root)
    path = root / rel
    try:
        real, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop, a permission problem
        raise error(f"cannot resolve this path ({e})", rel) from None
    if not real.is_relative_to(base):
        raise error(
            f"leads outside the workspace (to {real}); reportgen reads only files inside the workspace folder", rel
        )
    return path


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
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python < 3.14 has no lineno attribute; the message ends "(at line N, column M)".
        m = re.search(r"\(at line (\d+), column \d+\)$", str(e))
        line = getattr(e, "lineno", None) or (int(m.group(1)) if m else None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)$", "", getattr(e, "msg", str(e)))
        raise error(f"not valid TOML: {msg}", rel, line) from None
    _no_hidden_characters(data, text, rel, error)
    return data, text


def _hidden(ch: str) -> bool:
    """A control or format character (a bell, a right-to-left override, a zero-width space) that a title, label or
    sentence has no use for; tabs and line breaks are text."""
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf")


def _no_hidden_characters(data, text: str, rel: str, error, where: tuple = ()) -> None:
    """Every key and text value of a TOML file is free of hidden characters: they would reach the briefing, the
    charts and the mail unseen (a bell, text reversed by U+202E). The error names the line and shows the character
    escaped."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        path = (*where, k)
        key = ".".join(str(p) for p in path if not isinstance(p, int))
        for piece in ([k] if isinstance(k, str) else []) + ([v] if isinstance(v, str) else []):
            bad = next((ch for ch in piece if _hidden(ch)), None)
            if bad is not None:
                raw = next((i + 1 for i, ln in enumerate(text.splitlines()) if bad in ln), None)
                last = next((str(p) for p in reversed(path) if not isinstance(p, int)), "")
                line = raw or line_of(text, last)
                raise error(
                    f"has a control or invisible character ({visible(bad)}); remove it (retype the text if you cannot "
                    "see it)",
                    rel,
                    line,
                    key,
                )
        if isinstance(v, (dict, list)):
            _no_hidden_characters(v, text, rel, error, path)


def load_settings(workspace: Path) -> Settings:
    """Read and check <workspace>/reportgen.toml. Every problem is reported at once, each with its line
    (errors.Problems); a missing file is an error that says how to make a workspace."""
    path = workspace_path(workspace, CONFIG_NAME)
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_NAME} here; run 'reportgen init DIR' to create a workspace, or pass -C DIR", path
        )
    rel = CONFIG_NAME
    data, text = read_toml(path, rel)
    problems: list[ConfigError] = []

    def err(msg, key, section=None):
        problems.append(ConfigError(msg, rel, line_of(text, key, section), key))

    def table(value, key, section=None) -> dict:
        """A TOML table where one is expected; anything else is a problem and reads as empty."""
        if isinstance(value, dict):
            return value
        err(f"must be a table ([{(section + '.') if section else ''}{key}] with keys under it), not {value!r}", key,
            section)  # fmt: skip
        return {}

    def secret(k, section) -> bool:
        if k in _SECRET_KEYS:
            err("secrets do not belong in the workspace; set REPORTGEN_SMTP_PASSWORD in the environment", k, section)
            return True
        return False

    for k in data:
        if k not in _TOP_KEYS:
            err(f"unknown table '{k}'; known: {', '.join(sorted(_TOP_KEYS))}", k)
    report = table(data.get("report", {}), "report")
    kw: dict = {}
    translations = []
    for k, v in report.items():
        if secret(k, "report"):
            continue
        if k in LANGUAGES and isinstance(v, dict):  # [report.zh-CN]: the words of a briefing in that language
            for kk, vv in v.items():
                if kk not in _TRANSLATABLE:
                    err(f"unknown key; a language's table may set {', '.join(_TRANSLATABLE)}", kk, f"report.{k}")
                elif not isinstance(vv, str):
                    err("must be text", kk, f"report.{k}")
                elif kk == "title":
                    try:
                        check_placeholders(vv, {"subject", "quarter"}, lambda m: ValueError(m))
                        translations.append((k, kk, vv))
                    except ValueError as e:
                        err(str(e), kk, f"report.{k}")
                else:
                    translations.append((k, kk, vv))
            continue
        if k not in _REPORT_KEYS:
            err(f"unknown key; known keys: {', '.join(sorted(_REPORT_KEYS))}", k, "report")
            continue
        typ = _REPORT_KEYS[k]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            want = {list: "a list", str: "text", int: "a whole number", bool: "true or false"}.get(typ, "a number")
            err(f"must be {want}, not {v!r}", k, "report")
            continue
        if typ is list and not all(isinstance(x, str) for x in v):
            err("must be a list of metric ids (text)", k, "report")
            continue
        kw[k] = tuple(v) if isinstance(v, list) else v
    if "title" in kw:
        try:
            check_placeholders(kw["title"], {"subject", "quarter"}, lambda m: ValueError(m))
        except ValueError as e:
            err(str(e), "title", "report")
    kw["translations"] = tuple(translations)
    if "language" in kw and kw["language"] not in LANGUAGES:
        err(f"unknown language {kw['language']!r}; known: {', '.join(LANGUAGES)}", "language", "report")
    if "slightly_pp" in kw and not (0 <= kw["slightly_pp"] <= 100):
        err("must be between 0 and 100 percentage points", "slightly_pp", "report")
    if "trend_quarters" in kw and not (2 <= kw["trend_quarters"] <= 40):
        err("must be between 2 and 40", "trend_quarters", "report")
    if "min_peers_reported" in kw and kw["min_peers_reported"] < 0:
        err("must be 0 or more", "min_peers_reported", "report")

    groups = []
    for gid, g in table(data.get("groups", {}), "groups").items():
        sec = f"groups.{gid}"
        if not isinstance(g, dict):
            err("each group is a table with label and members", gid)
            continue
        for k in g:
            if k not in ("label", "labels", "members"):
                err(f"unknown key in group '{gid}'; known keys: label, labels, members", k, sec)
        members = g.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            err("must be a list of company ids", "members", sec)
            continue
        if not members:
            err(f"peer group '{gid}' has no members", "members", sec)
            continue
        label = g.get("label", gid)
        if not isinstance(label, str):
            err("must be text", "label", sec)
            continue
        labels = g.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            err('must be a table of labels by language, e.g. labels = { "zh-CN" = "家电" }', "labels", sec)
            labels = {}
        for lang in labels:
            if lang not in LANGUAGES:
                err(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}", "labels", sec)
        groups.append(Group(gid, label, tuple(members), tuple(sorted(labels.items()))))
    kw["groups"] = tuple(groups)

    mail = table(data.get("mail", {}), "mail")
    for k in mail:
        if not secret(k, "mail") and k not in ("owner", "lists", "require_approval"):
            err("unknown key in [mail]; known keys: owner, lists, require_approval", k, "mail")
    approval = mail.get("require_approval", False)
    if not isinstance(approval, bool):
        err("must be true or false", "require_approval", "mail")
        approval = False
    kw["require_approval"] = approval
    owner = mail.get("owner", report.get("owner", ""))
    if not isinstance(owner, str):
        err("must be one address (text)", "owner", "mail")
        owner = ""
    kw["owner"] = owner
    if kw["require_approval"] and not owner:
        err("require_approval needs an owner to send the preview to: add owner = \"you@example.com\" under [mail]",
            "require_approval", "mail")  # fmt: skip
    lists = []
    for name, spec in table(mail.get("lists", {}), "lists", "mail").items():
        sec = f"mail.lists.{name}"
        if not isinstance(spec, dict):
            err(f"each mailing list is a table: [{sec}] with to = [...]", name, "mail.lists")
            continue
        for k in spec:
            if not secret(k, sec) and k not in ("to", "cc", "bcc", "subject", "attach", "language"):
                err("unknown key; known keys: to, cc, bcc, subject, attach, language", k, sec)

        def addrs(k, spec=spec, sec=sec):
            v = spec.get(k, [])
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
                err("must be a list of addresses", k, sec)
                return ()
            return tuple(v)

        attach = spec.get("attach", ["pdf"])
        if not isinstance(attach, list) or not all(isinstance(a, str) for a in attach):
            err('must be a list such as ["pdf", "xlsx"]', "attach", sec)
            attach = ["pdf"]
        for a in attach:
            if a not in ("pdf", "html", "xlsx"):
                err(f"unknown attachment '{a}'; choose from pdf, html, xlsx", "attach", sec)
        subject = spec.get("subject", "{title}")
        if not isinstance(subject, str):
            err("must be text", "subject", sec)
            subject = "{title}"
        try:
            check_placeholders(subject, {"title", "quarter", "edition_date"}, lambda m: ValueError(m))
        except ValueError as e:
            err(str(e), "subject", sec)
        language = spec.get("language", "")
        if not isinstance(language, str) or (language and language not in LANGUAGES):
            err(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}", "language", sec)
            language = ""
        lists.append(MailList(name, addrs("to"), addrs("cc"), addrs("bcc"), subject, tuple(attach), language))
    kw["mail_lists"] = tuple(lists)

    sched = table(data.get("schedule", {}), "schedule")
    for k in sched:
        if k != "cron":
            err("unknown key in [schedule]; known key: cron", k, "schedule")
    if "cron" in sched:
        if isinstance(sched["cron"], str):
            kw["schedule_cron"] = sched["cron"]
        else:
            err('must be text such as "0 8 1 * *"', "cron", "schedule")
    if problems:
        problems.sort(key=lambda e: e.line or 0)
        raise problems[0] if len(problems) == 1 else Problems(problems)
    kw["path"] = rel
    kw["source_text"] = text
    return Settings(**kw)
