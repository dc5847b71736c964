"""`vaultctl verify` and `vaultctl verify-consistency` as a user runs them (the real vaultctl entry point,
no server): a subprocess, files, exit codes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from vaultd.journal.journal import Journal
from vaultd.journal.leaf import Leaf
from vaultd.journal.receipt import encode_consistency_proof
from vaultd.journal.signer import Ed25519Signer

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vaultd.cli.vaultctl", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=16, map_size=1 << 24)
    j = Journal(env, Ed25519Signer.load_or_create(tmp_path / "k.pem", "vaultd.test/journal"))
    doc = b"building permit 2026-0042"
    with env.begin(write=True) as txn:
        for i in range(3):
            j.append(txn, Leaf.make("read", vault="permits", name="x", version=1, actor_kind="service",
                                    actor_name="permits", time_ns=i))
        index = j.append(txn, Leaf.make("deposit", vault="permits", name="permit.pdf", version=1,
                                        sha256=hashlib.sha256(doc).digest(), actor_kind="service",
                                        actor_name="permits", time_ns=9))
    old = j.sign_head().note
    with env.begin(write=True) as txn:
        j.append(txn, Leaf.make("read", vault="permits", name="permit.pdf", version=1, actor_kind="citizen",
                                actor_name="alice", time_ns=10))
    new = j.sign_head().note
    out = {
        "receipt": tmp_path / "receipt.json", "doc": tmp_path / "permit.pdf", "other": tmp_path / "other.pdf",
        "vkey": tmp_path / "journal.vkey", "pem": tmp_path / "journal.pem", "old": tmp_path / "cp4",
        "new": tmp_path / "cp5", "proof": tmp_path / "proof.json",
    }
    out["receipt"].write_bytes(j.receipt("deposit", index))
    out["doc"].write_bytes(doc)
    out["other"].write_bytes(doc + b".")
    out["vkey"].write_text(j.verifier.vkey() + "\n")
    out["pem"].write_bytes(j.verifier.public_key_pem())
    out["old"].write_bytes(old)
    out["new"].write_bytes(new)
    out["proof"].write_bytes(encode_consistency_proof(4, 5, j.consistency(4, 5)))
    env.close()
    return out


def test_verify_receipt(files: dict[str, Path]) -> None:
    for key in ("vkey", "pem"):
        r = _run("verify", str(files["receipt"]), "--document", str(files["doc"]), "--public-key", str(files[key]))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "VERIFIED" in r.stdout and "inclusion-proof" in r.stdout
    r = _run("verify", str(files["receipt"]), "--document", str(files["other"]), "--public-key", str(files["vkey"]))
    assert r.returncode == 11 and "check 'document-sha256' failed" in r.stderr
    r = _run("verify", str(files["receipt"]), "--public-key", str(files["vkey"]))
    assert r.returncode == 11 and "document-sha256" in r.stderr
    r = _run("verify", str(files["receipt"]), "--document", str(files["doc"]), "--public-key", str(files["old"]))
    assert r.returncode == 11 and "checkpoint-signature" in r.stderr
    r = _run("verify", "/nonexistent/receipt", "--document", str(files["doc"]), "--public-key", str(files["vkey"]))
    assert r.returncode == 1  # usage: the file cannot be read


def test_verify_checks_the_receipt_kind_against_its_entry(tmp_path: Path) -> None:
    """The kind is an unsigned field of the receipt: a refused deposit, or a read relabelled as a
    deposit, must not verify as a deposit; an event receipt verifies and says what the entry records."""
    import json

    env = lmdb.open(str(tmp_path / "db"), max_dbs=16, map_size=1 << 24)
    j = Journal(env, Ed25519Signer.load_or_create(tmp_path / "k.pem", "vaultd.test/journal"))
    doc = b"contract"
    digest = hashlib.sha256(doc).digest()
    with env.begin(write=True) as txn:
        ok = j.append(txn, Leaf.make("deposit", vault="permits", name="contract", version=1, sha256=digest,
                                     actor_kind="service", actor_name="permits", time_ns=1))
        denied = j.append(txn, Leaf.make("deposit", vault="permits", name="contract", version=2, sha256=digest,
                                         actor_kind="service", actor_name="taxation", time_ns=2, outcome="denied"))
        read = j.append(txn, Leaf.make("read", vault="permits", name="contract", version=1, sha256=digest,
                                       actor_kind="service", actor_name="permits", time_ns=3))
    j.sign_head()
    (tmp_path / "journal.vkey").write_text(j.verifier.vkey() + "\n")
    (tmp_path / "contract").write_bytes(doc)
    relabelled = json.loads(j.receipt("delivery", read))
    relabelled["kind"] = "deposit"
    files = {
        "genuine": j.receipt("deposit", ok),
        "denied": j.receipt("deposit", denied),
        "relabelled": json.dumps(relabelled).encode(),
        "read-as-destroy": j.receipt("destroy", read),
        "event": j.receipt("event", denied),
    }
    env.close()

    def verify(which: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / which).write_bytes(files[which])
        return _run("verify", str(tmp_path / which), "--document", str(tmp_path / "contract"),
                    "--public-key", str(tmp_path / "journal.vkey"))

    r = verify("genuine")
    assert r.returncode == 0 and "VERIFIED" in r.stdout, r.stdout + r.stderr
    r = verify("denied")
    assert r.returncode == 11 and "check 'receipt-kind' failed" in r.stderr, r.stdout + r.stderr
    assert "the deposit was not carried out: the entry's outcome is denied" in r.stdout
    for which in ("relabelled", "read-as-destroy"):
        r = verify(which)
        assert r.returncode == 11 and "check 'receipt-kind' failed" in r.stderr, r.stdout + r.stderr
        assert "but the entry records read" in r.stdout
    r = verify("event")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERIFIED (an event: deposit, outcome denied)" in r.stdout


def test_verify_consistency(files: dict[str, Path]) -> None:
    ok = _run("verify-consistency", str(files["old"]), str(files["new"]), str(files["proof"]),
              "--public-key", str(files["vkey"]))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _run("verify-consistency", str(files["new"]), str(files["old"]), str(files["proof"]),
               "--public-key", str(files["vkey"]))
    assert bad.returncode == 11 and "consistency-proof" in bad.stderr
