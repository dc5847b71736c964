"""The city's story, end to end on one machine, with the virtual citizen card.

    scripts/pcscd start                      # pcscd with the vsmartcard-vpcd reader
    .venv/bin/python examples/city_story.py [--out DIR] [--interactive]

1. vaultd starts (development mode: TLS PKI, policy, keyring, citizen-card CA in DIR/data).
2. The permits office (svc-permits) deposits a permit form into Alice's vault.
3. Alice's card (issued by the development citizen-card CA) goes into the reader "Virtual PCD 00 00".
4. At the kiosk, Alice logs in with her card and PIN, downloads the form and signs it (CAdES-B, slot 9C).
   With --interactive you are Alice: type the PIN (123456) and choose; otherwise a script answers.
5. The office fetches the signed evidence kept with the form (GetSignatures: the CMS, its chain, the
   validation, the receipt of its journal entry) and the proof of delivery (Alice's first read).
6. An auditor verifies everything offline: `openssl cms -verify` with the citizen-card CA, and
   `vaultctl verify` for the journal receipts (signature and delivery, with the form) with the
   journal's public key and for the CMS (--cms --ca).
Every file the auditor needs is left in DIR/evidence.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vaultd.cli.daemon import Daemon  # noqa: E402
from vaultd.cli.kiosk import KioskApp  # noqa: E402
from vaultd.client import VaultClient  # noqa: E402
from vaultd.config import Config  # noqa: E402
from vaultd.kiosk import devca  # noqa: E402
from vaultd.kiosk.virtual_card import VirtualPivCard  # noqa: E402
from vaultd.kiosk.vpcd import VpcdLink  # noqa: E402
from vaultd.pki import ensure_dev_pki, issue_cert  # noqa: E402
from vaultd.transport.kiosk import KioskClient  # noqa: E402

READER = "Virtual PCD 00 00"
VAULT = "citizen-alice.martin"
FORM_NAME = "permits/2026-0042-building-permit.txt"
FORM = (
    "CITY OF EXAMPLE - BUILDING PERMIT APPLICATION 2026-0042\n"
    "Applicant: Alice Martin\nParcel: AB-1234, 12 rue des Lilas\nWork: extension of 18 m2\n"
    "I certify the information above is accurate.\n"
).encode()


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    print((r.stdout + r.stderr).strip(), flush=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description="The city's story with the virtual citizen card.")
    ap.add_argument("--out", type=Path, help="folder for the data and the evidence (default: a temporary one)")
    ap.add_argument("--interactive", action="store_true", help="you are Alice at the kiosk")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vaultd-story-"))
    data, evidence = out / "data", out / "evidence"
    evidence.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["bash", str(REPO / "scripts" / "pcscd"), "start"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr, file=sys.stderr)
        return 1

    step("1. vaultd starts (development mode)")
    daemon = Daemon(Config(data_dir=data, listen="127.0.0.1:0", metrics_listen="", dev=True, map_size=1 << 30))
    daemon.start()
    link = None
    try:
        pki = ensure_dev_pki(data)
        print(f"vaultd listening on {daemon.address}, data in {data}")

        step("2. The permits office deposits the form into Alice's vault")
        with VaultClient.for_dev(daemon.address, data, "permits", server_name="localhost") as permits:
            permits.create_vault(VAULT)
            receipt = permits.deposit(VAULT, FORM_NAME, FORM, content_type="text/plain")
            print(f"deposited {FORM_NAME} version {receipt.stat.version}, SHA-256 {receipt.stat.sha256.hex()}")

        step("3. Alice's card goes into the reader")
        citizen_ca = devca.DevCA.load(data / "citizen-ca")
        card_dir = devca.write_card(citizen_ca.issue_card("alice.martin", display_name="Alice Martin"),
                                    out / "cards" / "alice")
        link = VpcdLink(VirtualPivCard(card_dir))
        link.insert()
        print(f"virtual PIV card from {card_dir} in {READER!r} (PIN 123456)")

        step("4. Alice at the kiosk")
        ck = pki.client("svc-kiosk-townhall")
        if not ck.cert.exists():
            issue_cert(pki.ca, "svc-kiosk-townhall", ck)

        def connect() -> KioskClient:
            return KioskClient(daemon.address, ca=pki.ca.cert, cert=ck.cert, key=ck.key, server_name="localhost")

        if args.interactive:
            app = KioskApp(connect, reader=READER, download_dir=out / "downloads")
        else:
            answers = iter(["1", "d", "1", "s", "yes", "q"])
            pins = iter(["123456", "123456"])

            def ask(prompt: str) -> str:
                a = next(answers)
                print(prompt + a, flush=True)
                return a

            def ask_pin(prompt: str) -> str:
                print(prompt + "******", flush=True)
                return next(pins)

            app = KioskApp(connect, reader=READER, download_dir=out / "downloads", ask=ask, ask_pin=ask_pin,
                           out=sys.stdout, progress=False)
        time.sleep(0.5)
        app.run(once=True)

        step("5. The office fetches the signed evidence and the proof of delivery")
        with VaultClient.for_dev(daemon.address, data, "permits", server_name="localhost") as permits:
            kept = permits.signatures(VAULT, FORM_NAME)
            valid = [s for s in kept.signatures if s.valid]
            if not valid:
                print("no signature kept with the form", file=sys.stderr)
                return 1
            sig = valid[-1]
            (evidence / "form.txt").write_bytes(permits.read_bytes(VAULT, FORM_NAME))
            (evidence / "form.p7s").write_bytes(sig.cms)
            (evidence / "signature-receipt.json").write_bytes(sig.receipt)
            delivery = permits.delivery_proof(VAULT, FORM_NAME, version=kept.version)
            print(f"signed by {sig.signer} at kiosk {sig.kiosk} (journal entry {sig.journal_index}); "
                  f"delivered: {delivery.read} (first read by {delivery.reader or 'nobody'})")
            if delivery.read:
                (evidence / "delivery-receipt.json").write_bytes(delivery.receipt)
            (evidence / "journal-key.txt").write_text(permits.journal_public_key().verifier_key + "\n")
        (evidence / "citizen-ca.pem").write_bytes(citizen_ca.cert_pem)
        (evidence / "citizen-ca.crl.pem").write_bytes((data / "citizen-ca" / "crl.pem").read_bytes())

        step("6. The auditor verifies offline")
        ok = run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(evidence / "form.p7s"),
                  "-content", str(evidence / "form.txt"), "-CAfile", str(evidence / "citizen-ca.pem"),
                  "-purpose", "any", "-out", "/dev/null"]).returncode == 0
        vaultctl = [sys.executable, "-m", "vaultd.cli.vaultctl", "verify", "--public-key", str(evidence / "journal-key.txt")]
        ok &= run(vaultctl + [str(evidence / "signature-receipt.json"), "--cms", str(evidence / "form.p7s"),
                              "--ca", str(evidence / "citizen-ca.pem"), "--crl", str(evidence / "citizen-ca.crl.pem"),
                              "--document", str(evidence / "form.txt")]
                  ).returncode == 0
        ok &= delivery.read
        if delivery.read:
            ok &= run(vaultctl + [str(evidence / "delivery-receipt.json"), "--document",
                                  str(evidence / "form.txt")]).returncode == 0
            print(f"delivered: True, the proof of delivery verifies (journal entry {delivery.index})")
        print(f"\nEvidence in {evidence}: {'everything verifies' if ok else 'A CHECK FAILED'}")
        return 0 if ok else 1
    finally:
        if link is not None:
            link.remove()
        daemon.stop(2.0)


if __name__ == "__main__":
    sys.exit(main())
