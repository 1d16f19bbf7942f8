"""Figures to bytes: PNG (for files and data URIs) or SVG text (for inline HTML).

Rendering consumes the figure: it is cleared afterwards so its artists can be freed
(the figures are never registered with ``pyplot``, so nothing else holds them).
"""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _save(fig: Figure, fmt: str, dpi: int) -> bytes:
    """``fig`` saved as ``fmt`` into memory; the figure is cleared afterwards."""
    FigureCanvasAgg(fig)  # attach an Agg canvas: no GUI backend is ever involved
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    finally:
        fig.clear()
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, str | None]:
    # No creation date: the same figure gives the same bytes.
    return {"Date": None} if fmt == "svg" else {}


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (starting with ``PNG_MAGIC``)."""
    return _save(fig, "png", dpi)


def svg_text(fig: Figure) -> str:
    """The figure as one ``<svg>`` element (no XML prolog or doctype), for inline HTML."""
    text = _save(fig, "svg", 72).decode("utf-8")
    return text[text.index("<svg") :]


def png_data_uri(fig: Figure, dpi: int = 100) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")
