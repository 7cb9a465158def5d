"""The steps chained: load -> normalize -> metrics -> (render -> write). Owns output/<quarter>/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import config, loaders
from .errors import ConfigError, DataError, PeriodError, Problems, ReportgenError
from .metrics import BY_ID, compute_metrics, peer_stats
from .normalize import QUARTER, Normalizer, check_alignment
from .periods import Quarter


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


def check_settings(settings: config.Settings, companies: dict) -> None:
    """Cross-check reportgen.toml against the registry and the metric catalogue."""
    text = settings.source_text

    def err(msg, key, section=None):
        return ConfigError(msg, settings.path, config.line_of(text, key, section), key)

    if settings.subject not in companies:
        raise err(f"subject '{settings.subject}' is not in data/companies.toml "
                  f"(known: {', '.join(sorted(companies))})", "subject", "report")
    if not settings.groups:
        raise ConfigError("no peer groups: add a [groups.<id>] table with label and members", settings.path)
    for g in settings.groups:
        for m in g.members:
            if m not in companies:
                raise ConfigError(f"peer group '{g.id}' names '{m}', which is not in data/companies.toml "
                                  f"(known: {', '.join(sorted(companies))})", settings.path,
                                  config.line_of(text, "members", f"groups.{g.id}"), "members")
    for m in (*settings.metrics, settings.section_metric):
        if m not in BY_ID:
            raise err(f"unknown metric '{m}'; known: {', '.join(BY_ID)}", "metrics" if m in settings.metrics
                      else "section_metric", "report")


def open_workspace(root: Path) -> Context:
    """Read settings and data for the configured companies; raises ReportgenError on the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("workspace folder not found; pass -C DIR with an existing folder", str(root))
    settings = config.load_settings(root)
    data = loaders.load_workspace(root, company_ids=[])
    check_settings(settings, data.companies)
    for cid in settings.companies:
        check_alignment(data.companies[cid])
        data.rows += loaders.load_financials(root, data.companies[cid], data.labels, data.overrides, data.fx)
        data.files += loaders.financial_files(root, cid)
    return Context(root, settings, data, Normalizer(data.companies, data.rows, data.fx))


def require_subject_data(ctx: Context, quarter: Quarter) -> None:
    subj = ctx.settings.subject
    if not ctx.norm.has_data(subj, quarter):
        latest = ctx.norm.latest.get(subj)
        hint = f"; the latest quarter with its data is {latest}" if latest else ""
        raise PeriodError(f"{ctx.data.companies[subj].name} (the subject) has no revenue for {quarter}{hint}",
                          f"data/financials/{subj}.csv", None, "period")


def metric_table(ctx: Context, quarter: Quarter, basis: str = QUARTER) -> pd.DataFrame:
    """The metric table of the configured companies for a quarter, single-quarter or year-to-date basis."""
    require_subject_data(ctx, quarter)
    return compute_metrics(ctx.norm, ctx.company_rows(), quarter, basis)


def group_stats(ctx: Context, table: pd.DataFrame) -> pd.DataFrame:
    return peer_stats(table, ctx.settings.subject, ctx.settings.groups)


def validate(root: Path) -> list[ReportgenError]:
    """Check every data and config file; return every problem found (empty when all is well)."""
    root = Path(root)
    problems: list[ReportgenError] = []
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
        fx = {}
    if settings and companies:
        try:
            check_settings(settings, companies)
        except ReportgenError as e:
            problems.append(e)
    if companies and labels is not None:
        for c in companies.values():
            try:
                check_alignment(c)
            except ReportgenError as e:
                problems.append(e)
                continue
            try:
                loaders.load_financials(root, c, labels, overrides, fx, problems)
            except ReportgenError as e:
                problems.append(e)
        fin = root / "data" / "financials"
        if fin.is_dir():
            for p in sorted(fin.iterdir()):
                if p.suffix.lower() in (".csv", ".xlsx") and p.stem not in companies:
                    problems.append(DataError(f"'{p.stem}' is not a company in data/companies.toml; "
                                              "add it there or remove the file", str(p.relative_to(root))))
    return problems


def raise_problems(problems: list[ReportgenError]) -> None:
    if problems:
        raise Problems(problems)
