"""``download()``: asset files that resume, never half-write, never follow planted links.

Files go to ``{directory}/{item_id}/{basename of the href}``. Each one streams into
``{name}.part`` (locked, created without following links: :mod:`._partfile`) and is renamed
into place once whole. Presigned URLs come from :func:`~pystac_axelglobe.presigned.resolve`,
resolved ahead of the transfers, many at once (:mod:`._ahead`): a far API's round trip is not
paid before each file. ``max_workers`` files are on the network at once (slots); a file is
synced to disk and renamed after it has left its slot, while the next one transfers.

The rooms: the arguments are checked and every file named before anything is sent
(:mod:`._plan`, :mod:`._items`); each file is transferred by :mod:`._transfer` within the
budget of :mod:`._transfer_budget`, into a ``.part`` of :mod:`._partfile`; one progress bar
(:mod:`._progress`) counts the bytes of all of them.

(The module is not called ``download.py``: a submodule named like the function would replace
``pystac_axelglobe.download`` once imported.)

Bounds (module constants, read when a call starts; tests shorten them): every request has
connect and read timeouts (:data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`); a body slower
than :data:`LOW_SPEED_LIMIT` bytes/s over :data:`LOW_SPEED_TIME` seconds is cut off; a file
gives up after :data:`STALL_TIMEOUT` seconds without progress, after the ``DOWNLOAD_RETRY``
attempts in a row without progress, or after :data:`MAX_ATTEMPTS` failed attempts in all.

Example:
    >>> import pystac_axelglobe as ag
    >>> local = ag.download(item, assets=["tci"], directory="out")  # doctest: +SKIP
    >>> local[0].assets["tci"].href                 # doctest: +SKIP
    '/home/me/out/00129aa5-…/2021-12-23_00129aa5-…_tci.tif'
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac

from . import presigned as _presigned
from ._ahead import ResolveAhead
from ._http import Session
from ._items import as_items
from ._partfile import Folder, claim
from ._plan import Task, check_arguments, download_root, is_complete, name_files
from ._progress import Progress
from ._redact import redact
from ._retry import download_retry
from ._transfer import Shared, Transfer
from ._transfer_budget import Bounds
from .auth import default_auth
from .errors import AssetError, DownloadError

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
    plan = name_files(as_items(items, caller="download()"), keys, root)

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
    bounds = _bounds()
    workers = min(max_workers, len(todo))
    tty = sys.stderr is not None and sys.stderr.isatty()
    bar = Progress(progress and tty)
    session = _storage_session(workers)
    cancel = threading.Event()
    errors: dict[str, BaseException] = {}
    # Every URL is resolved ahead, concurrently, while the transfers run: the API's redirect
    # leaves each file's critical path. Its resolves end within the time a file may go
    # without progress, so a transfer never waits for one longer than for its own.
    ahead = ResolveAhead([t.href for t in todo], auth,
                         timeout=min(_presigned.RESOLVE_TIMEOUT, bounds.stall_timeout))
    shared = Shared(auth, ahead, threading.BoundedSemaphore(workers), bar, cancel, bounds)
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


def _bounds() -> Bounds:
    """The module's constants as they are now: the limits of the call that starts."""
    return Bounds(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                  low_speed_limit=LOW_SPEED_LIMIT, low_speed_time=LOW_SPEED_TIME,
                  stall_timeout=STALL_TIMEOUT, max_attempts=MAX_ATTEMPTS,
                  max_forbidden=MAX_FORBIDDEN, retry=DOWNLOAD_RETRY, chunk_size=CHUNK_SIZE)


def _fetch(task: Task, root: Path, root_fd: int | None, session: Session, shared: Shared,
           overwrite: bool) -> None:
    """Download one file into place (the worker of :func:`download`)."""
    shared.ahead.begin()
    folder = Folder.open_in(root_fd, root, task.item_id)
    try:
        part = claim(folder, task.dest.name, overwrite=overwrite, cancel=shared.cancel,
                     patience=2 * shared.bounds.stall_timeout)
        if part is not None:  # else complete: another thread or process finished it
            try:
                if overwrite:
                    part.discard()  # a .part may be from an older version of the file
                Transfer(task, part, session, shared).run()
            finally:
                part.release()
        if not folder.in_place(root_fd):
            # Written where the folder was opened; its name now leads elsewhere (a link?),
            # so the path download() returns would not be this file.
            raise AssetError(f"{folder.path} was replaced while downloading into it; "
                             "remove what is there now and run the download again")
    finally:
        folder.close()
