"""One file from storage into its ``.part``: the transfer behind each file of ``download()``.

:class:`Transfer` sends attempts until the ``.part`` holds the whole file; each kind of
storage answer has its method (200 the whole file, 206 the rest of it, 403 an expired URL,
416 asked past the end, 429/5xx retried, anything else fails the file). A body is written as
it arrives and cut off when it trickles. The limits are the call's
:class:`~._transfer_budget.Bounds`, spent by one :class:`~._transfer_budget.Budget` per file.

Example:
    >>> _parse_content_range("bytes 100-199/1000")
    (100, 1000)
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import requests
import urllib3.exceptions

from . import presigned as _presigned
from ._ahead import POLL, ResolveAhead
from ._http import Cancelled, GaveUp, Session, deadline, display, timeouts
from ._partfile import Origin, PartFile
from ._plan import Task
from ._progress import Progress
from ._retry import RETRY_STATUSES
from ._transfer_budget import Bounds, Budget
from .errors import AssetError
from .presigned import invalidate, resolve

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = ["Shared", "Transfer"]


@dataclasses.dataclass(frozen=True)
class Shared:
    """What every transfer of one ``download()`` call shares."""

    auth: AxelGlobeAuth
    ahead: ResolveAhead
    slots: threading.BoundedSemaphore  # transfers on the network at once (max_workers)
    bar: Progress
    cancel: threading.Event
    bounds: Bounds


class _TooSlow(urllib3.exceptions.ProtocolError):
    """The body arrived slower than the low-speed limit (counted as a dropped transfer)."""


class Transfer:
    """One file from storage into its locked ``.part``, then into place.

    :meth:`run` sends attempts until the file is whole; each kind of storage answer has its
    method, which returns ``True`` once the file is in place.
    """

    def __init__(self, task: Task, part: PartFile, session: Session, shared: Shared) -> None:
        self.task, self.part, self.session, self.shared = task, part, session, shared
        self.auth, self.bar, self.cancel = shared.auth, shared.bar, shared.cancel
        self.bounds = shared.bounds
        self.where = display(task.href)
        self.origin: Origin | None = None  # the version the .part holds (None: not known)
        self.budget = Budget(shared.bounds, self.where, self.cancel, part.size())
        self.forbidden = 0
        self.unverified = False  # a body without length ended: is that the file's end?
        self.counted_total = 0  # bytes added to the progress bar's total for this file
        self.counted_done = 0  # bytes added to the progress bar's count for this file
        self.started = time.monotonic()  # when the current attempt began

    def run(self) -> None:
        """Attempt until the file is whole, then move it into place; or raise."""
        # Its resolve ahead, under way or done (its error if it failed): then the URL comes
        # from the cache, or is resolved again if it has expired meanwhile.
        self.shared.ahead.take(self.task.href, self.cancel)
        with self._slot():
            self._attempts()
        # Made durable and renamed without holding a slot: the next file's request is
        # already on its way while this one is synced to disk.
        self.part.finish()

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """Hold one of the ``max_workers`` network slots (the wait costs no budget)."""
        slots = self.shared.slots
        while not slots.acquire(timeout=POLL):
            if self.cancel.is_set():
                raise Cancelled("interrupted")
        try:
            self.budget.restart()  # the time without progress counts from here
            yield
        finally:
            slots.release()

    def _attempts(self) -> None:
        """Send attempts until the ``.part`` holds the whole file, or raise."""
        while True:
            if self.cancel.is_set():
                raise Cancelled("interrupted")
            offset = self._offset()
            left = self.budget.left()
            if left <= 0:
                raise GaveUp(f"gave up after {self.budget.failures} failed attempts: no "
                             f"progress for {self.bounds.stall_timeout:g} s")
            presigned = resolve(self.task.href, auth=self.auth,
                                timeout=min(_presigned.RESOLVE_TIMEOUT, left))
            # The whole attempt, however slowly its headers or body trickle, is cut off
            # once the budget's time is up; progress at a useful speed extends it.
            with deadline(self.budget.until) as self.budget.watch:
                response = self._send(presigned.url, offset)
                if response is None:
                    continue
                with response:
                    if self._answer(response, offset):
                        return

    def _offset(self) -> int:
        """Where to continue: the ``.part``'s size, if its version is known."""
        offset = self.part.size()
        if offset and self.origin is None:
            self.origin = self.part.load_origin()
            if self.origin is None:
                # A .part whose version is unknown cannot be trusted: start over.
                self.part.discard()
                offset = 0
        return offset

    def _send(self, url: str, offset: int) -> requests.Response | None:
        """GET from ``offset`` (the answer's headers), or ``None`` after a counted failure."""
        # identity: Range offsets count stored bytes, and the file is saved as stored.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            etag = self.origin.etag if self.origin is not None else None
            if etag and not etag.startswith("W/"):  # weak ETags are not allowed in If-Range
                # If the file has changed meanwhile, storage sends all of it (200).
                headers["If-Range"] = etag
        self.started = time.monotonic()
        try:
            response = self.session.get_plain(
                url, headers, timeouts(self.bounds.connect_timeout, self.bounds.read_timeout,
                                         self.budget.left()))
        except requests.RequestException as err:
            self.budget.fail(self.budget.explain(err, "no answer"))
            return None
        if self.budget.cut_off():
            # Cut off mid-headers, http.client takes the end of the stream for their end.
            response.close()
            self.budget.fail(self.budget.explain(None, "no answer"))
            return None
        return response

    def _answer(self, response: requests.Response, offset: int) -> bool:
        status = response.status_code
        if status == 403:
            return self._on_forbidden()
        if status in RETRY_STATUSES:
            return self._on_retryable(response)
        if status == 416:
            return self._on_unsatisfiable(response, offset)
        if status not in (200, 206):
            return self._on_other(response)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise AssetError(
                f"storage sent {self.where} with Content-Encoding: {encoding[:40]} although "
                "only identity was accepted; refusing to save encoded bytes as the file"
            )
        if status == 200:
            return self._on_full(response)
        return self._on_partial(response, offset)

    def _on_full(self, response: requests.Response) -> bool:
        """200: the whole file, from its first byte (a fresh ``.part``)."""
        total = _int(response.headers.get("Content-Length"))
        if total is None and self.unverified and not response.raw.chunked:
            raise AssetError(
                f"storage sends {self.where} without a Content-Length and ignores Range "
                "requests: there is no telling whether the file arrived whole"
            )
        self.origin = Origin(response.headers.get("ETag"), total)
        self.part.discard()
        self.part.save_origin(self.origin)  # which version, before a byte of it is written
        return self._receive(response, 0, total)

    def _on_partial(self, response: requests.Response, offset: int) -> bool:
        """206: the rest of the file from ``offset``, if it still is the same version."""
        start, total = _parse_content_range(response.headers.get("Content-Range"))
        etag = response.headers.get("ETag")
        if start != offset or self.origin is None or not self.origin.matches(etag, total):
            # Not where we asked, or the file changed on the server since the .part was
            # begun: the .part cannot be trusted; start over.
            why = "bad Content-Range" if start != offset else "the file changed"
            self._restart()
            self.budget.fail(urllib3.exceptions.ProtocolError(why))
            return False
        return self._receive(response, start, total)

    def _on_forbidden(self) -> bool:
        """403: the presigned URL expired (or is about to): forget it, resolve again."""
        self.forbidden += 1
        invalidate(self.task.href)
        if self.forbidden >= self.bounds.max_forbidden:
            raise AssetError(
                f"storage refused the presigned URL {self.bounds.max_forbidden} times (HTTP 403) "
                "even after resolving it again; check your access to this item"
            )
        return False

    def _on_unsatisfiable(self, response: requests.Response, offset: int) -> bool:
        """416: asked from past the end; the ``.part`` is whole if that end is the file's."""
        match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", response.headers.get("Content-Range", ""))
        total = int(match.group(1)) if match else None
        if (total is not None and offset == total and self.origin is not None
                and self.origin.matches(None, total)):
            return self._whole()
        self._restart()  # longer than the file, or another version
        self.budget.fail(urllib3.exceptions.ProtocolError("HTTP 416"))
        return False

    def _on_retryable(self, response: requests.Response) -> bool:
        """429/5xx: back off (``Retry-After`` honoured) and try again."""
        _drop_body(response)
        self.budget.fail(None, response)
        return False

    def _on_other(self, response: requests.Response) -> bool:
        """Any other status: this file fails at once."""
        status = response.status_code
        hint = " (storage refuses Authorization headers)" if status == 400 else ""
        raise AssetError(f"storage answered HTTP {status} for {self.where}{hint}")

    # -- receiving a body ------------------------------------------------------------------

    def _receive(self, response: requests.Response, start: int, total: int | None) -> bool:
        """Append the body to the ``.part``; ``True`` once the file is whole and in place."""
        self.forbidden = 0
        self._count(start, total)
        try:
            self._copy(response)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            # Network trouble only: urllib3 wraps socket errors. A failing write (disk
            # full, permissions) is an OSError and fails this file at once.
            self.budget.progress(self.part.size(), self.started)
            self.budget.fail(self.budget.explain(err, "no useful progress"))
            return False
        if self.budget.cut_off():  # the deadline ended the body: a cut, whatever it looks like
            self.budget.fail(self.budget.explain(None, "no useful progress"))
            return False
        size = self.part.size()
        self.budget.progress(size, self.started)
        if total is None:
            if response.raw.chunked:  # its last chunk arrived: the body is whole
                return self._whole()
            # The connection closed without a length: ask for what follows (a 416 says
            # that was the end) rather than trust that the close was not a cut.
            self.unverified = True
            return False
        if size == total:
            return self._whole()
        if size > total:
            self._restart()
        self.budget.fail(urllib3.exceptions.ProtocolError(f"got {size} of {total} bytes"))
        return False

    def _copy(self, response: requests.Response) -> None:
        """Write the body as it arrives; cut it off when it trickles in too slowly."""
        raw, bounds = response.raw, self.bounds
        window_start, window_bytes = time.monotonic(), 0
        # read1: write whatever has arrived. A plain read(1 MiB) buffers until the MiB is
        # complete and loses that buffer when the connection drops; raw (undecoded) bytes
        # so that Range offsets match the file on disk.
        while chunk := raw.read1(bounds.chunk_size, decode_content=False):
            self.part.write(chunk)
            self.counted_done += len(chunk)
            self.bar.update(len(chunk))
            if self.cancel.is_set():
                raise Cancelled("interrupted")  # keep what arrived for the next run
            window_bytes += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= bounds.low_speed_time:
                if window_bytes < bounds.low_speed_limit * elapsed:
                    raise _TooSlow(f"less than {bounds.low_speed_limit} bytes/s for "
                                   f"{bounds.low_speed_time:g} s")
                # Fast enough: a long transfer keeps its time budget while it flows.
                self.budget.progress(self.part.size(), window_start)
                window_start, window_bytes = time.monotonic(), 0

    def _count(self, start: int, total: int | None) -> None:
        """Keep the progress bar's total and count right for a body starting at ``start``."""
        if total is not None and self.counted_total != total:
            self.bar.add_total(total - self.counted_total)
            self.counted_total = total
        if start != self.counted_done:
            self.bar.update(start - self.counted_done)  # bytes kept, or dropped on a restart
            self.counted_done = start

    def _restart(self) -> None:
        self.part.discard()
        self.origin = None
        self.unverified = False

    def _whole(self) -> bool:
        return True  # moved into place by run(), once its network slot is free


def _drop_body(response: requests.Response, limit: int = 65536) -> None:
    """Reuse the connection if the error body is small; never read a large one."""
    length = _int(response.headers.get("Content-Length"))
    if length is not None and 0 <= length <= limit:
        try:
            response.raw.drain_conn()
        except Exception:  # a broken body only costs the connection
            response.close()


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is None or number >= 0 else None


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` → (start, total or None for ``*``).

    A range shorter than asked for is fine: the transfer loop asks for the rest.
    """
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        raise AssetError(f"storage sent a 206 with an unreadable Content-Range {value!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total
