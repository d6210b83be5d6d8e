"""The one watchdog (``_deadline``) that bounds token requests and downloads alike.

Token requests and downloads share one watchdog thread that shuts down the sockets of
overdue requests (the hostile-server tests of each, in ``test_tokens_hostile.py`` and
``test_download_hostile.py``, show the bounds a user sees). These tests pin what the
sharing needs: a socket watched from before its TLS handshake, TLS sockets cut like plain
ones, nested blocks (a token request inside a download), pooled connections left alone
after their block, and a forked child. The sockets are real, on 127.0.0.1.
"""

from __future__ import annotations

import multiprocessing
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystac_axelglobe import _deadline, _http
from pystac_axelglobe.errors import APIRequestError
from pystac_axelglobe.settings import Settings
from pystac_axelglobe.tokens import TokenProvider


class TricklingTLS:
    """Accepts TCP connections and answers each ClientHello with a TLS record, byte by byte.

    The record header announces 16 KiB; then one byte follows every 0.1 s. A TLS client
    waits for the whole record; CPython bounds the handshake by the socket's (connect)
    timeout in all, so only a deadline shorter than that shows it is watched from the start.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.origin = f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # TimeoutError included: look at stop again
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                conn.recv(65536)  # the ClientHello
                conn.sendall(b"\x16\x03\x03\x40\x00")  # handshake record of 16 KiB follows
                while not self.stop.wait(0.1):
                    conn.sendall(b"\x02")
            except OSError:
                pass

    def __enter__(self) -> TricklingTLS:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickling_tls() -> Iterator[TricklingTLS]:
    with TricklingTLS() as server:
        yield server


def _watchdog_threads() -> int:
    return sum(t.name == "axelglobe-deadlines" for t in threading.enumerate())


@pytest.mark.timeout(60)
def test_token_endpoint_trickling_its_tls_handshake_is_cut_at_the_deadline(
    tmp_path: Path, trickling_tls: TricklingTLS
) -> None:
    settings = Settings.from_env(client_id="client-1", client_secret="s3cret",
                                 token_url=f"{trickling_tls.origin}/oauth/token",
                                 api_url="https://127.0.0.1:9/stac", cache_dir=tmp_path)
    # A connect timeout (which bounds the handshake) far beyond the deadline: only a watch
    # set on the socket before TLS ends this within the deadline.
    provider = TokenProvider(settings, timeout=(30, 1), deadline=2)
    started = time.monotonic()
    with pytest.raises(APIRequestError, match="did not answer client 'client-1' within 2 s"):
        provider.token()
    assert time.monotonic() - started < 20  # not one 30 s handshake
    assert trickling_tls.connections >= 1
    assert _watchdog_threads() == 1  # the same watchdog as downloads, not a thread per request


def test_a_tls_socket_is_watched_and_cut_like_a_plain_one() -> None:
    # A pooled HTTPS connection is watched again in each block, by its TLS socket, which
    # cannot be dup()'ed as a plain socket can; the peer still sees the connection cut.
    a, b = socket.socketpair()
    tls = ssl.create_default_context().wrap_socket(a, do_handshake_on_connect=False,
                                                   server_hostname="storage.example")
    try:
        b.settimeout(20)
        with _deadline.deadline(time.monotonic() + 0.2) as watch:
            watch.add(tls)
            assert b.recv(1) == b""  # cut at the deadline, not after 20 s
        assert watch.fired
    finally:
        tls.close()
        b.close()


def test_an_inner_deadline_hands_the_thread_back_to_the_outer_one() -> None:
    # A token request inside a download's block has its own deadline; afterwards the
    # download's requests are watched by the download's deadline again.
    a, b = socket.socketpair()
    try:
        a.settimeout(20)
        with _http.deadline(time.monotonic() + 0.5) as outer:
            with _deadline.deadline(time.monotonic() + 60) as inner:
                assert _deadline.active() is inner
            assert _deadline.active() is outer
            outer.add(a)
            assert a.recv(1) == b""
        assert outer.fired and not inner.fired
        assert _deadline.active() is None
    finally:
        a.close()
        b.close()


def test_an_ended_block_leaves_its_sockets_alone() -> None:
    # A pooled connection outlives the block that watched it: the block's end must neither
    # cut it then nor at the deadline.
    a, b = socket.socketpair()
    try:
        with _deadline.deadline(time.monotonic() + 0.1) as watch:
            watch.add(a)
        time.sleep(0.3)
        a.sendall(b"x")
        b.settimeout(5)
        assert b.recv(1) == b"x" and not watch.fired
    finally:
        a.close()
        b.close()


def _cut_in_child(out: multiprocessing.SimpleQueue[bool]) -> None:
    a, b = socket.socketpair()
    a.settimeout(20)
    with _deadline.deadline(time.monotonic() + 0.2) as watch:
        watch.add(a)
        out.put(a.recv(1) == b"" and watch.fired)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
@pytest.mark.timeout(60)
def test_the_watchdog_works_in_a_forked_child() -> None:
    with _deadline.deadline(time.monotonic() + 60):  # the parent's thread runs ...
        ctx = multiprocessing.get_context("fork")
        out: multiprocessing.SimpleQueue[bool] = ctx.SimpleQueue()
        child = ctx.Process(target=_cut_in_child, args=(out,))
        child.start()  # ... the child's is started anew
        child.join(30)
    assert child.exitcode == 0 and out.get() is True
