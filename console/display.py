"""Chain-supplied strings made fit to show: no bidi controls, no control characters, a bounded length.

Project and profile names, token symbols and metadata are whatever a
contract's caller wrote (100 kB names, an unterminated U+202E RIGHT-TO-LEFT
OVERRIDE that reverses the rest of a line, markup). Jinja2's autoescape keeps
them from being HTML; this module keeps them from being layout:

- :func:`display_text` drops the bidi embedding, override and isolate controls
  (the text's own right-to-left letters still read right to left), replaces
  other control characters with U+FFFD and cuts the text to ``limit``
  characters with an ellipsis;
- :func:`chain_text` (the templates' ``chain_text`` filter) wraps that in
  ``<bdi>``, which isolates even a legitimately right-to-left name from the text
  around it, with the longer text (up to :data:`TITLE_CHARS`) in ``title`` on hover;
- :func:`plain` (filter ``plain``) is the same text without markup, for places
  that take none (an ``<option>``);
- :func:`plotly_label` escapes ``& < >`` for Plotly, which draws a subset of
  HTML in labels (``<a href>`` as a link, ``<span style>``, ``<b>``) and turns
  ``&lt;`` back into ``<`` when it draws, so the label shows literally.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

#: Characters shown of a name; the rest is on hover.
DISPLAY_CHARS = 80
#: Characters of a name in its hover title (a 100 kB title would make a 100 kB page).
TITLE_CHARS = 1000
#: ALM, LRM, RLM, the embeddings and overrides (LRE RLE PDF LRO RLO), the isolates (LRI RLI FSI PDI).
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _clean(value: object) -> str:
    return _CONTROL.sub("\ufffd", _BIDI.sub("", str(value)))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def display_text(value: object, limit: int = DISPLAY_CHARS) -> str:
    """``value`` without bidi or control characters, at most ``limit`` characters (the last an ellipsis)."""
    return _cut(_clean(value), limit)


def chain_text(value: object, limit: int = DISPLAY_CHARS) -> Markup:
    """``value`` for a page: isolated in ``<bdi>``, cut to ``limit`` characters, the longer text on hover."""
    if value is None or value == "":
        return Markup("—")
    clean = _clean(value)
    shown = _cut(clean, limit)
    if shown == clean:
        return Markup("<bdi>{}</bdi>").format(shown)
    return Markup('<bdi title="{}">{}</bdi>').format(_cut(clean, TITLE_CHARS), shown)


def plain(value: object, limit: int = DISPLAY_CHARS) -> str:
    """:func:`display_text` for markup-free places (autoescape still applies)."""
    return "—" if value is None else display_text(value, limit)


def plotly_label(value: object, limit: int = DISPLAY_CHARS) -> str:
    """A label Plotly draws as the text it is, never as markup."""
    return html.escape(display_text(value, limit), quote=False)
