"""The token cache file of one credential: private, small, never read or written through a link.

The folder ``<cache_dir>/tokens`` is created ``0700`` and must be a real folder of the
user (not a symbolic link: a link could point the ``0700`` tightening or the token at a
folder elsewhere). The file is read with ``O_NOFOLLOW | O_NONBLOCK`` and only if it is a
regular file of at most :data:`MAX_CACHE_BYTES` holding a JSON object (a FIFO planted
there would block a plain ``open()`` forever, while the lock is held), and written by an
atomic rename of a ``0600`` file created with ``O_EXCL`` (a link at the path is replaced,
never written through). Anything else is read as an empty cache.

Example:
    >>> import tempfile
    >>> cache = CacheFile(Path(tempfile.mkdtemp()) / "tokens", "abc")
    >>> with cache.lock(timeout=10):
    ...     cache.write({"access_token": "t", "expires_at": 2e9})
    ...     cache.read()["access_token"]
    't'
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import filelock

logger = logging.getLogger("pystac_axelglobe.tokens")

#: A cache file larger than this is damaged (a real one is a few hundred bytes).
MAX_CACHE_BYTES = 64 * 1024
#: The keys a cache file may hold; anything else read from one is dropped on the next write.
CACHE_KEYS = ("access_token", "expires_at", "issued_at", "restricted_until", "issued",
              "failed")
_VERSION = 1
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class CacheState(dict[str, Any]):
    """A cache file's content; the repr shows the keys only (the token is a value).

    Traceback printers show locals with their reprs: this one never shows a token.

    Example:
        >>> CacheState(access_token="secret-token", expires_at=1.0)
        CacheState(keys=['access_token', 'expires_at'])
    """

    def __repr__(self) -> str:
        return f"CacheState(keys={sorted(self)})"


def load_json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` parsed as a JSON object, or ``None``: invalid, not an object, nested too deep.

    Example:
        >>> load_json_object(b'{"a": 1}'), load_json_object(b"<html>"), load_json_object(b"[1]")
        ({'a': 1}, None, None)
        >>> load_json_object(b"[" * 100_000) is None  # no RecursionError
        True
    """
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def number(value: Any) -> float:
    """A value read from a cache file as a number: anything but a finite one counts as 0.

    Example:
        >>> number(12), number("12"), number(float("nan")), number(True)
        (12.0, 0.0, 0.0, 0.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


class CacheFile:
    """``<folder>/<name><suffix>`` and its lock ``<folder>/<name>.lock``.

    Args:
        folder: The private folder of the cache files (``<cache_dir>/tokens``).
        name: The file name without suffix (a hash of the credential).
        suffix: The file's suffix; files of one ``name`` share one lock.
    """

    def __init__(self, folder: Path, name: str, suffix: str = ".json") -> None:
        self.folder = folder
        self.path = folder / f"{name}{suffix}"
        self.lock_path = folder / f"{name}.lock"

    def lock(self, timeout: float) -> filelock.BaseFileLock:
        """The lock of the file (not yet acquired), after making sure the folder is private.

        Raises:
            PermissionError: The folder is a symbolic link, another user's, or not a folder,
                or the lock path is not a regular file.
        """
        make_private_folder(self.folder)
        try:
            info = os.lstat(self.lock_path)
        except FileNotFoundError:
            pass
        else:
            # Old filelock versions open with O_TRUNC and follow links: never on a planted one.
            if stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode):
                raise PermissionError(f"the token cache lock {self.lock_path} is not a file")
        # A fresh lock object per acquisition: the provider's thread lock already
        # serialises its threads, and flock() then excludes other processes.
        return filelock.FileLock(self.lock_path, timeout=timeout, mode=0o600)

    def read(self) -> CacheState:
        """The file's content, or empty if it is absent, damaged or not safe to read."""
        return CacheState(self._read())

    def _read(self) -> dict[str, Any]:
        if not _is_private_folder(self.folder):
            return {}
        flags = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return {}
        except OSError as err:  # ELOOP: a symbolic link
            logger.debug("ignoring the token cache %s: %s", self.path, type(err).__name__)
            return {}
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a device: never read
                logger.debug("ignoring the token cache %s: not a regular file", self.path)
                return {}
            data = _read_at_most(fd, MAX_CACHE_BYTES)
        except OSError:
            return {}
        finally:
            os.close(fd)
        state = load_json_object(data) if data is not None else None
        if state is None or state.get("version") != _VERSION:
            return {}
        return state

    def write(self, state: dict[str, Any]) -> None:
        """Replace the file atomically with the known keys of ``state`` (never a secret)."""
        data = json.dumps({"version": _VERSION,
                           **{k: state[k] for k in CACHE_KEYS if k in state}}).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        # 0600 from creation (O_EXCL: never a file or link someone else made), then an
        # atomic rename: readers see the old file or the new one, never half of one.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                     | getattr(os, "O_BINARY", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        """Delete the file (a link there is removed, not its target)."""
        self.path.unlink(missing_ok=True)


def _read_at_most(fd: int, limit: int) -> bytes | None:
    # The content, or None when it is longer than limit.
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None


def _is_private_folder(path: Path) -> bool:
    # A real folder (not a link) of this user: the only kind read from.
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    return not hasattr(os, "getuid") or info.st_uid == os.getuid()


def make_private_folder(path: Path) -> None:
    """Create ``path`` ``0700``, or check that it is a real folder of this user and tighten it.

    Raises:
        PermissionError: ``path`` is a symbolic link, not a folder, or another user's.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "tokens"
        >>> make_private_folder(folder); oct(folder.stat().st_mode & 0o777)
        '0o700'
    """
    # The parents are the user's choice (AXELGLOBE_CACHE_DIR may well be a link); the
    # tokens folder itself is ours. mode applies at creation (minus the umask, which can
    # only remove bits): 0700 from the start.
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    if not hasattr(os, "O_DIRECTORY") or not hasattr(os, "getuid"):  # Windows: no owners
        if not path.is_dir():
            raise PermissionError(f"the token cache folder {path} is not a folder")
        return
    try:
        # O_NOFOLLOW: a link planted in place of the folder is refused, never followed.
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError:
        raise PermissionError(
            f"the token cache folder {path} is a symbolic link or not a folder; remove it "
            "(it is recreated) or set AXELGLOBE_CACHE_DIR to a folder of yours") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            # Its owner could read our token or plant one (a shared /tmp, say): never use it.
            raise PermissionError(
                f"the token cache folder {path} belongs to another user (uid {info.st_uid})")
        if info.st_mode & 0o077:
            # A folder of ours made by something else: tighten it (this folder, by its fd).
            logger.warning("token cache folder %s was readable by others; making it 0700", path)
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


__all__ = ["CACHE_KEYS", "MAX_CACHE_BYTES", "CacheFile", "CacheState", "load_json_object",
           "make_private_folder", "number"]
