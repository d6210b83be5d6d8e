"""Files of a download, created without following links, one writer per file across processes.

A file ``{name}`` of an item folder is written as ``{name}.part`` beside it and renamed into
place once whole; ``{name}.part.json`` records which version of the remote file the
``.part`` holds (:class:`Origin`). Guarantees, against anything planted in the folder:

- the item folder is opened relative to the download directory and never through a
  symbolic link (``O_NOFOLLOW``), and every name in it is used relative to that open
  folder (``dir_fd``), so swapping the folder for a link mid-download changes nothing;
- ``.part`` and ``.part.json`` are opened with ``O_NOFOLLOW`` and must be regular files with
  a single link: a symbolic link, hard link, FIFO or socket found under such a name is
  removed (never written through) and a fresh file is created with ``O_EXCL``;
- the ``.part`` itself is the lock (``filelock.lock_descriptor``: ``flock`` on Unix): the
  thread or process that holds it is the only writer of ``{name}``, its ``.part`` and its
  ``.part.json``. A waiter that gets the lock checks that the name still is the file it
  locked (the holder may have renamed it into place) and otherwise starts over. So there
  are no lock files to leave behind, and a process killed mid-transfer releases its lock.

Example:
    >>> folder = Folder.open_in(root_fd, root, "item-1")  # doctest: +SKIP
    >>> part = claim(folder, "a.tif", overwrite=False, cancel=stop, patience=9)  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import filelock

from ._http import Cancelled
from .errors import AssetError

log = logging.getLogger(__name__)

#: Seconds between two looks at a lock another thread or process holds.
LOCK_POLL = 0.05
#: How often a claim may find its ``.part`` renamed or replaced by others before giving up.
MAX_CLAIMS = 100

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: Without dir_fd support (Windows), names are joined to the folder's path instead.
_DIR_FD = os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd
_PART_FLAGS = os.O_RDWR | os.O_APPEND | _NONBLOCK | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class Origin:
    """Which version of the remote file a ``.part`` holds the beginning of.

    Kept beside it as ``{name}.part.json`` so that a later run resumes a ``.part`` only into
    the same version: a file that changed on the server meanwhile (another size or ETag)
    would otherwise be completed from two versions into a corrupt file of the right size.
    """

    etag: str | None
    size: int | None

    def matches(self, etag: str | None, size: int | None) -> bool:
        """Whether an answer with this ETag and total size is the same version."""
        if self.size is not None and size is not None and size != self.size:
            return False
        return not (self.etag and etag and etag != self.etag)


class Folder:
    """An item folder inside the download directory, open without following links."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open_in(cls, root_fd: int | None, root: Path, name: str) -> Folder:
        """Create (if needed) and open ``root/name``, refusing a link or a non-folder there."""
        path = root / name
        if root_fd is None or not _DIR_FD:
            path.mkdir(exist_ok=True)
            if path.is_symlink() or not path.is_dir():
                raise _not_a_folder(path)
            return cls(path, None)
        try:
            os.mkdir(name, 0o777, dir_fd=root_fd)
        except FileExistsError:
            pass
        try:
            fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=root_fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise _not_a_folder(path) from None
            raise
        return cls(path, fd)

    def in_place(self, root_fd: int | None) -> bool:
        """Whether the folder's name still leads to this very folder (not swapped meanwhile)."""
        if self.fd is None or root_fd is None:
            return self.path.is_dir() and not self.path.is_symlink()
        try:
            found = os.stat(self.path.name, dir_fd=root_fd, follow_symlinks=False)
        except OSError:
            return False
        mine = os.fstat(self.fd)
        return (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        """Close the folder's descriptor."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    # -- names relative to the folder -------------------------------------------------------

    def _name(self, name: str) -> str:
        return name if self.fd is not None else str(self.path / name)

    def lstat(self, name: str) -> os.stat_result | None:
        """``lstat`` of ``name`` (no link followed), ``None`` if there is nothing."""
        try:
            return os.stat(self._name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def is_file(self, name: str) -> bool:
        """Whether ``name`` is a regular file (a link to one is not)."""
        found = self.lstat(name)
        return found is not None and stat.S_ISREG(found.st_mode)

    def unlink(self, name: str) -> None:
        """Remove ``name`` (a link is removed, not its target); nothing there is fine."""
        try:
            os.unlink(self._name(name), dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def open_file(self, name: str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` of ``name`` in the folder, never following a link."""
        return os.open(self._name(name), flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self.fd)

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` in the folder, replacing ``dst`` (a link, not its target)."""
        os.replace(self._name(src), self._name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def sync(self) -> None:
        """Make renames in the folder durable (where folders can be synced)."""
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError:  # some filesystems cannot sync folders
                pass


def _not_a_folder(path: Path) -> AssetError:
    return AssetError(
        f"{path} is a symbolic link or not a folder; download() writes only into real "
        "folders inside the download directory: remove it or choose another directory"
    )


class PartFile:
    """The locked ``{name}.part`` of one file; its holder is the file's only writer."""

    def __init__(self, folder: Folder, name: str, fd: int, created: bool) -> None:
        self.folder, self.name, self.fd = folder, name, fd
        self.part, self.meta = f"{name}.part", f"{name}.part.json"
        self.created = created
        self._done = False

    def size(self) -> int:
        """Bytes in the ``.part``."""
        return os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        """Append ``data`` (the offset is the file's end)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def discard(self) -> None:
        """Forget the bytes and the version: the ``.part`` starts empty."""
        self.folder.unlink(self.meta)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)

    def load_origin(self) -> Origin | None:
        """The version recorded in ``.part.json``; ``None`` if absent, unreadable or planted."""
        try:
            fd = self.folder.open_file(self.meta, os.O_RDONLY | _NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size > 4096:
                return None
            data = json.loads(os.read(fd, 4096).decode("utf-8"))
            etag, size = data.get("etag"), data.get("size")
        except (OSError, ValueError, AttributeError, RecursionError):
            return None
        finally:
            os.close(fd)
        if not (etag is None or isinstance(etag, str)) or not (
            size is None or (isinstance(size, int) and not isinstance(size, bool))
        ):
            return None
        return Origin(etag, size)

    def save_origin(self, origin: Origin) -> None:
        """Record ``origin`` in a fresh ``.part.json`` (whatever was there is removed first)."""
        self.folder.unlink(self.meta)
        fd = self.folder.open_file(self.meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            text = json.dumps({"etag": origin.etag, "size": origin.size})
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Move the whole ``.part`` into place under the final name (atomic)."""
        os.fsync(self.fd)
        # The record first: a crash in between leaves a .part without one (fetched again
        # next time), never a stray .part.json beside a complete file.
        self.folder.unlink(self.meta)
        try:
            self.folder.rename(self.part, self.name)
        except OSError as err:  # e.g. a folder under the final name
            raise AssetError(f"cannot move {self.folder.path / self.part} into place as "
                             f"{self.name}: {err.strerror}; remove what is there") from None
        self.folder.sync()
        self._done = True

    def release(self) -> None:
        """Unlock and close; an empty ``.part`` (nothing to resume) is removed first."""
        try:
            if not self._done and self.size() == 0:
                self.folder.unlink(self.meta)
                self.folder.unlink(self.part)
        finally:
            os.close(self.fd)  # closing releases the lock


def claim(folder: Folder, name: str, *, overwrite: bool, cancel: threading.Event,
          patience: float) -> PartFile | None:
    """Lock ``{name}.part`` for writing ``name``; ``None`` if ``name`` is (now) complete.

    Waits while another thread or process holds the ``.part``, as long as that holder makes
    progress (the ``.part`` grows at least every ``patience`` seconds).

    Raises:
        AssetError: The holder stopped making progress, or a folder is where the ``.part``
            should be.
        Cancelled: ``cancel`` was set while waiting.
    """
    part = f"{name}.part"
    for _ in range(MAX_CLAIMS):
        if not overwrite and folder.is_file(name):
            return None
        fd, created = _open_part(folder, part)
        try:
            _wait_for_lock(fd, folder.path / part, cancel, patience)
            mine = os.fstat(fd)
            found = folder.lstat(part)
            if found is None or (found.st_dev, found.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)  # the previous holder moved it into place or removed it
                continue
            if mine.st_nlink != 1:  # hard-linked to a file elsewhere: never write through it
                folder.unlink(part)
                os.close(fd)
                continue
            if not overwrite and folder.is_file(name):  # completed while we waited
                PartFile(folder, name, fd, created).release()  # removes it if empty
                return None
        except BaseException:
            os.close(fd)
            raise
        return PartFile(folder, name, fd, created)
    raise AssetError(f"{folder.path / part} kept being replaced by other downloads; "
                     "try again")


def _open_part(folder: Folder, part: str) -> tuple[int, bool]:
    """Open (creating it if needed) a regular ``.part``; whatever else is there is removed."""
    for _ in range(MAX_CLAIMS):
        try:
            # O_NONBLOCK: a FIFO planted under the name must not block the open. O_APPEND:
            # every write continues the .part, wherever it was left.
            return folder.open_file(part, _PART_FLAGS | os.O_CREAT | os.O_EXCL), True
        except FileExistsError:
            pass
        try:
            fd = folder.open_file(part, _PART_FLAGS)
        except FileNotFoundError:
            continue  # removed meanwhile: create it
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EOPNOTSUPP):
                folder.unlink(part)  # a symbolic link (or a socket): removed, not followed
                continue
            if err.errno == errno.EISDIR:
                raise AssetError(f"{folder.path / part} is a folder; remove it") from None
            raise
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd, False
        os.close(fd)
        folder.unlink(part)  # a FIFO or a device: not ours to write into
    raise AssetError(f"{folder.path / part} kept being replaced by other downloads; "
                     "try again")


def _wait_for_lock(fd: int, path: Path, cancel: threading.Event, patience: float) -> None:
    size, since = -1, time.monotonic()
    while not _try_lock(fd, path):
        now_size = os.fstat(fd).st_size
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since > patience:
            raise AssetError(
                f"another download (thread or process) is writing {path} and made no "
                f"progress for {patience:g} s; try again when it has finished"
            )
        if cancel.wait(LOCK_POLL):
            raise Cancelled("interrupted")


def _try_lock(fd: int, path: Path) -> bool:
    try:
        return bool(filelock.lock_descriptor(fd, blocking=False))
    except OSError as err:
        if err.errno not in _NO_LOCKS:
            raise
        # Some network filesystems cannot lock: downloading alone into them still works.
        if path.parent not in _warned:
            _warned.add(path.parent)
            log.warning("files in %s cannot be locked (%s): concurrent downloads into this "
                        "folder are not safe", path.parent, err.strerror)
        return True


_NO_LOCKS = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", -1)}
_warned: set[Path] = set()


__all__ = ["Folder", "Origin", "PartFile", "claim"]
