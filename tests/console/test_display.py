"""console.display: chain strings shown without bidi or control characters, cut short, inert for Plotly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qf_sentinel.console.display import DISPLAY_CHARS, TITLE_CHARS, chain_text, display_text, plain, plotly_label

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(st.text(), st.integers(min_value=2, max_value=200))
def test_shown_text_has_no_bidi_control_and_fits(text: str, limit: int) -> None:
    shown = display_text(text, limit)
    assert len(shown) <= limit
    assert not set(shown) & set(BIDI)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    label = plotly_label(text, limit)
    assert "<" not in label
    assert ">" not in label


def test_chain_text_isolates_and_keeps_a_bounded_title() -> None:
    assert str(chain_text("Reversed \u202eproject")) == "<bdi>Reversed project</bdi>"
    assert str(chain_text("<b>x</b> & y")) == "<bdi>&lt;b&gt;x&lt;/b&gt; &amp; y</bdi>"
    long = str(chain_text("x" * 100_000))
    assert long == f'<bdi title="{"x" * (TITLE_CHARS - 1)}…">{"x" * (DISPLAY_CHARS - 1)}…</bdi>'
    assert str(chain_text(None)) == "—"
    assert str(chain_text('"><script>', 5)) == '<bdi title="&#34;&gt;&lt;script&gt;">&#34;&gt;&lt;s…</bdi>'


def test_plain_and_plotly_forms() -> None:
    assert plain("a\x1bb\u202ec") == "a\ufffdbc"
    assert plain(None) == "—"
    assert plotly_label('<a href="http://evil.example/">x</a>') == '&lt;a href="http://evil.example/"&gt;x&lt;/a&gt;'
    assert plotly_label("&lt;") == "&amp;lt;", "an entity in a name is shown as typed"
