"""Pure modules import no I/O or rendering libraries (checked in a fresh interpreter)."""

import json
import subprocess
import sys

import pytest

FORBIDDEN = {"click", "jinja2", "matplotlib", "weasyprint", "smtplib", "openpyxl"}


@pytest.mark.parametrize("module", ["reportgen.normalize", "reportgen.metrics", "reportgen.findings"])
def test_pure_module_imports_nothing_heavy(module):
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not (loaded & FORBIDDEN), loaded & FORBIDDEN


def test_cli_help_does_not_load_renderers():
    code = (
        "import sys, json\nfrom click.testing import CliRunner\nfrom reportgen.cli import cli\n"
        "CliRunner().invoke(cli, ['--help'])\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not (loaded & {"weasyprint", "matplotlib", "pandas"})
