"""Deadlines on HTTP exchanges: one watchdog thread shuts down the sockets of overdue requests.

requests' ``timeout=(connect, read)`` bounds each socket operation, not the exchange: a
server that sends a byte every few seconds into a status line, headers or a body never
trips a read timeout, a TLS handshake is bounded by the connect timeout only, and retries
multiply the rest. Inside a
:func:`deadline` block, every connection that a :class:`WatchedAdapter` opens or reads a
response from in that thread is watched; when the time is up, the one watchdog thread of
the process shuts those sockets down, so the blocked read fails at once as a dropped
connection (and a deadline-aware ``Retry`` stops retrying). ``watch.fired`` then tells that
the deadline did it.

Two kinds of users, one mechanism: a token request (:mod:`._token_endpoint`: 90 s, retries
included) and a download or resolve (:mod:`.downloads`, :mod:`.presigned`: the time without
progress, moved on with :meth:`Watch.extend` when bytes arrive at a useful speed).

A watch can also be given up by hand (:meth:`Watch.cancel`, e.g. a page fetched ahead for a
search that was interrupted, in a block of :func:`watching`): its sockets are shut down, and
its thread's requests raise :class:`RequestCancelled`, which urllib3 and requests do not
retry, so the thread is free at once.

A retry's backoff between attempts (up to 30 s of ``Retry-After``) sleeps on the thread's
watch too (:func:`sleep`, called by every policy of :mod:`._retry`): a cancel or a deadline
ends it at once, and the request fails as it would have mid-read, without another attempt.

Example:
    >>> import requests
    >>> session = requests.Session()
    >>> session.mount("http://", WatchedAdapter())
    >>> with deadline(time.monotonic() + 5) as watch:  # doctest: +SKIP
    ...     session.get("http://127.0.0.1:8000/", timeout=(2, 2))
    >>> watch.fired  # doctest: +SKIP
    False
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError
from urllib3.poolmanager import ProxyManager


class RequestCancelled(Exception):
    """A request of a cancelled watch (:meth:`Watch.cancel`): given up, not to be retried.

    Deliberately not an ``OSError`` nor a urllib3 or requests error: those are retried (with
    backoff sleeps), this goes straight up to the code that started the block.
    """


class Watch:
    """The sockets one thread reads within a :func:`deadline` block, and when to cut them.

    Each socket is kept as a duplicate: shutting the duplicate down stops the connection
    (one connection, two descriptors), and urllib3 cannot close and reuse it under us.

    Attributes:
        at: When the deadline passes, on the ``time.monotonic()`` clock (by default never:
            for a block of :func:`watching`, given up by hand).
        fired: Whether it passed while the block was open (the sockets were shut down).
        cancelled: Whether :meth:`cancel` gave it up.

    Example:
        >>> watch = Watch(time.monotonic() + 60)
        >>> 59 < watch.remaining() <= 60, watch.fired
        (True, False)
    """

    def __init__(self, at: float = math.inf) -> None:
        self.at = at
        self.fired = False
        self.cancelled = False
        self.active = True
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        # Set when it fires (a cancel too): a backoff sleeping on it (sleep()) ends at once.
        self._cut = threading.Event()

    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.at - time.monotonic())

    def add(self, sock: Any) -> None:
        """Watch ``sock`` too (shut down at once if the deadline has passed).

        Any object with a ``fileno()`` will do: a plain socket, an ``SSLSocket``, urllib3's
        TLS-in-TLS transport.
        """
        copy = _duplicate(sock)
        if copy is None:  # closed already: nothing left to cut
            return
        with self._lock:
            if self.active and not self.fired:
                self._socks.append(copy)
                return
        if self.fired:
            _shutdown(copy)
        copy.close()

    def extend(self, at: float) -> None:
        """Move the deadline to ``at`` (later), e.g. after progress."""
        if at > self.at:
            self.at = at
            _watchdog.add(self)

    def close(self) -> None:
        """The block has ended: stop watching (the duplicates are closed, not shut down)."""
        with self._lock:
            self.active, socks, self._socks = False, self._socks, []
        for sock in socks:
            sock.close()

    def cancel(self) -> None:
        """Give the block's requests up: as :meth:`expire`, and none of them is retried.

        The request in progress fails at once, and every later one in the block (a retry,
        a new connection) raises :class:`RequestCancelled` before anything is sent. A block
        not begun yet begins cancelled; one already ended is left alone.

        Example:
            >>> watch = Watch()
            >>> watch.cancel()
            >>> with watching(watch):
            ...     check()
            Traceback (most recent call last):
            ...
            pystac_axelglobe._deadline.RequestCancelled: the request was cancelled
        """
        self.cancelled = True  # first: a read failing from here on sees it
        self.expire()

    def check(self) -> None:
        """Raise :class:`RequestCancelled` if :meth:`cancel` gave this watch up."""
        if self.cancelled:
            raise RequestCancelled("the request was cancelled")

    def expire(self) -> None:
        """Shut down every watched socket: a blocked read returns at once."""
        with self._lock:
            if not self.active:  # ended meanwhile: its sockets are others' business now
                return
            self.fired, socks, self._socks = True, self._socks, []
        self._cut.set()
        for sock in socks:
            _shutdown(sock)
            sock.close()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the watch fires: then fail as its requests would.

        Raises:
            RequestCancelled: :meth:`cancel` gave it up (before or during the sleep).
            urllib3.exceptions.ProtocolError: The deadline passed (or :meth:`expire`): as a
                request cut off mid-read fails, so the caller reports it as its timeout.

        Example:
            >>> watch = Watch()
            >>> watch.cancel()
            >>> watch.sleep(30)  # at once, not in 30 s
            Traceback (most recent call last):
            ...
            pystac_axelglobe._deadline.RequestCancelled: the request was cancelled
        """
        if seconds > 0:
            self._cut.wait(seconds)
        self.check()
        if not self.fired and self.remaining() <= 0:
            # Due this instant, the watchdog not round yet: no attempt past the deadline.
            self.expire()
        if self.fired:
            raise ProtocolError("the deadline passed while waiting to retry")


def _duplicate(sock: Any) -> socket.socket | None:
    # socket.dup() exists on plain sockets only (an SSLSocket refuses it): duplicate the
    # descriptor instead, which works for every kind and on Windows too.
    try:
        fd = socket.dup(sock.fileno())
    except (OSError, ValueError):  # closed already
        return None
    try:
        return socket.socket(fileno=fd)
    except OSError:
        socket.close(fd)
        return None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer
        pass


class _Watchdog:
    """One daemon thread that expires watches at their deadlines (started on first use).

    One thread for every deadline of the process: a thread per request (a ``Timer``) would
    cost a thread start on every token request and every file.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also after fork: the thread does not exist in the child, and the condition may be
        # held by a thread that does not exist either.
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        """Expire ``watch`` at ``watch.at`` (again, if it was moved)."""
        with self._cond:
            # Watches whose blocks have ended need no waking up for: drop those in front.
            while self._heap and not self._heap[0][2].active:
                heapq.heappop(self._heap)
            entry = (watch.at, next(self._order), watch)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="axelglobe-deadlines")
                self._thread.start()
            if self._heap[0] is entry:
                # Woken only when it must wake up earlier: two requests per file would
                # otherwise each cost a thread switch for nothing.
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, watch = self._heap[0]
                wait = at - time.monotonic()
                if watch.active and wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            # An extended watch has a later entry in the heap too; this one is stale.
            if watch.active and watch.at <= at:
                watch.expire()


# Reset in place after fork (not replaced): modules that imported it keep the live one.
_watchdog = _Watchdog()
_local = threading.local()

if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_watchdog._reset)


@contextlib.contextmanager
def watching(watch: Watch) -> Iterator[Watch]:
    """Watch this thread's requests through a :class:`WatchedAdapter` with ``watch``.

    The watchdog does not expire it (see :func:`deadline` for that): it is given up by
    hand, from any thread, with :meth:`Watch.cancel` or :meth:`Watch.expire`. The watch
    may be made, and cancelled, before the block begins.

    Example:
        >>> watch = Watch()
        >>> with watching(watch):
        ...     active() is watch
        True
        >>> watch.active, active() is None
        (False, True)
    """
    previous = active()
    _local.watch = watch
    try:
        yield watch
    finally:
        watch.close()
        _local.watch = previous


@contextlib.contextmanager
def deadline(at: float) -> Iterator[Watch]:
    """Cut off this thread's requests through a :class:`WatchedAdapter` at ``at`` (monotonic).

    A request cut off fails as a dropped connection (``requests.ConnectionError`` or
    urllib3's ``ProtocolError``); ``watch.fired`` then tells that the deadline did it. A
    block inside another watches the requests sent inside it; the outer one resumes after.

    Example:
        >>> with deadline(time.monotonic() + 60) as watch:
        ...     active() is watch
        True
        >>> watch.fired, active() is None
        (False, True)
    """
    watch = Watch(at)
    _watchdog.add(watch)
    with watching(watch):
        yield watch


def active() -> Watch | None:
    """The watch of this thread's innermost :func:`deadline` block, if any."""
    return getattr(_local, "watch", None)


def sleep(seconds: float) -> None:
    """Sleep a retry's backoff on this thread's innermost watch (:meth:`Watch.sleep`), if any.

    Outside every block, a plain ``time.sleep``.

    Example:
        >>> with deadline(time.monotonic() + 0.05):
        ...     sleep(30)  # ended by the deadline, not in 30 s
        Traceback (most recent call last):
        ...
        urllib3.exceptions.ProtocolError: the deadline passed while waiting to retry
    """
    watch = active()
    if watch is not None:
        watch.sleep(seconds)
    elif seconds > 0:
        time.sleep(seconds)


def check() -> None:
    """Raise :class:`RequestCancelled` if this thread's innermost watch was cancelled.

    A watched connection calls it before it connects and before it sends.
    """
    watch = active()
    if watch is not None:
        watch.check()


class _WatchedHTTPConnection(HTTPConnection):
    # The watch this connection's socket was last given to: a response read on a pooled
    # connection within the same block costs no second duplicate.
    _watched_by: Watch | None = None

    def _new_conn(self) -> socket.socket:
        check()  # a retry of a cancelled request: not even a connection
        sock = super()._new_conn()
        # Before TLS (and before a proxy's CONNECT): a server that trickles its handshake
        # is cut off too.
        self._watched_by = active()
        if self._watched_by is not None:
            self._watched_by.add(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        check()  # a retry on a pooled connection: nothing sent
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        # Every response, on a new or a pooled connection, is read under the thread's watch.
        watch = active()
        if watch is not None and watch is not self._watched_by and self.sock is not None:
            watch.add(self.sock)
            self._watched_by = watch
        try:
            return super().getresponse()
        except Exception as err:
            # Cut off on purpose: what would be a dropped connection (and retried) is not.
            if watch is not None and watch.cancelled:
                raise RequestCancelled("the request was cancelled") from err
            raise


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


# Named as urllib3's own: urllib3 puts the pool's class name in its error messages.
class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_HTTPConnectionPool.__name__ = _HTTPConnectionPool.__qualname__ = "HTTPConnectionPool"
_HTTPSConnectionPool.__name__ = _HTTPSConnectionPool.__qualname__ = "HTTPSConnectionPool"
_WATCHED_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` whose connections obey :func:`deadline` (direct or via HTTP proxy).

    Without a deadline block it behaves as a plain ``HTTPAdapter``. Through a SOCKS proxy
    the connections are not watched (its pools are its own); a deadline-aware ``Retry``
    still ends their retries.

    Example:
        >>> WatchedAdapter(max_retries=0).max_retries.total
        0
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """As requests' own, with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """As requests' own; an HTTP(S) proxy's connections are watched too."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


__all__ = ["RequestCancelled", "Watch", "WatchedAdapter", "active", "check", "deadline",
           "sleep", "watching"]
