"""Escape untrusted text for the rendered outputs: Markdown and HTML (pure).

Everything a site, a policy or a site spec supplies (abstain and rejection reasons, site ids,
regions, labels, run ids) can end up in a report that a browser or the KFP UI renders. HTML
gets `html.escape` (quotes included). Markdown renderers pass raw HTML through, so Markdown
text is HTML-escaped first (`<img …>` becomes `&lt;img …&gt;`, shown as text) and the
characters that make Markdown markup (the brackets of links and images `[..](..)` /
`![..](..)`, emphasis `*`, strike-through `~`, code spans, table pipes, backslashes) are
backslash-escaped; an underscore only where it could open or close emphasis (not inside a
word such as `dp_update`, which CommonMark never treats as emphasis). Line breaks become
spaces so that a value stays inside its table cell or list item.
"""

from __future__ import annotations

import html
import re

# Markdown punctuation that can start or end inline markup (CommonMark + GFM tables), and an
# underscore at a word boundary.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def html_text(value: object) -> str:
    """`value` as HTML text or attribute content (&, <, >, ", ' escaped)."""
    return html.escape(str(value), quote=True)


def markdown_text(value: object) -> str:
    """`value` as inert Markdown inline text: no raw HTML, no links, images or emphasis, no
    table-cell break, one line."""
    text = html.escape(str(value), quote=False)
    text = " ".join(text.splitlines())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
