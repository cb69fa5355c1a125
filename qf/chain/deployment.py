"""Where the project's contracts are on a chain: the record ``qf devnet`` writes and everyone reads.

Apart from deploying (``deploy.py``, which signs transactions), so that reading a record, as the
indexer's, the sidecar's and the console's configuration do, needs no chain library.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    core: str
    token: str
    deployer: str
    #: The Allo v2-compatible project registry the core checks profiles against.
    registry: str
    #: Token (lowercase 0x; the native marker for ETH) -> its Chainlink-style USD price feed.
    price_feeds: dict[str, str]
    #: Block of the core's deployment: where an indexer starts.
    start_block: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """Read a recorded deployment; raises ValueError if it is not one of this version."""
        try:
            return cls(**json.loads(text))
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"not a deployment record of this version: {err}") from err
