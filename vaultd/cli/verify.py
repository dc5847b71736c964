"""Offline verification of journal evidence: ``vaultctl verify`` and ``vaultctl verify-consistency``.

No server is needed: a receipt file, the document and the journal's public key (a signed-note
verifier key ``name+id+key`` or a PEM public key, as ``GetPublicKey`` gives it) are enough.

Exit status: 0 when every check holds; 11 (the vaultctl code for DATA_LOSS) when a check fails, with a
line naming the failed check; 1 for a usage error (a file that cannot be read).

Also runnable alone: ``python -m vaultd.cli.verify verify RECEIPT --document FILE --public-key KEY``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaultd.errors import InvalidArgument
from vaultd.journal.receipt import VerifyResult, verify_consistency, verify_receipt

__all__ = ["register", "main", "EXIT_VERIFIED", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_VERIFIED = 0
EXIT_USAGE = 1
EXIT_FAILED = 11


def _readable(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{path}: not a readable file")
    return p


def _print(res: VerifyResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps({
            "ok": res.ok, "failed": res.failed, "kind": res.kind,
            "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in res.checks],
            "entry": res.leaf.describe() if res.leaf else None,
        }, indent=2))
    else:
        print(res.report())
        if res.ok and res.leaf is not None and res.kind == "event":
            print(f"VERIFIED (an event: {res.leaf.operation}, outcome {res.leaf.outcome})")
        elif res.ok:
            print("VERIFIED")
        else:
            print(f"NOT VERIFIED: check {res.failed!r} failed", file=sys.stderr)
    return EXIT_VERIFIED if res.ok else EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    if args.cms is None and args.receipt is None:
        print("vaultctl verify: give a RECEIPT, or --cms FILE --ca FILE --document FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.receipt is not None and args.public_key is None:
        print("vaultctl verify: a receipt needs --public-key", file=sys.stderr)
        return EXIT_USAGE
    code = EXIT_VERIFIED
    if args.receipt is not None:
        code = _print(verify_receipt(args.receipt, args.document, args.public_key), args.json)
    if args.cms is not None:
        if args.ca is None or args.document is None:
            print("vaultctl verify: --cms needs --ca and --document", file=sys.stderr)
            return EXIT_USAGE
        code = max(code, _verify_cms(args))
    return code


def _verify_cms(args: argparse.Namespace) -> int:
    """A detached CAdES-B signature checked offline with the server's own rules
    (vaultd.core.signatures.verify_cms): the document's digest, the signed attributes, the signature
    and the chain to the citizen-card CA (revocation only when a --crl is given)."""
    import datetime as dt
    import hashlib

    from vaultd.core.signatures import CitizenTrust, verify_cms

    crls = list(args.crl or [])
    trust = CitizenTrust.from_files(args.ca, crls, require_crl=bool(crls))
    at = dt.datetime.fromisoformat(args.at) if args.at else None
    digest = hashlib.sha256(Path(args.document).read_bytes()).digest()
    try:
        v = verify_cms(Path(args.cms).read_bytes(), digest, trust, at=at)
    except (ValueError, InvalidArgument) as e:  # not a CMS at all
        print(f"NOT VERIFIED: check 'cms-format' failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    info = {"ok": v.valid, "reason": v.reason, "signer": v.signer, "signer_subject": v.signer_subject,
            "signing_time": v.signing_time.isoformat() if v.signing_time else None,
            "validated_at": v.validated_at.isoformat(), "revocation_checked": bool(crls)}
    if args.json:
        print(json.dumps({"cms": info}, indent=2))
    else:
        print(f"cms-signature: {'ok' if v.valid else 'FAILED'} ({v.reason}); signer {v.signer} "
              f"({v.signer_subject}), signed {info['signing_time']}"
              + ("" if crls else "; revocation not checked (no --crl)"))
        if v.valid:
            print("VERIFIED")
        else:
            print(f"NOT VERIFIED: check 'cms-signature' failed: {v.reason}", file=sys.stderr)
    return EXIT_VERIFIED if v.valid else EXIT_FAILED


def cmd_verify_consistency(args: argparse.Namespace) -> int:
    res = verify_consistency(args.old, args.new, args.proof, args.public_key)
    return _print(res, args.json)


def _write(data: bytes, output: str | None) -> None:
    if output:
        Path(output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def cmd_receipt(client: Any, args: argparse.Namespace) -> int:
    """Fetch the evidence file of an existing object version from the server (online). Server
    errors raise the ``vaultd.errors`` classes; vaultctl maps them to its exit codes."""
    rec = client.receipt(args.vault, args.name, version=args.version, destroyed=args.destroyed)
    _write(rec + b"\n", args.output)
    return EXIT_VERIFIED


def cmd_journal(client: Any, args: argparse.Namespace) -> int:
    """Fetch what an auditor needs beside a receipt: the journal's public key, the latest signed
    checkpoint, or a consistency proof between two tree sizes (online)."""
    if args.what == "key":
        _write(client.journal_public_key().verifier_key.encode() + b"\n", args.output)
    elif args.what == "checkpoint":
        _write(client.checkpoint().note, args.output)
    else:
        if args.old_size is None:
            print("vaultctl journal consistency: give OLD_SIZE (and optionally NEW_SIZE)", file=sys.stderr)
            return EXIT_USAGE
        _write(client.consistency_proof(args.old_size, args.new_size or 0).proof_file, args.output)
    return EXIT_VERIFIED


def register(subparsers: Any) -> None:
    """Add ``verify`` and ``verify-consistency`` (offline: they set ``offline=True`` and
    ``run=fn(args) -> exit status`` and need no server) and ``receipt`` (online: ``fn(client, args)``)
    to an argparse subparsers object."""
    sp = subparsers.add_parser(
        "receipt", help="fetch the evidence file of an existing object version (for `vaultctl verify`)",
        description="Fetch from the server the receipt (evidence file) of an object version's deposit, "
                    "or with --destroyed of its destruction.")
    sp.add_argument("vault")
    sp.add_argument("name")
    sp.add_argument("--version", type=int, metavar="N", help="an object version (default: the latest)")
    sp.add_argument("--destroyed", action="store_true", help="the destruction receipt instead")
    sp.add_argument("-o", "--output", metavar="FILE", help="default stdout")
    sp.set_defaults(fn=cmd_receipt)
    sp = subparsers.add_parser(
        "journal", help="fetch the journal's public key, latest checkpoint, or a consistency proof",
        description="Fetch from the server what offline verification needs beside a receipt: "
                    "`key` (the journal's public key, for --public-key), `checkpoint` (the latest signed "
                    "checkpoint, to keep), `consistency OLD_SIZE [NEW_SIZE]` (a proof that the journal at "
                    "NEW_SIZE, default the latest, extends the one at OLD_SIZE, for verify-consistency).")
    sp.add_argument("what", choices=["key", "checkpoint", "consistency"])
    sp.add_argument("old_size", nargs="?", type=int, metavar="OLD_SIZE")
    sp.add_argument("new_size", nargs="?", type=int, metavar="NEW_SIZE")
    sp.add_argument("-o", "--output", metavar="FILE", help="default stdout")
    sp.set_defaults(fn=cmd_journal)
    sp = subparsers.add_parser(
        "verify", help="check a receipt offline: document SHA-256, inclusion proof, checkpoint signature",
        description="Check a receipt (evidence file) with no server: the document's SHA-256 against the "
                    "journal entry, the inclusion proof against the signed checkpoint, and the checkpoint's "
                    "signature by the journal key. Exit 0 only when everything holds.")
    sp.add_argument("receipt", nargs="?", type=_readable, help="the receipt file (JSON)")
    sp.add_argument("--document", type=_readable, metavar="FILE",
                    help="the document the receipt (or the CMS) is about (required for a deposit receipt)")
    sp.add_argument("--public-key", type=_readable, metavar="KEY",
                    help="the journal's public key: verifier key (name+id+key) or PEM (required with a receipt)")
    sp.add_argument("--cms", type=_readable, metavar="FILE",
                    help="also (or only) check a detached CMS signature (.p7s, DER) of --document")
    sp.add_argument("--ca", type=_readable, metavar="FILE", help="with --cms: the citizen-card CA certificate (PEM)")
    sp.add_argument("--crl", type=_readable, action="append", metavar="FILE",
                    help="with --cms: a revocation list of that CA (repeatable); without, revocation is not checked")
    sp.add_argument("--at", metavar="ISO8601", help="with --cms: validate at this time (default now)")
    sp.add_argument("--json", action="store_true", help="machine-readable result")
    sp.set_defaults(offline=True, run=cmd_verify)
    sp = subparsers.add_parser(
        "verify-consistency", help="check offline that checkpoint NEW extends checkpoint OLD",
        description="Check with no server that the journal of checkpoint NEW extends the journal of "
                    "checkpoint OLD (it was not rewritten), given a consistency proof.")
    sp.add_argument("old", type=_readable, help="the earlier signed checkpoint")
    sp.add_argument("new", type=_readable, help="the later signed checkpoint")
    sp.add_argument("proof", type=_readable, help="consistency proof (JSON, or one base64 hash per line)")
    sp.add_argument("--public-key", type=_readable, metavar="KEY",
                    help="also check both checkpoints' signatures (recommended)")
    sp.add_argument("--json", action="store_true", help="machine-readable result")
    sp.set_defaults(offline=True, run=cmd_verify_consistency)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vaultctl", description="Offline verification of vaultd evidence.")
    register(p.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = p.parse_args(argv)
    try:
        return int(args.run(args))
    except OSError as e:
        print(f"vaultctl: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
