"""Briefing -> HTML (Jinja2, autoescape, StrictUndefined) -> PDF (WeasyPrint, workspace-only URL fetcher)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import RenderError
from .i18n import Text

log = logging.getLogger("reportgen.render")
TEMPLATE = "briefing.html.j2"


def render_html(briefing: dict, templates_dir: Path, text: Text | None = None) -> str:
    """The standalone briefing: CSS and SVG charts inline, so it opens offline in any browser. The template's
    words go through `text` (jinja2's i18n extension: {{ _("...") }})."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment
    from markupsafe import escape

    templates_dir = Path(templates_dir)
    if not (templates_dir / TEMPLATE).exists():
        raise RenderError(
            "template not found; run 'reportgen init' to get the default templates", str(templates_dir / TEMPLATE)
        )
    # Sandboxed: a workspace's templates may come from someone else; they can format the briefing, not reach
    # Python internals (b.__class__.__mro__ ...).
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    t = text or Text()
    # Translations are text, escaped like any value; markup is passed in as arguments (`|safe`).
    env.install_gettext_callables(
        lambda s: escape(t.gettext(s)), lambda s, p, n: escape(t.ngettext(s, p, n)), newstyle=True
    )
    css_path = templates_dir / "briefing.css"
    css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
    try:
        template = env.get_template(TEMPLATE)
        return template.render(b=briefing, css=jinja2.utils.markupsafe.Markup(css), page_css=_page_css(t))
    except jinja2.TemplateSyntaxError as e:
        raise RenderError(f"template syntax error: {e.message}", f"templates/{e.name or TEMPLATE}", e.lineno) from None
    except jinja2.exceptions.SecurityError as e:
        raise RenderError(f"template does something unsafe: {e}", f"templates/{TEMPLATE}") from None
    except jinja2.UndefinedError as e:
        raise RenderError(
            f"template uses something the briefing does not have: {e.message}", f"templates/{TEMPLATE}"
        ) from None
    except jinja2.TemplateError as e:
        raise RenderError(f"template error: {e}", f"templates/{TEMPLATE}") from None


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _page_css(text: Text):
    """The running header's and footer's words as CSS (they are written in @page rules, not in the HTML)."""
    import re

    from markupsafe import Markup

    _ = text.gettext
    parts = []
    for piece in re.split(r"({page}|{pages})", _("Page {page} of {pages}")):
        if piece == "{page}":
            parts.append("counter(page)")
        elif piece == "{pages}":
            parts.append("counter(pages)")
        elif piece:
            parts.append(_css_string(piece))
    return Markup(
        "@page { @top-right { content: %s; } @bottom-right { content: %s; } }"
        % (_css_string(_("Confidential")), " ".join(parts))
    )


def _fetcher_class():
    from weasyprint.urls import URLFetcher

    class WorkspaceFetcher(URLFetcher):
        """Fetches data: URLs and files inside the workspace only; refuses the network and other paths."""

        def __init__(self, root: Path, **kwargs):
            super().__init__(allowed_protocols=("file", "data"), **kwargs)
            self.root = Path(root).resolve()
            self.refused: list[str] = []

        def fetch(self, url, headers=None):
            scheme = urlparse(url).scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = Path(unquote(urlparse(url).path)).resolve()
                if path.is_relative_to(self.root):
                    return super().fetch(url, headers)
                reason = "outside the workspace"
            else:
                reason = "network access is not allowed"
            self.refused.append(url)
            log.warning("refused to fetch %s: %s", url, reason)
            raise ValueError(f"reportgen refuses {url}: {reason}")

    return WorkspaceFetcher


def workspace_fetcher(root: Path):
    """A WeasyPrint URL fetcher confined to the workspace folder."""
    return _fetcher_class()(root)


def render_pdf(html: str, root: Path, created: datetime, base_dir: Path | None = None) -> bytes:
    """PDF bytes of the briefing; `created` becomes the PDF's creation and modification date."""
    from weasyprint import HTML

    stamp = created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = f'<meta name="dcterms.created" content="{stamp}"><meta name="dcterms.modified" content="{stamp}">'
    html = html.replace("</head>", meta + "</head>", 1)
    fetcher = workspace_fetcher(root)
    base = Path(base_dir or root).resolve().as_uri() + "/"
    try:
        return HTML(string=html, base_url=base, url_fetcher=fetcher).write_pdf()
    except Exception as e:  # WeasyPrint raises many kinds; the user needs the step and the cause
        raise RenderError(f"PDF rendering failed: {type(e).__name__}: {e}") from None
