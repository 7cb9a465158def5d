"""The floor of a build: one process that imports the libraries a build uses and has WeasyPrint lay out the
product's own HTML into a PDF, as the product asks for it (tagged PDF), with the garbage collector set as reportgen
sets it while rendering (so the ratio measures reportgen's own work, not that setting). Nothing of reportgen is
imported.

    python benchmarks/floor.py BRIEFING.html OUT.pdf
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click  # noqa: F401
import jinja2  # noqa: F401
import matplotlib.backends.backend_svg  # noqa: F401
import matplotlib.figure  # noqa: F401
import openpyxl  # noqa: F401
import pandas  # noqa: F401
from weasyprint import HTML


def main() -> None:
    gc.set_threshold(100_000, 50, 100)  # as reportgen.pipeline._fewer_collections
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    html = src.read_text(encoding="utf-8")
    pdf = HTML(string=html, base_url=src.resolve().parent.as_uri() + "/").write_pdf(pdf_tags=True)
    out.write_bytes(pdf)


if __name__ == "__main__":
    main()
