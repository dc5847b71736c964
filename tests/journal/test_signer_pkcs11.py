"""ECDSA P-256 journal key inside a real SoftHSM2 token (a temporary SOFTHSM2_CONF)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from softhsm import make_token, softhsm_module
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vaultd.errors import NotFound
from vaultd.journal.checkpoint import Checkpoint, Verifier, open_checkpoint, sign_note
from vaultd.journal.signer import Pkcs11EcdsaSigner

NAME = "vaultd.test/journal"


@pytest.fixture()
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SOFTHSM2_CONF", str(make_token(tmp_path, "journal")))
    return "journal"


def test_sign_checkpoint_with_token_key(token: str) -> None:
    signer = Pkcs11EcdsaSigner(NAME, module=softhsm_module(), token_label=token, pin="1234")
    body = Checkpoint(NAME, 9, hashlib.sha256(b"r").digest()).body()
    note = sign_note(body, signer)
    assert open_checkpoint(note, Verifier.from_vkey(signer.verifier().vkey())).size == 9
    # Independent check: DER ECDSA over SHA-256(text), key id = SHA-256(SPKI)[:4] (signed-note type 0x02).
    spki = signer.verifier().key_bytes
    raw = base64.b64decode(note.decode().split("\n\n")[1].split(" ")[2])
    assert raw[:4] == hashlib.sha256(spki).digest()[:4]
    pub = serialization.load_der_public_key(spki)
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    pub.verify(raw[4:], body, ec.ECDSA(hashes.SHA256()))
    signer.close()
    # The key persists on the token and is found again; it is not extractable.
    again = Pkcs11EcdsaSigner(NAME, module=softhsm_module(), token_label=token, pin="1234", create=False)
    assert again.key_id == signer.key_id
    import pkcs11
    from pkcs11 import Attribute
    assert again._priv[Attribute.SENSITIVE] is True and again._priv[Attribute.EXTRACTABLE] is False
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        again._priv[Attribute.VALUE]
    again.close()


def test_missing_key_or_token(token: str) -> None:
    with pytest.raises(NotFound, match="no journal key"):
        Pkcs11EcdsaSigner(NAME, module=softhsm_module(), token_label=token, pin="1234", key_label="absent", create=False)
    with pytest.raises(NotFound, match="token"):
        Pkcs11EcdsaSigner(NAME, module=softhsm_module(), token_label="nope", pin="1234")
