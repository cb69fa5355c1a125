"""The direction of imports: import-linter's contracts of ``pyproject.toml`` hold on the code as it is.

Every package is imported under one name, ``qf_sentinel``: the repository's
top-level folders ``qf/``, ``indexer/``, ``scorer/`` and ``console/`` are
``qf_sentinel.qf`` etc. (symlinks in the checkout, copied files in the wheel).
The layers (top to bottom): ``qf_sentinel``'s own modules (the CLI, the demo,
batch scoring and retention); ``console``; ``indexer``, ``scorer`` and
``qf.train``, independent of each other; ``qf.model`` (the train/serve contract); the domain
core (experiments included); settings, logs and errors. Imports under
``if TYPE_CHECKING:`` count. A second contract keeps the console off the
sidecar (experiments are core), a third forbids import circles between the
modules of any package.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import tomllib
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
        '[tool.importlinter]\nroot_packages = ["qf_sentinel"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "inverted"\ntype = "layers"\nlayers = ["qf_sentinel.qf.errors", "qf_sentinel.qf.settings"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "qf_sentinel.qf.settings -> qf_sentinel.qf.errors" in result.stdout


ERROR_MODULES = tuple(
    f"qf_sentinel.{name}"
    for name in (
        "qf.errors", "qf.model.errors", "qf.train.errors", "indexer.errors", "indexer.metadata.errors", "scorer.errors",
        "qf.experiments.errors",
    )
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
        if path.resolve() != path:  # qf_sentinel/indexer/... is indexer/... seen through its link
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"class (\w+)\((\w+)", line)
            if match and (match[2].endswith(("Error", "Exception")) or match[2] in ("QFError", "IndexerError")):
                found.append(f"{path.relative_to(ROOT)}: {match[1]}")
    # Private, never raised past their module: one attempt's failure inside the RPC client, a decoder's signal.
    assert found == ["indexer/decode.py: _Malformed", "indexer/rpc.py: _Failure"]


#: The repository's top-level folders the package reaches as ``qf_sentinel.<folder>``.
LINKED_FOLDERS = ("qf", "indexer", "scorer", "console", "sql", "contracts_abi", "data")
#: The packages among them: imported only through ``qf_sentinel``, never by their folder's name.
PACKAGE_FOLDERS = ("qf", "indexer", "scorer", "console")


def test_every_top_level_folder_is_reached_through_the_one_package() -> None:
    """One importable name: each folder is linked into ``qf_sentinel``, and only ``qf_sentinel`` is packaged."""
    for name in LINKED_FOLDERS:
        link = ROOT / "qf_sentinel" / name
        assert link.is_symlink(), f"qf_sentinel/{name} should link to ../{name}"
        assert link.readlink() == Path("..") / name
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["qf_sentinel*"]


def test_no_module_imports_a_folder_by_its_top_level_name() -> None:
    """``import indexer`` would load a second copy of a module (and find another distribution's ``indexer``)."""
    found = []
    for folder in (*PACKAGE_FOLDERS, "qf_sentinel", "tests", "bench", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() != path:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in PACKAGE_FOLDERS]
    assert found == []


def test_every_module_of_the_application_is_in_a_layer() -> None:
    """The application's modules are listed one by one in the layers contract (its folder also holds the
    linked packages): a new one left out would escape the contract, so it must be named there."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [c["layers"] for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    named = {m.strip() for layer in layers for m in re.split(r"[|:]", layer)}
    def children(folder: Path, prefix: str) -> set[str]:
        return {f"{prefix}.{p.stem}" for p in folder.iterdir() if p.stem != "__init__"
                and (p.suffix == ".py" or (p / "__init__.py").exists())}  # fmt: skip

    # The application's own modules and the components are layers; the core (qf) is layered module by module.
    modules = children(ROOT / "qf_sentinel", "qf_sentinel") - {"qf_sentinel.qf"}
    modules |= children(ROOT / "qf", "qf_sentinel.qf")
    assert modules - named == set()
