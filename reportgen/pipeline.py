"""The steps chained: load -> normalize -> metrics -> (briefing -> render -> write) -> deliver. Writes the
editions under output/<quarter>/; the ledger and the locks are `ledger`'s."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from . import __version__, charts, config, ledger, loaders
from .errors import ConfigError, DataError, PeriodError, ReportgenError
from .findings import PLACEHOLDERS
from .metrics import BY_ID, compute_metrics, peer_stats
from .model import QUARTER, YTD
from .normalize import Normalizer
from .periods import Quarter

log = logging.getLogger("reportgen.pipeline")


@dataclass
class Context:
    """A workspace opened for computing: settings, data and the normalizer over the configured companies."""

    root: Path
    settings: config.Settings
    data: loaders.Workspace
    norm: Normalizer

    def company_rows(self) -> list[tuple[str, str, str, str]]:
        """(id, name, name_zh, group) of the subject then every peer."""
        out = []
        for cid in self.settings.companies:
            c = self.data.companies[cid]
            group = "subject" if cid == self.settings.subject else self.settings.group_of(cid)
            out.append((cid, c.name, c.name_zh, group))
        return out

    def segment_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(entity, name, name_zh, "segment", segment id) of each segment of the subject that has figures."""
        subject = self.data.companies[self.settings.subject]
        out = []
        for seg in subject.segments:
            entity = seg.entity(subject.id)
            if entity in self.norm.latest:
                out.append(
                    (entity, f"{subject.name}, {seg.name}", f"{subject.name_zh}{seg.name_zh}", "segment", seg.id)
                )
        return out


def check_settings(settings: config.Settings, companies: dict) -> None:
    """Cross-check reportgen.toml against the registry and the metric catalogue."""
    text = settings.source_text

    def err(msg, key, section=None):
        return ConfigError(msg, settings.path, config.line_of(text, key, section), key)

    if settings.subject not in companies:
        raise err(
            f"subject '{settings.subject}' is not in data/companies.toml (known: {', '.join(sorted(companies))})",
            "subject",
            "report",
        )
    if not settings.groups:
        raise ConfigError("no peer groups: add a [groups.<id>] table with label and members", settings.path)
    for g in settings.groups:
        for m in g.members:
            if m not in companies:
                raise ConfigError(
                    f"peer group '{g.id}' names '{m}', which is not in data/companies.toml "
                    f"(known: {', '.join(sorted(companies))})",
                    settings.path,
                    config.line_of(text, "members", f"groups.{g.id}"),
                    "members",
                )
    subject = companies[settings.subject]
    group_ids = {g.id for g in settings.groups}
    for seg in subject.segments:
        if seg.group and seg.group not in group_ids:
            raise DataError(
                f"segment '{seg.id}' of {subject.name} names the peer group '{seg.group}', which reportgen.toml "
                f'does not have (its groups: {", ".join(sorted(group_ids))}); name one of them, or "" for none',
                "data/companies.toml",
                subject.line,
                "group",
            )
    for m in (*settings.metrics, settings.section_metric):
        if m not in BY_ID:
            raise err(
                f"unknown metric '{m}'; known: {', '.join(BY_ID)}",
                "metrics" if m in settings.metrics else "section_metric",
                "report",
            )


def quarter_window(quarters, settings: config.Settings, trend: bool = True) -> set[str]:
    """The quarters a briefing of `quarters` can touch: its trend (unless `trend` is False, as for the metric
    table alone), year-earlier figures, and the earlier quarters of each fiscal year that de-cumulation and
    year-to-date sums need."""
    if not quarters:
        return set()
    # a growth metric charted as the section metric needs its own year-earlier figure for the prior-year column
    lo = min(quarters).shift(-max((settings.trend_quarters - 1) if trend else 0, 4) - 4 - 3)
    return {str(Quarter.from_index(i)) for i in range(lo.index, max(quarters).index + 1)}


def open_workspace(root: Path, quarters=None, trend: bool = True) -> Context:
    """Read settings and data for the configured companies (only the quarters a briefing of `quarters` needs,
    when given; without its trend when `trend` is False); raises ReportgenError on the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("workspace folder not found; pass -C DIR with an existing folder", str(root))
    settings = config.load_settings(root)
    data = loaders.load_workspace(root, company_ids=[])
    check_settings(settings, data.companies)
    window = quarter_window(quarters, settings, trend) if quarters else None
    for cid in settings.companies:
        data.companies[cid].check_aligned()
        before = len(data.warnings)
        data.rows += loaders.load_financials(
            root,
            data.companies[cid],
            data.labels,
            data.overrides,
            data.fx,
            periods=window,
            reported=data.reported,
            warnings=data.warnings,
        )
        if len(data.warnings) > before:
            data.empty.add(cid)
        data.files += loaders.financial_files(root, cid)
    for w in data.warnings:
        if w.path != f"data/financials/{settings.subject}.csv":  # the subject's own gap is an error, said below
            log.warning("Warning: %s", w)
    # the subject's segments, each normalized as an entity of its own ("xiaomi.ev")
    subject = data.companies[settings.subject]
    entities = {s.entity(subject.id): loaders.segment_company(subject, s) for s in subject.segments}
    if entities:
        data.rows += loaders.load_segments(root, subject, data.labels, data.overrides, data.fx)
        data.files += loaders.segment_files(root, subject.id)
    companies = {**data.companies, **entities}
    return Context(root, settings, data, Normalizer(companies, data.rows, data.fx, data.reported))


def require_subject_data(ctx: Context, quarter: Quarter) -> None:
    subj = ctx.settings.subject
    if subj in getattr(ctx.data, "empty", ()):
        raise PeriodError(
            f"no figures in this file; {ctx.data.companies[subj].name} is the subject, whose figures every briefing "
            "needs",
            f"data/financials/{subj}.csv",
        )
    if not ctx.norm.has_data(subj, quarter):
        span = subject_span(ctx)
        hint = f"; its data cover {span[0]} to {span[1]}" if span else ""
        raise PeriodError(
            f"{ctx.data.companies[subj].name} (the subject) has no revenue for {quarter}{hint}",
            f"data/financials/{subj}.csv",
            None,
            "period",
        )


def subject_span(ctx: Context) -> tuple[Quarter, Quarter] | None:
    """The first and last quarter with the subject's revenue in its whole data file (not only the quarters this
    command read): the hint when a quarter asked for has none."""
    subj = ctx.data.companies[ctx.settings.subject]
    try:
        rows = loaders.load_financials(
            ctx.root, subj, ctx.data.labels, ctx.data.overrides, ctx.data.fx, periods=None, reported=set(), warnings=[]
        )
    except ReportgenError:
        return None
    quarters = sorted({r.quarter for r in rows if r.item == "revenue"})
    return (quarters[0], quarters[-1]) if quarters else None


def metric_table(ctx: Context, quarter: Quarter, basis: str = QUARTER, segments: bool = False) -> pd.DataFrame:
    """The metric table of the configured companies for a quarter, single-quarter or year-to-date basis; with
    `segments`, the subject's segments follow (their `segment` field names them)."""
    require_subject_data(ctx, quarter)
    rows = ctx.company_rows() + (ctx.segment_rows() if segments else [])
    return compute_metrics(ctx.norm, rows, quarter, basis)


def group_stats(ctx: Context, table: pd.DataFrame) -> pd.DataFrame:
    return peer_stats(table, ctx.settings.subject, ctx.settings.groups)


class _AnyRate(dict):
    """The FX rates when data/fx.csv could not be read: every rate counts as present (and none is used)."""

    def __contains__(self, key) -> bool:
        return True


def validate(root: Path, warnings: list | None = None) -> list[ReportgenError]:
    """Check every data and config file; return every problem found (empty when all is well). Things worth
    saying that are not errors (a peer's file with no figures) go to `warnings` when given."""
    root = Path(root)
    problems: list[ReportgenError] = []
    warnings = [] if warnings is None else warnings
    settings = companies = None
    try:
        settings = config.load_settings(root)
    except ReportgenError as e:
        problems.append(e)
    try:
        companies = loaders.load_registry(root)
    except ReportgenError as e:
        problems.append(e)
    try:
        labels, overrides = loaders.load_labels(root)
    except ReportgenError as e:
        problems.append(e)
        labels = overrides = None
    try:
        fx = loaders.load_fx(root)
    except ReportgenError as e:
        problems.append(e)
        fx = _AnyRate()  # its problem is listed; the data files' rows are not each said to lack a rate as well
    if settings and companies:
        try:
            check_settings(settings, companies)
        except ReportgenError as e:
            problems.append(e)
    if settings:
        try:
            cron_spec(settings)
        except ReportgenError as e:
            problems.append(e)
        problems += mail_problems(settings)
        if settings.mail_lists:  # what `send` and `run` will need from the environment, said now
            from . import deliver

            for e in deliver.SmtpSettings.problems(os.environ):  # all of them at once
                said = str(e) if e.field and e.field not in e.message else e.message  # the variable's name
                warnings.append(f"mail: {said} (`send` and `run` will need it)")
    try:
        loaders.load_sentence_templates(root, PLACEHOLDERS)
    except ReportgenError as e:
        problems.append(e)
    try:
        loaders.load_documents(root)
    except ReportgenError as e:
        problems.append(e)
    if companies and labels is not None:
        for c in companies.values():
            try:
                c.check_aligned()
            except ReportgenError as e:
                problems.append(e)
                continue
            try:
                loaders.load_financials(root, c, labels, overrides, fx, problems, warnings=warnings)
                loaders.load_segments(root, c, labels, overrides, fx, problems)
            except ReportgenError as e:
                problems.append(e)
        fin = root / "data" / "financials"
        if fin.is_dir():
            for p in sorted(fin.iterdir()):
                if p.suffix.lower() in (".csv", ".xlsx") and p.stem not in companies:
                    problems.append(
                        DataError(
                            f"'{p.stem}' is not a company in data/companies.toml; add it there or remove the file",
                            str(p.relative_to(root)),
                        )
                    )
    return problems


def mail_problems(settings: config.Settings) -> list[ReportgenError]:
    """Every mailing-list address and the owner's, checked as `send` checks them, each problem with its line."""
    from . import deliver

    problems: list[ReportgenError] = []
    text = settings.source_text

    def check(addr, key, section, where):
        try:
            deliver.validate_address(addr, where)
        except ReportgenError as e:
            problems.append(ConfigError(e.message, settings.path, config.line_of(text, key, section), where))

    if settings.owner:
        check(settings.owner, "owner", "mail", "mail.owner")
    for ml in settings.mail_lists:
        section = f"mail.lists.{ml.name}"
        for key in ("to", "cc", "bcc"):
            for addr in getattr(ml, key):
                check(addr, key, section, f"{section}.{key}")
        if not (ml.to or ml.cc or ml.bcc):
            problems.append(
                ConfigError(
                    f"mailing list '{ml.name}' has no recipients",
                    settings.path,
                    config.line_of(text, ml.name, "mail.lists"),
                    section,
                )  # fmt: skip
            )
    return problems


# -- build --------------------------------------------------------------------------------------------------------
MANIFEST = ledger.MANIFEST


@dataclass
class Edition:
    """A built edition: output/<quarter>/ with its manifest."""

    quarter: str
    path: Path
    edition: str
    manifest: dict
    rebuilt: bool = True


def source_date_epoch() -> datetime | None:
    """SOURCE_DATE_EPOCH (reproducible builds) as a UTC time; None when unset. A bad value names the variable."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return None
    if not (epoch.isascii() and epoch.isdigit()):
        raise ConfigError(f"must be a whole number of seconds since 1970, not '{epoch}'", field="SOURCE_DATE_EPOCH")
    try:
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ConfigError(f"'{epoch}' is out of range for a date", field="SOURCE_DATE_EPOCH") from None


def edition_date_default() -> date:
    """SOURCE_DATE_EPOCH's date when set (reproducible builds), else today (UTC)."""
    epoch = source_date_epoch()
    return (epoch or datetime.now(timezone.utc)).date()


def _pdf_created(edition_date: date) -> datetime:
    return source_date_epoch() or datetime(edition_date.year, edition_date.month, edition_date.day, tzinfo=timezone.utc)


def input_files(ctx: Context) -> list[Path]:
    """The whole files an edition depends on: registry, label map, FX rates, templates (reportgen.toml counts
    only for the settings that shape the briefing, see edition_settings)."""
    root = ctx.root
    files = [root / "data" / "companies.toml", root / "data" / "labels.toml"]
    files += [root / "data" / name for name in ("fx.csv", "sources.toml") if (root / "data" / name).exists()]
    tdir = root / "templates"
    if tdir.is_dir():  # hidden files (.DS_Store, editor swap files) are not templates
        files += sorted(
            p for p in tdir.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(tdir).parts)
        )
    return files


def edition_settings(settings: config.Settings) -> dict:
    """The settings an edition's content depends on. Mailing lists, the owner and the schedule are not among
    them: adding a recipient must not make a new edition that everyone receives again."""
    return {
        "subject": settings.subject,
        "title": settings.title,
        "author": settings.author,
        "confidentiality": settings.confidentiality,
        "metrics": list(settings.metrics),
        "section_metric": settings.section_metric,
        "slightly_pp": settings.slightly_pp,
        "trend_quarters": settings.trend_quarters,
        "groups": [[g.id, g.label, list(g.members), [list(x) for x in g.labels]] for g in settings.groups],
        "translations": [list(x) for x in settings.translations],
    }


_ROW_FIELDS = (
    "quarter",
    "basis",
    "label",
    "value",
    "unit",
    "currency",
    "vintage",
    "report",
    "source_url",
    "definition",
)


def inputs_hash(ctx: Context, quarter: Quarter) -> tuple[str, list[dict]]:
    """Content hash of what an edition depends on: the whole config, registry, label map, FX and template files,
    and of the financials only the rows of the quarters it shows (with their file and line, which the briefing
    cites). So a peer publishing a later quarter does not make an earlier edition new; a restated figure does."""
    h = hashlib.sha256(f"reportgen {__version__} {quarter}\n".encode())
    shaping = json.dumps(edition_settings(ctx.settings), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(shaping.encode()).hexdigest()
    h.update(f"{config.CONFIG_NAME} [report] [groups] {digest}\n".encode())
    listed = [{"path": config.CONFIG_NAME, "settings_sha256": digest}]
    for p in input_files(ctx):
        digest = _file_sha256(p)
        rel = p.relative_to(ctx.root).as_posix()
        h.update(f"{rel} {digest}\n".encode())
        listed.append({"path": rel, "sha256": digest})
    window = quarter_window([quarter], ctx.settings)
    per_file: dict[str, hashlib._Hash] = {}
    for r in sorted((r for r in ctx.data.rows if str(r.quarter) in window), key=lambda r: (r.file, r.line)):
        fh = per_file.setdefault(r.file, hashlib.sha256())
        fh.update(("\x1f".join([str(r.line), *(str(getattr(r, k)) for k in _ROW_FIELDS)]) + "\n").encode())
    for rel in sorted(per_file):
        digest = per_file[rel].hexdigest()
        h.update(f"{rel} rows {digest}\n".encode())
        listed.append({"path": rel, "rows_sha256": digest, "quarters": f"{min(window)}..{max(window)}"})
    return h.hexdigest(), listed


def _record_build(root: Path, q: Quarter, edition: str, rebuilt: bool) -> None:
    with ledger.open_ledger(root) as book:
        book.record_build(str(q), edition, rebuilt)


def _render_edition(
    ctx: Context,
    q: Quarter,
    edition_date: date,
    templates: dict,
    previous: dict | None = None,
    lang: str = "en",
    exports: bool = True,
) -> tuple[dict, dict]:
    """One edition in one language: its files and its manifest entries. Both bases (the single quarter, and the year
    to date from a fiscal Q2 on) are computed; the peer statistics of each basis are computed once and feed the
    briefing and the exports alike. `previous` is the manifest of the edition of this quarter being replaced (for
    "what changed"); `templates` the workspace's rewording by language; `exports` adds metrics.csv and .xlsx."""
    from . import briefing, export, render
    from .i18n import text

    t = text(lang)
    tables = {QUARTER: metric_table(ctx, q, QUARTER, segments=True)}
    subject = ctx.data.companies[ctx.settings.subject]
    if subject.fiscal_quarter(q) > 1:
        tables[YTD] = metric_table(ctx, q, YTD, segments=True)
    stats = {basis: group_stats(ctx, table) for basis, table in tables.items()}
    documents = loaders.load_documents(ctx.root)
    try:  # what changed is told against the replaced edition in the same language, where it had one
        before = language_view(previous, lang) if previous else None
    except ReportgenError:
        before = None
    facts = briefing.Facts(ctx, q, edition_date, tables, stats, t, templates.get(lang, {}), before, documents)
    b = briefing.assemble(facts)
    html = render.render_html(b, ctx.root / "templates", t)
    pdf = render.render_pdf(html, ctx.root, _pdf_created(edition_date), ctx.root / "templates")
    import pandas as pd

    both = pd.concat(list(tables.values()), ignore_index=True)
    metrics_csv = export.csv_text(both)
    payload = {"briefing.html": html.encode("utf-8"), "briefing.pdf": pdf}
    if exports:  # plain fractions, one file whatever the languages
        payload["metrics.csv"] = metrics_csv.encode("utf-8")
    payload["metrics.xlsx"] = export.workbook_bytes(  # the workbook in this language
        tables,
        stats,
        ctx.data.rows,
        ctx.data.companies,
        ctx.settings.subject,
        [replace(g, label=g.label_in(lang)) for g in ctx.settings.groups],
        t,
        _pdf_created(edition_date),
    )
    keys = ("title", "headline", "findings", "notes", "footnotes", "chart_count", "not_reported")
    summary = {k: b[k] for k in keys}
    summary["changes"] = b["changes"]["items"]
    summary["changes_box"] = b["changes"]
    summary["snapshot"] = b["snapshot"]
    shaping = {**edition_settings(ctx.settings), "language": lang}
    summary["identity"] = reader_identity(html, metrics_csv, edition_date, shaping, t.date(edition_date))
    return payload, summary


def briefing_names(languages) -> dict[str, dict[str, str]]:
    """The file names of each language's briefing and workbook: briefing.pdf, .html and metrics.xlsx for one
    language, briefing.LANG.pdf, .html and metrics.LANG.xlsx for each of several."""
    if len(languages) == 1:
        return {languages[0]: {"pdf": "briefing.pdf", "html": "briefing.html", "xlsx": "metrics.xlsx"}}
    return {
        lang: {"pdf": f"briefing.{lang}.pdf", "html": f"briefing.{lang}.html", "xlsx": f"metrics.{lang}.xlsx"}
        for lang in languages
    }


def language_view(manifest: dict, lang: str) -> dict:
    """The manifest as a reader of `lang` receives the edition: that language's title, findings, what changed and
    edition id (each language is mailed once), and its files' names under `names`. A manifest written before
    editions had languages is an English one. ReportgenError when the edition has no briefing in `lang`."""
    langs = manifest.get("languages")
    if not isinstance(langs, dict) or not langs:
        langs = {"en": {}}
    if lang not in langs:
        raise ReportgenError(
            f"the {manifest.get('quarter', '')} edition has no briefing in {lang}; build it with "
            f"--lang {','.join([*langs, lang])}",
            "manifest.json",
            field="language",
        )
    return {**manifest, **langs[lang], "language": lang}


_FORKED: tuple | None = None  # (ctx, edition_date, templates, previous manifests) handed to forked workers


def _render_in_worker(job: tuple) -> tuple[dict, dict, dict]:
    ctx, edition_date, templates, previous = _FORKED
    q, lang, exports = job
    payload, summary = _render_edition(ctx, q, edition_date, templates, previous.get(q), lang, exports)
    return payload, summary, charts.take()


def build(
    root: Path,
    quarters: list[Quarter],
    edition_date: date | None = None,
    progress=None,
    only_if_changed: bool = True,
    ctx: Context | None = None,
    workers: int | None = None,
    force: bool = False,
    languages: tuple[str, ...] | None = None,
    on_rendered=None,
) -> list[Edition]:
    """Build output/<quarter>/ for each quarter: HTML, PDF, metrics CSV and XLSX, manifest.json.

    An edition whose inputs are unchanged and whose files still match its manifest is left as it is (unless
    `force`). Each edition is written to a temporary folder and swapped in only when complete, under the editions
    lock (never while a send mails it), so a failed or killed build leaves the previous edition intact. The
    edition id hashes what the reader receives (see `reader_identity`): a rebuild that changes nothing a reader
    sees keeps its id, so it is not mailed again. Several quarters, and several languages (`languages`, default:
    the report's and the mailing lists'), render in parallel processes.
    """
    global _FORKED
    say = progress or (lambda msg: None)
    ctx = ctx or open_workspace(root, quarters)
    edition_date = edition_date or edition_date_default()
    _pdf_created(edition_date)  # a bad SOURCE_DATE_EPOCH fails before anything is rendered
    templates = loaders.load_sentence_templates(ctx.root, PLACEHOLDERS)
    langs = tuple(languages or ctx.settings.languages)
    quarters = _quarters_with_data(ctx, quarters)
    output = ctx.root / "output"
    _check_output_writable(output)
    book = output / ledger.LEDGER_NAME
    if book.exists() or book.is_symlink():  # a damaged (or linked) ledger stops the build before it renders
        ledger.Ledger(book).close()
    todo, out = [], {}
    for q in quarters:
        digest, inputs = inputs_hash(ctx, q)
        old = _manifest_or_none(ctx.root, q)
        built = set(languages_of(old)) if old is not None else set()
        # languages asked for (--lang) must be exactly those built; the settings' must be among them
        same_languages = built == set(langs) if languages else set(langs) <= built
        unchanged = old is not None and old.get("inputs_hash") == digest and same_languages
        if unchanged and not force and only_if_changed:
            changed = _changed_files(output / str(q), old)
            if not changed:
                hint = "`reportgen build --force` rebuilds it"
                say(f"{q}: inputs and files unchanged since edition {old['edition']}; nothing to build ({hint})")
                out[q] = Edition(str(q), output / str(q), old["edition"], old, rebuilt=False)
                continue
            say(f"{q}: {', '.join(changed)} changed since the build; rebuilding")
        todo.append((q, digest, inputs, old))
    if not todo:
        return [out[q] for q in quarters]
    jobs = [(q, lang, i == 0) for q, *_rest in todo for i, lang in enumerate(langs)]
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    with charts.cache_in(_chart_cache(output)), _fewer_collections():  # charts kept once the editions are written
        results = _render_all(ctx, todo, jobs, workers, edition_date, templates, langs, say, on_rendered)
        rendered = {q: _merge_languages(q, langs, results) for q, *_rest in todo}
        # written under the editions lock: never while a send is mailing (it reads each edition once, under it)
        with ledger.editions_lock(output, "build " + ", ".join(str(t[0]) for t in todo)):
            for q, digest, inputs, old in todo:
                payload, summary = rendered[q]
                identity = summary.pop("identity")
                manifest = {
                    "quarter": str(q),
                    "edition": identity[:16],
                    "identity": identity,
                    "inputs_hash": digest,
                    "tool_version": __version__,
                    "edition_date": edition_date.isoformat(),
                    "built_at": datetime.now(timezone.utc).isoformat(),
                    **summary,
                    "inputs": inputs,
                    "files": {
                        n: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                        for n, data in payload.items()
                    },
                }
                manifest["sealed"] = ledger.seal(manifest)  # a hand edit of the manifest shows
                payload[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
                dest = output / str(q)
                write_edition(dest, payload)
                _record_build(ctx.root, q, manifest["edition"], True)
                same = old is not None and old.get("edition") == manifest["edition"]
                note = " (nothing a reader sees changed: the same edition, not mailed again)" if same else ""
                say(f"{q}: wrote {dest.relative_to(ctx.root)}/ ({', '.join(payload)}){note}")
                out[q] = Edition(str(q), dest, manifest["edition"], manifest)
    return [out[q] for q in quarters]


def _chart_cache(output: Path) -> Path | None:
    """Where charts are cached: output/.chart-cache, unless something other than a folder of ours is in its place
    (a link is never followed: the cache is written to)."""
    folder = output / charts.CACHE_NAME
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return None
    return folder


@contextlib.contextmanager
def _fewer_collections():
    """Rendering makes millions of short-lived objects and few reference cycles: the collector's default (a pass every
    700 allocations) took a tenth of a build to find little. Passes are rarer while rendering, as before after."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _warm_up() -> None:
    """Import the renderers once, before forking, so workers share them instead of each importing them again; then
    move everything alive so far out of the garbage collector's sight (start-up objects live as long as the
    process: scanning them again on every collection is wasted work, and in a forked worker it would copy every
    page it touches)."""
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import openpyxl.comments  # noqa: F401
    import openpyxl.styles  # noqa: F401
    import weasyprint  # noqa: F401

    from . import briefing, export, render  # noqa: F401

    gc.collect()
    gc.freeze()


def _render_all(ctx, todo, jobs, workers, edition_date, templates, langs, say, on_rendered) -> dict:
    """Every (quarter, language) job rendered: in forked workers when there are several and a second core, else
    here one after the other. Returns {(quarter, language): (payload, summary)}."""
    global _FORKED
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _warm_up()
        what = f"{len(todo)} edition" + ("s" if len(todo) > 1 else "")
        what += f" in {', '.join(langs)}" if len(langs) > 1 else ""
        say(f"rendering {what} in {workers} processes")
        _FORKED = (ctx, edition_date, templates, {t[0]: t[3] for t in todo})
        results = {}
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = {pool.submit(_render_in_worker, job): job for job in jobs}
                for done in as_completed(futures):
                    q, lang, _exports = futures[done]
                    payload, summary, drawn = done.result()
                    results[(q, lang)] = payload, summary
                    charts.keep(drawn)
                    if on_rendered:
                        on_rendered(q, lang, len(jobs))
        finally:
            _FORKED = None
            gc.unfreeze()  # a long-lived caller (tests, a scheduler) collects its own garbage again
    else:
        results = {}
        for q, lang, exports in jobs:
            say(f"{q}: computing metrics, charts, HTML and PDF" + (f" ({lang})" if len(langs) > 1 else ""))
            results[(q, lang)] = _render_edition(ctx, q, edition_date, templates, old_of(todo, q), lang, exports)
            if on_rendered:
                on_rendered(q, lang, len(jobs))
    return results


def _quarters_with_data(ctx: Context, quarters: list[Quarter]) -> list[Quarter]:
    """The quarters that can be built. One quarter without the subject's data is an error; of a range, those
    without are skipped and named (an error only when none is left)."""
    ok, skipped = [], []
    for q in quarters:
        try:
            require_subject_data(ctx, q)
            ok.append(q)
        except PeriodError as e:
            if len(quarters) == 1:
                raise
            skipped.append((q, e))
    if skipped and ok:
        log.warning(
            "Warning: skipped %s: %s has no figures for %s; built %s",
            ", ".join(str(q) for q, _e in skipped),
            ctx.data.companies[ctx.settings.subject].name,
            "it" if len(skipped) == 1 else "them",
            ", ".join(str(q) for q in ok),
        )
    if not ok:
        q0, e0 = skipped[0]
        span = subject_span(ctx)
        hint = f"; its data cover {span[0]} to {span[1]}" if span else ""
        raise PeriodError(
            f"none of {quarters[0]}..{quarters[-1]} can be built: {ctx.data.companies[ctx.settings.subject].name} "
            f"(the subject) has no revenue for any of them{hint}",
            e0.path,
            None,
            "period",
        )
    return ok


def old_of(todo, q):
    return next(t[3] for t in todo if t[0] == q)


def languages_of(manifest: dict) -> tuple[str, ...]:
    """The languages an edition was built in (one, for an edition built before there were several)."""
    langs = manifest.get("languages")
    return tuple(langs) if isinstance(langs, dict) and langs else ("en",)


def _merge_languages(q: Quarter, langs: tuple[str, ...], results: dict) -> tuple[dict, dict]:
    """One edition's files and manifest fields from its languages: each language's briefing under its name
    (`briefing_names`), the exports once; the manifest's top-level words are the first language's, and each
    language has its own entry and edition id (its reader identity includes the language)."""
    names = briefing_names(langs)
    payload, summary, entries, identities = {}, {}, {}, []
    for lang in langs:
        files, words = results[(q, lang)]
        for kind, name in (("html", "briefing.html"), ("pdf", "briefing.pdf"), ("xlsx", "metrics.xlsx")):
            payload[names[lang][kind]] = files.pop(name)
        payload.update(files)  # the exports, from the first language's job
        identity = words["identity"]
        identities.append(identity)
        entries[lang] = {"edition": identity[:16], **words, "names": names[lang]}
        if not summary:
            summary = dict(words)
    if len(langs) > 1:  # the languages' identities in a fixed order: the order they were asked in is no change
        summary["identity"] = hashlib.sha256("".join(sorted(identities)).encode("ascii")).hexdigest()
    summary["languages"] = entries
    return payload, summary


def _file_sha256(path: Path) -> str:
    """A file's SHA-256, read in blocks (a 200 MB data file is never held whole)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _changed_files(edition_dir: Path, manifest: dict) -> list[str]:
    """The files of a built edition that are missing or differ from what its manifest recorded."""
    changed = []
    for name, meta in (manifest.get("files") or {}).items():
        path = edition_dir / name
        try:
            ok = not path.is_symlink() and _file_sha256(path) == meta.get("sha256")
        except OSError:
            ok = False
        if not ok:
            changed.append(name)
    return changed


def _check_output_writable(output: Path) -> None:
    """output/ exists (it is made) and can be written, said plainly before any work."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder ({e.strerror or e})", str(output)) from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise ConfigError("the output folder is not writable; check its permissions", str(output))


_TAG = re.compile(r"<[^>]+>")
_STYLE = re.compile(r"<style\b.*?</style>", re.S | re.I)


def reader_identity(html: str, metrics_csv: str, edition_date: date, shaping: dict, date_shown: str = "") -> str:
    """The hash of what a reader receives: the briefing's text (chart labels included, markup, styles and the
    edition date left out), the metric table's figures, and the settings that shape the briefing. A new FX rate
    for a later quarter, a label alias, a stray file in templates/ or a new reportgen that renders the same
    briefing leave it unchanged; a changed figure, word or finding changes it."""
    text = _TAG.sub(" ", _STYLE.sub(" ", html))
    text = text.replace(edition_date.isoformat(), "{edition_date}")
    if date_shown:
        text = text.replace(date_shown, "{edition_date}")
    text = " ".join(text.split())
    h = hashlib.sha256()
    for part in (text, metrics_csv, json.dumps(shaping, sort_keys=True, ensure_ascii=False)):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(output: Path) -> list[Path]:
    """Remove temporary folders left by a build that was killed (their process is gone), restoring a previous
    edition that was moved aside."""
    removed = []
    for p in output.glob(".*.building-*") if output.is_dir() else ():
        m = re.search(r"\.building-(\d+)-", p.name)
        if p.is_dir() and m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    for p in output.glob(".*.old-*") if output.is_dir() else ():
        m = re.search(r"^\.(.+)\.old-(\d+)$", p.name)
        if p.is_dir() and m and not _pid_alive(int(m.group(2))):
            edition = output / m.group(1)
            if edition.exists():
                shutil.rmtree(p, ignore_errors=True)
            else:  # killed between the two renames: the previous edition comes back
                os.replace(p, edition)
            removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(tmp: Path, dest: Path) -> None:
    """Put the finished folder `tmp` at `dest`; the previous edition is never absent from `dest` where the
    system can exchange two folders atomically, and is restored by the next build where it cannot."""
    if dest.exists() and _exchange(tmp, dest):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous edition
        return
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_edition(dest: Path, payload: dict[str, bytes]) -> None:
    """Write every file into a temporary sibling folder, fsync, then swap it in place of `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-{os.getpid()}-", dir=dest.parent))
    except OSError as e:  # read-only, full, or not ours: say so of output/, not of a temporary name
        raise ConfigError(
            f"cannot write the edition here ({e.strerror or e}); check that output/ is writable and has space",
            str(dest.parent),
        ) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an edition folder follows the umask, as files do
        for name, data in payload.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for p in dest.iterdir() if dest.exists() else []:
            # an outbox of .eml files from a dry run stays with its edition; the replaced edition's own files do not
            # (briefing.pdf of a one-language edition is not part of a two-language one)
            if p.name not in payload and p.is_dir() and not p.is_symlink():
                shutil.copytree(p, tmp / p.name, symlinks=True)
        _swap_in(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(
            f"cannot write the edition ({e.strerror or e}); check that output/ is writable and has space; the "
            "previous edition is unchanged",
            str(dest),
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- init ---------------------------------------------------------------------------------------------------------
DEFAULT_PARTS = (config.CONFIG_NAME, "data", "templates")


def defaults_root() -> Path:
    """Where the default workspace lives: packaged in the wheel, or the repository root in a source checkout."""
    packaged = Path(__file__).resolve().parent / "defaults"
    if (packaged / config.CONFIG_NAME).exists():
        return packaged
    source = Path(__file__).resolve().parents[1]
    if (source / config.CONFIG_NAME).exists() and (source / "data" / "companies.toml").exists():
        return source
    raise ConfigError("the default workspace is missing from this installation; reinstall reportgen")


@dataclass
class InitReport:
    """What `init` did: files written, files kept as they were, files replaced (--force)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)
    #: places not written, even with --force, and why: a symbolic link on the way, or a file where a folder goes
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def init_workspace(dest: Path, force: bool = False) -> InitReport:
    """Write a workspace (config, data, templates, empty output/) from the packaged defaults, file by file.

    An existing file is never overwritten: a file that is already there and differs is kept (and listed), unless
    `force`, which replaces it (and lists it). Nothing is written through a symlink."""
    dest = Path(dest)
    src = defaults_root()
    if dest.exists() and not dest.is_dir():
        raise ConfigError("is a file, not a folder; choose a folder for the workspace", str(dest))
    files: list[tuple[Path, Path]] = []
    for part in DEFAULT_PARTS:
        s = src / part
        if s.is_dir():
            files += [
                (p, dest / part / p.relative_to(s))
                for p in sorted(s.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts
            ]
        else:
            files.append((s, dest / part))
    report = InitReport()
    for s, d in files:
        blocked = _in_the_way(dest, d)
        if blocked:
            if blocked not in [b for b, _why in report.skipped]:
                report.skipped.append((blocked, _why_skipped(blocked)))
            continue
        if d.exists():
            if d.read_bytes() == s.read_bytes():
                continue
            if not force:
                report.kept.append(d)
                continue
            report.replaced.append(d)
        else:
            report.written.append(d)
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s, d)
    output = dest / "output"
    if output.is_symlink() or output.exists():
        if not output.is_dir():  # a link to a folder (output kept elsewhere) is the user's to keep
            report.skipped.append((output, _why_skipped(output)))
    else:
        output.mkdir(parents=True)
    return report


def _why_skipped(place: Path) -> str:
    if place.is_symlink():
        return "a symbolic link: init never writes through one"
    return "a folder where the defaults have a file" if place.is_dir() else "a file where the defaults need a folder"


def _in_the_way(dest: Path, target: Path) -> Path | None:
    """The first place on the way from `dest` to `target` (the target included) that init must not write through
    or over: a symbolic link (to a file or a folder, inside the workspace or out of it), a file where a folder
    goes, or a folder where a file goes. None when the way is clear."""
    here = dest
    parts = target.relative_to(dest).parts
    for i, part in enumerate(parts):
        here = here / part
        last = i == len(parts) - 1
        if here.is_symlink():
            return here
        if here.exists() and (here.is_dir() if last else not here.is_dir()):
            return here
    return None


def examples() -> list[str]:
    """The example overlays `init --example` knows (folders under examples/)."""
    root = defaults_root() / "examples"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def apply_example(dest: Path, name: str) -> tuple[list[Path], list[Path]]:
    """Lay an example overlay (examples/NAME) over the workspace at `dest`: its data files are added, its registry
    tables, labels, FX rates and peer group merged into the workspace's files (what is there is kept). Returns the
    files it wrote and the existing files it added entries to."""
    src = defaults_root() / "examples" / name
    if not src.is_dir():
        raise ConfigError(f"no example '{name}'; known: {', '.join(examples()) or 'none'}", "--example")
    dest = Path(dest)
    changed, extended = [], []

    def add_text(rel: str, text: str, where=None) -> None:
        target = dest / rel
        existed = target.exists()
        old = target.read_text(encoding="utf-8") if existed else ""
        new = where(old, text) if where else old.rstrip("\n") + "\n\n" + text.strip("\n") + "\n"
        if new != old:
            target.write_text(new, encoding="utf-8")
            (extended if existed else changed).append(target)

    for p in sorted((src / "data" / "financials").glob("*")):
        target = dest / "data" / "financials" / p.name
        if not target.exists():
            shutil.copyfile(p, target)
            changed.append(target)
    companies = (src / "data" / "companies.toml").read_text(encoding="utf-8")
    known = set(loaders.load_registry(dest))
    new_ids = set(re.findall(r"^\[([\w-]+)\]", companies, re.M))
    if not new_ids & known:
        add_text("data/companies.toml", companies)
    rates = (src / "data" / "fx.csv").read_text(encoding="utf-8").splitlines()[1:]

    def merge_rates(old: str, _t: str) -> str:
        new = [r for r in rates if r and r not in old.splitlines()]
        return old.rstrip("\n") + "\n" + "".join(r + "\n" for r in new) if new else old

    add_text("data/fx.csv", "", merge_rates)
    labels = (src / "data" / "labels.toml").read_text(encoding="utf-8")
    head, _sep, rest = labels.partition("[labels]\n")
    entries, _sep2, tables = rest.partition("\n[overrides.")
    tables = ("[overrides." + tables) if _sep2 else ""

    def merge_labels(old: str, _t: str) -> str:
        lines = [ln for ln in entries.splitlines() if ln.strip() and ln.split("=")[0].strip() not in old]
        out = old.replace("[labels]\n", "[labels]\n" + "\n".join(lines) + "\n", 1) if lines else old
        for table in re.split(r"(?m)^(?=\[overrides\.)", tables):
            header = table.splitlines()[0] if table.strip() else ""
            if header and header not in out:
                out = out.rstrip("\n") + "\n\n" + table.strip("\n") + "\n"
        return out

    add_text("data/labels.toml", "", merge_labels)
    groups = (src / "reportgen-groups.toml").read_text(encoding="utf-8")
    if not all(
        h in (dest / config.CONFIG_NAME).read_text(encoding="utf-8")
        for h in re.findall(r"^\[groups\.[\w-]+\]", groups, re.M)
    ):
        add_text(config.CONFIG_NAME, groups)
    return changed, extended


# -- schedule -----------------------------------------------------------------------------------------------------
def cron_spec(settings: config.Settings):
    """The checked cron expression of [schedule]; a bad one names reportgen.toml and its line."""
    from . import schedule

    return schedule.parse_cron(
        settings.schedule_cron, path=settings.path, line=config.line_of(settings.source_text, "cron", "schedule")
    )


# -- run ----------------------------------------------------------------------------------------------------------
@dataclass
class RunReport:
    """What one scheduled run did."""

    quarter: str | None = None
    edition: str | None = None
    built: bool = False
    deliveries: list = field(default_factory=list)  # one DeliveryReport per mailing list
    note: str = ""

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.deliveries)

    @property
    def outcome(self) -> str:
        """One word for the ledger: nothing-due, delivered, or failed."""
        if self.quarter is None:
            return "nothing due"
        if self.note == "waiting for approval" and self.ok:
            return "awaiting approval"
        return "done" if self.ok else "failed"


def due_edition(ctx: Context, now: datetime) -> Quarter | None:
    """The quarter a scheduled run should publish at `now` (see schedule.due_quarter)."""
    from . import schedule

    subj = ctx.settings.subject
    peers = [c for c in ctx.settings.companies if c != subj]
    last = Quarter(now.year, (now.month - 1) // 3 + 1)
    candidates = [last.shift(-k) for k in range(0, 12)]
    subject_has = {q for q in candidates if ctx.norm.has_data(subj, q)}
    available = {q: sum(ctx.norm.has_reported(p, q) for p in peers) for q in subject_has}
    return schedule.due_quarter(
        available, subject_has, now, ctx.settings.min_peers_reported, ctx.settings.publish_partial
    )


def latest_quarter(root: Path, now: datetime | None = None) -> Quarter:
    """The quarter a scheduled run would publish at `now` (default: now); PeriodError when there is none."""
    ctx = open_workspace(root)
    q = due_edition(ctx, now or datetime.now())
    if q is None:
        raise PeriodError(
            f"no quarter is due: the subject and at least {ctx.settings.min_peers_reported} peers "
            "(min_peers_reported) must have reported a quarter that has ended; name one with --quarter",
            ctx.settings.path,
            field="--quarter",
        )
    return q


def run(root: Path, now: datetime | None = None, progress=None, env=None, connect=None, sleep=None) -> RunReport:
    """The scheduled job: under the run lock, pick the due edition, build it if its inputs changed, and send it to
    the mailing lists that have not received it. Raises LockHeld when another run is at work. Each run is
    recorded in the ledger (`reportgen history`)."""
    say = progress or (lambda msg: None)
    root = Path(root)
    now = now or datetime.now()
    with ledger.run_lock(root):
        try:
            report = _run(root, now, say, env, connect, sleep)
        except ReportgenError as e:
            _record_run(root, "failed", note=str(e))
            raise
        _record_run(root, report.outcome, report.quarter, report.edition, report.note)
        return report


def _record_run(root: Path, outcome: str, quarter=None, edition=None, note="") -> None:
    with ledger.open_ledger(root) as book:
        book.record_run(outcome, quarter, edition, note)


def _run(root: Path, now: datetime, say, env, connect, sleep) -> RunReport:
    ctx = open_workspace(root)
    q = due_edition(ctx, now)
    if q is None:
        say(
            f"run {now.isoformat(timespec='minutes')}: no edition is due (the subject and at least "
            f"{ctx.settings.min_peers_reported} peers must have reported a quarter that has ended)"
        )
        return RunReport(note="nothing due")
    say(f"run {now.isoformat(timespec='minutes')}: edition {q} is due")
    edition = build(root, [q], now.date(), progress=say, only_if_changed=True, ctx=ctx)[0]
    report = RunReport(str(q), edition.edition, edition.rebuilt)
    if not ctx.settings.mail_lists:
        say(f"{q}: no mailing lists in reportgen.toml; nothing to send")
        report.note = "no mailing lists"
        return report
    kw = {k: v for k, v in (("env", env), ("connect", connect), ("sleep", sleep)) if v is not None}
    if ctx.settings.require_approval and not _approved(root, edition.edition):
        owner = ctx.settings.owner
        first = ctx.settings.mail_lists[0]
        # the preview is the first list's copy, recorded under that language's edition id
        seen = language_view(edition.manifest, ctx.settings.list_language(first))["edition"]
        with ledger.open_ledger(root) as book:
            previewed = book.previewed(seen, owner)
        if not previewed:
            first = first.name
            d = send_edition(edition.path, ctx.settings, list_name=first, test_to=owner, preview=True, **kw)
            report.deliveries.append(d)
            say(f"{q}: preview for approval: {d.summary()}")
        say(f"{q}: waiting for approval of edition {edition.edition}: `reportgen approve --quarter {q}`")
        report.note = "waiting for approval"
        return report
    for ml in ctx.settings.mail_lists:
        d = send_edition(edition.path, ctx.settings, list_name=ml.name, **kw)
        report.deliveries.append(d)
        say(f"{q}: list {ml.name}: {d.summary()}")
    return report


def _approved(root: Path, edition: str) -> bool:
    path = Path(root) / "output" / ledger.LEDGER_NAME
    if not path.exists():
        return False
    with ledger.Ledger(path) as book:
        return book.approval(edition) is not None


# -- send and history ---------------------------------------------------------------------------------------------
def send(
    root: Path,
    quarter: Quarter,
    list_name: str | None = None,
    dry_run: bool = False,
    resend: bool = False,
    test_to: str | None = None,
    progress=None,
    env=None,
    connect=None,
    sleep=None,
    resend_to: tuple[str, ...] = (),
) -> list:
    """Send the quarter's edition (built first when missing or when its inputs changed) to one list or all."""
    say = progress or (lambda msg: None)
    ctx = open_workspace(root, [quarter])
    if not ctx.settings.mail_lists:
        raise ConfigError(
            "no mailing lists: add [mail.lists.NAME] with to = [...] to reportgen.toml", ctx.settings.path
        )
    names = [list_name] if list_name else [ml.name for ml in ctx.settings.mail_lists]
    if test_to is not None:
        names = names[:1]  # a preview is one copy to one address, whatever the number of lists
    from . import deliver

    for name in names:
        deliver.pick_list(ctx.settings, name)  # an unknown --list fails before anything is built
    old = _manifest_or_none(ctx.root, quarter)
    why = ""
    if old is not None:
        if old.get("inputs_hash") != inputs_hash(ctx, quarter)[0]:
            why = "its inputs changed since it was built"
        elif not set(ctx.settings.languages) <= set(languages_of(old)):
            missing = sorted(set(ctx.settings.languages) - set(languages_of(old)))
            why = f"it has no briefing in {', '.join(missing)}, which a mailing list reads"
        elif _changed_files(ctx.root / "output" / str(quarter), old):
            why = "its files changed since it was built"
    stale = bool(why)
    if dry_run:  # a dry run changes nothing in output/ but its outbox: it never builds
        if old is None:
            ledger.read_manifest(ctx.root / "output" / str(quarter))  # a damaged or hand-edited one says so
            raise ReportgenError(
                f"{quarter} has not been built, and a dry run builds nothing; run `reportgen build --quarter "
                f"{quarter}` first",
                f"output/{quarter}",
            )
        if stale:
            log.warning(
                "Warning: %s: %s; the outbox shows the edition as built (a real send rebuilds it first)",
                quarter,
                why,
            )
        for name in names:  # every list's language must be there before any outbox is written
            language_view(old, ctx.settings.list_language(deliver.pick_list(ctx.settings, name)))
        path = ctx.root / "output" / str(quarter)
        edition = Edition(str(quarter), path, old["edition"], old, rebuilt=False)
    else:
        if old is None:
            say(f"{quarter}: not built yet; building it before sending")
        elif stale:
            say(f"{quarter}: {why}; rebuilding before sending")
        edition = build(root, [quarter], progress=say, only_if_changed=True, ctx=ctx)[0]
    kw = {k: v for k, v in (("env", env), ("connect", connect), ("sleep", sleep)) if v is not None}
    reports = []
    for name in names:
        r = send_edition(
            edition.path,
            ctx.settings,
            list_name=name,
            dry_run=dry_run,
            resend=resend,
            resend_to=tuple(resend_to),
            test_to=test_to,
            **kw,
        )
        reports.append(r)  # the caller says how each list went
    return reports


def send_edition(
    edition_dir: Path,
    settings: config.Settings,
    *,
    list_name: str | None = None,
    dry_run: bool = False,
    resend: bool = False,
    resend_to: tuple[str, ...] = (),
    test_to: str | None = None,
    env=None,
    connect=None,
    sleep=None,
    journal: ledger.Ledger | None = None,
    log=None,
    attempts: int | None = None,
    backoff: float | None = None,
    preview: bool = False,
):
    """Send a built edition to one mailing list (the only one when `list_name` is None), each recipient once.

    All addresses are checked first. Under the editions lock (no build replaces the edition meanwhile) the
    manifest is read and every attachment read once and checked against it, so every recipient gets the same
    edition. Recipients the ledger records as accepted, or as in doubt, for this edition and list are skipped
    unless `resend` (everyone) or `resend_to` (those addresses). `test_to` sends one copy to that address alone,
    recorded as a test. `dry_run` writes the messages a real send would send as .eml files under
    edition_dir/outbox/LIST/ and records nothing. Mail settings come from `env` (default os.environ); `connect`,
    `sleep`, `attempts` and `backoff` shape the SMTP channel (see deliver.MailChannel). The ledger defaults to the
    workspace's. When anyone was not delivered, the settings' owner gets a notice (reported in `notice`).
    """
    import time

    from . import channel, deliver

    env = os.environ if env is None else env
    edition_dir = Path(edition_dir)
    output = edition_dir.parent
    ml = deliver.pick_list(settings, list_name)
    sender_env = env.get("REPORTGEN_MAIL_FROM", "").strip()
    if sender_env:
        deliver.parse_address(sender_env, "REPORTGEN_MAIL_FROM")
    rcpts = deliver.recipients(ml, settings, test_to, None)
    for addr in resend_to:
        deliver.validate_address(addr, "--resend-to")
    smtp = None if dry_run else deliver.SmtpSettings.from_env(env)
    sender = smtp.sender if smtp else (sender_env or "reportgen@localhost.localdomain")
    quarter = edition_dir.name
    with ledger.editions_lock(output, f"send {quarter}" + (" (dry run)" if dry_run else "")):
        manifest = ledger.read_manifest(edition_dir, ("quarter", "edition", "title", "edition_date"))
        if manifest is None:
            raise ReportgenError(
                "no edition here; run `reportgen build --quarter QUARTER` first", str(edition_dir / ledger.MANIFEST)
            )
        if settings.require_approval and not (dry_run or test_to is not None):
            require_approval(output, manifest)
        lang = settings.list_language(ml)
        manifest = language_view(manifest, lang)  # the list's language: its words, files and edition id
        if preview:
            manifest = {**manifest, "preview": True}
        words = text_for(lang)
        parcel = channel.load_parcel(edition_dir, manifest, ml.name, ml.attach, test_to is not None)
        # a subject template that cannot be filled fails before anything is sent
        deliver.build_message(manifest, edition_dir, ml, sender, rcpts[0], test=parcel.test, text=words, parcel=parcel)
        if dry_run:
            done: set[str] = set()
            if not (resend or parcel.test):
                if journal is not None:
                    done = journal.delivered(parcel.edition, ml.name)
                elif (output / ledger.LEDGER_NAME).exists():  # a dry run never creates the ledger
                    with ledger.Ledger(output / ledger.LEDGER_NAME) as book:
                        done = book.delivered(parcel.edition, ml.name)
            # the caller prints the outcome ("dry run: 2 messages written to ...")
            return deliver.write_outbox(parcel, ml, sender, rcpts, done - {a.lower() for a in resend_to}, words)
        mail = deliver.MailChannel(
            smtp,
            ml,
            text=words,
            connect=connect,
            sleep=sleep or time.sleep,
            attempts=attempts,
            backoff=deliver.BACKOFF if backoff is None else backoff,
            log=log,
        )
        book = journal or ledger.Ledger(output / ledger.LEDGER_NAME)
        try:
            report = channel.send_list(
                mail, parcel, rcpts, book, resend=resend, resend_to=resend_to, log=log or deliver.LOG
            )
        finally:
            if journal is None:
                book.close()
    if (report.failed or report.in_doubt) and settings.owner and not parcel.test:
        report.notice = deliver.notify_owner(settings.owner, manifest, report, smtp, connect, log)
    return report


def require_approval(output: Path, manifest: dict) -> None:
    """Refuse to mail the lists an edition nobody approved (with require_approval = true)."""
    q, edition = manifest["quarter"], manifest["edition"]
    path = output / ledger.LEDGER_NAME
    approved = None
    if path.exists():
        with ledger.Ledger(path) as book:
            approved = book.approval(edition)
    if approved is None:
        from .errors import DeliveryError

        raise DeliveryError(
            f"edition {edition} of {q} has not been approved (require_approval = true); read the preview, then "
            f"`reportgen approve --quarter {q}`",
            f"output/{q}",
        )


def approve(root: Path, quarter: Quarter, by: str, progress=None) -> dict:
    """Record that `by` approved the built edition of `quarter` for the mailing lists. Returns its manifest."""
    say = progress or (lambda msg: None)
    ctx = open_workspace(root, [quarter])
    output = ctx.root / "output"
    manifest = ledger.read_manifest(output / str(quarter), ("quarter", "edition"))
    if manifest is None:
        raise ReportgenError(
            f"{quarter} has not been built; nothing to approve (`reportgen build --quarter {quarter}`)",
            f"output/{quarter}",
        )
    if manifest.get("inputs_hash") != inputs_hash(ctx, quarter)[0]:
        log.warning(
            "Warning: %s's inputs changed since this edition was built; the next build makes a new edition, "
            "which needs approval again",
            quarter,
        )
    with ledger.editions_lock(output, f"approve {quarter}"), ledger.open_ledger(ctx.root) as book:
        book.record_approval(str(quarter), manifest["edition"], by)
    lists = ", ".join(ml.name for ml in ctx.settings.mail_lists) or "(none yet)"
    say(f"{quarter}: edition {manifest['edition']} approved by {by}; the next run or `reportgen send` mails {lists}")
    if not ctx.settings.require_approval:
        log.warning(
            "Note: require_approval is off under [mail] in reportgen.toml: editions are mailed without approval; "
            "the approval is recorded all the same"
        )
    return manifest


def text_for(lang: str):
    from .i18n import text

    return text(lang)


def history(root: Path) -> list[dict]:
    """Past builds, deliveries and runs, oldest first, from the workspace's ledger."""
    path = Path(root) / "output" / ledger.LEDGER_NAME
    if not path.exists():
        return []
    with ledger.Ledger(path) as book:
        return book.history()


def _manifest_or_none(root: Path, q: Quarter) -> dict | None:
    """The manifest of an edition already built, or None (none, or damaged: it will be rebuilt)."""
    try:
        return ledger.read_manifest(Path(root) / "output" / str(q))
    except ReportgenError:
        return None
