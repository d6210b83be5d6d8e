"""Presigned URLs resolved ahead of the transfers that need them, a bounded number at once.

A small file's longest wait is not storage but the API's redirect before it (one round trip
to the API per file). :class:`ResolveAhead` starts every href's
:func:`~pystac_axelglobe.presigned.resolve` in a pool of its own as soon as the download
begins, in the order the transfers will want them, so that a transfer usually finds its URL
in the cache instead of waiting for the API. The pool is bounded (:data:`RESOLVE_AHEAD`
requests at once) and each href is resolved once: a transfer that needs a URL whose resolve
is under way waits for it (and gets its error, if it failed: the retries are not done
twice); one whose resolve has not started yet takes it over and resolves at once itself
rather than queue behind others.

Example:
    >>> ahead = ResolveAhead(hrefs, auth, timeout=60)  # doctest: +SKIP
    >>> ahead.take(hrefs[0], cancel)  # the resolve's error, if it failed  # doctest: +SKIP
    >>> url = resolve(hrefs[0], auth=auth)  # now from the cache  # doctest: +SKIP
    >>> ahead.close()  # doctest: +SKIP
"""

from __future__ import annotations

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
#: Seconds between two looks at the cancel event while waiting for a resolve.
POLL = 0.1


class ResolveAhead:
    """Resolve ``hrefs`` in a bounded pool, in their order, for transfers to :meth:`take`.

    Args:
        hrefs: Asset hrefs, in the order they will be needed (repeats are resolved once).
        auth: The authorisation the resolves use.
        timeout: Seconds each resolve may take at most (``resolve(timeout=)``).
        workers: Resolves at once; default :data:`RESOLVE_AHEAD`.
    """

    def __init__(self, hrefs: Iterable[str], auth: AxelGlobeAuth, *, timeout: float,
                 workers: int | None = None) -> None:
        unique = list(dict.fromkeys(hrefs))
        size = max(1, min(RESOLVE_AHEAD if workers is None else workers, len(unique)))
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="axelglobe-resolve")
        self._lock = threading.Lock()
        self._futures: dict[str, Future[PresignedURL]] = {
            href: self._pool.submit(resolve, href, auth=auth, timeout=timeout)
            for href in unique
        }

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
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["POLL", "RESOLVE_AHEAD", "ResolveAhead"]
