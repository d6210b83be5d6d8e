"""Presigned URLs resolved ahead of the transfers that need them, a bounded number at once.

A small file's longest wait is not storage but the API's redirect before it (one round trip
to the API per file). :class:`ResolveAhead` resolves the hrefs of the next files in a pool of
its own (:func:`~pystac_axelglobe.presigned.resolve`, which caches the URLs), in the order the
transfers will want them, so that a transfer usually finds its URL in the cache instead of
waiting for the API. Bounds: :data:`RESOLVE_AHEAD` requests at once, and no URL resolved
more than :data:`WINDOW` files ahead of the transfers begun (so that the URLs of a long
download are not resolved long before their use, when they may have expired).

Each href is resolved once: a transfer that needs a URL whose resolve is under way waits for
it (and gets its error, if it failed: the retries are not done twice); one whose resolve has
not started yet takes it over and resolves at once itself rather than queue behind others.

Example:
    >>> ahead = ResolveAhead(hrefs, auth, timeout=60)  # doctest: +SKIP
    >>> ahead.begin()  # a transfer begins: one more URL resolved ahead  # doctest: +SKIP
    >>> ahead.take(hrefs[0], cancel)  # waits for its resolve; raises its error  # doctest: +SKIP
    >>> url = resolve(hrefs[0], auth=auth)  # now from the cache  # doctest: +SKIP
    >>> ahead.close()  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ._http import Cancelled
from .presigned import PresignedURL, resolve

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

#: Hrefs resolved at once ahead of the transfers (requests to the API in flight, besides
#: those of transfers that resolve for themselves: an expired URL, a resolve not begun yet).
RESOLVE_AHEAD = 16
#: URLs resolved at most this many files ahead of the transfers begun.
WINDOW = 64
#: Seconds between two looks at the cancel event while waiting for a resolve.
POLL = 0.1


class ResolveAhead:
    """Resolve ``hrefs`` in a bounded pool, in their order, for transfers to :meth:`take`.

    Args:
        hrefs: Asset hrefs, in the order their transfers begin (repeats are resolved once).
        auth: The authorisation the resolves use.
        timeout: Seconds each resolve may take at most (``resolve(timeout=)``).
    """

    def __init__(self, hrefs: Iterable[str], auth: AxelGlobeAuth, *, timeout: float) -> None:
        self._waiting = collections.deque(dict.fromkeys(hrefs))
        self._auth, self._timeout = auth, timeout
        size = max(1, min(RESOLVE_AHEAD, len(self._waiting)))
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="axelglobe-resolve")
        self._lock = threading.Lock()
        self._futures: dict[str, Future[PresignedURL]] = {}
        self._submit(WINDOW)

    def _submit(self, n: int) -> None:
        with self._lock:
            for _ in range(min(n, len(self._waiting))):
                href = self._waiting.popleft()
                self._futures[href] = self._pool.submit(resolve, href, auth=self._auth,
                                                        timeout=self._timeout)

    def begin(self) -> None:
        """A transfer begins: resolve the next href ahead (the window moves by one)."""
        self._submit(1)

    def take(self, href: str, cancel: threading.Event) -> bool:
        """Wait for ``href``'s resolve ahead; whether there was one (else resolve it yourself).

        Only the first call for an href waits; it raises what the resolve raised (the error
        the caller's own :func:`resolve` would have raised, after the same retries).

        Raises:
            Cancelled: ``cancel`` was set while waiting.
        """
        with self._lock:
            future = self._futures.pop(href, None)
        if future is None or future.cancel():
            return False  # not begun: the caller resolves now rather than queue for it
        while not concurrent.futures.wait([future], timeout=POLL).done:
            if cancel.is_set():
                raise Cancelled("interrupted")
        future.result()  # raises the resolve's error
        return True

    def close(self) -> None:
        """Drop the resolves not begun; wait for those under way (each ends by its timeout)."""
        with self._lock:
            self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["POLL", "RESOLVE_AHEAD", "WINDOW", "ResolveAhead"]
