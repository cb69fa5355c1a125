"""The direction of imports: import-linter's contracts of ``pyproject.toml`` hold on the code as it is.

The layers (top to bottom): ``qf_sentinel`` (the CLI and the demo); ``indexer``,
``scorer`` and ``qf.train``, independent of each other; ``qf.model`` (the
train/serve contract); the domain core; settings, logs and errors. Imports
under ``if TYPE_CHECKING:`` count. A second contract forbids import circles
between the modules of any package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*config: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run(
        [executable, "--no-cache", "--no-logo", *config],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )


def test_imports_point_down_the_layers_and_never_in_circles() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_a_layer_turned_upside_down_is_caught(tmp_path: Path) -> None:
    """The check can fail: with qf.errors placed above qf.settings (which imports it), the contract breaks."""
    config = tmp_path / "inverted.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["qf"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "inverted"\ntype = "layers"\nlayers = ["qf.errors", "qf.settings"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "qf.settings -> qf.errors" in result.stdout
