"""Compile contracts/*.sol with the pinned solc from npm into contracts_abi/.

    python scripts/compile_contracts.py          # write the artifacts
    python scripts/compile_contracts.py --check  # exit 1 if they are stale

Each artifact is ``contracts_abi/<Contract>.json`` with the ABI, creation
bytecode, the compiler version and a hash of the sources and settings that
produced it, so a stale artifact is caught without a compiler (``--check``
recompiles anyway and compares the bytes, which catches everything).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
ARTIFACTS = ROOT / "contracts_abi"
#: Contracts whose artifacts the project ships (the rest are libraries).
DEPLOYABLE = ("QFAllo", "DonationStrategy", "Registry", "TestToken", "PriceFeed", "HostileToken")
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}


def compile_all() -> dict[str, str]:
    """Return {artifact file name: JSON text} for every deployable contract."""
    node = shutil.which("node")
    if node is None:
        sys.exit("node not found: Node.js is needed to run the pinned solc")
    sources = {p.name: {"content": p.read_text()} for p in sorted(CONTRACTS.glob("*.sol"))}
    standard_input = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    proc = subprocess.run(
        [node, str(ROOT / "scripts" / "solc-compile.cjs")],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"solc failed to run (is `npm ci` done?): {proc.stderr.strip()}")
    output = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        sys.exit("\n".join(e["formattedMessage"] for e in errors))
    version = json.loads(
        subprocess.run(
            [node, "-e", "process.stdout.write(JSON.stringify(require('solc').version()))"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    digest = hashlib.sha256(
        json.dumps({"sources": sources, "settings": SETTINGS}, sort_keys=True).encode()
    ).hexdigest()
    artifacts = {}
    for unit in output["contracts"].values():
        for name, contract in unit.items():
            if name not in DEPLOYABLE:
                continue
            artifact = {
                "contractName": name,
                "compiler": f"solc {version}",
                "sourceHash": digest,
                "abi": contract["abi"],
                "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
            }
            artifacts[f"{name}.json"] = json.dumps(artifact, indent=1, sort_keys=True) + "\n"
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if artifacts are stale")
    args = parser.parse_args()
    artifacts = compile_all()
    if args.check:
        stale = [
            name
            for name, text in artifacts.items()
            if not (ARTIFACTS / name).exists() or (ARTIFACTS / name).read_text() != text
        ]
        if stale:
            print(f"stale contract artifacts: {', '.join(stale)}; run `make contracts`")
            return 1
        print(f"contract artifacts are current ({len(artifacts)} contracts)")
        return 0
    ARTIFACTS.mkdir(exist_ok=True)
    for name, text in artifacts.items():
        (ARTIFACTS / name).write_text(text)
    print(f"wrote {len(artifacts)} artifacts to {ARTIFACTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
