"""Build the project's wheel and install it into a clean virtualenv, the way a user or the image does.

The wheel is built from a copy of the tree (setuptools writes build/ and *.egg-info where it
builds), with this environment's setuptools as uv.lock pins it, and installed with uv at the
lock's versions: from uv's cache when it holds them (a machine that ran `make setup`), else from
the index. Commands then run from the virtualenv, away from the checkout, with no PYTHON* variable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"


def uv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return subprocess.run([str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=900)  # fmt: skip


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the tree; the package's links (qf_sentinel/qf -> ../qf, ...) copied as files."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "qf_sentinel", source / "qf_sentinel", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    proc = uv("build", "--wheel", "--no-build-isolation", "--python", sys.executable, "--out-dir", str(dist),
              str(source))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (wheel,) = dist.glob("qf_sentinel-*.whl")
    return wheel


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def locked_constraints(tmp_path: Path) -> Path:
    """Every locked runtime package of every extra, at its locked version."""
    constraints = tmp_path / "constraints.txt"
    exported = uv("export", "--locked", "--offline", "--no-dev", "--no-emit-project", "--all-extras",
                  "--no-hashes", "--format", "requirements-txt", "--output-file", str(constraints),
                  "--project", str(ROOT))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    return constraints


def install(wheel: Path, venv: Path, extra: str, constraints: Path) -> None:
    """A clean virtualenv (no pip, no setuptools) with ``qf-sentinel[extra]`` from ``wheel``."""
    created = uv("venv", "--quiet", "--python", sys.executable, str(venv))
    assert created.returncode == 0, created.stderr
    args = ["pip", "install", "--python", str(venv / "bin" / "python"), "--constraint", str(constraints),
            f"qf-sentinel[{extra}] @ {wheel.as_uri()}"]  # fmt: skip
    proc = uv(*args, "--offline")
    if proc.returncode != 0:
        proc = uv(*args)
    assert proc.returncode == 0, proc.stderr


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a command run from the virtualenv: nothing that points back at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QF_"))}
    return env | extra
