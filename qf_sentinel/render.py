"""What the CLI prints: matching runs, training headlines and the offline evaluation, for a terminal or a pipe.

Pure presentation over the plain dicts the commands produce; the commands
decide what to compute (:mod:`qf_sentinel.cli`).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qf_sentinel.qf.csvsafe import safe_record
from qf_sentinel.qf.eth import to_hex

if TYPE_CHECKING:
    from qf_sentinel.qf.matching import Method
    from qf_sentinel.qf.matching.service import MatchingResult

out = Console()
#: Rows of a ranking a terminal table shows (csv and json give them all).
TABLE_ROWS = 25
#: Characters of a cell a terminal table shows (a project name is chain data: it can be 100 kB).
CELL_CHARS = 80
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def cell(value: Any) -> Text:
    """A table cell that is only text: no terminal escape sequence (ESC, BEL, CSI) and no rich markup,
    whatever a project's owner wrote on chain; cut to CELL_CHARS."""
    text = _CONTROL.sub("\ufffd", str(value))
    return Text(text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…")


def matching_rows(result: MatchingResult, method: Method) -> list[dict[str, Any]]:
    """One row per project, largest ``method`` match first; a risk-adjusted run also shows standard QF
    (``base_match``) and the move (``delta``)."""
    rows: list[dict[str, Any]] = []
    for p in result.projects(by=method):
        row: dict[str, Any] = {"project": p.name or "", "recipient_id": to_hex(p.recipient_id),
                               "contributors": p.donors, "amount": round(p.amount, 6),
                               "match": round(p.matches[method], 6)}  # fmt: skip
        if method == "risk-adjusted":
            base = p.matches["standard"]
            row |= {"base_match": round(base, 6), "delta": round(p.matches[method] - base, 6)}
        rows.append(row)
    return rows


def matching_run(output: str, result: MatchingResult, method: Method, run_id: int) -> None:
    """`qf matching`'s output: the stored run of :func:`qf.matching.service.match_pool`'s result."""
    meta = {"run_id": run_id, "chain_id": result.chain_id, "pool_id": result.pool_id, "round": result.round_name,
            "pools": [list(p) for p in result.pools], "title": result.title, "method": method,
            "params": result.params(method), "pool_amount": result.pool_amount, "donors": result.donors,
            "weights_source": result.weights_source, "notes": list(result.notes)}  # fmt: skip
    matching_table(output, matching_rows(result, method), meta)
    if output == "table":
        if result.weights is not None:
            out.print(f"donor weights: {result.weights_source} ({result.weights.discounted:,} of "
                      f"{len(result.weights.values):,} donors discounted)", markup=False)  # fmt: skip
        for note in result.notes:
            out.print(f"note: {note}", markup=False)


def matching_table(output: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """A matching run as JSON, CSV or (on a terminal) the top of its ranking."""
    if output == "json":
        print(json.dumps(meta | {"results": rows}, indent=2))
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["recipient_id"])
        writer.writeheader()
        writer.writerows(safe_record(r) for r in rows)  # project names are chain data
    else:
        where = meta.get("title") or f"pool {meta['pool_id']}"
        title = f"{where} · {meta['method']} · run {meta['run_id']} (qf.matching_results)"
        table = Table(*(rows[0] if rows else ["recipient_id"]), title=title)
        # A terminal shows the top of the ranking; every row is in the run's table and in --format csv|json.
        for row in rows[:TABLE_ROWS]:
            table.add_row(*(cell(v) for v in row.values()))
        out.print(table)
        if len(rows) > TABLE_ROWS:
            out.print(f"top {TABLE_ROWS} of {len(rows)} recipients; all of them with --format csv, or in "
                      f"qf.matching_results (run_id {meta['run_id']})")  # fmt: skip

def headline(headline: dict[str, Any]) -> None:
    """The served model on each split: AUCs with their 95% intervals, and the gate on each held-out family."""
    def ci(metric: dict[str, float]) -> str:
        return f"{metric['point']:.3f} [{metric['low']:.2f}-{metric['high']:.2f}]"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    gate = headline.get("gate", {})
    thresholds = gate.get("thresholds", headline["thresholds"])
    table = Table("held out", "ROC AUC [95% CI]", "PR AUC", "gate: attackers approved / background blocked, review",
                  title=f"served model: {headline['served_model']} (review from {thresholds['review']:.2f}, "
                        f"block above {thresholds['block']:.2f})")  # fmt: skip
    for split, row in headline["splits"].items():
        family = gate.get("families", {}).get(split.removeprefix("leave-out-"))
        cells = ("attackers_approved", "background_blocked", "background_review")
        rates = " / ".join(pct(family.get(k)) for k in cells) if family else ""
        name = split.replace("leave-out-", "without ")
        table.add_row(name, ci(row["roc_auc"]), f"{row['pr_auc']['point']:.2f}", rates)
    out.print(table)
    if gate.get("attackers_approved") is not None:
        out.print(
            f"gate over held-out families: attackers approved {pct(gate['attackers_approved'])}, background "
            f"blocked {pct(gate['background_blocked'])}, sent to review {pct(gate['background_review'])}"
        )

def gate_headline(section: dict[str, Any] | None) -> None:
    """The contribution gate of a new version: per held-out family, on first contributions."""
    if not section:
        return

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    t = section["thresholds"]
    table = Table("held out", "ROC AUC (first)", "approved at first", "bg held first / blocked first / held any",
                  title=f"contribution gate: {section['served_model']} on point-in-time features "
                        f"(review from {t['review']:.2f}, block above {t['block']:.2f})")  # fmt: skip
    for family, row in section["families"].items():
        table.add_row(
            f"without {family}", f"{row['roc_auc_first']:.3f}", pct(row.get("attackers_approved_first")),
            f"{pct(row.get('background_held_first'))} / {pct(row.get('background_blocked_first'))} / "
            f"{pct(row.get('background_held'))}",
        )  # fmt: skip
    out.print(table)


def live_evaluation(result: dict[str, Any]) -> None:
    """`qf eval --live`: per held-out family, what the gate did to each contribution before it existed."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    table = Table("held out", "wallets", "ROC AUC first", "approved at first", "gain let in", "real held first",
                  "real blocked first", "real contributions held",
                  title=f"qf eval --live: Round 9 in time order, gate {result['served_model']}, "
                        f"{result['background_wallets_measured']:,} real donors measured")  # fmt: skip
    for family, row in result["families"].items():
        table.add_row(
            family, str(row["attackers"]), f"{row['roc_auc_first']:.3f}", pct(row["attackers_approved_first"]),
            pct(row["gain_approved_share"]), pct(row["background_held_first"]),
            pct(row["background_blocked_first"]), pct(row["background_held_contributions"]),
        )  # fmt: skip
    out.print(table)
    split = {f: row.get("by_funding") or {} for f, row in result["families"].items()}
    if any(split.values()):
        funding = Table("held out", "attacker-funded: wallets / approved at first / ROC AUC",
                        "funded through an exchange: wallets / approved at first / ROC AUC",
                        title="by how the attack wallets were funded (funding stage on; " + result.get("funding", "")
                              + ")")  # fmt: skip

        def cell(part: dict[str, Any] | None) -> str:
            if not part:
                return "-"
            return f"{part['wallets']} / {pct(part['approved_first'])} / {part['roc_auc_first']:.3f}"

        for family, parts in split.items():
            funding.add_row(family, cell(parts.get("attacker_funded")), cell(parts.get("via_exchange")))
        out.print(funding)
    s, t = result["summary"], result["targets"]

    def verdict(key: str) -> str:
        value, target = s[key], t[key]
        mark = "met" if value <= target else "NOT met"
        return f"{pct(value)} (target <= {pct(target)}: {mark})"

    out.print(
        f"worst family: real donors held at first contribution {verdict('background_held_first')}, blocked "
        f"{verdict('background_blocked_first')}; real contributions held {verdict('background_held_contributions')} "
        f"(real donors held at any contribution {pct(s['background_held_any_donor'])}); attack wallets approved at "
        f"first contribution: shape families {verdict('shape_approved_first')}, imitators and aged wallets "
        f"{verdict('imitation_approved_first')}; standard-QF gain let in {verdict('gain_approved_share')} "
        f"({result['seconds']} s)"
    )


def evaluation(result: dict[str, Any]) -> None:
    """`qf eval`'s figures: the gate and matching on each held-out attack family, then the pooled ones."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def ci(metric: dict[str, float]) -> str:
        return f"{metric['point']:.3f} [{metric['low']:.2f}, {metric['high']:.2f}]"

    table = Table("held out", "n", "ROC AUC", "approved", "blocked", "bg blocked/review", "gain COCM/risk-adj.",
                  "honest L1 COCM/risk-adj.", title=f"qf eval: Round 9 background, served {result['served_model']}")
    for family, row in result["families"].items():
        gate, m = row["gate"] or {}, row["matching"] or {}
        table.add_row(
            family, str(row["attackers"]), f"{row['roc_auc']['point']:.3f}", pct(gate.get("attackers_approved")),
            pct(gate.get("attackers_blocked")),
            f"{pct(gate.get('background_blocked'))}/{pct(gate.get('background_review'))}",
            f"{m.get('attackers_cocm', float('nan')):.2%}/{m.get('attackers_risk_adjusted', float('nan')):.2%}",
            f"{m.get('honest_l1_cocm', float('nan')):.3f}/{m.get('honest_l1_risk_adjusted', float('nan')):.3f}",
        )  # fmt: skip
    out.print(table)
    g, m = result["gate"], result["matching"]
    out.print(
        f"pooled ROC AUC {ci(result['pooled']['roc_auc'])}; background blocked {pct(g['background_blocked'])}, "
        f"to review {pct(g['background_review'])}; held-out attackers approved {pct(g['attackers_approved'])}; "
        f"thresholds review {result['thresholds']['review']:.3f} / block {result['thresholds']['block']:.3f}"
    )
    out.print(
        f"matching (mean over families): attackers' gain standard {m['attackers_standard']:.2%}, COCM "
        f"{m['attackers_cocm']:.2%}, risk-adjusted {m['attackers_risk_adjusted']:.2%}; honest L1 from clean QF: "
        f"COCM {m['honest_l1_cocm']:.3f}, risk-adjusted {m['honest_l1_risk_adjusted']:.3f} ({result['seconds']} s)"
    )
