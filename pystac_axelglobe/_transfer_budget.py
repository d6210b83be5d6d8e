"""How long one file of :func:`~pystac_axelglobe.downloads.download` may keep failing.

:class:`Bounds` are the call's limits, read from the constants of
:mod:`pystac_axelglobe.downloads` when the call starts (so a test or a user who changes
them changes the next call). :class:`Budget` spends them for one file: attempts in a row
without progress (the ``retry`` policy), attempts in all, and the time without progress.

Example:
    >>> import threading
    >>> from pystac_axelglobe._retry import download_retry
    >>> bounds = Bounds(connect_timeout=10, read_timeout=30, low_speed_limit=1024,
    ...                 low_speed_time=30, stall_timeout=90, max_attempts=30,
    ...                 max_forbidden=3, retry=download_retry(), chunk_size=1 << 20)
    >>> budget = Budget(bounds, "storage.example/a.tif", threading.Event(), size=0)
    >>> 0 < budget.left() <= 90
    True
"""

from __future__ import annotations

import dataclasses
import threading
import time

import requests
import urllib3.exceptions
from urllib3.util.retry import Retry

from ._http import GaveUp, Watch, count_failure
from ._redact import redact

__all__ = ["Bounds", "Budget"]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The limits of one ``download()`` call (see the constants of :mod:`.downloads`)."""

    connect_timeout: float
    read_timeout: float
    low_speed_limit: int
    low_speed_time: float
    stall_timeout: float
    max_attempts: int
    max_forbidden: int
    retry: Retry  # the attempts in a row that make no progress
    chunk_size: int


class Budget:
    """How much longer one file may keep failing: in a row, in all, and in time.

    Progress (the ``.part`` longer than ever before in this call, by bytes that came at
    least at ``low_speed_limit``) renews the attempts in a row and the time. Attempts that
    only rewrite the same bytes (a server ignoring ``Range``) or that trickle renew nothing,
    so such a server is given up after ``stall_timeout`` seconds at most.
    """

    def __init__(self, bounds: Bounds, where: str, cancel: threading.Event, size: int) -> None:
        self.bounds, self.where, self.cancel = bounds, where, cancel
        self.retry = bounds.retry.new()
        self.failures = 0
        self.best = size
        self.until = time.monotonic() + bounds.stall_timeout
        self.watch: Watch | None = None  # the current attempt's deadline, moved with until

    def restart(self) -> None:
        """Count the time without progress from now (the transfer begins)."""
        self.until = time.monotonic() + self.bounds.stall_timeout

    def cut_off(self) -> bool:
        """Whether the current attempt's deadline has cut its connection."""
        return self.watch is not None and self.watch.fired

    def explain(self, error: Exception | None, cut: str) -> Exception:
        """The error to count: ``error``, unless the deadline cut the attempt (``cut`` says)."""
        if error is None or self.cut_off():
            return urllib3.exceptions.ProtocolError(
                f"{cut} within {self.bounds.stall_timeout:g} s")
        return error

    def left(self) -> float:
        """Seconds before the file is given up unless it makes progress."""
        return self.until - time.monotonic()

    def progress(self, size: int, since: float) -> None:
        """Note the ``.part``'s size after an attempt begun at ``since`` (monotonic)."""
        gained, self.best = size - self.best, max(size, self.best)
        if gained > 0 and gained >= self.bounds.low_speed_limit * (time.monotonic() - since):
            self.retry = self.bounds.retry.new()
            self.until = time.monotonic() + self.bounds.stall_timeout
            if self.watch is not None:
                self.watch.extend(self.until)

    def fail(self, error: Exception | None, response: requests.Response | None = None,
             ) -> None:
        """Count a failed attempt and wait its backoff; raise when the budget is spent."""
        self.failures += 1
        most = self.bounds.max_attempts
        if self.failures >= most:
            reason = f"HTTP {response.status_code}" if response is not None else str(error)
            raise GaveUp(f"gave up after {self.failures} failed attempts (at most "
                         f"{most} per file): {redact(reason)}") from None
        self.retry = count_failure(
            self.retry, self.where, error, response, cancel=self.cancel, until=self.until,
            until_means=f"no progress for {self.bounds.stall_timeout:g} s")
