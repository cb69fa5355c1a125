"""Real Allo v2 strategy bytecode, from the npm package ``@allo-team/allo-v2-sdk``.

The package (MIT, pinned in ``package.json``, installed by ``npm ci``) ships the
compiled creation bytecode and ABI of the strategies Allo v2 deployed, in
``dist/strategies/<folder>/<file>.config.js``. Reading them through Node.js
keeps the bytes exactly as published: nothing here is recompiled or edited.

    artifact = sdk_strategy("DonationVotingMerkleDistributionDirectTransferStrategy")
    artifact.deploy_data([core, "DonationVotingMerkleDistributionDirectTransferStrategyv1", permit2])
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Final

from qf_sentinel.qf.chain.abi import Artifact
from qf_sentinel.qf.errors import ConfigError
from qf_sentinel.qf.eth import from_hex
from qf_sentinel.qf.package_data import node_modules

PACKAGE: Final = "@allo-team/allo-v2-sdk"
PACKAGE_DIR: Final = node_modules() / "@allo-team" / "allo-v2-sdk"

#: Strategy contract name -> its config module under ``dist/strategies/``.
STRATEGIES: Final[dict[str, str]] = {
    "DonationVotingMerkleDistributionDirectTransferStrategy": (
        "DonationVotingMerkleDistributionStrategy/donationVotingDirect.config.js"
    ),
    "DonationVotingMerkleDistributionVaultStrategy": (
        "DonationVotingMerkleDistributionStrategy/donationVotingVault.config.js"
    ),
    "DirectGrantsLiteStrategy": "DirectGrantsLiteStrategy/directGrantsLite.config.js",
    "DirectAllocationStrategy": "DirectAllocationStrategy/directAllocation.config.js",
    "EasyRetroFundingStrategy": "EasyRetroFunding/easyRetroFunding.config.js",
    "MicroGrantsStrategy": "MicroGrantsStrategy/microGrants.config.js",
}

#: Gitcoin Grants Stack's donation strategy: the one its QF rounds run on.
DVMDT: Final = "DonationVotingMerkleDistributionDirectTransferStrategy"

#: Permit2's canonical address (the same on every chain). The devnet has no Permit2: donations
#: through a real strategy use its PermitType.None path (native value, or an ERC-20 approved
#: to the strategy), which never calls it; the constructor only refuses the zero address.
PERMIT2: Final = "0x000000000022d473030f116ddee9f6b43ac78ba3"

_PRINT_CONFIG: Final = (
    "const m = require(process.argv[1]);"
    "process.stdout.write(JSON.stringify({abi: m.abi, bytecode: m.bytecode}));"
)


def package_version() -> str:
    """The installed package's version (what ``package.json`` pins)."""
    return str(json.loads(_package_file("package.json").read_text())["version"])


@functools.cache
def sdk_strategy(name: str) -> Artifact:
    """The published ABI and creation bytecode of strategy ``name``; ConfigError if unavailable."""
    try:
        relative = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown Allo v2 strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    module = _package_file(f"dist/strategies/{relative}")
    node = shutil.which("node")
    if node is None:
        raise ConfigError("node not found: Node.js is needed to read the Allo v2 strategy bytecode")
    proc = subprocess.run(
        [node, "-e", _PRINT_CONFIG, str(module)], capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise ConfigError(f"cannot read {module}: {proc.stderr.strip()[-500:]}")
    raw = json.loads(proc.stdout)
    return Artifact(name=name, abi=tuple(raw["abi"]), bytecode=from_hex(raw["bytecode"]))


def _package_file(relative: str) -> Path:
    path = PACKAGE_DIR / relative
    if not path.is_file():
        raise ConfigError(f"{PACKAGE} is not installed ({path} is missing): run `npm ci` (or `make setup`)")
    return path
