"""``pip install "qf-sentinel[client]"`` in a clean virtualenv: grpcio and protobuf beside it, and it gates.

What a dApp backend gets: the wheel built from this tree, installed with the ``client`` extra into a
virtualenv that has nothing else (``uv venv``, no pip, no setuptools), at the lock's versions. The
installed set must be the package, grpcio, protobuf and grpcio's own dependency, nothing more; then
that interpreter, isolated from the repository (``-I``, run from elsewhere), imports ``scorer.client``
without numpy, pandas, psycopg, structlog or any ``qf`` module, and gates a contribution on a real
sidecar this test runs from the full environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qf_sentinel.qf.model.dataset import Dataset
from tests.scorer.harness import CLIENT_TOKEN, running_sidecar, settings_for
from tests.scorer.synthetic import CHAIN_ID

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
#: The distributions of the client install: grpcio's only dependency is typing-extensions.
CLIENT_SET = {"qf-sentinel", "grpcio", "protobuf", "typing-extensions"}
NEVER = ("numpy", "pandas", "scipy", "numba", "psycopg", "psycopg_pool", "structlog", "xgboost", "lightgbm",
         "sklearn", "typer", "rich", "starlette", "qf", "indexer", "console", "qf_sentinel")  # fmt: skip
CLIENT_SCRIPT = """
import json, sys
import qf_sentinel.scorer.client
imported = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - {"__main__"})
import importlib.metadata
owners = importlib.metadata.packages_distributions()
with scorer.client.ScorerClient(sys.argv[1], token=sys.argv[2], timeout_seconds=10) as client:
    verdict = client.gate(donor=sys.argv[3], recipient_id="0x" + "22" * 20, pool_id=1, chain_id=int(sys.argv[4]),
                          token="0x" + "11" * 20, amount="5")
    version = client.model_info().version
print(json.dumps({"file": scorer.client.__file__, "imported": imported, "decision": verdict.decision,
                  "from": sorted({d for m in imported for d in owners.get(m, [])}),
                  "degraded": verdict.degraded, "reason": verdict.reason, "model_version": verdict.model_version,
                  "info_version": version}))
"""


def uv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return subprocess.run([str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=600)  # fmt: skip


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the tree (setuptools writes build/ and *.egg-info where it builds)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in include["include"]:
        shutil.copytree(ROOT / package.rstrip("*"), source / package.rstrip("*"),
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    dist = tmp_path / "dist"
    # The build backend of this environment: setuptools as uv.lock pins it, no download.
    proc = uv("build", "--wheel", "--no-build-isolation", "--python", sys.executable, "--out-dir", str(dist),
              str(source))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (wheel,) = dist.glob("qf_sentinel-*.whl")
    return wheel


def install_client(wheel: Path, venv: Path, constraints: Path) -> None:
    """From uv's cache when it holds the packages (a machine that ran `make setup`), else from the index."""
    args = ["pip", "install", "--python", str(venv / "bin" / "python"), "--constraint", str(constraints),
            f"qf-sentinel[client] @ {wheel.as_uri()}"]  # fmt: skip
    proc = uv(*args, "--offline")
    if proc.returncode != 0:
        proc = uv(*args)
    assert proc.returncode == 0, proc.stderr


def test_the_client_extra_installs_alone_and_gates_on_a_real_sidecar(
    tmp_path: Path, migrated_db_url: str, model_dir: Path, synthetic: Dataset
) -> None:
    wheel = build_wheel(tmp_path)
    constraints = tmp_path / "constraints.txt"
    exported = uv("export", "--locked", "--offline", "--no-dev", "--no-emit-project", "--all-extras",
                  "--no-hashes", "--format", "requirements-txt", "--output-file", str(constraints),
                  "--project", str(ROOT))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    venv = tmp_path / "venv"
    created = uv("venv", "--quiet", "--python", sys.executable, str(venv))
    assert created.returncode == 0, created.stderr
    install_client(wheel, venv, constraints)

    listed = uv("pip", "list", "--format", "json", "--python", str(venv / "bin" / "python"))
    assert listed.returncode == 0, listed.stderr
    installed = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert set(installed) == CLIENT_SET, installed
    lock = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    for name in CLIENT_SET - {"qf-sentinel"}:
        assert installed[name] == lock[name], name

    donor = str(synthetic.donors["address"].iloc[0])
    with running_sidecar(settings_for(tmp_path / "home"), migrated_db_url, model_dir.parent) as sidecar:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-I", "-c", CLIENT_SCRIPT, sidecar.target, CLIENT_TOKEN, donor,
             str(CHAIN_ID)],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["file"]).is_relative_to(venv)  # the installed wheel, not this tree
    assert not set(result["imported"]) & set(NEVER), result["imported"]
    assert {"grpc", "google", "scorer"} <= set(result["imported"])
    # Every imported module comes from the client set (the others are grpcio's compiled Cython modules).
    assert {re.sub(r"[-_.]+", "-", d).lower() for d in result["from"]} <= CLIENT_SET, result
    assert not result["degraded"], result["reason"]
    assert result["decision"] in {"APPROVE", "REVIEW", "BLOCK"}
    assert result["model_version"] == result["info_version"] == model_dir.name
