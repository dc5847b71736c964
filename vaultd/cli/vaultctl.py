"""``vaultctl``: the command-line client of vaultd, over ``vaultd.client.VaultClient``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from vaultd import errors
from vaultd.client import VaultClient
from vaultd.config import DEFAULT_LISTEN

__all__ = ["main", "EXIT_CODES", "build_parser"]

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_ERROR = 2  # any other failure (internal error, unexpected answer)
EXIT_CODES: dict[type[errors.VaultError], int] = {
    errors.Unavailable: 3,
    errors.NotFound: 4,
    errors.PermissionDenied: 5,
    errors.Unauthenticated: 6,
    errors.InvalidArgument: 7,
    errors.FailedPrecondition: 8,
    errors.AlreadyExists: 9,
    errors.ResourceExhausted: 10,
    errors.IntegrityError: 11,
    errors.DeadlineExceeded: 12,
    errors.Cancelled: 13,
    errors.Aborted: 14,
}

EPILOG = """\
exit codes (stable, for scripts):
   0  ok
   1  usage error (bad arguments, missing file)
   2  other error (internal server error, unexpected answer)
   3  UNAVAILABLE          the server cannot be reached or is stopping; retry later
   4  NOT_FOUND            no such vault, object or version
   5  PERMISSION_DENIED    the policy does not allow this identity this verb on this vault
   6  UNAUTHENTICATED      the certificate or token was not accepted
   7  INVALID_ARGUMENT     a malformed request (name, vault id, metadata, sizes)
   8  FAILED_PRECONDITION  a retention date or legal hold forbids it (keys retire: the version is in use)
   9  ALREADY_EXISTS       the vault exists already
  10  RESOURCE_EXHAUSTED   storage full, or the object is too large
  11  DATA_LOSS            an integrity check failed (also: `check` found problems)
  12  DEADLINE_EXCEEDED    the operation did not finish in time
  13  CANCELLED
  14  ABORTED

connection: --server HOST:PORT (or $VAULTCTL_SERVER, default %s), and either --ca/--cert/--key
(or $VAULTCTL_CA, $VAULTCTL_CERT, $VAULTCTL_KEY), or the development PKI: --data-dir DIR --as NAME
(NAME: permits, taxation, procurement, or a certificate name such as op-admin).
""" % DEFAULT_LISTEN


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _progress_bar(total: int | None, desc: str, enabled: bool) -> tuple[Callable[[int, int | None], None] | None, Any]:
    """A progress callback and its bar, only on a terminal and for transfers above 8 MiB."""
    if not enabled or not sys.stderr.isatty() or (total is not None and total < (8 << 20)):
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr)
    last = [0]

    def update(done: int, _total: int | None) -> None:
        bar.update(done - last[0])
        last[0] = done

    return update, bar


def _stat_dict(s: Any) -> dict[str, Any]:
    d = asdict(s)
    for k, v in list(d.items()):
        if isinstance(v, bytes):
            d[k] = v.hex()
    if "deposited_at_ns" in d:
        d["deposited_at"] = dt.datetime.fromtimestamp(d["deposited_at_ns"] / 1e9, dt.timezone.utc).isoformat()
    return d


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _client(args: argparse.Namespace) -> VaultClient:
    server = args.server or os.environ.get("VAULTCTL_SERVER") or DEFAULT_LISTEN
    if args.data_dir is not None:
        return VaultClient.for_dev(server, args.data_dir, args.identity or "permits")
    ca = args.ca or os.environ.get("VAULTCTL_CA")
    cert = args.cert or os.environ.get("VAULTCTL_CERT")
    key = args.key or os.environ.get("VAULTCTL_KEY")
    if not (ca and cert and key):
        raise _Usage("give --ca, --cert and --key (or --data-dir DIR --as NAME for the development PKI)")
    return VaultClient(server, ca=Path(ca), cert=Path(cert), key=Path(key))


class _Usage(Exception):
    pass


def _parse_time(s: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (UTC when no zone is given)."""
    if s.isdigit():
        return int(s)
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is neither unix seconds nor an ISO 8601 date") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


def _metadata(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise _Usage(f"metadata {it!r} is not KEY=VALUE")
        out[k] = v
    return out


def cmd_put(c: VaultClient, a: argparse.Namespace) -> int:
    src = Path(a.file)
    if a.file != "-" and not src.is_file():
        raise _Usage(f"{a.file}: no such file")
    size = src.stat().st_size if a.file != "-" else None
    progress, bar = _progress_bar(size, a.name, not a.quiet)
    try:
        data: Any = sys.stdin.buffer if a.file == "-" else src
        r = c.deposit(a.vault, a.name, data, content_type=a.content_type, metadata=_metadata(a.meta),
                      expected_sha256=bytes.fromhex(a.sha256) if a.sha256 else None,
                      request_id=a.request_id, retain_until=a.retain_until, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _print_json({**_stat_dict(r.stat), "request_id": r.request_id,
                 "deduplicated_bytes": r.deduplicated_bytes, "stored_bytes": r.stored_bytes})
    return EXIT_OK


def cmd_get(c: VaultClient, a: argparse.Namespace) -> int:
    if a.output in (None, "-"):
        c.read_to(a.vault, a.name, sys.stdout.buffer, version=a.version)
        sys.stdout.buffer.flush()
        return EXIT_OK
    st = c.stat(a.vault, a.name, version=a.version)
    progress, bar = _progress_bar(st.size, a.name, not a.quiet)
    try:
        c.read_to(a.vault, a.name, Path(a.output), version=st.version, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    return EXIT_OK


def cmd_ls(c: VaultClient, a: argparse.Namespace) -> int:
    for s in c.list(a.vault, a.prefix, versions=a.versions):
        if a.json:
            print(json.dumps(_stat_dict(s), ensure_ascii=False, default=str))
        else:
            when = dt.datetime.fromtimestamp(s.deposited_at_ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            flags = ("H" if s.legal_hold else "-") + ("R" if s.retain_until else "-")
            print(f"{s.size:>12}  {when}  v{s.version:<4} {flags}  {s.name}")
    return EXIT_OK


def cmd_stat(c: VaultClient, a: argparse.Namespace) -> int:
    _print_json(_stat_dict(c.stat(a.vault, a.name, version=a.version)))
    return EXIT_OK


def cmd_count(c: VaultClient, a: argparse.Namespace) -> int:
    print(c.count(a.vault, a.prefix))
    return EXIT_OK


def cmd_rm(c: VaultClient, a: argparse.Namespace) -> int:
    _print_json(_stat_dict(c.destroy(a.vault, a.name, version=a.version)))
    return EXIT_OK


def cmd_check(c: VaultClient, a: argparse.Namespace) -> int:
    r = c.check(a.vault, a.name, version=a.version, timeout=a.timeout)
    _print_json({**_stat_dict(r), "ok": r.ok})
    return EXIT_OK if r.ok else EXIT_CODES[errors.IntegrityError]


def cmd_hold(c: VaultClient, a: argparse.Namespace) -> int:
    _print_json(_stat_dict(c.set_legal_hold(a.vault, a.name, not a.release, version=a.version)))
    return EXIT_OK


def cmd_retain(c: VaultClient, a: argparse.Namespace) -> int:
    _print_json(_stat_dict(c.set_retention(a.vault, a.name, a.until, version=a.version)))
    return EXIT_OK


def cmd_mkvault(c: VaultClient, a: argparse.Namespace) -> int:
    _print_json(_stat_dict(c.create_vault(a.vault)))
    return EXIT_OK


def cmd_keys_rotate(c: VaultClient, a: argparse.Namespace) -> int:
    print(json.dumps({"key_version": c.rotate_keys()}))
    return EXIT_OK


def cmd_keys_retire(c: VaultClient, a: argparse.Namespace) -> int:
    c.retire_key(a.key_version)
    print(json.dumps({"retired_key_version": a.key_version}))
    return EXIT_OK


def _key_version(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 1 <= v < 1 << 32:
        raise argparse.ArgumentTypeError(f"not a master key version: {text!r}")
    return v


RETIRE_EPILOG = """\
Run `vaultctl keys rotate` first and retire a version once no vault key is wrapped under it
(the metric vaultd_key_kek_versions_in_use is back to 1). The version is removed from the
keyring file (key_provider = "file") or its key object is destroyed in the token ("pkcs11"): a
vault key wrapped under it, as in a backup taken before the rotation, no longer unwraps with
this keyring or token. Copies of the keyring in escrow made before keep the version.

stdout: {"retired_key_version": N}.

exit codes: 0 retired; 1 usage; 4 NOT_FOUND (no such version); 5 PERMISSION_DENIED (needs the
admin verb); 8 FAILED_PRECONDITION (the current version, or vault keys still wrapped under it);
see `vaultctl --help` for the others.
"""


BACKUP_EPILOG = """\
Run it on the daemon's host, as the daemon's user (it registers as an LMDB reader in
DIR/store/lock.mdb), while the daemon serves or not. The copy is one consistent snapshot (LMDB
copy with compaction) with the signed journal checkpoint of exactly that snapshot; it never holds
key material (keyring, journal signing key, session secret): keep those in escrow.

stdout: the checkpoint (signed note) the backup leads to; keep it apart from the backup, `vaultd
restore --expect-checkpoint` checks the backup against it. stderr: a summary (and progress on a
terminal, unless -q).

exit codes: 0 done; 1 usage (bad arguments, DIR holds no store); 3 UNAVAILABLE (no checkpoint
matched the store in time: is the journal signing?); 7 INVALID_ARGUMENT; 8 FAILED_PRECONDITION
(DEST exists and is not empty); 2 any other failure. A failed backup leaves no DEST behind.
"""


def cmd_backup(a: argparse.Namespace) -> int:
    """``vaultctl backup DEST --data-dir DIR``: a hot backup from beside the running daemon (no
    server connection: LMDB lets this process read the daemon's environment)."""
    from vaultd.journal.journal import stored_head
    from vaultd.journal.tree import tree_size
    from vaultd.store.backup import backup_data_dir

    data_dir = a.backup_data_dir or a.data_dir
    if data_dir is None:
        print("vaultctl backup: give the daemon's data folder with --data-dir DIR", file=sys.stderr)
        return EXIT_USAGE
    data_dir = Path(data_dir)
    if not (data_dir / "store" / "data.mdb").is_file():
        print(f"vaultctl backup: {data_dir} holds no vaultd store (no store/data.mdb)", file=sys.stderr)
        return EXIT_USAGE
    bars: list[Any] = []  # made at the first report, once the size to copy is known

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(_progress_bar(total, "backup", not a.quiet))
        update, bar = bars[0]
        if update is not None:
            if total is not None and bar.total != total:  # the end: the copy's real size
                bar.total = total
            update(min(done, total) if total else done, total)

    try:
        try:
            r = backup_data_dir(data_dir, a.dest, tree_size=tree_size, stored_head=stored_head,
                                timeout=a.timeout, progress=progress)
        finally:
            if bars and bars[0][1] is not None:
                bars[0][1].close()
    except errors.VaultError as e:
        print(f"vaultctl backup: {type(e).__name__}: {e}", file=sys.stderr)
        return exit_code_for(e)
    except Exception as e:  # OSError, lmdb.Error (a store LMDB cannot open read-only)
        print(f"vaultctl backup: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.buffer.write(r.checkpoint)
    sys.stdout.flush()
    print(f"vaultctl backup: {r.path}: journal tree size {r.tree_size}, store {r.store_bytes} bytes, "
          f"{r.seconds:.1f} s; keep the checkpoint above with the backup's catalogue entry",
          file=sys.stderr)
    return EXIT_OK


def cmd_signatures(c: VaultClient, a: argparse.Namespace) -> int:
    """The signatures kept with NAME; with -o DIR each CMS (.p7s) and its journal receipt are written
    there, for `openssl cms -verify` and `vaultctl verify`."""
    r = c.signatures(a.vault, a.name, version=a.version)
    out = []
    base = Path(a.name).name or "object"
    for i, sig in enumerate(r.signatures, 1):
        item: dict[str, Any] = {
            "signer": sig.signer, "signer_subject": sig.signer_subject, "valid": sig.valid, "reason": sig.reason,
            "validated_at": dt.datetime.fromtimestamp(sig.validated_at_unix, dt.timezone.utc).isoformat(),
            "kiosk": sig.kiosk, "journal_index": sig.journal_index,
        }
        if a.output:
            folder = Path(a.output)
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"{base}.v{r.version}.sig{i}"
            stem.with_suffix(".p7s").write_bytes(sig.cms)
            item["cms_file"] = str(stem.with_suffix(".p7s"))
            if sig.receipt:
                stem.with_suffix(".receipt.json").write_bytes(sig.receipt + b"\n")
                item["receipt_file"] = str(stem.with_suffix(".receipt.json"))
            chain = b"".join(_pem(der) for der in sig.chain)
            stem.with_suffix(".chain.pem").write_bytes(chain)
            item["chain_file"] = str(stem.with_suffix(".chain.pem"))
        out.append(item)
    _print_json({"vault": a.vault, "name": a.name, "version": r.version, "sha256": r.sha256.hex(), "signatures": out})
    return EXIT_OK if out else EXIT_CODES[errors.NotFound]


def _pem(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vaultctl", description="Command-line client of the vaultd digital vault.",
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("--server", metavar="HOST:PORT", help=f"vaultd address (default {DEFAULT_LISTEN})")
    p.add_argument("--ca", metavar="FILE", help="CA certificate that signed the server's (PEM)")
    p.add_argument("--cert", metavar="FILE", help="this client's certificate (PEM)")
    p.add_argument("--key", metavar="FILE", help="this client's private key (PEM)")
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="use the development PKI in DIR/pki (made by `vaultd serve --dev`)")
    p.add_argument("--as", dest="identity", metavar="NAME",
                   help="with --data-dir: the identity, e.g. permits or op-admin (default permits)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Callable[[VaultClient, argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def version(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--version", type=int, metavar="N", help="an object version (default: the latest)")

    sp = add("put", cmd_put, "deposit FILE (or - for stdin) as NAME in VAULT; prints the receipt")
    sp.add_argument("vault"); sp.add_argument("name"); sp.add_argument("file")
    sp.add_argument("--content-type", default="application/octet-stream")
    sp.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata (repeatable)")
    sp.add_argument("--sha256", metavar="HEX", help="expected SHA-256: the deposit is refused if it differs")
    sp.add_argument("--request-id", metavar="ID", help="idempotency key: a retry returns the first receipt")
    sp.add_argument("--retain-until", type=_parse_time, metavar="WHEN", help="unix seconds or ISO 8601")
    sp = add("get", cmd_get, "read NAME from VAULT to a file (-o) or stdout")
    sp.add_argument("vault"); sp.add_argument("name")
    sp.add_argument("-o", "--output", metavar="FILE", help="written atomically; default stdout")
    version(sp)
    sp = add("ls", cmd_ls, "list objects of VAULT whose names start with PREFIX")
    sp.add_argument("vault"); sp.add_argument("prefix", nargs="?", default="")
    sp.add_argument("--versions", action="store_true", help="every version, not only the latest")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp = add("stat", cmd_stat, "technical metadata of NAME")
    sp.add_argument("vault"); sp.add_argument("name"); version(sp)
    sp = add("count", cmd_count, "count objects of VAULT whose names start with PREFIX")
    sp.add_argument("vault"); sp.add_argument("prefix", nargs="?", default="")
    sp = add("rm", cmd_rm, "destroy NAME (one version); refused under retention or legal hold")
    sp.add_argument("vault"); sp.add_argument("name"); version(sp)
    sp = add("check", cmd_check, "integrity control of NAME, or of the whole VAULT; exit 11 on problems")
    sp.add_argument("vault"); sp.add_argument("name", nargs="?"); version(sp)
    sp.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS")
    sp = add("hold", cmd_hold, "place (or --release) a legal hold on NAME")
    sp.add_argument("vault"); sp.add_argument("name"); version(sp)
    sp.add_argument("--release", action="store_true", help="lift the hold instead")
    sp = add("retain", cmd_retain, "set the retention date of NAME")
    sp.add_argument("vault"); sp.add_argument("name")
    sp.add_argument("until", type=_parse_time, help="unix seconds or ISO 8601 (UTC by default)")
    version(sp)
    sp = add("signatures", cmd_signatures,
             "citizens' signatures kept with NAME; -o DIR writes each CMS (.p7s), chain and journal receipt")
    sp.add_argument("vault"); sp.add_argument("name"); version(sp)
    sp.add_argument("-o", "--output", metavar="DIR", help="folder for the .p7s, .chain.pem and .receipt.json files")
    sp = add("mkvault", cmd_mkvault, "create VAULT")
    sp.add_argument("vault")
    bk = sub.add_parser(
        "backup", help="hot backup of the store beside the running daemon; prints its checkpoint",
        description="Copy the store of the daemon in DIR (one consistent snapshot, compacted) and the "
        "signed journal checkpoint of that snapshot to DEST, while the daemon serves.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=BACKUP_EPILOG)
    bk.add_argument("dest", metavar="DEST", help="the backup folder to make (absent or empty)")
    bk.add_argument("--data-dir", dest="backup_data_dir", type=Path, metavar="DIR",
                    help="the daemon's data folder (e.g. /var/lib/vaultd)")
    bk.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="how long to wait for a signed checkpoint matching the snapshot (default 60)")
    bk.set_defaults(offline=True, run=cmd_backup)
    keys = sub.add_parser("keys", help="master key administration (operators)")
    ksub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", parser_class=_Parser)
    kr = ksub.add_parser("rotate", help="re-wrap every vault key under a new master key version")
    kr.set_defaults(fn=cmd_keys_rotate)
    kt = ksub.add_parser(
        "retire", help="remove an old master key version for good (after a rotation)",
        description="Remove master key version VERSION from the key provider for good; refused for the "
        "current version and while any vault key is still wrapped under it.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RETIRE_EPILOG)
    kt.add_argument("key_version", metavar="VERSION", type=_key_version, help="the master key version to retire")
    kt.set_defaults(fn=cmd_keys_retire)
    from vaultd.cli.verify import register as register_verify  # offline: verify, verify-consistency
    register_verify(sub)
    return p


def exit_code_for(e: BaseException) -> int:
    for cls in type(e).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "offline", False):  # needs no server (vaultd/cli/verify.py)
        return int(args.run(args))
    fn = getattr(args, "fn", None)
    if fn is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _client(args) as c:
            return int(fn(c, args))
    except _Usage as e:
        print(f"vaultctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except errors.VaultError as e:
        print(f"vaultctl: {type(e).__name__}: {e}", file=sys.stderr)
        return exit_code_for(e)
    except OSError as e:
        print(f"vaultctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_CODES[errors.Cancelled]


if __name__ == "__main__":
    sys.exit(main())
