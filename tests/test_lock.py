"""uv.lock agrees with pyproject.toml, and everything that installs Python uses it.

`npm ci` refuses a package-lock.json that package.json has moved past; these tests make
the same promise for Python: a requirement edited without `make lock` fails here (and
`make setup`, which runs `uv sync --locked`, refuses it too).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"


def uv_lock_check(project: Path, *, offline: bool) -> subprocess.CompletedProcess[str]:
    cmd = [str(UV), "lock", "--check", "--project", str(project), *(["--offline"] if offline else [])]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, env=env)


def copy_project(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def locked() -> dict[str, set[str]]:
    """Each locked package's versions (more than one where the lock forks by Python version)."""
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


@pytest.mark.integration
def test_the_lock_matches_pyproject() -> None:
    proc = uv_lock_check(ROOT, offline=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.integration
def test_a_removed_requirement_makes_the_lock_stale(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "orjson>=3.10,<4",\n' in text
    pyproject.write_text(text.replace('    "orjson>=3.10,<4",\n', ""))
    proc = uv_lock_check(project, offline=False)  # a fresh machine's uv cache has no index pages to resolve from
    assert proc.returncode != 0
    assert "needs to be updated" in proc.stderr


@pytest.mark.integration
def test_a_narrowed_range_makes_the_lock_stale(tmp_path: Path) -> None:
    """The locked httpx (0.28.x) no longer fits: re-resolving is needed, so --check refuses."""
    project = copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '"httpx>=0.28,<0.29"' in text
    pyproject.write_text(text.replace('"httpx>=0.28,<0.29"', '"httpx>=0.27,<0.28"'))
    proc = uv_lock_check(project, offline=False)
    assert proc.returncode != 0
    assert "needs to be updated" in proc.stderr, proc.stderr


def test_every_requirement_is_locked_within_its_range() -> None:
    """Read independently of uv: each runtime and dev requirement has one locked version in range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"]]
    for group in project.get("dependency-groups", {}).values():
        requirements += [r for r in group if isinstance(r, str)]
    for extra in project["project"].get("optional-dependencies", {}).values():
        requirements += [r for r in extra if not r.startswith("qf-sentinel")]
    versions = locked()
    for text in requirements:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in versions, f"{name} is required but not in uv.lock"
        for version in versions[name]:
            assert req.specifier.contains(version, prereleases=True), f"{name} {version} not in {req}"


def makefile_sync() -> list[str]:
    """The arguments of the Makefile's `uv sync` (the one that makes .venv)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    (line,) = [line for line in lines if "sync --locked" in line and not line.lstrip().startswith("#")]
    return line.split("sync", 1)[1].split()


@pytest.mark.integration
def test_the_environment_is_the_lock() -> None:
    """The tests run on exactly the locked versions: make setup installed them with `uv sync --locked`,
    with the same extras (every one: each deployable's dependencies are tested)."""
    extras = [word for word in makefile_sync() if word.startswith("--all-extras") or word.startswith("--extra")]
    assert extras == ["--all-extras"]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(Path(sys.prefix)), "UV_PYTHON_DOWNLOADS": "never"}
    proc = subprocess.run([str(UV), "sync", "--locked", *extras, "--check", "--offline", "--project", str(ROOT)],
                          capture_output=True, text=True, check=False, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_the_lock_covers_every_extra() -> None:
    """Each extra of pyproject.toml is in the lock with the same requirements, so `--all-extras` and
    `--extra all` install locked versions only (`uv lock --check` above says the same, through uv)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (entry,) = [p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"] if p["name"] == project["name"]]
    assert entry["metadata"]["provides-extras"] == list(project["optional-dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        locked_names = {re.sub(r"[-_.]+", "-", r["name"]).lower() for r in entry["metadata"]["requires-dist"]
                        if r.get("marker", "") == f"extra == '{extra}'"}  # fmt: skip
        names = {re.sub(r"[-_.]+", "-", Requirement(r).name).lower() for r in requirements}
        assert locked_names == names, extra


@pytest.mark.integration
def test_the_bootstrap_is_uv_from_the_lock() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock_bootstrap.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "requirements" / "uv.txt").read_text()
    (version,) = locked()["uv"]
    assert f"uv=={version} \\" in text
    assert text.count("--hash=sha256:") >= 10  # every platform's wheel, not just this machine's


@pytest.mark.parametrize("path", ["Makefile", "Dockerfile"])
def test_installs_go_through_the_lock(path: str) -> None:
    text = (ROOT / path).read_text()
    assert "--require-hashes -r requirements/uv.txt" in text
    assert "sync --locked" in text
    for line in re.sub(r"\\\n", "", text).splitlines():  # every sync installs every deployable's extra
        if not line.lstrip().startswith("#") and ("uv sync" in line or "sync --locked" in line):
            assert "--all-extras" in line or "--extra all" in line, line
