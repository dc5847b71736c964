"""Calls from several Python threads at once: the GIL is released during large work, results stay
right, and a hasher shared between threads neither deadlocks nor loses updates."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from vaultd import crypto


@pytest.mark.timeout(60)
def test_shared_hasher_from_threads() -> None:
    block = os.urandom(1 << 20)
    h = crypto.Sha256Hasher()
    b = crypto.Blake3Hasher()

    def work() -> None:
        for _ in range(10):
            h.update(block)
            b.update(block)
            h.digest()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.digest() == hashlib.sha256(block * 40).digest()
    assert b.digest() == crypto.blake3(block * 40)


@pytest.mark.timeout(60)
def test_ingest_and_hash_while_other_threads_run() -> None:
    data = [os.urandom(3 << 20) for _ in range(4)]
    dedup, key = os.urandom(32), os.urandom(32)
    ticks = 0
    stop = threading.Event()

    def ticker() -> None:  # pure Python: progresses only while the GIL is free
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=ticker)
    t.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            hashers = [crypto.Sha256Hasher() for _ in data]
            results = list(pool.map(lambda i: crypto.ingest(data[i], dedup, key, b"p", hasher=hashers[i]), range(4)))
    finally:
        stop.set()
        t.join()
    for d, chunks, hs in zip(data, results, hashers):
        assert b"".join(crypto.open_chunks(key, dedup, b"p", [c.chunk_id for c in chunks], [c.nonce for c in chunks], [c.sealed for c in chunks])) == d  # type: ignore[misc]
        assert hs.digest() == hashlib.sha256(d).digest()
    assert ticks > 0


def test_thread_count_is_settable_and_bounded() -> None:
    from vaultd.errors import InvalidArgument

    before = crypto.num_threads()
    try:
        crypto.set_num_threads(1)
        assert crypto.num_threads() == 1
        data = os.urandom(4 << 20)
        one = crypto.chunk_boundaries(data, 4096, 16384, 65536)
        crypto.set_num_threads(3)
        assert crypto.num_threads() == 3
        assert crypto.chunk_boundaries(data, 4096, 16384, 65536) == one
        with pytest.raises(InvalidArgument):
            crypto.set_num_threads(0)
    finally:
        crypto.set_num_threads(before)
    probed = {"aes", "pclmulqdq", "avx", "avx2", "vaes", "vpclmulqdq", "sha", "sse4.1", "avx512f"}
    assert set(crypto.cpu_features()) <= probed
