"""Which chains a page covers, and what a chain is called: the console shows every indexed chain at once.

The chains of a page are ``QF_CHAIN_ID`` alone when it is set (a console per
chain), else every chain in ``qf.chains``; a ``?chain=N`` filter narrows a
listing to one of them. The database keeps chain ids only, so a chain's name
comes from :data:`KNOWN`, a short table of well-known EIP-155 ids; any other
chain shows as its id.
"""

from __future__ import annotations

from collections.abc import Sequence

from qf_sentinel.qf.errors import ConfigError

#: EIP-155 chain id -> name, for the chains Allo v2 rounds run on and the local devnet (31337 + k).
KNOWN: dict[int, str] = {
    1: "Ethereum", 10: "Optimism", 137: "Polygon", 250: "Fantom", 324: "zkSync Era", 1088: "Metis",
    8453: "Base", 42161: "Arbitrum One", 42220: "Celo", 43114: "Avalanche", 59144: "Linea", 534352: "Scroll",
    11155111: "Sepolia", 11155420: "OP Sepolia", 31337: "devnet", 31338: "devnet 2", 31339: "devnet 3",
}  # fmt: skip


def chain_name(chain_id: int) -> str | None:
    return KNOWN.get(int(chain_id))


def chain_label(chain_id: int | None) -> str:
    """``10 Optimism``, or the bare id for a chain not in :data:`KNOWN` (the templates' ``chain`` filter)."""
    if chain_id is None:
        return "—"
    name = chain_name(chain_id)
    return f"{int(chain_id)} {name}" if name else str(int(chain_id))


def in_scope(configured: int | None, indexed: Sequence[int]) -> list[int]:
    """The chains the console shows: the configured one, else every indexed one (ConfigError: none yet)."""
    if configured is not None:
        return [configured]
    if not indexed:
        raise ConfigError("nothing is indexed yet: run `qf index` (or `make demo`) first")
    return sorted(int(c) for c in indexed)


def narrowed(scope: Sequence[int], picked: str | None) -> int | None:
    """The chain a ``?chain=`` filter picks from ``scope`` (None: no filter); ValueError naming the choices."""
    if picked is None or picked == "":
        return None
    shown = ", ".join(str(c) for c in scope)
    try:
        chain_id = int(picked)
    except ValueError:
        raise ValueError(f"chain must be a chain id ({shown}), not {picked[:40]!r}") from None
    if chain_id not in scope:
        raise ValueError(f"chain {chain_id} is not shown here (chains: {shown})")
    return chain_id
