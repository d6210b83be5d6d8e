"""The files a provider shares with the other processes of the machine, under one lock.

Per credential (token URL, client id, audience), under ``<cache_dir>/tokens``:

- ``<hash>.json``: the token, its expiry and a restriction in force (``restricted_until``);
- ``<hash>.issued``: the request log (times of recent token requests, a failure to share),
  kept apart so that a logout forgets the token but not how often one was asked for;
- ``<hash>.lock``: the lock under which a process reads, fetches and writes (single flight).

Each file is read and written safely by :class:`~._token_cache.CacheFile`; a
:class:`TokenStore` adds the lock's time limit, the memory-only mode when the folder cannot
be used, and :func:`token_from_state`, the only way a token comes out of a file.

Example:
    >>> import tempfile
    >>> store = TokenStore(Settings.from_env(client_id="me", cache_dir=tempfile.mkdtemp()),
    ...                    lock_timeout=10)
    >>> lock = store.acquire()
    >>> store.write({"access_token": "t", "expires_at": 2e9}, None)
    True
    >>> lock.release(); token_from_state(store.read(), now=2e9 - 3600).expires_at
    2000000000.0
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock

from ._token import MAX_TOKEN_LIFETIME, Token, header_safe
from ._token_cache import CacheFile, CacheState, number
from ._token_restriction import restriction_of
from .errors import APIRequestError
from .settings import ENV_CACHE_DIR, Settings

# The tokens' own logger: one name to configure for everything about tokens.
logger = logging.getLogger("pystac_axelglobe.tokens")


class TokenStore:
    """The cache file, the request log and their lock, for one credential.

    Args:
        settings: The credential (token URL, client id, audience) and ``cache_dir``.
        lock_timeout: How long to wait for another process that holds the lock.
    """

    def __init__(self, settings: Settings, lock_timeout: float) -> None:
        key = "\n".join((settings.token_url, settings.client_id or "", settings.audience))
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        #: The folder of token cache files (created 0700).
        self.folder: Path = Path(settings.cache_dir) / "tokens"
        self.cache = CacheFile(self.folder, digest)
        self.log = CacheFile(self.folder, digest, ".issued")
        #: The token cache file (0600; token and expiry, no secret).
        self.path: Path = self.cache.path
        self.lock_timeout = lock_timeout
        #: False once the folder proved unusable: tokens are then kept in memory only.
        self.ok = True
        self._token_url = settings.token_url

    def acquire(self) -> filelock.BaseFileLock | None:
        """The lock, acquired; ``None`` if the folder cannot be used (memory-only from now).

        Raises:
            APIRequestError: Another process held the lock for :attr:`lock_timeout` s.
        """
        try:
            lock = self.cache.lock(self.lock_timeout)
            lock.acquire()
        except filelock.Timeout as err:  # before OSError: it is one
            raise APIRequestError(
                f"another process has held the token cache lock {self.cache.lock_path} for "
                f"{self.lock_timeout:.0f} s; try again, or point {ENV_CACHE_DIR} at "
                "another folder", url=self._token_url) from err
        except OSError as err:
            self.disable(err)
            return None
        return lock

    def read(self) -> CacheState:
        """The cache file's content (empty if absent, damaged or unsafe)."""
        return self.cache.read()

    def read_log(self) -> CacheState:
        """The request log's content (empty if absent, damaged or unsafe)."""
        return self.log.read()

    def write(self, state: dict[str, Any], log: dict[str, Any] | None) -> bool:
        """Write the cache file (and the log, unless ``None``) under the lock; whether it did."""
        try:
            self.cache.write(state)
            if log is not None:
                self.log.write(log)
        except OSError as err:
            self.disable(err)
            return False
        return True

    def update(self, change: Callable[[CacheState], None], doing: str) -> None:
        """Take the lock, read the cache file and let ``change`` write it; failures are logged.

        For what must not fail a call: clearing, sharing, recording a restriction.
        """
        if not self.ok:
            return
        try:
            with self.cache.lock(self.lock_timeout):
                change(self.read())
        except (OSError, filelock.Timeout) as err:
            logger.warning("could not %s in %s: %s", doing, self.path, err)

    def forget_token(self, now: float) -> None:
        """Remove the token from the file; a restriction in force stays recorded."""
        def forget(state: CacheState) -> None:
            if restriction_of(state, now):
                self.cache.write({"restricted_until": state["restricted_until"]})
            else:
                self.cache.remove()

        self.update(forget, "clear the token")

    def disable(self, err: OSError) -> None:
        """Keep tokens in memory only from now on (the folder cannot be used), and say so."""
        self.ok = False
        logger.warning("cannot use the token cache %s (%s); tokens are kept in memory only, so "
                       "each process fetches its own. Set %s to a writable folder.",
                       self.folder, err, ENV_CACHE_DIR)


def token_from_state(state: dict[str, Any], now: float) -> Token | None:
    r"""The token a cache file's ``state`` holds, or ``None``: absent, damaged or planted.

    Example:
        >>> token_from_state({"access_token": "t", "expires_at": 2e9}, now=2e9 - 60).expires_at
        2000000000.0
        >>> token_from_state({"access_token": "t\r\nX: 1", "expires_at": 2e9}, now=2e9 - 60)
    """
    token, expires_at = state.get("access_token"), number(state.get("expires_at"))
    # An expiry no token endpoint would grant is a damaged file, not a token to trust
    # (and beyond year 9999 it cannot even be printed); a token that cannot go into a
    # header (CR/LF) is planted, not fetched.
    if (not isinstance(token, str) or not header_safe(token) or not expires_at
            or expires_at > now + MAX_TOKEN_LIFETIME):
        return None
    return Token(token, expires_at=expires_at, issued_at=number(state.get("issued_at")))


__all__ = ["TokenStore", "token_from_state"]
