"""JournalService verbs that name a vault, under wrong identities, against the daemon process (the
VaultService verbs are covered for every wrong identity in tests/e2e/test_isolation.py): another
service, an operator (content evidence is not theirs), an identity the policy does not know. Each is
refused with PERMISSION_DENIED and the refusal tells nothing about whether the object exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from daemon_proc import DaemonProcess  # type: ignore[import-not-found]
from vaultd.pki import CertKey, issue_cert
from vaultd.v1 import journal_pb2 as jpb
from vaultd.v1 import journal_pb2_grpc as jpb_grpc


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("ids") / "data").start()
    with d.client("permits") as c:
        c.create_vault("permits")
        c.deposit("permits", "memo", b"permits only")
        c.destroy("permits", "memo")
        c.deposit("permits", "memo", b"again")
    pki = d.data_dir / "pki"
    issue_cert(CertKey(pki / "ca.pem", pki / "ca-key.pem"), "svc-intruder",
               CertKey(pki / "svc-intruder.pem", pki / "svc-intruder-key.pem"))
    try:
        yield d
    finally:
        d.stop()


CALLS: dict[str, Any] = {
    "GetReceipt": lambda s, n: s.GetReceipt(jpb.GetReceiptRequest(vault="permits", name=n, version=2), timeout=10),
    "GetReceipt(destroyed)": lambda s, n: s.GetReceipt(
        jpb.GetReceiptRequest(vault="permits", name=n, version=1, destroyed=True), timeout=10),
    "GetDeliveryProof": lambda s, n: s.GetDeliveryProof(
        jpb.GetDeliveryProofRequest(vault="permits", name=n, version=2), timeout=10),
    "ReadJournal(vault)": lambda s, n: s.ReadJournal(jpb.ReadJournalRequest(vault="permits"), timeout=10),
}


@pytest.mark.parametrize("identity", ["taxation", "op-admin", "svc-intruder"])
@pytest.mark.parametrize("verb", list(CALLS))
def test_journal_verbs_under_wrong_identities(daemon: DaemonProcess, identity: str, verb: str) -> None:
    with daemon.client(identity) as c:
        stub = jpb_grpc.JournalServiceStub(c._channel)
        details = []
        for name in ("memo", "no-such-object"):  # the same refusal whether the object exists or not
            with pytest.raises(grpc.RpcError) as e:
                CALLS[verb](stub, name)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, (verb, identity, e.value.details())
            details.append(e.value.details().replace(name, "<name>"))
        assert details[0] == details[1]


def test_the_owner_gets_them(daemon: DaemonProcess) -> None:
    """The control: the same calls by the vault's own service are answered."""
    with daemon.client("permits") as c:
        stub = jpb_grpc.JournalServiceStub(c._channel)
        for verb in CALLS:
            CALLS[verb](stub, "memo")
