"""The direction of imports: import-linter's contracts of ``pyproject.toml`` hold on the code as it is.

The layers (top to bottom): ``qf_sentinel`` (the CLI, the demo, batch scoring
and retention); ``console``; ``indexer``, ``scorer`` and ``qf.train``,
independent of each other; ``qf.model`` (the train/serve contract); the domain
core (experiments included); settings, logs and errors. Imports under
``if TYPE_CHECKING:`` count. A second contract keeps the console off the
sidecar (experiments are core), a third forbids import circles between the
modules of any package.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*config: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run(
        [executable, "--no-cache", "--no-logo", *config],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.mark.integration
def test_imports_point_down_the_layers_and_never_in_circles() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.integration
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


ERROR_MODULES = (
    "qf.errors", "qf.model.errors", "qf.train.errors", "indexer.errors", "indexer.metadata.errors", "scorer.errors",
    "qf.experiments.errors",
)


@pytest.mark.parametrize("name", ERROR_MODULES)
def test_each_error_tree_is_drawn_in_its_docstring(name: str) -> None:
    """Every exception class of an errors module appears in the tree its docstring draws."""
    module = importlib.import_module(name)
    classes = [
        value.__name__ for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name
    ]  # fmt: skip
    assert classes
    tree = module.__doc__ or ""
    assert [c for c in classes if not re.search(rf"[─ ]{c}\b", tree)] == []


def test_no_exception_class_outside_the_errors_modules() -> None:
    """The error trees are complete: an exception raised on purpose is declared in an errors module."""
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] not in ("qf", "indexer", "scorer", "qf_sentinel") or path.name == "errors.py":
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"class (\w+)\((\w+)", line)
            if match and (match[2].endswith(("Error", "Exception")) or match[2] in ("QFError", "IndexerError")):
                found.append(f"{path.relative_to(ROOT)}: {match[1]}")
    # Private, never raised past their module: one attempt's failure inside the RPC client, a decoder's signal.
    assert found == ["indexer/decode.py: _Malformed", "indexer/rpc.py: _Failure"]
