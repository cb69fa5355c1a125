"""Files shipped inside the package, found the same way in a checkout and in an installed wheel.

The repository keeps migrations, contract ABIs and the Round 9 sample in its top-level folders
(``sql/``, ``contracts_abi/``, ``data/``). The package ``qf_sentinel`` sees each as a folder of
its own (a symlink in the checkout, copied files in the built wheel), so ``importlib.resources``
finds them wherever the wheel is installed, never through the checkout's layout.

The npm tools of the devnet (anvil, the Allo SDK's contract builds) are not Python package data:
they come from ``npm ci`` in a checkout, or from ``QF_NODE_MODULES`` for an installed wheel.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from qf_sentinel.qf.errors import ConfigError

__all__ = ["node_modules", "shipped"]

PACKAGE = "qf_sentinel"
#: The checkout this module sits in, if it runs from one (``resolve()`` follows the symlinks).
_CHECKOUT = Path(__file__).resolve().parents[1]


def shipped(folder: str) -> Path:
    """The folder of package data called ``folder`` (``sql``, ``contracts_abi``, ``data``)."""
    found = resources.files(PACKAGE) / folder
    # A wheel is installed unpacked, so this is a real directory; a zipped install is not supported.
    if not isinstance(found, Path) or not found.is_dir():
        raise ConfigError(f"package data folder {folder!r} not found in {PACKAGE} ({found}): reinstall qf-sentinel")
    return found


def node_modules() -> Path:
    """Where the npm packages are: ``QF_NODE_MODULES``, else the checkout's, else the working directory's."""
    configured = os.environ.get("QF_NODE_MODULES")
    if configured:
        return Path(configured)
    checkout = _CHECKOUT / "node_modules"
    return checkout if checkout.is_dir() else Path.cwd() / "node_modules"
