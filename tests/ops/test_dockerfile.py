"""The Dockerfile and .dockerignore, checked statically (no Docker engine here).

The image must be a pinned slim Python, run as a non-root user, cache its
dependency layer (dependencies installed before the source is copied), install
the wheel built from the checkout (not the checkout itself), start `qf`, and carry
no secret. The dependency list the build extracts from pyproject.toml is
computed here with the Dockerfile's own command.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|CREDENTIAL|DATABASE_URL|(^|_)KEY($|_)")
#: What the wheel is built from: the package and every folder its links point at (qf_sentinel/qf -> ../qf, ...).
LINKED = sorted(p.name for p in (ROOT / "qf_sentinel").iterdir() if p.is_symlink())
SOURCE_DIRS = ("qf_sentinel", *LINKED)


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction; ``stage`` is -1 before the first FROM, then 0, 1, ..."""

    stage: int
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    text = re.sub(r"\\\n", "", DOCKERFILE.read_text())  # continuation lines
    result: list[Instruction] = []
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(stage, keyword.upper(), args.strip()))
    return result


def stage_count() -> int:
    return max(i.stage for i in instructions()) + 1


def in_stage(stage: int, keyword: str | None = None) -> list[Instruction]:
    final = stage if stage >= 0 else stage_count() + stage
    return [i for i in instructions() if i.stage == final and (keyword is None or i.keyword == keyword)]


def global_args() -> dict[str, str]:
    args = {}
    for instruction in instructions():
        if instruction.stage == -1 and instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            args[name] = default
    return args


def key_values(args: str) -> dict[str, str]:
    """``KEY=value KEY2="value"`` of ENV and LABEL."""
    return dict(word.split("=", 1) for word in shlex.split(args))


def copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
    return words[:-1]


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# -- tests ------------------------------------------------------------------------------------------


def test_every_stage_starts_from_a_pinned_slim_python() -> None:
    """Builder and runtime use the same python:3.11.N-slim image, pinned to a patch release."""
    args = global_args()
    images = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            image = instruction.args.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    assert len(images) == 2
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", image), image


def test_the_image_runs_as_a_non_root_user() -> None:
    """The runtime stage ends as uid 10001, a user it creates; never root."""
    users = in_stage(-1, "USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"
    assert any("--uid 10001" in run.args for run in in_stage(-1, "RUN"))


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    """In the builder, only the lock's inputs are copied before the first sync: source edits keep that layer."""
    builder = [i for i in in_stage(0) if i.keyword in ("COPY", "RUN")]
    first_sync = next(n for n, i in enumerate(builder) if i.keyword == "RUN" and "uv sync" in i.args)
    copied_before = [src for i in builder[:first_sync] if i.keyword == "COPY" for src in copy_sources(i)]
    assert copied_before == ["requirements/uv.txt", "pyproject.toml", "uv.lock"]
    copied_after = [src.rstrip("/") for i in builder[first_sync:] if i.keyword == "COPY" for src in copy_sources(i)]
    assert set(SOURCE_DIRS) <= set(copied_after)
    assert "--no-install-project" in builder[first_sync].args
    wheel = next(n for n, i in enumerate(builder) if i.keyword == "RUN" and "uv build --wheel" in i.args)
    assert wheel > max(n for n, i in enumerate(builder) if i.keyword == "COPY")


@pytest.mark.integration
def test_the_dependency_layer_installs_the_locked_runtime_dependencies(tmp_path: Path) -> None:
    """The builder's own commands, run on pyproject.toml and uv.lock: uv from the hashed bootstrap,
    then every locked runtime package at its locked version, and no dev tool."""
    runs = [i.args for i in in_stage(0, "RUN")]
    bootstrap = next(r for r in runs if "pip install" in r)
    assert "--require-hashes -r requirements/uv.txt" in bootstrap
    sync = next(r for r in runs if "uv sync" in r)
    words = shlex.split(sync)
    assert words[:2] == ["uv", "sync"]
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    uv = Path(sys.executable).parent / "uv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "UV_PYTHON_DOWNLOADS": "never",
           "UV_PYTHON": sys.executable}
    subprocess.run([str(uv), *words[1:], "--quiet"], cwd=tmp_path, env=env, timeout=600, check=True)
    listed = subprocess.run([str(uv), "pip", "list", "--format", "json", "--python", str(tmp_path / "venv")],
                            env=env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    installed = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    lock: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        lock.setdefault(package["name"], set()).add(package["version"])
    # The image runs the indexer, the sidecar, training and the console: the base and every extra.
    assert "--extra" in words
    assert words[words.index("--extra") + 1] == "all"
    extras = PYPROJECT["project"]["optional-dependencies"].values()
    requirements = [*PYPROJECT["project"]["dependencies"], *(r for extra in extras for r in extra)]
    for requirement in requirements:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        if name != PYPROJECT["project"]["name"]:
            assert installed.get(name) in lock[name], name
    for dev in ("pytest", "mypy", "ruff", "hypothesis", "grpcio-tools"):
        assert dev not in installed, f"dev tool {dev} in the image"


def test_the_image_installs_the_wheel_built_from_the_checkout() -> None:
    """The builder copies every folder the package links to, builds the wheel and installs it alone;
    the runtime stage takes the virtualenv and no source tree (data files are package data)."""
    targets = {}
    for instruction in in_stage(0, "COPY"):
        words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
        targets[words[0].rstrip("/")] = words[-1].rstrip("/")
    assert LINKED == ["console", "contracts_abi", "data", "indexer", "qf", "scorer", "sql"]
    for name in SOURCE_DIRS:
        assert targets.get(name) == name, f"{name}/ is not copied beside qf_sentinel/: its link would dangle"
    assert targets.get(PYPROJECT["project"]["readme"]) == "."  # setuptools reads it to build the package
    build = next(i.args for i in in_stage(0, "RUN") if "uv build" in i.args)
    commands = [shlex.split(c) for c in build.split("&&")]
    assert commands[0][:3] == ["uv", "build", "--wheel"]
    out_dir = commands[0][commands[0].index("--out-dir") + 1]
    install = commands[1]
    assert install[:3] == ["uv", "pip", "install"]
    assert "--no-deps" in install  # the dependencies are the locked ones of the layer above
    assert install[-1] == f"{out_dir}/qf_sentinel-*.whl"
    runtime_copies = [i.args for i in in_stage(-1, "COPY") if "--from=builder" in i.args]
    assert runtime_copies == ["--from=builder /opt/venv /opt/venv"]


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    """Every COPY source exists, and .dockerignore does not drop it from the context."""
    patterns = dockerignore_patterns()
    for instruction in instructions():
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        for source in copy_sources(instruction):
            path = source.rstrip("/")
            assert (ROOT / path).exists(), source
            parts = Path(path).parts
            for prefix in ("/".join(parts[: n + 1]) for n in range(len(parts))):
                assert not any(fnmatch.fnmatch(prefix, p) for p in patterns), f"{source} is in .dockerignore"


def test_the_entrypoint_is_qf() -> None:
    """The container runs the `qf` console script; the command is its subcommand."""
    entrypoints = in_stage(-1, "ENTRYPOINT")
    assert json.loads(entrypoints[-1].args) == ["qf"]
    assert "qf" in PYPROJECT["project"]["scripts"]


def test_the_password_wrapper_is_installed_on_the_path() -> None:
    """ops/docker/with-pgpassword lands executable in /usr/local/bin, where compose's entrypoint finds it."""
    wrapper = [i.args for i in in_stage(-1, "COPY") if "with-pgpassword" in i.args]
    assert wrapper == ["--chmod=0755 ops/docker/with-pgpassword /usr/local/bin/with-pgpassword"]


def test_no_secret_is_baked_in() -> None:
    """No ENV or ARG has a secret-looking name, and no value holds a URL with a password."""
    for instruction in instructions():
        if instruction.keyword == "ENV":
            names = list(key_values(instruction.args))
        elif instruction.keyword == "ARG":
            names = [instruction.args.partition("=")[0]]
        else:
            continue
        assert names
        for name in names:
            assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}"
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", DOCKERFILE.read_text())


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    """The virtualenv, node modules, local state, git, secrets and tool caches never reach the daemon."""
    expected = {".venv", "node_modules", ".qf", ".git", "secrets", ".env", "**/__pycache__", ".pytest_cache",
                ".mypy_cache", ".ruff_cache", ".hypothesis", "*.egg-info"}  # fmt: skip
    assert expected <= set(dockerignore_patterns())
