"""The console's charts as Plotly figure JSON; the page draws them with the plotly.js the wheel ships."""

from __future__ import annotations

import functools
import math

import plotly.graph_objects as go

from qf_sentinel.console.comparison import Comparison
from qf_sentinel.console.display import plotly_label
from qf_sentinel.qf.experiments.logic import ExperimentStats

_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 40, "b": 40}, "height": 420}


def _label(name: str | None, recipient_id: bytes) -> str:
    """A project's name as Plotly should draw it: plain text, cut short (it is chain data)."""
    return plotly_label(name) if name else "0x" + recipient_id.hex()[:8] + "…"


@functools.lru_cache(maxsize=32)  # a figure costs ~0.1 s to build; a cached comparison is the same object
def gains_chart(comparison: Comparison, top: int = 25) -> str:
    """Per project, what COCM and risk-adjusted matching give or take against standard QF (largest moves)."""
    moved = sorted(comparison.projects, key=lambda p: -max(abs(p.cocm_delta), abs(p.risk_delta)))[:top]
    moved.reverse()  # horizontal bars draw bottom-up: the largest move on top
    # Bars are placed by recipient id, so two projects whose names look alike (or are cut alike) stay two bars.
    ids = ["0x" + p.recipient_id.hex() for p in moved]
    names = [_label(p.name, p.recipient_id) for p in moved]
    fig = go.Figure([
        go.Bar(name="COCM − standard", y=ids, x=[p.cocm_delta for p in moved], orientation="h",
               hovertext=names, hoverinfo="x+text+name"),
        go.Bar(name="risk-adjusted − standard", y=ids, x=[p.risk_delta for p in moved], orientation="h",
               hovertext=names, hoverinfo="x+text+name"),
    ])  # fmt: skip
    unit = "USD" if comparison.usd else "pool token"
    fig.update_layout(**{**_LAYOUT, "height": max(320, 26 * len(moved) + 120)}, barmode="group",
                      title="Gain or loss against standard QF", xaxis_title=f"match difference ({unit})",
                      yaxis={"type": "category", "tickmode": "array", "tickvals": ids, "ticktext": names})  # fmt: skip
    return _script_safe(str(fig.to_json()))


def lift_chart(stats: ExperimentStats) -> str:
    """Conversion rate per variant, and each variant's lift over the baseline with its 95% interval."""
    variants = [plotly_label(v.variant) for v in stats.variants]  # chosen by the sidecar's clients
    rates = [_finite(v.conversion_rate) for v in stats.variants]
    lifts = [_finite(v.lift) for v in stats.variants]
    high = [_gap(v.lift_ci_high, v.lift) for v in stats.variants]
    low = [_gap(v.lift, v.lift_ci_low) for v in stats.variants]
    fig = go.Figure([
        go.Bar(name="conversion rate", x=variants, y=rates, yaxis="y"),
        go.Scatter(name="lift (95% CI)", x=variants, y=lifts, mode="markers", yaxis="y2", marker={"size": 12},
                   error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low}),
    ])  # fmt: skip
    title = f"{plotly_label(stats.experiment)}: conversion and lift over {plotly_label(stats.baseline)}"
    fig.update_layout(**_LAYOUT, title=title,
                      yaxis={"title": "conversion rate", "tickformat": ".0%"},
                      yaxis2={"title": "lift", "overlaying": "y", "side": "right", "tickformat": "+.0%"},
                      legend={"orientation": "h", "y": -0.15})  # fmt: skip
    return _script_safe(str(fig.to_json()))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _gap(a: float, b: float) -> float | None:
    return a - b if math.isfinite(a) and math.isfinite(b) else None


def _script_safe(text: str) -> str:
    """JSON that can sit inside a <script> element: a project named ``</script>`` cannot close it."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
