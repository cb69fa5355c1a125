"""The extras of pyproject.toml, one per deployable, cover what each deployable imports.

A dApp backend installs ``qf-sentinel[client]`` (grpcio and protobuf only); a server installs
the extra of what it runs. The imports are read from the source (as Python would run them:
module level, inside functions, not under ``if TYPE_CHECKING:``), starting from the ``qf``
commands of each deployable, and every third-party module they reach must come from a package
the lock installs for that extra. So a new import in the indexer fails here, not in production.
The slow test below checks the same by importing them in a virtualenv of that extra alone; the
clean-virtualenv install of the client is tests/scorer/test_client_install.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
PACKAGES = frozenset(p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
CLI = "qf_sentinel.cli"
#: The ``qf`` commands (functions of qf_sentinel/cli.py) each deployable runs, as the README lists them.
COMMANDS = {
    "indexer": ["migrate", "db_url", "db_stop", "psql", "index", "metadata", "funding", "funding_import",
                "funding_lookup", "sources_import"],
    "sidecar": ["migrate", "serve", "score", "retention"],
    "training": ["migrate", "train", "evaluate", "labels_import"],
    "console": ["migrate", "console_command", "matching", "rounds_add", "rounds_list", "prices_import"],
}  # fmt: skip
#: Commands of the demo and the devnet, installed by ``all`` only; `qf env` needs nothing beyond the CLI.
ALL_ONLY = ["devnet", "simulate", "replay_gitcoin", "demo", "env"]


def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def runtime_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node below ``node`` that runs, skipping the body of ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                nodes += [other, *runtime_nodes(other)]
            continue
        nodes += [child, *runtime_nodes(child)]
    return nodes


def imported_names(nodes: list[ast.AST]) -> list[str]:
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


@cache
def parsed(module: str) -> ast.Module:
    path = module_file(module)
    assert path is not None, module
    return ast.parse(path.read_text())


def cli_imports(commands: list[str]) -> list[str]:
    """The CLI module's own imports plus those inside the commands and the CLI helpers they call."""
    tree = parsed(CLI)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for command in commands:
        assert command in functions, f"no command {command} in qf_sentinel/cli.py"
    todo, seen = [*commands, "main", "_global"], set()  # _global: the app's callback, before every command
    nodes: list[ast.AST] = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = runtime_nodes(functions[name])
        nodes += body
        todo += [n.func.id for n in body if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id in functions]  # fmt: skip
    return imported_names(nodes)


def third_party_imports(roots: list[str]) -> dict[str, str]:
    """Top-level third-party modules reachable from ``roots`` (project modules followed), each with one importer."""
    found: dict[str, str] = {}
    todo = [(name, "qf_sentinel.cli") for name in roots]
    seen: set[str] = set()
    while todo:
        name, importer = todo.pop()
        top = name.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names:
            continue
        if top not in PACKAGES:
            found.setdefault(top, importer)
            continue
        if module_file(name) is None or name in seen:
            continue  # a name imported from a module, not a module
        seen.add(name)
        parts = name.split(".")
        todo += [(".".join(parts[:n]), name) for n in range(1, len(parts))]  # the parent packages run first
        todo += [(imported, name) for imported in imported_names(runtime_nodes(parsed(name)))]
    return found


@cache
def locked_for(extra: str | None) -> frozenset[str]:
    """The packages the lock installs for the base plus ``extra``, read with ``uv export`` (offline)."""
    cmd = [str(UV), "export", "--locked", "--offline", "--no-dev", "--no-emit-project", "--no-hashes",
           "--no-header", "--no-annotate", "--format", "requirements-txt", "--project", str(ROOT),
           *(["--extra", extra] if extra else [])]  # fmt: skip
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120, env=env)
    names = {Requirement(line.split(";")[0].strip()).name for line in proc.stdout.splitlines() if line.strip()}
    return frozenset(normalise(n) for n in names)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def providers(module: str) -> set[str]:
    """The installed distributions that ship the top-level ``module`` (this environment has every extra)."""
    return {normalise(d) for d in distributions().get(module, [])}


def test_the_base_is_the_client_and_the_client_extra_adds_nothing() -> None:
    names = {Requirement(r).name for r in PYPROJECT["project"]["dependencies"]}
    assert names == {"grpcio", "protobuf"}
    assert EXTRAS["client"] == []


@pytest.mark.integration
def test_the_client_imports_only_grpc_protobuf_and_its_stubs() -> None:
    modules = third_party_imports(["qf_sentinel.scorer.client"])
    assert set(modules) == {"grpc", "google"}, modules
    assert locked_for("client") == {"grpcio", "protobuf", "typing-extensions"}  # grpcio's own dependency


def test_the_floors_are_what_the_generated_stubs_accept() -> None:
    """The stubs raise at import under an older grpcio or another protobuf major: the published ranges say so."""
    stubs = ROOT / "scorer" / "api" / "v1"
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", (stubs / "scorer_pb2_grpc.py").read_text())
    protobuf_version = re.search(r"# Protobuf Python Version: ([\d.]+)", (stubs / "scorer_pb2.py").read_text())
    assert grpc_version
    assert protobuf_version
    ranges = {Requirement(r).name: Requirement(r).specifier for r in PYPROJECT["project"]["dependencies"]}
    for name, generated in (("grpcio", grpc_version[1]), ("protobuf", protobuf_version[1])):
        floor = next(s.version for s in ranges[name] if s.operator == ">=")
        assert floor == generated, f"{name}>={floor}, but the stubs need {generated}: regenerate or raise the floor"
    major = int(protobuf_version[1].split(".")[0])
    assert ranges["protobuf"].contains(protobuf_version[1])
    assert f"{major + 1}" not in ranges["protobuf"]  # the next major refuses this gencode


def test_every_command_belongs_to_a_deployable() -> None:
    """A new `qf` command must say which extra runs it (COMMANDS above), or that only `all` does."""
    decorated = {node.name for node in parsed(CLI).body if isinstance(node, ast.FunctionDef)
                 and any("command" in ast.unparse(d) or "callback" in ast.unparse(d) for d in node.decorator_list)}
    assert decorated - {"_global"} == set(ALL_ONLY).union(*COMMANDS.values())


@pytest.mark.integration
@pytest.mark.parametrize("extra", [*sorted(COMMANDS), "all"])
def test_each_deployable_extra_installs_what_its_commands_import(extra: str) -> None:
    modules = third_party_imports(cli_imports(COMMANDS.get(extra, ALL_ONLY)))
    installed = locked_for(extra)
    missing = {module: importer for module, importer in modules.items() if not providers(module) & installed}
    assert not missing, f"[{extra}] does not install what these modules import (module: importer): {missing}"


@pytest.mark.integration
def test_the_deployable_extras_stay_apart() -> None:
    """The point of the split: the indexer has no ML library, the sidecar no training library, the console
    neither (the sidecar serves exported arrays through numba; nothing unpickles a scikit-learn model), and
    neither the sidecar nor the console a chain library (they read deployment records, never sign)."""
    training_only = {"xgboost-cpu", "lightgbm", "scikit-learn", "matplotlib", "joblib"}
    assert not locked_for("indexer") & (training_only | {"numpy", "numba", "pandas", "grpcio-health-checking"})
    assert not locked_for("sidecar") & (training_only | {"eth-account", "eth-abi", "eth-utils", "web3"})
    assert not locked_for("console") & (training_only | {"web3", "pandas"})


@pytest.mark.integration
def test_all_is_every_deployable() -> None:
    """`make setup`, `make demo`, `make test` and the image install ``all``: every deployable's extra."""
    (everything,) = EXTRAS["all"]
    assert set(Requirement(everything).extras) == set(COMMANDS)
    assert set(COMMANDS) | {"client", "cli", "all"} == set(EXTRAS)
    assert locked_for("all") == frozenset().union(*(locked_for(extra) for extra in COMMANDS))


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("extra", sorted(COMMANDS))
def test_each_deployable_runs_its_commands_imports_with_its_extra_alone(extra: str, tmp_path: Path) -> None:
    """The static reading above, checked by Python: a virtualenv of the base and this one extra (from the lock,
    no dev tools) imports every project module the deployable's commands import, and `qf --help` runs."""
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never",
           "UV_PYTHON": sys.executable}  # fmt: skip
    sync = [str(UV), "sync", "--locked", "--no-dev", "--extra", extra, "--quiet", "--project", str(ROOT)]
    proc = subprocess.run([*sync, "--offline"], env=env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:  # a cold uv cache: from the index
        proc = subprocess.run(sync, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    modules = sorted({n for n in cli_imports(COMMANDS[extra]) if n.split(".")[0] in PACKAGES and module_file(n)})
    script = ("import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
              "from typer.testing import CliRunner\nfrom qf_sentinel.cli import app\n"
              "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n")  # fmt: skip
    run = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", script, *modules], cwd=tmp_path,
                         capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
