"""Which way imports go: the pure steps import only the vocabulary, the standard library and pandas; `--help`
loads no renderer (each checked in a fresh interpreter, as click's tests/test_imports.py does)."""

import json
import subprocess
import sys

import pytest

#: what a pure step may import of reportgen, besides itself and the steps before it
PURE = {
    "reportgen.normalize": {"reportgen", "reportgen.model", "reportgen.periods", "reportgen.errors"},
    "reportgen.metrics": {
        "reportgen",
        "reportgen.model",
        "reportgen.periods",
        "reportgen.errors",
        "reportgen.normalize",
    },  # fmt: skip
    "reportgen.findings": {"reportgen", "reportgen.model", "reportgen.periods", "reportgen.errors"},
}
LEAVES = {
    "reportgen.model": {"reportgen", "reportgen.periods", "reportgen.errors"},
    "reportgen.periods": {"reportgen", "reportgen.errors"},
    "reportgen.errors": {"reportgen"},
}

PROBE = """
import json, sys
import pandas  # allowed, with everything it brings
before = set(sys.modules)
import {module}
new = sorted(set(sys.modules) - before)
print(json.dumps({{"new": new, "stdlib": sorted(sys.stdlib_module_names)}}))
"""


def _new_modules(module: str) -> tuple[set[str], set[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out)
    return set(data["new"]), set(data["stdlib"])


@pytest.mark.parametrize("module", sorted({**PURE, **LEAVES}))
def test_pure_and_leaf_modules_import_only_what_is_allowed(module):
    new, stdlib = _new_modules(module)
    allowed = {**PURE, **LEAVES}[module] | {module}
    ours = {m for m in new if m == "reportgen" or m.startswith("reportgen.")}
    assert ours <= allowed, f"{module} imports {sorted(ours - allowed)}"
    foreign = {m.split(".")[0] for m in new if not m.startswith("reportgen")} - stdlib - {"_distutils_hack"}
    assert not foreign, f"{module} imports {sorted(foreign)} (neither the standard library nor pandas)"


def test_the_allow_list_would_catch_a_step_reading_files():
    """The check above fails for a module that reads files (loaders imports config and readers)."""
    new, _ = _new_modules("reportgen.loaders")
    assert {"reportgen.config", "reportgen.readers"} <= new


def test_cli_help_does_not_load_renderers():
    code = (
        "import sys, json\nfrom click.testing import CliRunner\nfrom reportgen.cli import cli\n"
        "r = CliRunner().invoke(cli, ['metrics', '--help'])\nassert r.exit_code == 0, r.output\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not (loaded & {"weasyprint", "matplotlib", "pandas", "openpyxl"})
