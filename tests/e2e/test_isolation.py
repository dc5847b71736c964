"""Isolation: every verb under a wrong identity is refused, and nothing leaks or changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from servers import RunningServer, journal_leaves, new_vault_id
from vaultd.client import DepositItem, VaultClient
from vaultd.errors import PermissionDenied, Unauthenticated, Unavailable
from vaultd.pki import issue_cert, make_ca
from vaultd.v1 import vault_pb2 as pb
from vaultd.v1 import vault_pb2_grpc as pb_grpc

def _raised(results: list[Any]) -> list[Any]:
    """A batch's results, its first item error raised (DepositBatch answers errors per item)."""
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


# The index of a journal entry of each vault the tests touch (set by the ``target`` fixture): an
# inclusion proof carries the entry itself, so it is the vault's journal too.
ENTRY_OF: dict[str, int] = {}


# Every verb, as a call on a client against (vault, name).
VERBS: dict[str, Callable[[VaultClient, str, str], Any]] = {
    "create": lambda c, v, n: c.create_vault(v),
    "deposit": lambda c, v, n: c.deposit(v, n, b"intruder"),  # DepositSmall
    "deposit_stream": lambda c, v, n: c.deposit(v, n, iter([b"intruder"] * 3)),  # Deposit
    "deposit_batch": lambda c, v, n: _raised(c.deposit_many([DepositItem(v, n, b"intruder")])),  # DepositBatch
    "read": lambda c, v, n: c.read_bytes(v, n),
    "stat": lambda c, v, n: c.stat(v, n),
    "list": lambda c, v, n: list(c.list(v)),
    "count": lambda c, v, n: c.count(v),
    "destroy": lambda c, v, n: c.destroy(v, n),
    "check": lambda c, v, n: c.check(v),
    "check_one": lambda c, v, n: c.check(v, n),
    "retention": lambda c, v, n: c.set_retention(v, n, int(time.time()) + 10**6),
    "hold": lambda c, v, n: c.set_legal_hold(v, n, True),
    "destroy_vault": lambda c, v, n: c.destroy_vault(v),
    "journal": lambda c, v, n: c.read_journal(v),  # ReadJournal
    "receipt": lambda c, v, n: c.receipt(v, n, version=1),  # GetReceipt
    "delivery_proof": lambda c, v, n: c.delivery_proof(v, n, version=1),  # GetDeliveryProof
    "inclusion_proof": lambda c, v, n: c.inclusion_proof(ENTRY_OF[v]),  # GetInclusionProof
}


@pytest.fixture(scope="module")
def target(vault_server: RunningServer) -> tuple[str, str, bytes]:
    """A vault of the permits service holding one object."""
    c = vault_server.client("permits")
    c.create_vault("permits")
    c.deposit("permits", "internal/memo.txt", b"permits only")
    vault = new_vault_id()
    c.create_vault(vault)
    c.deposit(vault, "letter", b"to a citizen")
    taxation = vault_server.client("taxation")
    taxation.create_vault("taxation")
    for i, leaf in enumerate(journal_leaves(vault_server.client("op-admin"))):
        if leaf.operation == "deposit":
            ENTRY_OF[leaf.vault] = i
    return vault, "letter", b"to a citizen"


def _unchanged(vault_server: RunningServer) -> None:
    c = vault_server.client("permits")
    assert c.read_bytes("permits", "internal/memo.txt") == b"permits only"
    s = c.stat("permits", "internal/memo.txt")
    assert (s.version, s.legal_hold, s.retain_until) == (1, False, None)
    assert c.count("permits") == 1


@pytest.mark.parametrize("verb", list(VERBS))
def test_other_service_cannot_touch_a_service_vault(
    vault_server: RunningServer, target: Any, client_for: Callable[..., VaultClient], verb: str,
) -> None:
    taxation = client_for("taxation")
    with pytest.raises(PermissionDenied) as e:
        VERBS[verb](taxation, "permits", "internal/memo.txt")
    assert "service:taxation" in str(e.value)
    _unchanged(vault_server)


# Operators administer the store: integrity checks (scrub) and destroying a whole vault are theirs
# (tested in test_verbs); the content and its lifecycle are not.
# Reading any single journal entry is theirs too, as reading the whole journal is.
OPERATOR_VERBS = {"check", "check_one", "destroy_vault", "inclusion_proof"}


@pytest.mark.parametrize("verb", sorted(set(VERBS) - OPERATOR_VERBS))
def test_operator_cannot_touch_content(
    vault_server: RunningServer, target: Any, client_for: Callable[..., VaultClient], verb: str,
) -> None:
    admin = client_for("op-admin")
    with pytest.raises(PermissionDenied):
        VERBS[verb](admin, "permits", "internal/memo.txt")
    _unchanged(vault_server)


def test_operator_may_check_integrity(target: Any, client_for: Callable[..., VaultClient]) -> None:
    rep = client_for("op-admin").check("permits")
    assert rep.ok and rep.objects == 1


def test_journal_entries_are_read_only_with_their_vaults_journal_right(
    vault_server: RunningServer, target: Any, client_for: Callable[..., VaultClient],
) -> None:
    from vaultd.errors import InvalidArgument
    from vaultd.journal.leaf import Leaf

    taxation, admin = client_for("taxation"), client_for("op-admin")
    taxation.deposit("taxation", "return-2025", b"taxation only")
    size = taxation.checkpoint().tree_size
    own_index = next(i for i, leaf in enumerate(journal_leaves(admin)) if leaf.vault == "taxation"
                     and leaf.operation == "deposit")
    mine = taxation.inclusion_proof(own_index)
    assert Leaf.decode(mine.leaf).name == "return-2025" and mine.receipt
    # another service's entry: refused, and the refusal names nothing the entry holds
    with pytest.raises(PermissionDenied) as e:
        taxation.inclusion_proof(ENTRY_OF["permits"])
    assert "service:taxation" in str(e.value)
    for secret in ("permits", "internal/memo.txt", "deposit"):
        assert secret not in str(e.value)
    # an entry of no vault needs "admin" (here: the refusal of the whole journal to taxation)
    with pytest.raises(PermissionDenied):
        taxation.read_journal("")
    store_wide = max(i for i, leaf in enumerate(journal_leaves(admin)) if leaf.vault == "")
    with pytest.raises(PermissionDenied):
        taxation.inclusion_proof(store_wide)
    # beyond the tree: the same answer for everyone, from the size alone
    for c in (taxation, admin):
        with pytest.raises(InvalidArgument):
            c.inclusion_proof(size + 1000)
    # an operator reads any entry, as it reads the whole journal
    theirs = admin.inclusion_proof(ENTRY_OF["permits"])
    assert Leaf.decode(theirs.leaf).vault == "permits" and theirs.receipt
    assert Leaf.decode(admin.inclusion_proof(store_wide).leaf).vault == ""


@pytest.mark.parametrize("verb", list(VERBS))
def test_service_unknown_to_the_policy_is_refused(
    vault_server: RunningServer, target: Any, client_for: Callable[..., VaultClient], verb: str,
) -> None:
    pki = vault_server.pki
    if not pki.client("svc-intruder").cert.exists():
        issue_cert(pki.ca, "svc-intruder", pki.client("svc-intruder"))
    intruder = client_for("svc-intruder")
    vault, name, _ = target
    with pytest.raises(PermissionDenied):
        VERBS[verb](intruder, vault, name)
    with pytest.raises(PermissionDenied):
        intruder.rotate_keys()


def test_services_may_not_rotate_keys(client_for: Callable[..., VaultClient]) -> None:
    for who in ("permits", "taxation", "procurement"):
        with pytest.raises(PermissionDenied):
            client_for(who).rotate_keys()
        with pytest.raises(PermissionDenied):
            client_for(who).retire_key(1)


def test_shared_citizen_vault_is_shared_by_policy(
    vault_server: RunningServer, target: Any, client_for: Callable[..., VaultClient],
) -> None:
    # the development policy lets every service work in citizen-* vaults: taxation reads permits'
    # letter there, which proves the refusals above come from the policy, not from a broken path
    vault, name, body = target
    assert client_for("taxation").read_bytes(vault, name) == body


def test_certificate_naming_no_identity_is_unauthenticated(
    vault_server: RunningServer, client_for: Callable[..., VaultClient],
) -> None:
    pki = vault_server.pki
    ck = pki.client("citizen-mallory")
    if not ck.cert.exists():
        issue_cert(pki.ca, "citizen-mallory", ck)
    c = VaultClient(vault_server.address, ca=pki.ca.cert, cert=ck.cert, key=ck.key)
    try:
        with pytest.raises(Unauthenticated):
            c.count("citizen-mallory")
    finally:
        c.close()


def test_session_tokens_are_refused_without_an_authenticator(
    vault_server: RunningServer, target: Any,
) -> None:
    pki = vault_server.pki
    svc = pki.service("permits")
    c = VaultClient(vault_server.address, ca=pki.ca.cert, cert=svc.cert, key=svc.key, token="forged")
    try:
        with pytest.raises(Unauthenticated):
            c.count(target[0])
    finally:
        c.close()


def test_tls_without_client_certificate_is_refused(vault_server: RunningServer) -> None:
    c = VaultClient(vault_server.address, ca=vault_server.pki.ca.cert, timeout=5)
    try:
        with pytest.raises(Unavailable):
            c.count("permits")
    finally:
        c.close()


def test_untrusted_client_certificate_is_refused(vault_server: RunningServer, tmp_path: Any) -> None:
    rogue_ca = make_ca(tmp_path, "rogue CA")
    ck = issue_cert(rogue_ca, "svc-permits", type(rogue_ca)(tmp_path / "p.pem", tmp_path / "p-key.pem"))
    c = VaultClient(vault_server.address, ca=vault_server.pki.ca.cert, cert=ck.cert, key=ck.key, timeout=5)
    try:
        with pytest.raises(Unavailable):
            c.count("permits")
    finally:
        c.close()


def test_client_refuses_a_server_it_does_not_trust(vault_server: RunningServer, tmp_path: Any) -> None:
    other_ca = make_ca(tmp_path, "other CA")
    svc = vault_server.pki.service("permits")
    c = VaultClient(vault_server.address, ca=other_ca.cert, cert=svc.cert, key=svc.key, timeout=5)
    try:
        with pytest.raises(Unavailable):
            c.count("permits")
    finally:
        c.close()


def test_health_and_reflection_need_no_identity_but_tls(vault_server: RunningServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    pki = vault_server.pki
    op = pki.operator("admin")
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes(), op.key.read_bytes(), op.cert.read_bytes())
    with grpc.secure_channel(vault_server.address, creds) as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for service in ("", "vaultd.v1.VaultService"):
            resp = h.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        r = reflection_pb2_grpc.ServerReflectionStub(ch)
        out = list(r.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5))
        names = {s.name for s in out[0].list_services_response.service}
        assert {"vaultd.v1.VaultService", "grpc.health.v1.Health"} <= names
        # and the API itself still needs an identity the policy knows: op-admin may not read
        stub = pb_grpc.VaultServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Count(pb.CountRequest(vault="permits"), timeout=5)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_without_client_certificates_no_call_has_an_identity(server_factory: Callable[..., RunningServer]) -> None:
    # gRPC Python cannot ask for a client certificate without requiring it: with
    # require_client_cert off, no certificate is requested at all, and only a session token
    # could name the caller (none is configured here)
    srv = server_factory(require_client_cert=False)
    for c in (VaultClient(srv.address, ca=srv.pki.ca.cert, timeout=5), srv.client("permits")):
        try:
            with pytest.raises(Unauthenticated):
                c.count("permits")
        finally:
            c.close()


def test_one_identity_cannot_hold_every_thread(server_factory: Callable[..., RunningServer]) -> None:
    import threading

    from vaultd.errors import ResourceExhausted

    srv = server_factory(workers=8, max_calls_per_identity=3)
    permits, taxation = srv.client("permits"), srv.client("taxation")
    permits.create_vault("permits")
    taxation.create_vault("taxation")
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_source():  # type: ignore[no-untyped-def]
        yield b"x"
        started.release()
        release.wait(20)

    def hold() -> None:
        try:
            permits.deposit("permits", f"slow-{threading.get_ident()}", slow_source(), timeout=30)
        except Exception:
            pass

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for t in holders:
        t.start()
    for _ in holders:
        assert started.acquire(timeout=10)
    time.sleep(0.3)
    try:
        with pytest.raises(ResourceExhausted) as e:
            permits.count("permits")
        assert "service:permits" in str(e.value)
        assert taxation.count("taxation") == 0  # another identity is still served
    finally:
        release.set()
        for t in holders:
            t.join(30)
    assert permits.count("permits") == 3  # the slow deposits completed; the slots are free again
