"""``pip install "qf-sentinel[client]"`` in a clean virtualenv: grpcio and protobuf beside it, and it gates.

What a dApp backend gets: the wheel built from this tree, installed with the ``client`` extra into a
virtualenv that has nothing else (``uv venv``, no pip, no setuptools), at the lock's versions. The
installed set must be the package, grpcio, protobuf and grpcio's own dependency, nothing more; then
that interpreter, isolated from the repository (``-I``, run from elsewhere), imports ``qf_sentinel.scorer.client``
without numpy, pandas, psycopg, structlog or any module of the core or the servers, and gates a contribution on a real
sidecar this test runs from the full environment.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from qf_sentinel.qf.model.dataset import Dataset
from tests.scorer.harness import CLIENT_TOKEN, running_sidecar, settings_for
from tests.scorer.synthetic import CHAIN_ID
from tests.wheel import ROOT, build_wheel, clean_env, install, locked_constraints, uv

pytestmark = pytest.mark.slow

#: The distributions of the client install: grpcio's only dependency is typing-extensions.
CLIENT_SET = {"qf-sentinel", "grpcio", "protobuf", "typing-extensions"}
NEVER = ("numpy", "pandas", "scipy", "numba", "psycopg", "psycopg_pool", "structlog", "xgboost", "lightgbm",
         "sklearn", "typer", "rich", "starlette")  # fmt: skip
#: Of the package, the client loads the stubs and the client module, nothing of the servers or the core.
NEVER_OURS = ("qf_sentinel.qf", "qf_sentinel.indexer", "qf_sentinel.console", "qf_sentinel.scorer.server",
              "qf_sentinel.scorer.service", "qf_sentinel.scorer.engine")  # fmt: skip
CLIENT_SCRIPT = """
import json, sys
import qf_sentinel.scorer.client
imported = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - {"__main__"})
ours = sorted(m for m in sys.modules if m.startswith("qf_sentinel"))
import importlib.metadata
owners = importlib.metadata.packages_distributions()
with qf_sentinel.scorer.client.ScorerClient(sys.argv[1], token=sys.argv[2], timeout_seconds=10) as client:
    verdict = client.gate(donor=sys.argv[3], recipient_id="0x" + "22" * 20, pool_id=1, chain_id=int(sys.argv[4]),
                          token="0x" + "11" * 20, amount="5")
    version = client.model_info().version
print(json.dumps({"file": qf_sentinel.scorer.client.__file__, "imported": imported, "ours": ours,
                  "decision": verdict.decision,
                  "from": sorted({d for m in imported for d in owners.get(m, [])}),
                  "degraded": verdict.degraded, "reason": verdict.reason, "model_version": verdict.model_version,
                  "info_version": version}))
"""


def test_the_client_extra_installs_alone_and_gates_on_a_real_sidecar(
    tmp_path: Path, migrated_db_url: str, model_dir: Path, synthetic: Dataset
) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    install(wheel, venv, "client", locked_constraints(tmp_path))

    listed = uv("pip", "list", "--format", "json", "--python", str(venv / "bin" / "python"))
    assert listed.returncode == 0, listed.stderr
    installed = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert set(installed) == CLIENT_SET, installed
    lock = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    for name in CLIENT_SET - {"qf-sentinel"}:
        assert installed[name] == lock[name], name

    donor = str(synthetic.donors["address"].iloc[0])
    with running_sidecar(settings_for(tmp_path / "home"), migrated_db_url, model_dir.parent) as sidecar:
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-I", "-c", CLIENT_SCRIPT, sidecar.target, CLIENT_TOKEN, donor,
             str(CHAIN_ID)],
            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["file"]).is_relative_to(venv)  # the installed wheel, not this tree
    assert not set(result["imported"]) & set(NEVER), result["imported"]
    assert {"grpc", "google", "qf_sentinel"} <= set(result["imported"])
    assert not [m for m in result["ours"] if m.startswith(NEVER_OURS)], result["ours"]
    # Every imported module comes from the client set (the others are grpcio's compiled Cython modules).
    assert {re.sub(r"[-_.]+", "-", d).lower() for d in result["from"]} <= CLIENT_SET, result
    assert not result["degraded"], result["reason"]
    assert result["decision"] in {"APPROVE", "REVIEW", "BLOCK"}
    assert result["model_version"] == result["info_version"] == model_dir.name
