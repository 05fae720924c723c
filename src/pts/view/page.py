"""The report as one self-contained HTML page: the data as inline JSON, the style and the script inline.

The page loads nothing: no CDN, no font, no image from anywhere (its Content
Security Policy forbids it). Record text reaches the page only inside a JSON
block in which ``<``, ``>`` and ``&`` are written as ``\\u003c``-style escapes,
so no record can close the block or open a tag; the script then puts every
piece of text into the DOM as text (``textContent``), never as markup.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

# Everything the page needs is inline; nothing may be fetched.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` block of an HTML page."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(str.maketrans(_JSON_ESCAPES))


def _static(name: str) -> str:
    return resources.files("pts.view").joinpath("static", name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any], title: str) -> str:
    """The whole HTML page for the report ``data`` (:meth:`pts.view.collect.ReportData.to_dict`)."""
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>pts view: {html.escape(title)}</title>\n",
            "<style>\n",
            _static("report.css"),
            "</style>\n</head>\n<body>\n",
            "<noscript><p>This report draws itself with JavaScript; please allow scripts for this local file.</p>"
            "</noscript>\n",
            '<script type="application/json" id="pts-data">',
            embed_json(data),
            "</script>\n",
            "<script>\n",
            _static("report.js"),
            "</script>\n</body>\n</html>\n",
        ]
    )
