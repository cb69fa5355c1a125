"""Write requirements/uv.txt, the hash-pinned bootstrap of uv, from uv.lock.

    python scripts/lock_bootstrap.py          # rewrite requirements/uv.txt
    python scripts/lock_bootstrap.py --check  # exit 1 if it does not match uv.lock

A fresh machine has pip but not uv. The Makefile and the Dockerfile install uv with
``pip install --require-hashes -r requirements/uv.txt`` and let uv install the rest
from uv.lock. Taking the version and the hashes from uv.lock's own entry for uv (the
dev group pins it) means there is one lock, and the bootstrap cannot drift from it.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
OUT = ROOT / "requirements" / "uv.txt"
HEADER = """\
# The bootstrap: uv itself, installed by pip with --require-hashes before `uv sync`
# installs everything else from uv.lock. Generated from uv.lock's entry for uv by
# scripts/lock_bootstrap.py (make lock). DO NOT EDIT.
"""


def render(lock_text: str) -> str:
    """The requirements file for the uv that ``lock_text`` pins."""
    lock = tomllib.loads(lock_text)
    entries = [p for p in lock["package"] if p["name"] == "uv"]
    if len(entries) != 1:
        sys.exit(f"uv.lock pins uv {len(entries)} times; the dev group must pin exactly one (uv==X.Y.Z)")
    uv = entries[0]
    files = [*uv.get("wheels", []), *([uv["sdist"]] if "sdist" in uv else [])]
    hashes = sorted({f["hash"] for f in files})
    lines = [f"uv=={uv['version']}", *(f"    --hash={h}" for h in hashes)]
    return HEADER + " \\\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if requirements/uv.txt differs from uv.lock")
    args = parser.parse_args()
    expected = render(LOCK.read_text())
    if args.check:
        if not OUT.exists() or OUT.read_text() != expected:
            sys.exit("requirements/uv.txt does not match uv.lock's uv: run `make lock`")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(expected)
    print(OUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
