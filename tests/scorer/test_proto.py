"""The committed gRPC stubs are exactly what scripts/gen_proto.py makes from proto/."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qf_sentinel.scorer.api.v1 import scorer_pb2, scorer_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_generated_stubs_are_current() -> None:
    """A proto edit without regenerating, or a hand edit of a stub, fails here."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_stubs_import_and_carry_the_service() -> None:
    service = scorer_pb2.DESCRIPTOR.services_by_name["Scorer"]
    assert service.full_name == "qf.scorer.v1.Scorer"
    assert {m.name for m in service.methods} >= {"ScoreContribution", "ReloadModels", "AssignVariant"}
    assert hasattr(scorer_pb2_grpc, "ScorerServicer")


def test_the_stubs_name_the_locked_generator() -> None:
    """grpcio-tools writes its version into the stubs; the one that wrote them is the one uv.lock pins."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (locked,) = {p["version"] for p in lock["package"] if p["name"] == "grpcio-tools"}
    stub = (ROOT / "scorer" / "api" / "v1" / "scorer_pb2_grpc.py").read_text()
    assert f"GRPC_GENERATED_VERSION = '{locked}'" in stub
