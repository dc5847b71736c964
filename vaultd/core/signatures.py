"""Verification of citizens' card signatures: detached CMS (CAdES baseline B) and certificate chains.

Server side, no transport: given a CMS and the SHA-256 of the stored version it claims to sign,
``verify_cms`` checks, in this order, that
1. the CMS is a well-formed detached SignedData with one signer, SHA-256 and ECDSA P-256;
2. its signed attributes carry content-type id-data, the message digest of the stored version,
   a signing time and a signing-certificate-v2 that names the signer's certificate;
3. the signature over the DER of the signed attributes verifies (through the Rust core's batch
   ECDSA P-256 verification when it is installed, pyca/cryptography otherwise);
4. the signer's certificate chains to the configured citizen-card CA, every certificate is within
   its validity dates at the validation time, the signer's key usage allows non-repudiation and its
   extended key usage (when present) allows signing, no certificate of the chain has a critical
   extension this module does not process, every CA of the chain may sign certificates (keyCertSign)
   and no CA has more intermediate CAs below it than its path length allows, and no certificate of
   the chain is on its issuer's revocation list (which must be current).
The outcome is a ``SignatureValidation``: ``valid`` with the signer and the chain, or not, with the
reason. A CMS that is not even parseable raises InvalidArgument. ``check_certificate`` is the chain
check alone, also used for logins (key usage digitalSignature, extended key usage clientAuth when present).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asn1crypto.tsp  # type: ignore[import-untyped]  # noqa: F401  (registers signing-certificate-v2)
from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from vaultd.errors import IntegrityError, InvalidArgument, NotFound

__all__ = [
    "CitizenTrust",
    "CitizenTrustFiles",
    "CertificateRejected",
    "SignatureValidation",
    "check_certificate",
    "verify_cms",
    "verify_ecdsa_p256_batch",
    "citizen_of",
    "USAGE_SIGN",
    "USAGE_AUTH",
]

USAGE_SIGN = "non_repudiation"
USAGE_AUTH = "digital_signature"
MAX_CMS = 64 * 1024
MAX_CERTS = 8
MAX_CHAIN = 4


class CertificateRejected(Exception):
    """A certificate failed a check of its chain; the message says which."""


@dataclass(frozen=True)
class CitizenTrust:
    """The citizen-card CA certificates, their current revocation lists, and the rule for CRLs."""

    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    require_crl: bool = True

    @classmethod
    def from_files(cls, ca_pem: Path, crl_paths: Sequence[Path] = (), *, require_crl: bool = True) -> CitizenTrust:
        anchors = tuple(x509.load_pem_x509_certificates(Path(ca_pem).read_bytes()))
        crls = []
        for p in crl_paths:
            raw = Path(p).read_bytes()
            crls.append(
                x509.load_pem_x509_crl(raw) if raw.lstrip().startswith(b"-----") else x509.load_der_x509_crl(raw)
            )
        return cls(anchors, tuple(crls), require_crl)


class CitizenTrustFiles:
    """A CitizenTrust read from files and read again when a file changes (a new CRL is published).

    It offers the same attributes as CitizenTrust, so it goes wherever one does.
    """

    def __init__(self, ca_pem: Path, crl_paths: Sequence[Path] = (), *, require_crl: bool = True) -> None:
        self._ca = Path(ca_pem)
        self._crls = [Path(p) for p in crl_paths]
        self._require = require_crl
        self._stamp: tuple[float, ...] = ()
        self._trust = self._load()

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime_ns for p in [self._ca, *self._crls])

    def _load(self) -> CitizenTrust:
        self._stamp = self._mtimes()
        return CitizenTrust.from_files(self._ca, self._crls, require_crl=self._require)

    def current(self) -> CitizenTrust:
        try:
            if self._mtimes() != self._stamp:
                self._trust = self._load()
        except (OSError, ValueError):
            pass  # keep the last good files; a stale CRL is refused by its own next-update date
        return self._trust

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self.current().anchors

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return self.current().crls

    @property
    def require_crl(self) -> bool:
        return self._require


@dataclass(frozen=True)
class SignatureValidation:
    """The outcome of a signature check, kept with the evidence."""

    valid: bool
    reason: str
    validated_at: dt.datetime
    signer: str | None = None  # the citizen (see citizen_of)
    signer_subject: str | None = None
    signing_time: dt.datetime | None = None
    chain: tuple[bytes, ...] = field(default=(), repr=False)  # DER, signer first, anchor last

    def to_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "reason": self.reason,
            "validated_at": self.validated_at.isoformat(),
            "signer": self.signer,
            "signer_subject": self.signer_subject,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "chain_sha256": [hashlib.sha256(c).hexdigest() for c in self.chain],
        }


def citizen_of(cert: x509.Certificate) -> str:
    """The citizen a card certificate names: its subject serialNumber, else its common name."""
    for oid in (NameOID.SERIAL_NUMBER, NameOID.COMMON_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if len(attrs) == 1:
            value = attrs[0].value
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    raise CertificateRejected("the certificate subject names no citizen")


# -- ECDSA ------------------------------------------------------------------------------------------
def _sec1(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def verify_ecdsa_p256_batch(
    public_keys: Sequence[ec.EllipticCurvePublicKey], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[bool]:
    """ECDSA P-256 with SHA-256 over each message, DER signatures; one call for the whole batch.

    Uses the Rust core (``vaultd.crypto.ecdsa_p256_verify_batch``, parallel, GIL released) when it
    is installed, pyca/cryptography otherwise.
    """
    if not len(public_keys) == len(messages) == len(signatures):
        raise InvalidArgument("batch lists of different lengths")
    try:
        from vaultd import crypto
    except ImportError:
        crypto = None  # type: ignore[assignment]
    batch = getattr(crypto, "ecdsa_p256_verify_batch", None)
    if batch is not None:
        return list(batch([_sec1(k) for k in public_keys], list(messages), list(signatures), der=True))
    out = []
    for key, msg, sig in zip(public_keys, messages, signatures):
        try:
            key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
            out.append(True)
        except InvalidSignature:
            out.append(False)
    return out


# -- certificate chains -----------------------------------------------------------------------------
def _utc(d: dt.datetime) -> dt.datetime:
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_dates(cert: x509.Certificate, at: dt.datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateRejected(f"the {what} certificate is not valid yet (from {cert.not_valid_before_utc:%Y-%m-%d})")
    if at > cert.not_valid_after_utc:
        raise CertificateRejected(f"the {what} certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _check_revocation(cert: x509.Certificate, issuer: x509.Certificate, trust: CitizenTrust, at: dt.datetime) -> None:
    crls = [c for c in trust.crls if c.issuer == issuer.subject and c.is_signature_valid(issuer.public_key())]  # type: ignore[arg-type]
    if not crls:
        if trust.require_crl:
            raise CertificateRejected("no valid revocation list of the card CA is configured")
        return
    current = [c for c in crls if c.next_update_utc is None or c.next_update_utc >= at]
    if not current:
        raise CertificateRejected("the card CA's revocation list is out of date")
    for crl in current:
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CertificateRejected(f"the certificate {cert.serial_number:x} is revoked")


# The extensions this check understands. RFC 5280 section 4.2: a certificate with a critical extension
# the verifier does not process must be refused (name constraints, policy constraints and certificate
# policies among them: nothing here enforces them).
_UNDERSTOOD = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
})
# Extended key usages a card certificate may carry (when it carries the extension at all) for each use.
# A login is a TLS-client-like authentication: clientAuth. A document signature is a CMS signature:
# document signing (RFC 9336) says it exactly; emailProtection is what PIV and most national-card
# signature certificates carry (their signing key makes S/MIME, i.e. CMS, signatures);
# Microsoft's document-signing OID is the other common marking of such certificates; and
# anyExtendedKeyUsage places no restriction. serverAuth alone, or clientAuth alone, is not a
# signing certificate.
_MS_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")
_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_EKU_FOR = {
    USAGE_AUTH: (frozenset({ExtendedKeyUsageOID.CLIENT_AUTH}), "clientAuth"),
    USAGE_SIGN: (frozenset({_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION, _MS_DOCUMENT_SIGNING,
                            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}),
                 "documentSigning, emailProtection or anyExtendedKeyUsage"),
}


def _check_extensions(cert: x509.Certificate, what: str) -> None:
    try:
        extensions = list(cert.extensions)
    except ValueError as exc:  # a duplicate or malformed extension
        raise CertificateRejected(f"the {what} certificate's extensions cannot be read: {exc}") from None
    for e in extensions:
        if e.critical and e.oid not in _UNDERSTOOD:
            raise CertificateRejected(
                f"the {what} certificate has a critical extension this server does not process ({e.oid.dotted_string})")


def _check_eku(cert: x509.Certificate, usage: str) -> None:
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is None:
        return
    assert isinstance(eku, x509.ExtendedKeyUsage)
    allowed, names = _EKU_FOR[usage]
    if not allowed.intersection(eku):
        what = "authentication" if usage == USAGE_AUTH else "signatures"
        got = ", ".join(getattr(o, "_name", None) or o.dotted_string for o in eku) or "none"
        raise CertificateRejected(
            f"the certificate is not for {what}: its extended key usage ({got}) has none of {names}")


def _check_ca(ca: x509.Certificate, below: int, what: str) -> None:
    """``ca`` issued the chain's last certificate, with ``below`` intermediate CAs between it and the card."""
    _check_extensions(ca, what)
    bc = _ext(ca, x509.BasicConstraints)
    if not (isinstance(bc, x509.BasicConstraints) and bc.ca):
        raise CertificateRejected(f"the {what} certificate is not a CA")
    ku = _ext(ca, x509.KeyUsage)
    if not (isinstance(ku, x509.KeyUsage) and ku.key_cert_sign):
        raise CertificateRejected(f"the {what} certificate may not sign certificates (no keyCertSign key usage)")
    if bc.path_length is not None and below > bc.path_length:
        raise CertificateRejected(f"the {what} certificate allows {bc.path_length} intermediate CA(s) below it, "
                                  f"the chain has {below}")


def check_certificate(
    cert: x509.Certificate,
    trust: CitizenTrust,
    *,
    usage: str,
    at: dt.datetime | None = None,
    intermediates: Sequence[x509.Certificate] = (),
) -> list[x509.Certificate]:
    """Checks a card certificate; returns its chain (the card's first, the anchor last).

    Raises CertificateRejected with the reason.
    """
    at = _utc(at or dt.datetime.now(dt.timezone.utc))
    try:
        pk = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:  # an unknown curve or a malformed key
        raise CertificateRejected("the card key is not ECDSA P-256") from exc
    if not isinstance(pk, ec.EllipticCurvePublicKey) or pk.curve.name != "secp256r1":
        raise CertificateRejected("the card key is not ECDSA P-256")
    _check_extensions(cert, "card")
    bc = _ext(cert, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        raise CertificateRejected("a CA certificate cannot sign as a citizen")
    ku = _ext(cert, x509.KeyUsage)
    if not isinstance(ku, x509.KeyUsage):
        raise CertificateRejected("the certificate has no key usage")
    if usage == USAGE_SIGN and not ku.content_commitment:
        raise CertificateRejected("the certificate is not for signatures (no nonRepudiation key usage)")
    if usage == USAGE_AUTH and not ku.digital_signature:
        raise CertificateRejected("the certificate is not for authentication (no digitalSignature key usage)")
    _check_eku(cert, usage)
    _check_dates(cert, at, "card")
    chain = [cert]
    current = cert
    for _ in range(MAX_CHAIN):
        anchor = next((a for a in trust.anchors if _issued_by(current, a)), None)
        if anchor is not None:
            _check_ca(anchor, len(chain) - 1, "card CA")
            _check_dates(anchor, at, "card CA")
            _check_revocation(current, anchor, trust, at)
            chain.append(anchor)
            return chain
        inter = next((i for i in intermediates if i not in chain and _issued_by(current, i)), None)
        if inter is None:
            raise CertificateRejected("the certificate was not issued by the citizen-card CA")
        _check_ca(inter, len(chain) - 1, "intermediate CA")
        _check_dates(inter, at, "intermediate CA")
        _check_revocation(current, inter, trust, at)
        chain.append(inter)
        current = inter
    raise CertificateRejected("the certificate chain is too long")


# -- CMS --------------------------------------------------------------------------------------------
def _parse(cms_der: bytes) -> tuple[cms.SignedData, cms.SignerInfo]:
    if len(cms_der) > MAX_CMS:
        raise InvalidArgument(f"the signature is larger than {MAX_CMS} bytes")
    try:
        info = cms.ContentInfo.load(bytes(cms_der), strict=True)
        if info["content_type"].native != "signed_data":
            raise InvalidArgument("the CMS is not a SignedData")
        sd = info["content"]
        signers = sd["signer_infos"]
        if len(signers) != 1:
            raise InvalidArgument("the CMS must have exactly one signer")
    except InvalidArgument:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidArgument(f"the signature is not a well-formed CMS: {exc}") from exc
    return sd, signers[0]


def verify_cms(
    cms_der: bytes,
    expected_sha256: bytes,
    trust: CitizenTrust,
    *,
    at: dt.datetime | None = None,
) -> SignatureValidation:
    """Verifies a detached CAdES-B signature over the stored version whose SHA-256 is given."""
    return verify_cms_batch([(cms_der, expected_sha256)], trust, at=at)[0]


def verify_cms_batch(
    items: Sequence[tuple[bytes, bytes]], trust: CitizenTrust, *, at: dt.datetime | None = None
) -> list[SignatureValidation]:
    """``verify_cms`` for many signatures, with one batched ECDSA verification for all of them."""
    at = _utc(at or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    results: list[SignatureValidation | None] = [None] * len(items)
    pending: list[tuple[int, ec.EllipticCurvePublicKey, bytes, bytes, dict[str, object]]] = []
    for i, (cms_der, expected) in enumerate(items):
        try:
            try:
                pending.append((i, *_prepare(cms_der, expected, trust, at)))
            except (ValueError, TypeError, KeyError, AttributeError, x509.InvalidVersion,
                    UnsupportedAlgorithm) as exc:  # parsed lazily: malformed
                if isinstance(exc, InvalidArgument):
                    raise
                raise InvalidArgument(f"the signature is not a well-formed CMS: {exc}") from exc
        except _Invalid as exc:
            results[i] = SignatureValidation(False, str(exc), at, **exc.details)  # type: ignore[arg-type]
    oks = verify_ecdsa_p256_batch([p[1] for p in pending], [p[2] for p in pending], [p[3] for p in pending])
    for (i, _k, _m, _s, details), ok in zip(pending, oks):
        if ok:
            results[i] = SignatureValidation(True, "valid", at, **details)  # type: ignore[arg-type]
        else:
            results[i] = SignatureValidation(False, "the signature does not verify", at, **details)  # type: ignore[arg-type]
    return [r for r in results if r is not None]


class _Invalid(Exception):
    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.details = details


def _prepare(
    cms_der: bytes, expected: bytes, trust: CitizenTrust, at: dt.datetime
) -> tuple[ec.EllipticCurvePublicKey, bytes, bytes, dict[str, object]]:
    if len(expected) != 32:
        raise InvalidArgument("the stored digest is not a SHA-256")
    sd, si = _parse(cms_der)
    # The raw encodings first: asn1crypto re-encodes a structure once its children were looked at,
    # and what is verified must be the bytes that were sent.
    signed_raw = si["signed_attrs"].dump()
    raw_certs = [c.chosen.dump() for c in (sd["certificates"] or []) if c.name == "certificate"]
    sid = si["sid"]
    if sid.name != "issuer_and_serial_number":
        raise _Invalid("the signer must be named by issuer and serial number")
    sid_issuer_raw = sid.chosen["issuer"].dump()
    sid_serial = sid.chosen["serial_number"].native
    if sd["encap_content_info"]["content"].native is not None:
        raise _Invalid("the CMS is not detached")
    if sd["encap_content_info"]["content_type"].native != "data":
        raise _Invalid("the CMS does not sign data")
    if si["digest_algorithm"]["algorithm"].native != "sha256":
        raise _Invalid("the CMS digest is not SHA-256")
    if si["signature_algorithm"].signature_algo != "ecdsa" or si["signature_algorithm"].hash_algo != "sha256":
        raise _Invalid("the CMS signature is not ECDSA with SHA-256")
    attrs = si["signed_attrs"]
    if not attrs:
        raise _Invalid("the CMS has no signed attributes")
    by_type: dict[str, object] = {}
    for attr in attrs:
        name = attr["type"].native
        if name in by_type:
            raise _Invalid(f"the signed attribute {name} appears twice")
        values = attr["values"]
        if len(values) != 1:
            raise _Invalid(f"the signed attribute {name} must have one value")
        by_type[name] = values[0]
    for required in ("content_type", "message_digest", "signing_time", "signing_certificate_v2"):
        if required not in by_type:
            raise _Invalid(f"the signed attribute {required} is missing (not CAdES baseline B)")
    if by_type["content_type"].native != "data":  # type: ignore[attr-defined]
        raise _Invalid("the signed content type is not data")
    signing_time = by_type["signing_time"].native  # type: ignore[attr-defined]

    # The signer's certificate: the one the SignerIdentifier names.
    if len(raw_certs) > MAX_CERTS:
        raise _Invalid("the CMS carries too many certificates")
    certs = [x509.load_der_x509_certificate(c) for c in raw_certs]
    found = [
        i for i, c in enumerate(certs)
        if c.serial_number == sid_serial and c.issuer.public_bytes() == sid_issuer_raw
    ]
    if not found:
        raise _Invalid("the CMS does not carry the signer's certificate")
    signer, signer_der = certs[found[0]], raw_certs[found[0]]
    others = [c for i, c in enumerate(certs) if i != found[0]]
    details: dict[str, object] = {"signing_time": signing_time, "signer_subject": signer.subject.rfc4514_string()}

    ess = by_type["signing_certificate_v2"]["certs"]  # type: ignore[index]
    if len(ess) < 1:
        raise _Invalid("the signing-certificate-v2 attribute is empty", **details)
    first = ess[0]
    if first["hash_algorithm"]["algorithm"].native != "sha256":
        raise _Invalid("the signing-certificate-v2 hash is not SHA-256", **details)
    if not hmac.compare_digest(first["cert_hash"].native, hashlib.sha256(signer_der).digest()):
        raise _Invalid("the signing-certificate-v2 attribute names another certificate", **details)

    digest = by_type["message_digest"].native  # type: ignore[attr-defined]
    if not isinstance(digest, bytes) or not hmac.compare_digest(digest, expected):
        raise _Invalid("the signature is over a different document (message digest mismatch)", **details)

    try:
        chain = check_certificate(signer, trust, usage=USAGE_SIGN, at=at, intermediates=others)
        details["signer"] = citizen_of(signer)
    except CertificateRejected as exc:
        raise _Invalid(str(exc), **details) from exc
    details["chain"] = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)

    # The signature covers the DER of the signed attributes with the SET OF tag.
    signed = b"\x31" + signed_raw[1:]
    pub = signer.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return pub, signed, si["signature"].native, details


# -- evidence ---------------------------------------------------------------------------------------
MAX_EVIDENCE_CMS = MAX_CMS  # 64 KiB: a CAdES-B signature with a chain of a few certificates fits easily
MAX_LEAF_CMS = 4096  # the CMS is also copied into the journal leaf when it fits an extra field
SIGNATURES_DB = "signatures"
_U64 = struct.Struct(">Q")


@dataclass(frozen=True)
class SignatureEvidence:
    """What the server keeps of a submitted signature, and what the kiosk is told."""

    validation: SignatureValidation
    vault: str
    name: str
    version: int
    sha256: bytes
    journal_index: int | None = None
    receipt: bytes | None = None  # the journal's receipt of the leaf (inclusion proof, checkpoint)


@dataclass(frozen=True)
class StoredSignature:
    """A valid signature kept with its object version (``signatures`` database): the CMS as
    submitted, the certificate chain (DER, signer first), the validation result and time, and the
    index of its journal leaf, whose receipt is rebuilt on request."""

    vault: str
    name: str
    version: int
    sha256: bytes
    cms: bytes
    chain: tuple[bytes, ...]
    valid: bool
    reason: str
    validated_at: str
    signer: str | None
    signer_subject: str | None
    signing_time: str | None
    citizen: str
    kiosk: str
    journal_index: int | None
    receipt: bytes | None = None

    def to_record(self) -> bytes:
        return json.dumps({
            "vault": self.vault, "name": self.name, "version": self.version, "sha256": self.sha256.hex(),
            "cms": base64.b64encode(self.cms).decode(), "chain": [base64.b64encode(c).decode() for c in self.chain],
            "valid": self.valid, "reason": self.reason, "validated_at": self.validated_at, "signer": self.signer,
            "signer_subject": self.signer_subject, "signing_time": self.signing_time, "citizen": self.citizen,
            "kiosk": self.kiosk, "journal_index": self.journal_index,
        }, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_record(raw: bytes) -> StoredSignature:
        r = json.loads(raw)
        return StoredSignature(
            r["vault"], r["name"], int(r["version"]), bytes.fromhex(r["sha256"]), base64.b64decode(r["cms"]),
            tuple(base64.b64decode(c) for c in r["chain"]), bool(r["valid"]), r["reason"], r["validated_at"],
            r["signer"], r["signer_subject"], r["signing_time"], r["citizen"], r["kiosk"], r["journal_index"],
        )


def _version_prefix(vault: str, name: str, version: int) -> bytes:
    """Key prefix of one object version's signatures: names may be longer than an LMDB key allows,
    so the name is keyed by its SHA-256 (the record holds the name itself)."""
    return vault.encode() + b"\x00" + hashlib.sha256(name.encode()).digest() + _U64.pack(version)


def signatures_db(vaults: Any) -> Any:
    """The ``signatures`` named database of the vaults' store (opened once, outside any write)."""
    db = getattr(vaults, "_signatures_db", None)
    if db is None:
        db = vaults.store.open_db(SIGNATURES_DB)
        vaults._signatures_db = db
    return db


def _next_leaf_index(vaults: Any, t: Any) -> int | None:
    """The index the next leaf this unit journals will get: the tree size in this transaction plus
    the leaves the unit queued already (the writer appends them in order, in this transaction)."""
    hook = getattr(vaults, "journal_hook", None)
    if hook is None or getattr(vaults, "_leaf", None) is None:
        return None
    return int(hook.journal.tree.size(t.raw)) + len(getattr(t, "leaves", ()))


def stored_signatures(vaults: Any, actor: Any, vault: str, name: str, version: int | None = None) -> tuple[int, list[StoredSignature]]:
    """The signatures kept with an object version (the latest when none is given), each with its
    journal receipt; authorized as "journal" (evidence) on the vault."""
    vaults.authorize(actor, "journal", vault)
    stat = vaults.stat(actor, vault, name, version)
    db = signatures_db(vaults)
    prefix = _version_prefix(vault, name, stat.version)
    out: list[StoredSignature] = []
    with vaults.store.read() as r:
        with r.raw.cursor(db=db) as c:
            if c.set_range(prefix):
                for k, v in c:
                    if not bytes(k).startswith(prefix):
                        break
                    out.append(StoredSignature.from_record(bytes(v)))
    hook = getattr(vaults, "journal_hook", None)
    if hook is not None:
        out = [
            dataclasses.replace(sig, receipt=hook.journal.receipt("event", sig.journal_index))
            if sig.journal_index is not None else sig
            for sig in out
        ]
    return stat.version, out


def journal_event(vaults: object, leaf: bytes) -> tuple[int | None, bytes | None]:
    """Appends one journal leaf in its own unit of work; returns (leaf index, receipt).

    Does nothing when the store has no journal wired (``vaults`` opened without a leaf factory).
    """
    store = getattr(vaults, "store", None)
    if store is None or getattr(vaults, "_leaf", None) is None:
        return None, None

    def unit(t: object) -> None:
        t.journal(leaf)  # type: ignore[attr-defined]

    committed = store.write(unit)
    index = committed.leaf_indexes[-1] if committed.leaf_indexes else None
    return index, committed.evidence


def _same_citizen(signer: str | None, citizen: str) -> bool:
    """Whether the citizen a signer's certificate names (``citizen_of``) is ``citizen``, the one a
    session's login certificate named: the same when both name the same vault (``citizen_vault_id``
    normalises the name as a login does)."""
    from vaultd.core.policy import citizen_vault_id

    if not signer or not citizen:
        return False
    try:
        return hmac.compare_digest(citizen_vault_id(signer), citizen_vault_id(citizen))
    except InvalidArgument:  # a name no vault can have is nobody's session
        return False


def submit_signature(
    vaults: object,
    actor: object,
    vault: str,
    name: str,
    version: int | None,
    cms_der: bytes,
    trust: CitizenTrust,
    *,
    at: dt.datetime | None = None,
) -> SignatureEvidence:
    """A citizen's signature of a stored version: authorize ("sign"), verify, keep the evidence.

    The stored version's SHA-256 is the one the CMS must sign. A valid signature is kept with the
    version in the ``signatures`` database (the CMS, the chain, the validation result and time, the
    journal leaf index) in the same transaction as its journal leaf (operation "sign", the version,
    its digest, the citizen and kiosk, outcome "ok"; extra fields: the CMS's SHA-256, the CMS itself
    when it fits a leaf, the result and its time, the SHA-256 of every certificate of the chain);
    the leaf's receipt proves when it was recorded. A signature that does not validate is journaled
    too (outcome "failed") and reported, never kept as valid; so is a citizen's submission signed
    with a card that names another citizen (the session's card is the one the citizen logged in with).
    """
    if len(cms_der) > MAX_EVIDENCE_CMS:
        raise InvalidArgument(f"the signature is larger than {MAX_EVIDENCE_CMS} bytes")
    vaults.authorize(actor, "sign", vault)  # type: ignore[attr-defined]  # a refusal is journaled
    stat = vaults.stat(actor, vault, name, version)  # type: ignore[attr-defined]
    result = verify_cms(cms_der, stat.sha256, trust, at=at)
    if result.valid and getattr(actor, "kind", None) == "citizen" and not _same_citizen(
            result.signer, str(getattr(actor, "name", ""))):
        result = dataclasses.replace(result, valid=False, reason="signed with another citizen's card")
    from vaultd.journal.hook import leaf_factory

    cms_bytes = bytes(cms_der)
    extra: dict[str, Any] = {
        "cms_sha256": hashlib.sha256(cms_bytes).hexdigest(),
        "result": result.reason[:512],
        "validated_at": result.validated_at.isoformat(),
        "chain_sha256": ",".join(hashlib.sha256(c).hexdigest() for c in result.chain),
    }
    if len(cms_bytes) <= MAX_LEAF_CMS:
        extra["cms"] = cms_bytes
    if result.signer:
        extra["signer"] = result.signer
    if result.signing_time:
        extra["signing_time"] = result.signing_time.isoformat()
    leaf = leaf_factory(
        "sign", actor=actor, vault=vault, name=name, version=stat.version, sha256=stat.sha256,
        outcome="ok" if result.valid else "failed", **extra,
    )
    if not result.valid or getattr(vaults, "_leaf", None) is None:
        index, receipt = journal_event(vaults, leaf)
        return SignatureEvidence(result, vault, name, stat.version, stat.sha256, index, receipt)
    db = signatures_db(vaults)
    predicted: list[int | None] = []

    def unit(t: Any) -> None:
        if t.get_version(vault, name, stat.version) is None:
            raise NotFound(f"version {stat.version} of object {name!r} was destroyed before the signature was kept")
        index = _next_leaf_index(vaults, t)
        predicted.append(index)
        rec = StoredSignature(
            vault, name, stat.version, stat.sha256, cms_bytes, tuple(result.chain), True, result.reason,
            result.validated_at.isoformat(), result.signer, result.signer_subject,
            result.signing_time.isoformat() if result.signing_time else None,
            str(actor), str(getattr(actor, "kiosk", "") or ""), index,
        )
        seq = _U64.pack(index if index is not None else 0)
        t.raw.put(_version_prefix(vault, name, stat.version) + seq, rec.to_record(), db=db)
        t.journal(leaf)

    committed = vaults.store.write(unit, len(cms_bytes))  # type: ignore[attr-defined]
    index = committed.leaf_indexes[-1] if committed.leaf_indexes else None
    if index != predicted[-1]:  # cannot happen with one writer; never keep a wrong index silently
        raise IntegrityError(f"the signature's journal leaf is {index}, its evidence says {predicted[-1]}")
    return SignatureEvidence(result, vault, name, stat.version, stat.sha256, index, committed.evidence)
