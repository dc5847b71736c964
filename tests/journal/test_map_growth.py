"""Growing the LMDB map while the journal and the metrics scrape read the same environment.

py-lmdb's ``set_mapsize`` ends every read transaction of the process still open: a reader that did
not go through the store's gate (``read`` / ``raw_read``) then fails with ``lmdb.Error`` in the
middle of a proof, a receipt, a journal page or a scrape. Here a daemon whose map starts small grows
it several times under deposits while a thread reads the journal (proofs, receipts, pages as
ReadJournal serves them) and scrapes the metrics endpoint in a loop: not one of those reads fails.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
import urllib.request
from collections.abc import Callable

from servers import RunningServer

MiB = 1 << 20
VAULT = "citizen-growth"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_journal_reads_and_scrapes_survive_map_growth(server_factory: Callable[..., RunningServer]) -> None:
    port = _free_port()
    srv = server_factory(map_size=4 * MiB, max_map_size=64 * MiB, metrics_listen=f"127.0.0.1:{port}")
    store, journal = srv.daemon.vaults.store, srv.daemon.journal
    c = srv.client("permits")
    op = srv.client("op-admin")
    c.create_vault(VAULT)
    c.deposit(VAULT, "first", b"the first document")
    start_map = store.stats().map_size

    stop = threading.Event()
    errors: list[str] = []
    rounds = {"journal": 0, "scrape": 0}

    def journal_reader() -> None:
        while not stop.is_set():
            try:
                head = journal.head()
                size = head.checkpoint.size
                index = rounds["journal"] % size
                journal.inclusion(index, size)  # a proof, from stored hashes
                journal.receipt("event", index, head)  # a receipt, checked against the signed root
                if size > 1:
                    journal.consistency(1, size)
                journal.object_receipt(VAULT, "first", 1)
                journal.first_read_index(VAULT, "first", 1)
                journal.read(0, limit=1000)  # a page as ReadJournal serves it (one scan transaction)
                journal.tree.size()
            except Exception:
                errors.append(traceback.format_exc())
            rounds["journal"] += 1

    def scraper() -> None:
        while not stop.is_set():
            try:
                if rounds["scrape"] % 20 == 0:  # now and then the whole way: HTTP, and ReadJournal over gRPC
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
                    if "vaultd_lmdb_map_size_bytes " not in text:
                        errors.append("a scrape had no storage gauges")
                    op.read_journal("", start=0, page_size=100)
                elif "map_size_bytes" not in scrape():  # the daemon's source reports readiness alone on failure
                    errors.append("a scrape had no storage gauges")
            except Exception:
                errors.append(traceback.format_exc())
            rounds["scrape"] += 1

    scrape = srv.daemon.metrics._storage_source
    threads = [threading.Thread(target=journal_reader), threading.Thread(target=scraper)]
    for th in threads:
        th.start()
    try:
        for i in range(28):  # about 28 MiB: the map doubles from 4 MiB to 32 MiB, three times
            c.deposit(VAULT, f"d{i}", os.urandom(MiB))
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert store.stats().map_size >= 8 * start_map
    assert rounds["journal"] > 0 and rounds["scrape"] > 0
    assert not errors, f"{len(errors)} reads failed ({rounds} rounds); the first:\n{errors[0]}"
