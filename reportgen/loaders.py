"""Read the workspace's data files: registry, label map, FX rates, financials (through `readers`), sentences.

Each row keeps its file and line so that every later figure can name its source. No arithmetic happens here
beyond parsing a number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import readers
from .config import check_placeholders, line_of, read_toml, workspace_path
from .errors import DataError, PeriodError
from .model import BASES, FISCAL_CALENDARS, ITEMS, Company, PolicyChange, ReportedRow, Segment
from .periods import Quarter
from .readers import FINANCIAL_COLUMNS, RATE_RANGE, number_problem, out_of_range

_QUARTER_TEXT = re.compile(r"^\d{4}[Qq][1-4]$")
#: `validate` lists at most this many problems of one financials file
MAX_PROBLEMS_PER_FILE = 20
#: a company id names a file (data/financials/ID.csv): plain letters, digits, _ and -
COMPANY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass
class Workspace:
    """Everything read from a workspace's data/ folder."""

    root: Path
    companies: dict[str, Company]
    labels: dict[str, str]
    overrides: dict[str, dict[str, str]]
    fx: dict[tuple[str, str, str], tuple[float, str, int]]
    rows: list[ReportedRow] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    #: warnings (a peer's file with no figures at all): shown, never fatal
    warnings: list[DataError] = field(default_factory=list)
    #: companies whose financials file holds no figures at all
    empty: set[str] = field(default_factory=set)
    #: (company, item) pairs reported in any period, including periods not loaded
    reported: set = field(default_factory=set)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


_TABLE = re.compile(r"^\s*\[\s*\"?([^\]\".]+)\"?\s*\]\s*(#.*)?$")
_QUOTED_TABLE = re.compile(r"^\s*\[\s*\"([^\"]+)\"\s*\]\s*(#.*)?$")


def _table_lines(text: str) -> dict[str, int]:
    """Line of each top-level [table] header, in one pass (a registry may hold thousands of companies); a quoted
    name (["odd name"]) counts too."""
    out: dict[str, int] = {}
    for i, ln in enumerate(text.splitlines(), start=1):
        m = _TABLE.match(ln) or _QUOTED_TABLE.match(ln)
        if m:
            out.setdefault(m.group(1).strip(), i)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")


def _key_path(dotted: str) -> tuple[str, ...]:
    """The parts of a dotted TOML key as written in a header: `a . "b.c"` -> ("a", "b.c")."""
    parts, cur, quote = [], "", ""
    for ch in dotted:
        if quote:
            quote = "" if ch == quote else quote
            cur += ch if quote else ""
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return (*parts, cur.strip())


def toml_line(text: str, table: tuple[str, ...], key: str | None = None, index: int | None = None) -> int | None:
    """The line of `key = ...` in the table with header [table] or, with `index`, in the index-th (from 0) entry of
    the array of tables [[table]]; the header's own line when `key` is None or not written there; None when the
    table has no header of its own (an inline table, dotted keys: the caller falls back to config.line_of).
    One pass over the text, made only for a message."""
    lines = text.splitlines()
    start, count, in_string = None, -1, False
    for i, ln in enumerate(lines):
        if (ln.count('"""') + ln.count("'''")) % 2:
            in_string = not in_string  # a header-like line inside a multi-line string is text
            continue
        m = None if in_string else _HEADER.match(ln)
        if m is None:
            continue
        if start is not None:
            lines = lines[:i]  # the entry ends at the next header
            break
        if _key_path(m.group(2)) == table and (m.group(1) == "[[") == (index is not None):
            count += 1
            if index is None or count == index:
                start = i
    if start is None:
        return None
    if key is not None:
        kpat = re.compile(r"^\s*(?:" + "|".join(re.escape(q + key + q) for q in ('"', "'", "")) + r")\s*=")
        for i in range(start + 1, len(lines)):
            if kpat.match(lines[i]):
                return i + 1
    return start + 1


def load_registry(root: Path) -> dict[str, Company]:
    rel = "data/companies.toml"
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        raise DataError("company registry not found", rel)
    data, text = read_toml(path, rel, DataError)
    if not data:
        raise DataError("the registry lists no companies", rel)
    out = {}
    required = ("name", "name_zh", "ticker", "exchange", "standard", "currency", "reporting")
    tables = _table_lines(text)
    for cid, c in data.items():
        line = tables.get(cid) or line_of(text, cid)

        def at(key, cid=cid, line=line):
            """The line of a key of this company's own table (looked up for a message only)."""
            return toml_line(text, (cid,), key) or line_of(text, key, cid) or line

        if not COMPANY_ID.fullmatch(cid):
            raise DataError(
                f"'{cid}' is not a company id: use letters, digits, _ and - (it names data/financials/ID.csv)",
                rel,
                line,
                cid,
            )
        if not isinstance(c, dict):
            raise DataError("each company is a table: [id] followed by its keys", rel, line, cid)
        for k in required:
            if not isinstance(c.get(k), str) or not c.get(k).strip():
                raise DataError(f"company '{cid}' needs a text value for '{k}'", rel, line, k)
            if any(unicodedata.category(ch).startswith("C") for ch in c[k]):
                raise DataError(f"company '{cid}': {k} has a control or invisible character", rel, at(k), k)
        if not isinstance(c.get("sector", ""), str):
            raise DataError("sector must be text", rel, at("sector"), "sector")
        known = set(required) | {"fiscal_year_end", "sector", "policy_changes", "segments", "fiscal_calendar"}
        for k in c:
            if k not in known:
                raise DataError(
                    f"unknown key in company '{cid}'; known keys: {', '.join(sorted(known))}",
                    rel,
                    at(k),
                    k,
                )
        if c["reporting"] not in ("ytd", "quarterly"):
            raise DataError(
                f"reporting must be 'ytd' or 'quarterly', not '{c['reporting']}'",
                rel,
                at("reporting"),
                "reporting",
            )
        fye = c.get("fiscal_year_end", 12)
        if not isinstance(fye, int) or isinstance(fye, bool) or not 1 <= fye <= 12:
            raise DataError(
                "must be a month number 1-12",
                rel,
                at("fiscal_year_end"),
                "fiscal_year_end",
            )
        if not re.fullmatch(r"[A-Z]{3}", c["currency"]):
            raise DataError(
                f"currency must be an ISO code like RMB, HKD or USD, not '{c['currency']}'",
                rel,
                at("currency"),
                "currency",
            )
        changes = []
        pcs = c.get("policy_changes", [])
        if not isinstance(pcs, list) or not all(isinstance(pc, dict) for pc in pcs):
            raise DataError(
                f"must be a list of tables: [[{cid}.policy_changes]] with id, title, effective, items",
                rel,
                at("policy_changes"),
                "policy_changes",
            )
        for n, pc in enumerate(pcs):

            def pc_line(key, n=n, cid=cid, at=at):
                """The line of `key` in the n-th [[ID.policy_changes]] (its header if the key is not written)."""
                return toml_line(text, (cid, "policy_changes"), key, n) or at("policy_changes")

            for key, kind in (("id", str), ("title", str), ("effective", str), ("source", str), ("items", list)):
                if key in pc and not (
                    isinstance(pc[key], kind) and (kind is str or all(isinstance(i, str) for i in pc[key]))
                ):
                    raise DataError(f"policy change: {key} must be {'a list of item ids' if kind is list else 'text'}",
                                    rel, pc_line(key), key)  # fmt: skip
            bad = [i for i in pc.get("items", []) if i not in {it.id for it in ITEMS}]
            if bad:
                raise DataError(
                    f"policy change '{pc.get('id')}': '{bad[0]}' is not an item; use ids like selling_expenses",
                    rel,
                    pc_line("items"),
                    "items",
                )
            try:
                eff = Quarter.parse(pc.get("effective", ""))
            except PeriodError:
                raise DataError(
                    f"policy change '{pc.get('id')}' needs effective = \"YYYYQn\"",
                    rel,
                    pc_line("effective"),
                    "effective",
                ) from None
            changes.append(
                PolicyChange(
                    str(pc.get("id", "")),
                    str(pc.get("title", pc.get("id", ""))),
                    eff,
                    tuple(pc.get("items", ())),
                    str(pc.get("source", "")),
                )
            )
        calendar = c.get("fiscal_calendar", "")
        if calendar not in ("", *FISCAL_CALENDARS):
            raise DataError(
                f"fiscal_calendar must be {' or '.join(FISCAL_CALENDARS)} (or left out), not {calendar!r}",
                rel,
                at("fiscal_calendar"),
                "fiscal_calendar",
            )
        out[cid] = Company(
            cid,
            c["name"],
            c["name_zh"],
            c["ticker"],
            c["exchange"],
            c["standard"],
            c["currency"],
            fye,
            c["reporting"],
            str(c.get("sector", "")),
            tuple(changes),
            line,
            _segments(c.get("segments", []), cid, rel, text, line),
            calendar,
        )
    return out


def _segments(value, cid: str, rel: str, text: str, line) -> tuple[Segment, ...]:
    """[[ID.segments]] tables: id, name, name_zh, group (the peer group the segment is compared with)."""
    if isinstance(value, list) and not value:  # most companies: no line to find (a search per company is quadratic)
        return ()

    def where(n=None, key=None):
        """The line of `key` in the n-th [[ID.segments]] entry, else of the segments as a whole (for a message)."""
        found = toml_line(text, (cid, "segments"), key, n) if n is not None else None
        return found or line_of(text, "segments", cid) or line

    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise DataError(f"must be a list of tables: [[{cid}.segments]] with id, name, name_zh, group", rel, where(),
                        "segments")  # fmt: skip
    out, seen = [], set()
    for n, spec in enumerate(value):
        for key in spec:
            if key not in ("id", "name", "name_zh", "group"):
                raise DataError(f"unknown key in a segment of '{cid}'; known keys: id, name, name_zh, group", rel,
                                where(n, key), key)  # fmt: skip
        for key in ("id", "name", "name_zh", "group"):
            if not isinstance(spec.get(key, ""), str) or (key != "group" and not spec.get(key, "").strip()):
                raise DataError(f"a segment of '{cid}' needs a text value for '{key}'", rel, where(n, key), key)
        sid = spec["id"]
        if not COMPANY_ID.fullmatch(sid) or sid in seen:
            raise DataError(f"'{sid}' is not a segment id (letters, digits, _ and -, once each)", rel,
                            where(n, "id"), "id")  # fmt: skip
        seen.add(sid)
        out.append(Segment(sid, spec["name"], spec["name_zh"], spec.get("group", "")))
    return tuple(out)


def load_labels(root: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    rel = "data/labels.toml"
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        raise DataError("label map not found", rel)
    data, text = read_toml(path, rel, DataError)
    valid = {i.id for i in ITEMS}
    for k in data:
        if k not in ("labels", "overrides"):
            raise DataError(
                "unknown table; the label map has [labels] and [overrides.<company>]", rel, line_of(text, k), k
            )
    labels = data.get("labels", {})
    if not isinstance(labels, dict) or not labels:
        raise DataError('the label map needs a [labels] table of "label" = "item" lines', rel, line_of(text, "labels"))
    overrides = data.get("overrides", {})
    if not isinstance(overrides, dict):
        raise DataError("overrides is a table per company: [overrides.<company>]", rel, line_of(text, "overrides"))
    for company, scope in overrides.items():
        if not isinstance(scope, dict):
            raise DataError(
                f"'{company}' under [overrides] is not a company table; write [overrides.<company>] and the labels "
                "under it",
                rel,
                line_of(text, company, "overrides"),
                company,
            )
    scopes = [(("labels",), labels), *((("overrides", c), m) for c, m in overrides.items())]
    for table, scope in scopes:
        for label, item in scope.items():
            if not isinstance(item, str) or item not in valid:
                raise DataError(
                    f"'{item}' is not a canonical item; use one of {', '.join(sorted(valid))}",
                    rel,
                    toml_line(text, table, label) or line_of(text, label, ".".join(table)) or line_of(text, label),
                    label,
                )
    return (
        {k.strip(): v for k, v in labels.items()},
        {c: {k.strip(): v for k, v in m.items()} for c, m in overrides.items()},
    )


def load_fx(root: Path) -> dict[tuple[str, str, str], tuple[float, str, int]]:
    """(currency, period, basis) -> (RMB per unit, file, line). Period-average rates."""
    rel = "data/fx.csv"
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        return {}
    cols = ("currency", "period", "basis", "rmb_per_unit", "source_url")

    def check_header(header):
        for col in cols:
            if col not in header:
                raise DataError(f"missing column '{col}'", rel, 1, col)

    out = {}
    for line, r in readers.records(path, rel, check_header, cols):
        currency = r["currency"]
        if not (currency.isascii() and re.fullmatch(r"[A-Za-z]{3}", currency)):
            odd = next((ch for ch in currency if not (ch.isascii() and ch.isalpha())), "")
            why = f" ('{odd}' is U+{ord(odd):04X}, not a letter A-Z)" if odd else ""
            raise DataError(
                f"'{currency}' is not a currency code; write three letters A-Z like HKD or USD{why}",
                rel,
                line,
                "currency",
            )
        try:
            if not r["period"].isascii():
                raise PeriodError(r["period"])
            q = Quarter.parse(r["period"])
        except PeriodError:
            raise DataError(f"'{r['period']}' is not a quarter like 2025Q2", rel, line, "period") from None
        if r["basis"] not in BASES:
            raise DataError(f"'{r['basis']}' is not a basis; use one of {', '.join(BASES)}", rel, line, "basis")
        rate, why = number_problem(r["rmb_per_unit"])
        if rate is None or (rate <= 0 and not out_of_range(r["rmb_per_unit"], rate, RATE_RANGE)):
            why = f": {why}" if why else ""
            raise DataError(f"'{r['rmb_per_unit']}' is not a positive rate{why}", rel, line, "rmb_per_unit")
        if out_of_range(r["rmb_per_unit"], rate, RATE_RANGE):
            raise DataError(
                f"'{r['rmb_per_unit']}' is out of range for an FX rate: RMB per unit of a currency lies between "
                f"{readers.bounds_text(RATE_RANGE)}",
                rel,
                line,
                "rmb_per_unit",
            )
        source = r.get("source_url", "")
        if not source:
            raise DataError("every rate needs its source", rel, line, "source_url")
        if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in source):
            raise DataError(
                f"'{source}' is not a source address: it holds a space or an invisible character", rel, line,
                "source_url",
            )  # fmt: skip
        key = (currency.upper(), str(q), r["basis"])
        if key in out:
            raise DataError(
                f"a second rate for {key[0]} {key[1]} {key[2]} (first on line {out[key][2]})", rel, line, "period"
            )
        out[key] = (rate, rel, line)
    return out


def financial_files(root: Path, company: str) -> list[Path]:
    """The company's financials file(s), each checked to lie inside the workspace."""
    rels = (f"data/financials/{company}.csv", f"data/financials/{company}.xlsx")
    return [workspace_path(root, rel, DataError) for rel in rels if (Path(root) / rel).exists()]


def load_financials(
    root: Path,
    company: Company,
    labels,
    overrides,
    fx,
    problems: list | None = None,
    periods: set[str] | None = None,
    reported: set | None = None,
    warnings: list | None = None,
) -> list[ReportedRow]:
    """The company's as-reported rows, checked field by field.

    Raises DataError at the first bad field, or, when a `problems` list is given, appends each bad row's
    problem to it and goes on with the next row. With `periods`, rows of other (well-formed) quarters are
    skipped unread: a briefing needs a window of quarters, not a company's whole history. `reported`, when
    given, collects (company, item) for every row, skipped or not.
    """
    files = financial_files(root, company.id)
    if not files:
        return []
    if len(files) > 1:
        raise DataError(
            f"both {files[0].name} and {files[1].name} exist for '{company.id}'; keep one", _rel(files[1], root)
        )
    path = files[0]
    rel = _rel(path, root)
    label_map = {**labels, **overrides.get(company.id, {})}
    if path.suffix.lower() == ".csv" and _blank(path):
        _no_figures(company, rel, warnings)  # an empty file: a peer with no figures yet, said plainly
        return []

    skipped = [False]  # whether rows outside the window were skipped: the company has figures, just not here

    def on_header(header):
        readers.check_financials_header(header, rel)
        if periods is None:
            return None
        p_col, l_col = header.index("period"), header.index("label")

        def outside(values):
            """Rows of well-formed quarters outside the window, noting which items the company reports."""
            p = values[p_col].strip().upper() if len(values) > p_col else ""
            if p in periods or not _QUARTER_TEXT.match(p):
                return False
            skipped[0] = True
            if reported is not None and len(values) > l_col:
                item = label_map.get(values[l_col].strip())
                if item:
                    reported.add((company.id, item))
            return True

        return outside

    out = []
    seen: dict[tuple, int] = {}
    found = 0
    for line, r in readers.records(path, rel, on_header, FINANCIAL_COLUMNS):
        try:
            out.append(readers.reported_row(r, line, rel, company, label_map, fx, seen))
        except DataError as e:
            if problems is None:
                raise
            problems.append(e)
            found += 1
            if found >= MAX_PROBLEMS_PER_FILE:  # a file wrong throughout is not listed line by line to its end
                problems.append(DataError(f"stopped after {found} problems in this file; fix these first", rel))
                break
    try:
        readers.check_cumulative(out, company)
    except DataError as e:
        if problems is None:
            raise
        problems.append(e)
    if not out and not found and not skipped[0]:
        _no_figures(company, rel, warnings)
    return out


def segment_files(root: Path, company: str) -> list[Path]:
    rels = (f"data/segments/{company}.csv", f"data/segments/{company}.xlsx")
    return [workspace_path(root, rel, DataError) for rel in rels if (Path(root) / rel).exists()]


def segment_company(company: Company, segment: Segment) -> Company:
    """The entity a segment's figures are normalized as: the company's calendar and reporting, its own id."""
    from dataclasses import replace

    return replace(company, id=segment.entity(company.id), name=segment.name, name_zh=segment.name_zh,
                   policy_changes=(), segments=())  # fmt: skip


def load_segments(
    root: Path, company: Company, labels, overrides, fx, problems: list | None = None
) -> list[ReportedRow]:
    """The company's segment figures (data/segments/ID.csv): the financials columns, plus `segment` (an id the
    registry lists) and `definition` (the segment's scope as the company reported it with the figure). Each row
    becomes a ReportedRow of the segment's entity ("xiaomi.ev"). None without segments or a file."""
    files = segment_files(root, company.id)
    if not files or not company.segments:
        if files and problems is not None:
            problems.append(DataError(f"'{company.id}' lists no [[{company.id}.segments]] in data/companies.toml",
                                      _rel(files[0], root)))  # fmt: skip
        return []
    path = files[0]
    rel = _rel(path, root)
    label_map = {**labels, **overrides.get(company.id, {})}
    segments = {s.id: segment_company(company, s) for s in company.segments}
    columns = FINANCIAL_COLUMNS + ("segment",)

    def on_header(header):
        for col in columns:
            if col not in header:
                raise DataError(f"missing column '{col}' (the header must name {', '.join(columns)})", rel, 1, col)
        known = set(columns) | set(readers.OPTIONAL_COLUMNS) | set(readers.SEGMENT_COLUMNS)
        for col in header:
            if col not in known:
                raise DataError(f"unknown column '{col}'; known columns: {', '.join(sorted(known))}", rel, 1, col)
        return None

    out, seen = [], {}
    for line, r in readers.records(path, rel, on_header, columns):
        try:
            seg = segments.get((r.get("segment") or "").strip())
            if seg is None:
                raise DataError(
                    f"unknown segment '{r.get('segment')}'; data/companies.toml lists {', '.join(segments)}",
                    rel,
                    line,
                    "segment",
                )
            out.append(readers.reported_row(r, line, rel, seg, label_map, fx, seen.setdefault(seg.id, {})))
        except DataError as e:
            if problems is None:
                raise
            problems.append(e)
    return out


def _blank(path: Path) -> bool:
    """Whether a file holds nothing but a BOM and white space; read a block at a time, only until its first other
    byte (a data file is never read whole to look at it)."""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 16):
            if block.strip(b"\xef\xbb\xbf \t\r\n"):
                return False
    return True


def _no_figures(company: Company, rel: str, warnings: list | None) -> None:
    if warnings is not None:
        warnings.append(
            DataError(f"no figures in this file; {company.name} is shown as having no figures in the data", rel)
        )


def load_workspace(root: Path, company_ids=None) -> Workspace:
    """Read the registry, label map, FX rates and the financials of the given companies (default: all)."""
    root = Path(root)
    companies = load_registry(root)
    labels, overrides = load_labels(root)
    fx = load_fx(root)
    ws = Workspace(root, companies, labels, overrides, fx)
    for cid in companies if company_ids is None else company_ids:
        if cid not in companies:
            continue
        ws.rows += load_financials(root, companies[cid], labels, overrides, fx)
        ws.files += financial_files(root, cid)
    return ws


DOCUMENT_KINDS = ("company", "exchange", "copy", "release", "aggregator", "news")


def load_documents(root: Path) -> dict[str, tuple[str, str]]:
    """data/sources.toml: what kind of document each source address is (host or host/path prefix -> (kind,
    issuer)); a workspace without the file lists every source as a web page."""
    rel = "data/sources.toml"
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        return {}
    data, text = read_toml(path, rel, DataError)
    docs = data.get("documents", {})
    if set(data) - {"documents"} or not isinstance(docs, dict):
        raise DataError('the file holds one table, [documents], of "host" = { kind, issuer }', rel, 1)
    out = {}
    for key, spec in docs.items():
        line = line_of(text, key)
        if (
            not isinstance(spec, dict)
            or spec.get("kind") not in DOCUMENT_KINDS
            or not isinstance(spec.get("issuer", ""), str)
        ):
            raise DataError(
                f'write {{ kind = "...", issuer = "..." }} with kind one of {", ".join(DOCUMENT_KINDS)}',
                rel,
                line,
                key,
            )
        out[key.strip().lower().removeprefix("https://").removeprefix("http://")] = (
            spec["kind"],
            spec.get("issuer", key),
        )
    return out


def load_sentence_templates(root: Path, placeholders: dict[str, frozenset]) -> dict[str, dict[str, str]]:
    """templates/findings.toml: a workspace's rewording of the findings' sentences, per language (missing file:
    none). Top-level keys reword the English sentences; a table named by a language (`[zh-CN]`) rewords that
    language's. `placeholders` maps each sentence a workspace may reword to the placeholders it may use."""
    from .i18n import LANGUAGES

    rel = "templates/findings.toml"
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        return {}
    data, text = read_toml(path, rel, DataError)
    out: dict[str, dict[str, str]] = {}

    def check(k, v, section=None):
        where = line_of(text, k, section)
        if k not in placeholders:
            raise DataError(f"unknown sentence '{k}'; known: {', '.join(placeholders)}", rel, where, k)
        if not isinstance(v, str):
            raise DataError("must be text", rel, where, k)
        check_placeholders(v, set(placeholders[k]), lambda m, k=k: DataError(m, rel, where, k))

    for k, v in data.items():
        if isinstance(v, dict) and k in LANGUAGES:
            for kk, vv in v.items():
                check(kk, vv, k)
            out.setdefault(k, {}).update(v)
        elif isinstance(v, dict):
            raise DataError(
                f"unknown language '{k}'; a table rewords one language's sentences: {', '.join(LANGUAGES)}",
                rel,
                line_of(text, k),
                k,
            )
        else:
            check(k, v)
            out.setdefault("en", {})[k] = v
    return out
