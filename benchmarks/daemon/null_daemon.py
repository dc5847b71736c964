"""The transport ceiling of the daemon benchmark: a VaultService that stores nothing.

``DepositSmall`` answers a receipt at once (the SHA-256 of the data, which the client checks, and
nothing else); every other method is unimplemented. It is served exactly as vaultd serves its API:
the same gRPC server model (synchronous server, the same worker pool and server options), mutual TLS
with the development PKI of ``--data-dir``, health service, but no interceptors, no policy, no store
and no journal. Small deposits through it cost only what gRPC, TLS, protobuf and the Python client
cost on this machine: the most any daemon on this transport could do. Takes ``vaultd serve``'s
arguments (those it needs, the others ignored) so that benchmarks/vaultd_daemon.Daemon can start it:

    python benchmarks/daemon/null_daemon.py serve --dev --data-dir DIR --listen 127.0.0.1:0
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2_grpc  # noqa: E402

from vaultd.config import Config  # noqa: E402
from vaultd.pki import ensure_dev_pki  # noqa: E402
from vaultd.transport.server import ServerLimits  # noqa: E402
from vaultd.v1 import vault_pb2 as pb  # noqa: E402
from vaultd.v1 import vault_pb2_grpc  # noqa: E402


class NullVaults(vault_pb2_grpc.VaultServiceServicer):  # type: ignore[misc]
    def DepositSmall(self, request: Any, context: Any) -> Any:
        h = request.header
        return pb.Receipt(stat=pb.ObjectStat(vault=h.vault, name=h.name, version=1, size=len(request.data),
                                             sha256=hashlib.sha256(request.data).digest(),
                                             hash_algorithm="sha256"),
                          request_id=h.request_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["serve"])
    ap.add_argument("--dev", action="store_true")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    a, _ = ap.parse_known_args()
    pki = ensure_dev_pki(a.data_dir)
    limits = ServerLimits(workers=Config().workers)
    server = grpc.server(ThreadPoolExecutor(max_workers=limits.workers), options=limits.options(),
                         maximum_concurrent_rpcs=limits.workers)
    vault_pb2_grpc.add_VaultServiceServicer_to_server(NullVaults(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    creds = grpc.ssl_server_credentials([(pki.server.key.read_bytes(), pki.server.cert.read_bytes())],
                                        root_certificates=pki.ca.cert.read_bytes(), require_client_auth=True)
    port = server.add_secure_port(a.listen, creds)
    server.start()
    print(f"null VaultService serving on {a.listen.rsplit(':', 1)[0]}:{port}", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
