"""What a model sees of a round: every donation as plain arrays, the donors and their labels.

Every feature the models use is computed from these arrays by :mod:`qf.model.features`,
the same code for training, the sidecar and ``qf score``. The arrays come from one
of two places, which must agree exactly (tested), and both end in :func:`assemble_dataset`:

* :func:`qf.model.loader.load_dataset`: the indexed event tables of one chain;
* :func:`qf.train.plans.dataset_from_plan`: a simulated or replayed round, without a database.

Labels: when several sources label an address, the most recent label wins (an
operator's imported verdict overrides the simulator's ground truth). Donors
without a label have ``labelled`` False and pattern ``unlabelled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: ``order`` = block_number * ORDER_SCALE + log_index: chain order in one integer.
ORDER_SCALE = 100_000


@dataclass(frozen=True, slots=True)
class Donations:
    """One row per donation in chain order; donors, projects and tokens as dense indices."""

    donor: IntArray
    project: IntArray
    #: token units (NaN when the token's decimals are unknown)
    amount: FloatArray
    #: 1.0 if the token-unit amount is a multiple of 0.5 (exact, from base units), NaN if unknown
    round_amount: FloatArray
    #: unix seconds of the block
    time: FloatArray
    block: IntArray
    #: block_number * ORDER_SCALE + log_index: chain order
    order: IntArray
    #: transaction nonce of the donation (transactions the wallet had sent before)
    nonce: IntArray
    #: effective gas price, wei
    gas_price: FloatArray
    token: IntArray
    #: pool of each project (index into ``pool_ids``)
    project_pool: IntArray
    #: "pool_id:0xrecipient" per project index
    project_ids: list[str]
    #: the token of each token index, as hex without 0x (the donated asset's address)
    token_ids: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.donor.size)


@dataclass(frozen=True, slots=True)
class Dataset:
    chain_id: int
    #: one row per donor (index = donor index of ``donations``): address, first/last block, label columns
    donors: pd.DataFrame
    donations: Donations
    #: source -> number of labels read from it
    label_sources: dict[str, int]


def assemble_dataset(
    chain_id: int,
    *,
    senders: list[str],
    projects: list[str],
    tokens: list[bytes],
    amount: FloatArray,
    round_amount: FloatArray,
    time: FloatArray,
    block: IntArray,
    log_index: IntArray,
    nonce: IntArray,
    gas_price: FloatArray,
    labels: dict[str, tuple[bool, str, str]],
    label_sources: dict[str, int],
) -> Dataset:
    """Index donors (sorted by address), projects (in order of first donation) and tokens; attach labels."""
    addresses, donor = np.unique(np.array(senders), return_inverse=True)
    project_ids, project = _first_seen_index(projects)
    token_ids, token = _first_seen_index([t.hex() for t in tokens])
    _, project_pool = _first_seen_index([key.partition(":")[0] for key in project_ids])
    n = addresses.size
    first_block = np.full(n, np.iinfo(np.int64).max)
    last_block = np.zeros(n, dtype=np.int64)
    np.minimum.at(first_block, donor, block)
    np.maximum.at(last_block, donor, block)
    label = [labels.get(str(a)) for a in addresses]
    donors = pd.DataFrame(
        {
            "address": addresses.astype(str),
            "first_block": first_block,
            "last_block": last_block,
            "labelled": [x is not None for x in label],
            "is_sybil": [bool(x and x[0]) for x in label],
            "pattern": [x[1] if x else "unlabelled" for x in label],
            "source": [x[2] if x else None for x in label],
        }
    )
    donations = Donations(
        donor=donor.astype(np.int64),
        project=project,
        amount=amount,
        round_amount=round_amount,
        time=time,
        block=block,
        order=block * ORDER_SCALE + log_index,
        nonce=nonce,
        gas_price=gas_price,
        token=token,
        project_pool=project_pool,
        project_ids=project_ids,
        token_ids=token_ids,
    )
    return Dataset(chain_id=chain_id, donors=donors, donations=donations, label_sources=label_sources)


def _first_seen_index(keys: list[str]) -> tuple[list[str], IntArray]:
    """Dense indices in order of first appearance, and the distinct keys in that order."""
    index: dict[str, int] = {}
    out = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, len(keys))
    return list(index), out
