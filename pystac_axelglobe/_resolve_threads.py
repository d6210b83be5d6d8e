"""The threads that resolve many hrefs at once, for :mod:`pystac_axelglobe.presigned`.

- :func:`side_by_side` (behind ``resolve_many()``): a pool the caller waits for; the first
  failure stops it, and no request outlives the call.
- :class:`Prefetcher` (behind ``prefetch()``): a queue of hrefs and up to ``limit()`` daemon
  threads that resolve them in the order given while a reader goes on. The pool grows from
  its own threads, one at a time, and they end when the queue is empty. An href queued or
  being resolved is not queued again; one whose prefetch failed is not queued again for
  :data:`FAILED_PAUSE` seconds (the read that needs it asks once more and reports the
  error).

What resolving one href means, and the limit, are the front door's: it hands them in as
functions, called at each use, so that setting ``presigned.PREFETCH_CONCURRENCY`` takes
effect at once.

Example:
    >>> side_by_side(str.upper, ["a", "b"], max_workers=2)
    {'a': 'A', 'b': 'B'}
    >>> p = Prefetcher(lambda href, auth, min_validity: None, limit=lambda: 4)
    >>> p.submit([(("me", "a"), "a"), (("me", "a"), "a")], auth=None, min_validity=30)
    1
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ._redact import redact

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

log = logging.getLogger("pystac_axelglobe.presigned")  # the logger users know for resolves

#: Seconds during which an href whose prefetch failed is not prefetched again.
FAILED_PAUSE = 60.0
#: Past this many failed hrefs remembered, a submit forgets those whose pause is over.
FAILED_SWEEP_SIZE = 4096

Key = tuple[str, str]  # (credential, href): the URL cache's key
#: Resolves ``(href, auth, min_validity)`` without waiting for another thread at it.
Resolve = Callable[[str, "AxelGlobeAuth", float], Any]
T = TypeVar("T")


def side_by_side(resolve: Callable[[str], T], hrefs: list[str], max_workers: int,
                 ) -> dict[str, T]:
    """``resolve`` of each href in a pool of ``max_workers`` threads; a failure stops it.

    The first failure cancels the requests not started yet and waits for those in flight
    (each bounded by its timeout), so that no request outlives the call; then the failure
    of the first href in the order given is raised. Ctrl-C returns at once: what is in
    flight then ends on its own, within its bound.

    Example:
        >>> side_by_side(len, ["ab", "c"], max_workers=4)
        {'ab': 2, 'c': 1}
    """
    pool = ThreadPoolExecutor(min(max_workers, len(hrefs)), thread_name_prefix="ag-resolve")
    try:
        futures = {href: pool.submit(resolve, href) for href in hrefs}
        done, _ = concurrent.futures.wait(futures.values(),
                                          return_when=concurrent.futures.FIRST_EXCEPTION)
        if any(future.exception() is not None for future in done):  # none cancelled yet
            pool.shutdown(wait=True, cancel_futures=True)
            for future in futures.values():
                error = None if future.cancelled() else future.exception()
                if error is not None:
                    raise error
        return {href: future.result() for href, future in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Prefetcher:
    """A queue of hrefs and up to ``limit()`` daemon threads resolving them.

    The submitting thread starts one thread at most; each thread that takes an href starts
    the next while hrefs wait, none is idle and the limit allows.

    Args:
        resolve: Resolves one href (its result is cached by it; errors are only logged).
        limit: The most threads, read at each submit and each growth; 0 turns it off.
    """

    def __init__(self, resolve: Resolve, limit: Callable[[], int]) -> None:
        self._resolve, self._limit = resolve, limit
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Key, str, AxelGlobeAuth, float]] = (
            collections.deque())
        self._pending: set[Key] = set()  # queued or being resolved
        # href -> when it may be prefetched again after a failure (the read that needs it
        # asks once more and reports the error; prefetching it again would only repeat it)
        self._failed: dict[Key, float] = {}
        self._threads = 0
        self._busy = 0

    def submit(self, hrefs: Iterable[tuple[Key, str]], auth: AxelGlobeAuth,
               min_validity: float) -> int:
        """Queue ``(key, href)`` pairs not already queued nor paused; how many were queued.

        ``hrefs`` is read under the queue's lock: the caller leaves out those it need not
        resolve (not on the API, already cached) as it yields them.
        """
        if self._limit() <= 0:
            return 0
        queued = 0
        now = time.monotonic()
        with self._lock:
            if len(self._failed) > FAILED_SWEEP_SIZE:
                self._failed = {k: t for k, t in self._failed.items() if t > now}
            for key, href in hrefs:
                if key in self._pending or self._failed.get(key, 0.0) > now:
                    continue
                self._pending.add(key)
                self._queue.append((key, href, auth, min_validity))
                queued += 1
            grow = self._reserve_thread()
        if grow:
            self._start_thread()
        return queued

    def _reserve_thread(self) -> bool:
        """Whether to start one more thread: hrefs wait, none idle, below the limit (locked)."""
        if (self._threads < self._limit()
                and self._threads - self._busy < len(self._queue)):
            self._threads += 1
            return True
        return False

    def _start_thread(self) -> None:
        threading.Thread(target=self._work, name="ag-prefetch", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                key, href, auth, min_validity = self._queue.popleft()
                self._busy += 1
                grow = self._reserve_thread()
            if grow:
                # The pool grows from its own threads, one by one: the reader that submitted
                # the hrefs started one thread, not sixteen, before asking for its own URL.
                self._start_thread()
            try:
                self._resolve(href, auth, min_validity)
            except Exception as err:  # the read that needs it resolves again and reports
                log.debug("prefetch of %s failed: %s", redact(href), redact(str(err)))
                with self._lock:
                    self._failed[key] = time.monotonic() + FAILED_PAUSE
            finally:
                with self._lock:
                    self._busy -= 1
                    self._pending.discard(key)
