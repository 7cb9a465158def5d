"""Briefing -> HTML (Jinja2, autoescape, StrictUndefined) -> PDF (WeasyPrint, workspace-only URL fetcher)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import RenderError
from .i18n import Text

log = logging.getLogger("reportgen.render")
TEMPLATE = "briefing.html.j2"


#: how much more memory a template may take while it renders (a template is data a workspace shares)
TEMPLATE_MEMORY = 1 << 30


@contextmanager
def _memory_capped(extra: int):
    """While rendering a template, cap the address space at what the process uses now plus `extra` bytes, so an
    expression that would exhaust memory ("x" * 10**10, a filter asked for a huge width) fails with MemoryError
    instead of taking the machine down. Where the system cannot say or cap its memory, nothing is capped."""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as fh:
            vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
        old = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + extra
        if old[0] != resource.RLIM_INFINITY and old[0] < cap:
            cap = old[0]
        resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def _loader(templates_dir: Path):
    """A Jinja2 loader that reads only files inside the workspace's templates/ folder (no symlink out)."""
    import jinja2

    class WorkspaceLoader(jinja2.FileSystemLoader):
        def get_source(self, environment, template):
            path = (templates_dir / template).resolve()
            if not path.is_relative_to(templates_dir.resolve()):
                raise jinja2.TemplateNotFound(f"{template} (it leads outside the workspace)")
            return super().get_source(environment, template)

    return WorkspaceLoader(str(templates_dir))


def render_html(briefing: dict, templates_dir: Path, text: Text | None = None) -> str:
    """The standalone briefing: CSS and SVG charts inline, so it opens offline in any browser. The template's
    words go through `text` (jinja2's i18n extension: {{ _("...") }})."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment
    from markupsafe import escape

    from .config import workspace_path

    templates_dir = Path(templates_dir)
    root = templates_dir.parent
    for name in (TEMPLATE, "briefing.css"):
        workspace_path(root, f"templates/{name}", RenderError)  # no template or style sheet read from outside
    if not (templates_dir / TEMPLATE).exists():
        raise RenderError(
            "template not found; run 'reportgen init' to get the default templates", str(templates_dir / TEMPLATE)
        )
    # Sandboxed: a workspace's templates may come from someone else; they can format the briefing, not reach
    # Python internals (b.__class__.__mro__ ...).
    env = SandboxedEnvironment(
        loader=_loader(templates_dir),
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
    try:
        css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
    except UnicodeDecodeError as e:
        raise RenderError(f"not UTF-8 text (byte {e.start}); save it as UTF-8", "templates/briefing.css") from None
    try:
        with _memory_capped(TEMPLATE_MEMORY):  # compiling folds constant expressions, so it is capped too
            template = env.get_template(TEMPLATE)
            return template.render(b=briefing, css=jinja2.utils.markupsafe.Markup(css), page_css=_page_css(t))
    except UnicodeDecodeError as e:
        raise RenderError(f"not UTF-8 text (byte {e.start}); save it as UTF-8", f"templates/{TEMPLATE}") from None
    except (MemoryError, OverflowError) as e:
        raise RenderError(
            f"the template asks for more memory than a briefing may take ({type(e).__name__}); look for a huge "
            "repetition or width in an expression",
            f"templates/{TEMPLATE}",
        ) from None
    except RecursionError:
        raise RenderError("the template recurses without end (a macro or include calling itself?)",
                          f"templates/{TEMPLATE}") from None  # fmt: skip
    except jinja2.TemplateNotFound as e:
        raise RenderError(f"template not found: {e.message}", f"templates/{TEMPLATE}") from None
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
        # tagged: headings, tables and figures are structure a screen reader can follow
        return HTML(string=html, base_url=base, url_fetcher=fetcher).write_pdf(pdf_tags=True)
    except Exception as e:  # WeasyPrint raises many kinds; the user needs the step and the cause
        raise RenderError(f"PDF rendering failed: {type(e).__name__}: {e}") from None
