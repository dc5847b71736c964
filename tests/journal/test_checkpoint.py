"""Checkpoints in the C2SP signed-note format: sign, verify, parse, and malformed inputs."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from vaultd.errors import FailedPrecondition, InvalidArgument
from vaultd.journal.checkpoint import (
    Checkpoint,
    CheckpointError,
    SignedNote,
    Verifier,
    load_verifier,
    open_checkpoint,
    sign_note,
)
from vaultd.journal.signer import Ed25519Signer

NAME = "vaultd.test/journal"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture()
def signer(tmp_path: Path) -> Ed25519Signer:
    return Ed25519Signer.load_or_create(tmp_path / "k.pem", NAME)


def test_format_and_key_id(signer: Ed25519Signer) -> None:
    note = sign_note(Checkpoint(NAME, 42, ROOT, ("ext line",)).body(), signer)
    text, sig_line = note.decode().split("\n\n")
    assert text == f"{NAME}\n42\n{base64.b64encode(ROOT).decode()}\next line"
    assert sig_line.startswith(f"\u2014 {NAME} ") and sig_line.endswith("\n")
    pub = signer.verifier().key_bytes
    # signed-note key id, computed here from the spec, not by the project
    assert signer.key_id == hashlib.sha256(NAME.encode() + b"\n\x01" + pub).digest()[:4]
    raw = base64.b64decode(sig_line.split(" ")[2])
    assert raw[:4] == signer.key_id
    ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], (text + "\n").encode())
    cp = open_checkpoint(note, Verifier.from_vkey(signer.verifier().vkey()))
    assert cp == Checkpoint(NAME, 42, ROOT, ("ext line",))


def test_key_file_mode_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    a = Ed25519Signer.load_or_create(path, NAME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    b = Ed25519Signer.load_or_create(path, NAME)
    assert a.key_id == b.key_id
    os.chmod(path, 0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        Ed25519Signer.load_or_create(path, NAME)


def test_wrong_key_and_tampered_note(signer: Ed25519Signer, tmp_path: Path) -> None:
    note = sign_note(Checkpoint(NAME, 7, ROOT).body(), signer)
    other = Ed25519Signer.load_or_create(tmp_path / "other.pem", NAME)
    with pytest.raises(CheckpointError, match="not signed by the journal key"):
        open_checkpoint(note, other.verifier())
    tampered = note.replace(b"\n7\n", b"\n8\n")
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(tampered, signer.verifier())


@pytest.mark.parametrize(
    "note,match",
    [
        (b"", "no blank line"),
        (b"origin\n1\nAAAA\n", "no blank line"),
        (b"o\n1\nAA==\n\n", "em dash"),
        (b"o\n1\nAA==\n\n- name AAAAAAAA\n", "em dash"),
        ("o\n1\nAA==\n\n\u2014 name !!!!\n".encode(), "base64"),
        ("o\n1\nAA==\n\n\u2014 name AAA=\n".encode(), "too short"),
        ("o\n1\nAA==\n\n\u2014 name\n".encode(), "signature line"),
        ("o\x01\n1\nAA==\n\n\u2014 n AAAAAAAA\n".encode(), "control"),
        (b"\xff\n\n", "UTF-8"),
        (b"x" * 20000, "more than"),
        ("o\n1\nAA==\n\n".encode() + "\u2014 n AAAAAAAA\n".encode() * 17, "more than 16"),
    ],
)
def test_malformed_notes(note: bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        SignedNote.parse(note)


@pytest.mark.parametrize(
    "body,match",
    [
        (b"o\n1\n", "needs an origin"),
        (b"\n1\n" + base64.b64encode(ROOT) + b"\n", "empty origin"),
        (b"o\n01\n" + base64.b64encode(ROOT) + b"\n", "decimal"),
        (b"o\n-1\n" + base64.b64encode(ROOT) + b"\n", "decimal"),
        (b"o\n1\n" + base64.b64encode(ROOT[:31]) + b"\n", "not 32"),
        (b"o\n1\n" + base64.b64encode(ROOT), "end with a newline"),
        (b"o\n1\n" + base64.b64encode(ROOT) + b"\n\n", "extension"),
        (b"o\n99999999999999999999\n" + base64.b64encode(ROOT) + b"\n", "out of range"),
    ],
)
def test_malformed_bodies(body: bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        Checkpoint.parse_body(body)


def test_pem_and_vkey_loading(signer: Ed25519Signer) -> None:
    v = signer.verifier()
    assert load_verifier(v.public_key_pem(), name=NAME).key_id == v.key_id
    assert load_verifier(v.vkey()).key_id == v.key_id
    with pytest.raises(InvalidArgument, match="key id"):
        Verifier.from_vkey(v.vkey().replace(f"+{v.key_id.hex()}+", "+00000000+"))
    with pytest.raises(InvalidArgument):
        Verifier(NAME, ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(InvalidArgument):
        Verifier("bad name", v.public_key)
