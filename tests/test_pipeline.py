"""Pipeline behaviour that is not about one command: the quarter window, init, the default workspace copy."""

from __future__ import annotations

import pytest

from reportgen import export, pipeline
from reportgen.cli import cli
from reportgen.metrics import METRICS
from reportgen.periods import Quarter

from .conftest import REPO


@pytest.mark.parametrize("quarter", ["2024Q2", "2024Q4", "2025Q2", "2025Q3"])
@pytest.mark.parametrize("basis", ["quarter", "ytd"])
def test_reading_only_the_needed_quarters_changes_nothing(quarter, basis):
    q = Quarter.parse(quarter)
    full = pipeline.metric_table(pipeline.open_workspace(REPO), q, basis)
    windowed = pipeline.metric_table(pipeline.open_workspace(REPO, [q]), q, basis)
    assert export.csv_text(windowed) == export.csv_text(full)
    narrow = pipeline.metric_table(pipeline.open_workspace(REPO, [q], trend=False), q, basis)
    assert export.csv_text(narrow) == export.csv_text(full)


def test_init_writes_a_workspace_that_builds_metrics(runner, tmp_path):
    dest = tmp_path / "fresh"
    res = runner.invoke(cli, ["init", str(dest)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (dest / "reportgen.toml").read_bytes() == (REPO / "reportgen.toml").read_bytes()
    assert (dest / "data" / "financials" / "xiaomi.csv").exists() and (dest / "templates" / "briefing.css").exists()
    res = runner.invoke(cli, ["-C", str(dest), "metrics", "--quarter", "2025Q2", "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.count("\n") == 1 + 10 * len(METRICS)
    again = runner.invoke(cli, ["init", str(dest)])  # nothing missing, nothing differs: nothing written
    assert again.exit_code == 0 and again.stdout == ""


@pytest.mark.slow  # four builds of the default workspace (18 s): CI runs it with the other slow tests
def test_an_unchanged_build_is_skipped_and_force_rebuilds(runner, tmp_path):
    from .conftest import write_mini

    ws = write_mini(tmp_path / "w", {})
    build = ["-C", str(ws), "build", "--quarter", "2025Q2"]
    assert runner.invoke(cli, build).exit_code == 0
    pdf = ws / "output/2025Q2/briefing.pdf"
    before = (pdf.stat().st_ino, pdf.stat().st_mtime_ns, (ws / "output/2025Q2/manifest.json").read_text())
    res = runner.invoke(cli, build)
    assert res.exit_code == 0 and "inputs and files unchanged since edition" in res.stderr
    assert "`reportgen build --force` rebuilds it" in res.stderr and "computing metrics" not in res.stderr
    assert (pdf.stat().st_ino, pdf.stat().st_mtime_ns, (ws / "output/2025Q2/manifest.json").read_text()) == before
    res = runner.invoke(cli, [*build, "--force"])
    assert res.exit_code == 0 and "computing metrics" in res.stderr
    assert pdf.stat().st_ino != before[0]  # a new folder swapped in
    res = runner.invoke(cli, [*build, "--lang", "zh-CN,en"])  # other languages: not the same edition's files
    assert res.exit_code == 0 and (ws / "output/2025Q2/briefing.zh-CN.pdf").exists()


def test_a_chart_cache_that_is_a_link_or_a_file_is_not_used(tmp_path):
    from reportgen.pipeline import _chart_cache

    output, outside = tmp_path / "output", tmp_path / "elsewhere"
    output.mkdir()
    outside.mkdir()
    assert _chart_cache(output) == output / ".chart-cache"  # not there yet: made by the first good build
    (output / ".chart-cache").symlink_to(outside)  # written to: a link could send it anywhere
    assert _chart_cache(output) is None
    (output / ".chart-cache").unlink()
    (output / ".chart-cache").write_text("not a folder")
    assert _chart_cache(output) is None
