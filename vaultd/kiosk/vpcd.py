"""The vpcd socket protocol: how a virtual card talks to the ``vsmartcard-vpcd`` reader driver of pcscd.

pcscd's vpcd driver listens on TCP (port 35963 for the first reader, "Virtual PCD 00 00"); the card
connects to it. Every message is a 2-byte big-endian length followed by that many bytes. A 1-byte
message from the reader is a control message (0 power off, 1 power on, 2 reset, 4 get ATR: only the
last one is answered, with the ATR); any longer message is a command APDU, answered with the response
APDU. Closing the socket is pulling the card out of the reader.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Protocol

__all__ = ["VPCD_PORT", "Card", "VpcdLink", "CTRL_OFF", "CTRL_ON", "CTRL_RESET", "CTRL_ATR"]

log = logging.getLogger(__name__)

VPCD_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
# A short APDU is at most 261 bytes, an extended one 65544; the 2-byte length caps a message anyway.
MAX_MESSAGE = 0xFFFF


class Card(Protocol):
    def atr(self) -> bytes: ...
    def power_on(self) -> None: ...
    def power_off(self) -> None: ...
    def reset(self) -> None: ...
    def process(self, apdu: bytes) -> bytes: ...


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class VpcdLink:
    """Connects a card to a vpcd reader and serves it on a thread until removed.

    ``insert()`` connects (retrying until the reader accepts, up to ``connect_timeout``) and starts
    serving; ``remove()`` closes the socket, which pcscd sees as the card leaving the reader.
    """

    def __init__(self, card: Card, host: str = "127.0.0.1", port: int = VPCD_PORT) -> None:
        self.card = card
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.apdu_count = 0
        # Pulls the card out when the next command APDU with this INS arrives, before answering it:
        # how a test takes the card away in the middle of an operation.
        self.pull_on_ins: int | None = None

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, connect_timeout: float = 10.0) -> None:
        with self._lock:
            if self._sock is not None:
                return
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    sock = socket.create_connection((self.host, self.port), timeout=2.0)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._thread = threading.Thread(target=self._serve, args=(sock,), name="vpcd-card", daemon=True)
            self._thread.start()

    def remove(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            thread, self._thread = self._thread, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.card.power_off()

    def serve_forever(self) -> None:
        """Serves on the calling thread until the reader closes the connection."""
        if self._sock is None:
            raise RuntimeError("insert() first")
        thread = self._thread
        if thread is not None:
            thread.join()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    break
                (length,) = struct.unpack(">H", header)
                msg = _recv_exact(sock, length)
                if msg is None:
                    break
                reply = self._handle(msg)
                if reply is not None:
                    if len(reply) > MAX_MESSAGE:
                        raise ValueError("reply longer than the vpcd protocol allows")
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            pass  # the socket was closed: the card was removed
        finally:
            with self._lock:
                if self._sock is sock:
                    self._sock = None
                    try:
                        sock.close()
                    except OSError:
                        pass

    def _handle(self, msg: bytes) -> bytes | None:
        if len(msg) == 1:
            ctrl = msg[0]
            if ctrl == CTRL_OFF:
                self.card.power_off()
            elif ctrl == CTRL_ON:
                self.card.power_on()
            elif ctrl == CTRL_RESET:
                self.card.reset()
            elif ctrl == CTRL_ATR:
                return self.card.atr()
            else:
                log.warning("vpcd: unknown control message %d", ctrl)
            return None
        self.apdu_count += 1
        if self.pull_on_ins is not None and len(msg) >= 2 and msg[1] == self.pull_on_ins:
            self.pull_on_ins = None
            raise OSError("card pulled out of the reader mid-command")
        return self.card.process(msg)
