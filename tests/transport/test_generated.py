"""The generated gRPC code in vaultd/v1/ is what scripts/gen-proto makes from proto/vaultd/v1/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    (tmp_path / "vaultd" / "v1").mkdir(parents=True)
    protos = sorted((ROOT / "proto" / "vaultd" / "v1").glob("*.proto"))
    assert protos, "no .proto files found"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I" + str(ROOT / "proto"),
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         *[str(p) for p in protos]],
        check=True, cwd=ROOT, capture_output=True, timeout=60,
    )
    made = sorted(p.name for p in (tmp_path / "vaultd" / "v1").iterdir())
    assert len(made) == 3 * len(protos)
    stale = []
    for name in made:
        committed = ROOT / "vaultd" / "v1" / name
        if not committed.exists() or committed.read_bytes() != (tmp_path / "vaultd" / "v1" / name).read_bytes():
            stale.append(name)
    assert not stale, f"generated code is stale, run scripts/gen-proto: {stale}"


def test_service_has_every_verb() -> None:
    from vaultd.v1 import vault_pb2

    methods = {m.name for m in vault_pb2.DESCRIPTOR.services_by_name["VaultService"].methods}
    assert methods >= {
        "CreateVault", "Deposit", "Read", "Stat", "List", "Count", "Destroy", "Check",
        "SetRetention", "SetLegalHold", "RotateKeys",
    }
    deposit = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].methods_by_name["Deposit"]
    assert deposit.client_streaming and not deposit.server_streaming
    read = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].methods_by_name["Read"]
    assert read.server_streaming and not read.client_streaming
