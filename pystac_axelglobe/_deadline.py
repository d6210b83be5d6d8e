"""An overall deadline for one HTTP exchange, retries included.

requests' ``timeout=(connect, read)`` bounds each socket operation, not the exchange: a
server that sends a byte every few seconds never trips a 30 s read timeout, and urllib3's
retries multiply the rest. :class:`Deadline` bounds the whole: while it is active in a
thread, every connection that a :class:`DeadlineAdapter` opens in that thread is watched,
and when the time is up a timer shuts those sockets down, so the blocked read fails at once
(urllib3 then raises, and a deadline-aware ``Retry`` stops retrying).

Example:
    >>> import requests
    >>> session = requests.Session()
    >>> session.mount("http://", DeadlineAdapter())
    >>> with Deadline(5.0) as deadline:  # doctest: +SKIP
    ...     session.get("http://127.0.0.1:8000/", timeout=(2, 2))
    >>> deadline.expired  # doctest: +SKIP
    False
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

_active = threading.local()


class Deadline:
    """A time limit on everything sent through a :class:`DeadlineAdapter` in this thread.

    Args:
        seconds: The limit, from entering the ``with`` block.

    Example:
        >>> with Deadline(60.0) as d:
        ...     0 < d.remaining() <= 60.0
        True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: When it ends, on the ``time.monotonic()`` clock.
        self.at = time.monotonic() + seconds
        #: Whether the time ran out (sockets were shut down).
        self.expired = False
        self._lock = threading.Lock()
        # Duplicates of the watched sockets: shutting one down stops the original (same
        # connection), and a duplicate cannot be closed and reused under us by urllib3.
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        """Seconds left (0 when expired)."""
        return max(0.0, self.at - time.monotonic())

    def __enter__(self) -> Deadline:
        self.at = time.monotonic() + self.seconds
        _active.deadline = self
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()
        _active.deadline = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        try:
            copy = sock.dup()
        except OSError:
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(copy)
                return
        _shut(copy)
        copy.close()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def active() -> Deadline | None:
    """The deadline active in this thread, if any."""
    return getattr(_active, "deadline", None)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer or by urllib3
        pass


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = active()
        if deadline is not None:
            # Before TLS: a server that trickles its handshake is cut off too.
            deadline.watch(sock)
        return sock


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections obey the :class:`Deadline` of their thread.

    Without an active deadline it behaves as a plain ``HTTPAdapter``. Connections through an
    HTTP(S) proxy are watched too (through SOCKS they are not; a deadline-aware ``Retry``
    still stops their retries).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """As ``HTTPAdapter.init_poolmanager``, with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """As ``HTTPAdapter.proxy_manager_for``; an HTTP(S) proxy's connections are watched."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKS: its pools are its own
            manager.pool_classes_by_scheme = _WATCHED
        return manager


_WATCHED = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


__all__ = ["Deadline", "DeadlineAdapter", "active"]
