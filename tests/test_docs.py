"""The documentation says what the code does: metric ids, commands and modules, all from one catalogue."""

from __future__ import annotations

import re

from reportgen.cli import cli
from reportgen.metrics import METRICS

from .conftest import REPO

IDS = [m.id for m in METRICS]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_lists_exactly_the_metric_ids_of_the_catalogue():
    sentence = README.split("Metric ids:", 1)[1].split(".", 1)[0]
    listed = re.findall(r"`([a-z_]+)`", sentence)
    assert listed == IDS


def test_metrics_help_lists_exactly_the_metric_ids(runner):
    res = runner.invoke(cli, ["metrics", "--help"], terminal_width=200)
    assert res.exit_code == 0
    line = " ".join(res.stdout.split()).split("Metric ids: ", 1)[1].split(".", 1)[0]
    assert [i.strip() for i in line.split(",")] == IDS


def test_default_config_names_only_catalogue_metrics():
    import tomllib

    cfg = tomllib.loads((REPO / "reportgen.toml").read_text(encoding="utf-8"))["report"]
    assert set(cfg["metrics"]) <= set(IDS) and cfg["section_metric"] in IDS


def test_every_command_is_in_the_readme_and_has_help(runner):
    for name, command in cli.commands.items():
        assert f"`reportgen {name}" in README, name
        assert command.help or command.callback.__doc__, name


def test_readme_development_section_names_every_module():
    section = README.split("## Development", 1)[1]
    modules = sorted(p.stem for p in (REPO / "reportgen").glob("*.py") if not p.stem.startswith("__"))
    missing = [m for m in modules if f"`{m}`" not in section]
    assert not missing, f"README's Development section does not describe {missing}"


def test_security_promises_name_tests_that_exist():
    """Every test SECURITY.md cites (test_... names and corpus case names) exists, so no promise points nowhere."""
    import tomllib

    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").glob("test_*.py"))
    cited = set(re.findall(r"\btest_[a-z0-9_]+", text)) - {"test_"}
    missing = sorted(n for n in cited if f"def {n}(" not in sources and not (REPO / "tests" / f"{n}.py").exists())
    assert not missing, f"SECURITY.md cites tests that do not exist: {missing}"
    cases = {}
    for p in (REPO / "tests" / "corpus").glob("*.toml"):
        cases.update(tomllib.loads(p.read_text(encoding="utf-8")))
    named = set(re.findall(r"(?:cases|attacks)\.toml: ([a-z0-9-]+)", text))
    named |= {n for n in re.findall(r"`([a-z]+(?:-[a-z0-9]+)+)`", text) if n.split("-")[0] in
              {"data", "registry", "labels", "fx", "config", "template", "sentences", "cli"}}  # fmt: skip
    assert named and not (named - set(cases)), sorted(named - set(cases))


def test_readme_lists_every_flag_with_its_mark():
    from reportgen.model import FLAGS

    paragraph = " ".join(README.split("Flags (with the mark", 1)[1].split("\n\n", 1)[0].split())
    listed = dict(re.findall(r"`([a-z_]+)` ([a-z])\b", paragraph))
    assert listed == {f.id: f.mark for f in FLAGS if f.mark}
