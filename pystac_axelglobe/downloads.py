"""``download()``: asset files that resume, never half-write, never follow planted links.

Files go to ``{directory}/{item_id}/{basename of the href}``. Each one streams into
``{name}.part`` (locked, created without following links: :mod:`._partfile`) and is renamed
into place once whole. Presigned URLs come from :func:`~pystac_axelglobe.presigned.resolve`,
resolved ahead of the transfers, many at once (:mod:`._ahead`): a far API's round trip is not
paid before each file. ``max_workers`` files are on the network at once (slots); a file is
synced to disk and renamed after it has left its slot, while the next one transfers.

(The module is not called ``download.py``: a submodule named like the function would replace
``pystac_axelglobe.download`` once imported.)

Bounds (module constants; tests shorten them): every request has connect and read timeouts
(:data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`); a body slower than :data:`LOW_SPEED_LIMIT`
bytes/s over :data:`LOW_SPEED_TIME` seconds is cut off; a file gives up after
:data:`STALL_TIMEOUT` seconds without progress, after the ``DOWNLOAD_RETRY`` attempts in a
row without progress, or after :data:`MAX_ATTEMPTS` failed attempts in all.

Example:
    >>> import pystac_axelglobe as ag
    >>> local = ag.download(item, assets=["tci"], directory="out")  # doctest: +SKIP
    >>> local[0].assets["tci"].href                 # doctest: +SKIP
    '/home/me/out/00129aa5-…/2021-12-23_00129aa5-…_tci.tif'
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
import requests
import urllib3.exceptions

from . import presigned as _presigned
from ._ahead import POLL, ResolveAhead
from ._http import (
    Cancelled,
    GaveUp,
    Session,
    Watch,
    count_failure,
    deadline,
    display,
    timeouts,
)
from ._partfile import Folder, Origin, PartFile, claim
from ._plan import Task, as_items, check_arguments, download_root, is_complete, name_files
from ._redact import redact
from ._retry import RETRY_STATUSES, download_retry
from .auth import default_auth
from .errors import AssetError, DownloadError
from .presigned import invalidate, resolve

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = [
    "CONNECT_TIMEOUT",
    "LOW_SPEED_LIMIT",
    "LOW_SPEED_TIME",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT",
    "STALL_TIMEOUT",
    "download",
]

#: Bytes per read/write while streaming a file (large chunks: fewer syscalls, more throughput).
CHUNK_SIZE = 1024 * 1024
#: Seconds to wait for a connection to storage.
CONNECT_TIMEOUT = 10.0
#: Seconds storage may stay silent (before its answer, or within the body).
READ_TIMEOUT = 30.0
#: A body arriving slower than this many bytes per second ...
LOW_SPEED_LIMIT = 1024
#: ... over this many seconds is cut off (and retried), as curl's ``--speed-limit/-time``.
LOW_SPEED_TIME = 30.0
#: Seconds a file may go without progress (its ``.part`` growing) before it is given up,
#: whatever the attempts: a silent, trickling or Range-ignoring server fails within this.
STALL_TIMEOUT = 90.0
#: Failed attempts one file may have in one call, progress or not.
MAX_ATTEMPTS = 30
#: How many 403s from storage in a row (each followed by a fresh redirect) before giving up.
MAX_FORBIDDEN = 3
#: Retry policy of each storage transfer: the attempts in a row that make no progress.
DOWNLOAD_RETRY = download_retry()


def download(
    items: Any,
    assets: str | Sequence[str] | None = None,
    directory: str | os.PathLike[str] = ".",
    *,
    overwrite: bool = False,
    max_workers: int = 8,
    progress: bool = True,
    auth: AxelGlobeAuth | None = None,
) -> list[pystac.Item]:
    """Download assets to ``{directory}/{item_id}/{basename of the asset href}``.

    Each file streams into ``{name}.part`` and is renamed into place only once complete and
    of the announced size, so the final name never holds a partial file. A dropped transfer
    continues with a ``Range`` request from the bytes already written; 5xx, 429 and dropped
    connections are retried with backoff (``Retry-After`` honoured), bounded in attempts and
    in time (see the module's constants); an expired presigned URL (403 from storage) is
    resolved again. ``Authorization`` is never sent to the storage host. Files download
    concurrently, their URLs resolved ahead (up to 16 at once); one progress bar counts
    bytes.

    Re-running the same call resumes: a file whose final name exists is skipped without any
    request (pass ``overwrite=True`` to fetch it again; the old file stays until the new one
    is complete), and a ``.part`` left by an interrupted run is continued. Beside each
    ``.part`` a small ``{name}.part.json`` records the version (ETag, size) it holds: a
    ``.part`` is continued only if the server still has that version, else it starts over.
    A failed asset does not stop the others; its ``.part`` is kept for the next run to
    resume. ``KeyboardInterrupt`` (Ctrl-C) stops every transfer at its next chunk and is
    raised again; complete files are in place, the others are left as ``.part`` files.

    Any number of threads and processes may download the same items into the same directory
    at once: each file has one writer at a time (the others wait, then skip it). Nothing is
    written through a symbolic link planted inside ``directory``.

    Args:
        items: A ``pystac.Item``, a list of them, a ``pystac.ItemCollection`` or a
            ``pystac_client.ItemSearch``.
        assets: Asset keys to fetch (a key or a list); ``None`` fetches all. Every key must
            exist in every item.
        directory: Where to save; created if missing.
        overwrite: Download files even when they already exist.
        max_workers: Files on the network at once (also the storage connection pool
            size). Their URLs are resolved ahead meanwhile, up to 16 at once.
        progress: Show a progress bar (only when stderr is a terminal).
        auth: The authorisation; default: one ``AxelGlobeAuth()`` from the environment.

    Returns:
        Clones of the items whose downloaded assets' hrefs are absolute local paths.

    Raises:
        ConfigurationError: Bad arguments (unknown asset keys, wrong item types, item ids
            or file names that cannot be folder or file names); raised before anything is
            sent.
        DownloadError: Some assets failed; ``failures`` maps ``item_id/asset_key`` to the
            reason and ``exceptions`` to the exception. The other assets were downloaded.

    Example:
        >>> items = client.search(bbox=[133, 35, 137, 36], max_items=2)  # doctest: +SKIP
        >>> local = download(items, assets=["tci", "msi_udm"], directory="out")  # doctest: +SKIP
    """
    keys = check_arguments(assets, directory, max_workers, overwrite, progress)
    root = download_root(directory)
    plan = name_files(as_items(items), keys, root)

    unique: dict[Path, Task] = {}
    for _, tasks in plan:
        for task in tasks:
            unique.setdefault(task.dest, task)
    todo = [t for t in unique.values() if overwrite or not is_complete(root, t)]
    errors: dict[str, BaseException] = {}
    if todo:
        errors = _run(todo, root, auth or default_auth(), overwrite=overwrite,
                      max_workers=max_workers, progress=progress)
    if errors:
        # Keep the order the assets were asked for.
        ordered = {t.name: errors[t.name] for _, ts in plan for t in ts if t.name in errors}
        raise DownloadError({name: redact(str(err)) or type(err).__name__
                             for name, err in ordered.items()}, exceptions=ordered)

    result = []
    for item, tasks in plan:
        clone = item.clone()
        for task in tasks:
            clone.assets[task.key].href = str(task.dest)
        result.append(clone)
    return result


# --- running the transfers ------------------------------------------------------------------

def _run(todo: list[Task], root: Path, auth: AxelGlobeAuth, *, overwrite: bool,
         max_workers: int, progress: bool) -> dict[str, BaseException]:
    """Download ``todo`` in a thread pool; the exception of each task that failed."""
    root.mkdir(parents=True, exist_ok=True)
    root_fd = _open_root(root)
    workers = min(max_workers, len(todo))
    tty = sys.stderr is not None and sys.stderr.isatty()
    bar = _Progress(progress and tty)
    session = _storage_session(workers)
    cancel = threading.Event()
    errors: dict[str, BaseException] = {}
    # Every URL is resolved ahead, concurrently, while the transfers run: the API's redirect
    # leaves each file's critical path. Its resolves end within the time a file may go
    # without progress, so a transfer never waits for one longer than for its own.
    ahead = ResolveAhead([t.href for t in todo], auth,
                         timeout=min(_presigned.RESOLVE_TIMEOUT, STALL_TIMEOUT))
    shared = _Shared(auth, ahead, threading.BoundedSemaphore(workers), bar, cancel)
    # Twice as many threads as network slots: while one file is synced to disk and renamed
    # (or waits for its URL, or for another process's lock), another one transfers.
    pool = ThreadPoolExecutor(max_workers=min(2 * workers, len(todo)),
                              thread_name_prefix="axelglobe-download")
    try:
        futures = {
            pool.submit(_fetch, t, root, root_fd, session, shared, overwrite): t
            for t in todo
        }
        for future, task in futures.items():
            err = future.exception()
            if err is not None:
                errors[task.name] = err
    except BaseException:
        # Ctrl-C (or any error here): stop the transfers at their next chunk instead of
        # waiting for every file to finish; their .part files stay for the next run.
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        ahead.close()
        session.close()
        bar.close()
        if root_fd is not None:
            os.close(root_fd)
    return errors


def _open_root(root: Path) -> int | None:
    if os.open not in os.supports_dir_fd:
        return None
    return os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                   | getattr(os, "O_CLOEXEC", 0))


def _storage_session(pool_size: int) -> Session:
    # Its requests go through Session.get_plain: no Authorization header (storage refuses
    # any), no ~/.netrc credentials, no cookies.
    return Session(pool_size=pool_size)


@dataclasses.dataclass(frozen=True)
class _Shared:
    """What every transfer of one :func:`download` call shares."""

    auth: AxelGlobeAuth
    ahead: ResolveAhead
    slots: threading.BoundedSemaphore  # transfers on the network at once (max_workers)
    bar: _Progress
    cancel: threading.Event


def _fetch(task: Task, root: Path, root_fd: int | None, session: Session, shared: _Shared,
           overwrite: bool) -> None:
    """Download one file into place (the worker of :func:`download`)."""
    shared.ahead.begin()
    folder = Folder.open_in(root_fd, root, task.item_id)
    try:
        part = claim(folder, task.dest.name, overwrite=overwrite, cancel=shared.cancel,
                     patience=2 * STALL_TIMEOUT)
        if part is not None:  # else complete: another thread or process finished it
            try:
                if overwrite:
                    part.discard()  # a .part may be from an older version of the file
                _Transfer(task, part, session, shared).run()
            finally:
                part.release()
        if not folder.in_place(root_fd):
            # Written where the folder was opened; its name now leads elsewhere (a link?),
            # so the path download() returns would not be this file.
            raise AssetError(f"{folder.path} was replaced while downloading into it; "
                             "remove what is there now and run the download again")
    finally:
        folder.close()


class _Progress:
    """One thread-safe byte counter over all files (tqdm, or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024,
                             desc="download", dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

    def update(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _TooSlow(urllib3.exceptions.ProtocolError):
    """The body arrived slower than the low-speed limit (counted as a dropped transfer)."""


class _Budget:
    """How much longer one file may keep failing: in a row, in all, and in time.

    Progress (the ``.part`` longer than ever before in this call, by bytes that came at
    least at :data:`LOW_SPEED_LIMIT`) renews the attempts in a row and the time. Attempts
    that only rewrite the same bytes (a server ignoring ``Range``) or that trickle renew
    nothing, so such a server is given up after :data:`STALL_TIMEOUT` seconds at most.
    """

    def __init__(self, where: str, cancel: threading.Event, size: int) -> None:
        self.where, self.cancel = where, cancel
        self.retry = DOWNLOAD_RETRY.new()
        self.failures = 0
        self.best = size
        self.until = time.monotonic() + STALL_TIMEOUT
        self.watch: Watch | None = None  # the current attempt's deadline, moved with until

    def restart(self) -> None:
        """Count the time without progress from now (the transfer begins)."""
        self.until = time.monotonic() + STALL_TIMEOUT

    def cut_off(self) -> bool:
        """Whether the current attempt's deadline has cut its connection."""
        return self.watch is not None and self.watch.fired

    def explain(self, error: Exception | None, cut: str) -> Exception:
        """The error to count: ``error``, unless the deadline cut the attempt (``cut`` says)."""
        if error is None or self.cut_off():
            return urllib3.exceptions.ProtocolError(f"{cut} within {STALL_TIMEOUT:g} s")
        return error

    def left(self) -> float:
        """Seconds before the file is given up unless it makes progress."""
        return self.until - time.monotonic()

    def progress(self, size: int, since: float) -> None:
        """Note the ``.part``'s size after an attempt begun at ``since`` (monotonic)."""
        gained, self.best = size - self.best, max(size, self.best)
        if gained > 0 and gained >= LOW_SPEED_LIMIT * (time.monotonic() - since):
            self.retry = DOWNLOAD_RETRY.new()
            self.until = time.monotonic() + STALL_TIMEOUT
            if self.watch is not None:
                self.watch.extend(self.until)

    def fail(self, error: Exception | None, response: requests.Response | None = None,
             ) -> None:
        """Count a failed attempt and wait its backoff; raise when the budget is spent."""
        self.failures += 1
        if self.failures >= MAX_ATTEMPTS:
            reason = f"HTTP {response.status_code}" if response is not None else str(error)
            raise GaveUp(f"gave up after {self.failures} failed attempts (at most "
                         f"{MAX_ATTEMPTS} per file): {redact(reason)}") from None
        self.retry = count_failure(self.retry, self.where, error, response, cancel=self.cancel,
                                   until=self.until,
                                   until_means=f"no progress for {STALL_TIMEOUT:g} s")


class _Transfer:
    """One file from storage into its locked ``.part``, then into place.

    :meth:`run` sends attempts until the file is whole; each kind of storage answer has its
    method, which returns ``True`` once the file is in place.
    """

    def __init__(self, task: Task, part: PartFile, session: Session, shared: _Shared) -> None:
        self.task, self.part, self.session, self.shared = task, part, session, shared
        self.auth, self.bar, self.cancel = shared.auth, shared.bar, shared.cancel
        self.where = display(task.href)
        self.origin: Origin | None = None  # the version the .part holds (None: not known)
        self.budget = _Budget(self.where, self.cancel, part.size())
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
                             f"progress for {STALL_TIMEOUT:g} s")
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
                url, headers, timeouts(CONNECT_TIMEOUT, READ_TIMEOUT, self.budget.left()))
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
        if self.forbidden >= MAX_FORBIDDEN:
            raise AssetError(
                f"storage refused the presigned URL {MAX_FORBIDDEN} times (HTTP 403) "
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
        raw = response.raw
        window_start, window_bytes = time.monotonic(), 0
        # read1: write whatever has arrived. A plain read(1 MiB) buffers until the MiB is
        # complete and loses that buffer when the connection drops; raw (undecoded) bytes
        # so that Range offsets match the file on disk.
        while chunk := raw.read1(CHUNK_SIZE, decode_content=False):
            self.part.write(chunk)
            self.counted_done += len(chunk)
            self.bar.update(len(chunk))
            if self.cancel.is_set():
                raise Cancelled("interrupted")  # keep what arrived for the next run
            window_bytes += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= LOW_SPEED_TIME:
                if window_bytes < LOW_SPEED_LIMIT * elapsed:
                    raise _TooSlow(f"less than {LOW_SPEED_LIMIT} bytes/s for "
                                   f"{LOW_SPEED_TIME:g} s")
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
