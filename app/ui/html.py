"""Small HTML building blocks: the page layout, tables and notes, everything escaped.

Every value that may come from a client or a file goes through ``escape``; only markup
built here (and the SVG drawn by matplotlib on the server) is inserted raw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

# No scripts, nothing fetched from elsewhere: images are data URIs or inline SVG.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'"
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin-bottom: 2rem; }
figure { margin: 0.5rem 0; }
figure svg, figure img { width: 100%; max-width: 900px; height: auto; }
.note { color: #666; font-style: italic; }
.status { font-weight: bold; }
form.login input[type=password] { width: 32rem; max-width: 100%; }
"""


def text(value: Any) -> str:
    """``value`` as escaped HTML text (None as an empty string)."""
    return "" if value is None else escape(str(value))


def number(value: Any, digits: int = 1) -> str:
    """A rate or score with ``digits`` decimals; ``n/a`` for None or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:.{digits}f}"


def note(message: str) -> str:
    """A paragraph marked as a note (e.g. "not available for this method")."""
    return f'<p class="note">{text(message)}</p>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int] | None = None
) -> str:
    """A table; ``rows`` hold ready HTML cells; columns in ``numeric`` are right-aligned."""
    numeric = numeric or set()
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(section_id: str, title: str, body: str) -> str:
    """A ``<section id=...>`` with an ``<h2>`` title."""
    return f'<section id="{text(section_id)}"><h2>{text(title)}</h2>{body}</section>'


def page(title: str, body: str, status_code: int = 200, nav: bool = True) -> HTMLResponse:
    """A whole HTML document; never cached (it may show a tenant's data)."""
    links = '<nav><a href="/ui/jobs">Jobs</a><a href="/ui/login">Log in</a></nav>' if nav else ""
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{text(title)}</title><style>{CSS}</style>'
        f"</head><body>{links}<h1>{text(title)}</h1>{body}</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
    }
    return HTMLResponse(document, status_code=status_code, headers=headers)
