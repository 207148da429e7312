"""The HTML page around a report (report.html, fleet_report.html): one look, self-contained (images
as data URIs, styles and scripts inline), and the escaping of what goes into it."""

from __future__ import annotations

import html
from collections.abc import Iterable

HTML_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}"
    ".sev-ERROR td{background:#fbe3e3}.sev-WARN td{background:#fff4dd}"
)


def html_page(title: str, body: Iterable[str], script: str | None = None) -> str:
    """A whole HTML document: `title` (escaped here), the shared style, `script` inline when given,
    and `body`'s parts (HTML already) in order."""
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{HTML_STYLE}</style>"
    if script is not None:
        head += f"<script>{script}</script>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>"


__all__ = ["HTML_STYLE", "html_page"]
