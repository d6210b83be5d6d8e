"""Access tokens: one token per credential per machine, and never a restricted client.

AxelGlobe restricts clients that ask for tokens "unnecessarily frequently". A
:class:`TokenProvider` therefore keeps each token in three places and asks the token
endpoint only when none of them can serve:

1. memory (no I/O at all while the token is fresh: the per-request fast path, here);
2. a cache file per (token URL, client id, audience) under ``AXELGLOBE_CACHE_DIR``, read
   and written under a file lock so that every thread, process and dask worker on the
   machine shares one token and one fetch (the slow path, :mod:`._token_flight`, over the
   files of :mod:`._token_store`);
3. the token endpoint, over a private session with retries, within
   :data:`DEFAULT_DEADLINE` seconds in all, its answer distrusted (:mod:`._token_endpoint`),
   or instead a **token source** set with :func:`set_token_source` (a dask worker, which
   has no secret, asks the dask client; :mod:`._token_source`).

Before a token request is sent, three rooms may refuse it: a restriction in force
(HTTP 429 or 403 seen by any process: :class:`~pystac_axelglobe.errors.RestrictedError`;
:mod:`._token_restriction`), a failure held for :data:`FAILURE_HOLD` s, and the budget of
:data:`MAX_TOKEN_REQUESTS` per :data:`TOKEN_REQUEST_WINDOW` s counted across processes
(:class:`~pystac_axelglobe.errors.AuthenticationError` saying until when;
:mod:`._token_budget`). This module is the front door: the provider, one per credential
per process (:meth:`TokenProvider.shared`), and the names callers import.

Example:
    >>> provider = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
    >>> headers = {"Authorization": f"Bearer {provider.token().access_token}"}  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from urllib3.util.retry import Retry

from ._retry import RESTRICTION_THRESHOLD, parse_retry_after, token_retry
from ._token import MAX_TOKEN_LIFETIME, Token
from ._token_budget import FAILURE_HOLD, MAX_TOKEN_REQUESTS, TOKEN_REQUEST_WINDOW
from ._token_endpoint import MAX_TOKEN_RESPONSE
from ._token_flight import DEFAULT_REFRESH_FRACTION, DEFAULT_REFRESH_MARGIN, Flight
from ._token_restriction import restriction_of
from ._token_source import _SOURCES as _SOURCES  # tests look the sources up here
from ._token_source import TokenSource, credential_key, set_token_source
from ._token_store import token_from_state
from .errors import ConfigurationError, RestrictedError
from .settings import ENV_CLIENT_SECRET, Settings

#: (connect, read) timeouts of each socket operation of a token request.
DEFAULT_TIMEOUT = (10.0, 30.0)
#: The limit of one token request, in seconds: retries, backoff and a trickling answer
#: included (a silent endpoint fails in 1.5 minutes, not 5 x 30 s plus backoff).
DEFAULT_DEADLINE = 90.0

# Every provider alive in this process, so that a forked child can renew their locks.
_PROVIDERS: weakref.WeakSet[TokenProvider] = weakref.WeakSet()
_SHARED: dict[tuple[str, str, str, str, str], TokenProvider] = {}
_SHARED_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child: renew.
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for provider in list(_PROVIDERS):
        provider._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class TokenProvider:
    """Valid bearer tokens for one credential, fetched as rarely as the API allows.

    Use :meth:`shared` to get the process-wide provider of a credential; every
    :class:`~pystac_axelglobe.auth.AxelGlobeAuth` does. Thread-safe, fork-safe, and
    coordinated with other processes through the cache file at :attr:`cache_path`.

    Args:
        settings: Credentials and URLs (default: :meth:`Settings.from_env`). The client id
            is required now; the secret only when a token has to be fetched.
        refresh_margin: Refresh when fewer seconds than this remain. Default:
            ``min(300, lifetime / 4)``, so day-long tokens refresh 5 minutes early and
            4-second tokens 1 second early.
        clock: Epoch-seconds clock (tests pass a fake one).
        retry: Retry policy of token requests (default: ``_retry.token_retry()``).
        timeout: (connect, read) seconds of each socket operation (:data:`DEFAULT_TIMEOUT`).
        deadline: Seconds one token request may take, retries included
            (:data:`DEFAULT_DEADLINE`).
        max_token_requests: Tokens requested per ``token_request_window`` seconds beyond
            the refreshes of expiring ones (:data:`MAX_TOKEN_REQUESTS`,
            :data:`TOKEN_REQUEST_WINDOW`).
        token_request_window: See ``max_token_requests``.

    Example:
        >>> provider = TokenProvider(Settings.from_env(client_id="me", client_secret="s"))
        >>> provider.cache_path.suffix
        '.json'
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        refresh_margin: float | None = None,
        clock: Callable[[], float] = time.time,
        retry: Retry | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_token_requests: int = MAX_TOKEN_REQUESTS,
        token_request_window: float = TOKEN_REQUEST_WINDOW,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        if not self.settings.client_id:
            self.settings.require_credentials()  # raises, naming the missing variables
        _check_limits(refresh_margin, timeout, deadline, max_token_requests,
                      token_request_window)
        self.client_id: str = self.settings.client_id or ""
        self._margin = refresh_margin
        # The state and slow path; the fast path of token() reads its current token.
        self._flight = Flight(self.settings, margin=refresh_margin, clock=clock,
                              retry=retry if retry is not None else token_retry(),
                              timeout=timeout, deadline=deadline,
                              max_requests=max_token_requests, window=token_request_window)
        #: The folder of token cache files (created 0700).
        self.cache_folder: Path = self._flight.store.folder
        #: The token cache file of this credential (0600; token and expiry, no secret).
        self.cache_path: Path = self._flight.store.path
        self._lock = threading.RLock()
        _PROVIDERS.add(self)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def shared(cls, settings: Settings) -> TokenProvider:
        """The one provider of this credential in this process (one memory cache).

        Keyed by (token URL, client id, audience, cache folder, secret): auth objects built
        with the same settings share a token without even reading the cache file. Settings
        without a secret (an unpickled auth, a dask worker's own auth) get the provider of
        the same credential that has one, if this process holds it.

        Example:
            >>> s = Settings.from_env(client_id="me", client_secret="s")
            >>> TokenProvider.shared(s) is TokenProvider.shared(s)
            True
        """
        base = (*credential_key(settings), os.fspath(settings.cache_dir))
        # The key distinguishes secrets without keeping them in clear.
        secret = settings.client_secret
        key = (*base, hashlib.sha256(secret.encode()).hexdigest() if secret else "")
        with _SHARED_LOCK:
            provider = None
            if not secret:
                provider = next((p for k, p in _SHARED.items() if k[:4] == base and k[4]), None)
            provider = provider or _SHARED.get(key)
            if provider is None:
                provider = _SHARED[key] = cls(settings)
            return provider

    def __reduce__(self) -> tuple[Any, ...]:
        # Locks do not pickle, and the secret must not travel: rebuild from the settings
        # without it (the receiving side reads AXELGLOBE_CLIENT_SECRET).
        fields = {f.name: getattr(self.settings, f.name)
                  for f in dataclasses.fields(self.settings)}
        fields["client_secret"] = None
        options = {"timeout": self.timeout, "deadline": self.deadline,
                   "max_token_requests": self.max_token_requests,
                   "token_request_window": self.token_request_window}
        return (_unpickle_provider, (fields, self._margin, options))

    def _after_fork(self) -> None:
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return (f"TokenProvider(client_id={self.client_id!r}, "
                f"token_url={self.settings.token_url!r}, cache_path={str(self.cache_path)!r})")

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds of each socket operation of a token request."""
        return self._flight.timeout

    @property
    def deadline(self) -> float:
        """Seconds one token request may take, retries included."""
        return self._flight.deadline

    @property
    def max_token_requests(self) -> int:
        """Tokens requested per :attr:`token_request_window` beyond expiring ones' refreshes."""
        return self._flight.budget.max_requests

    @property
    def token_request_window(self) -> float:
        """Seconds over which :attr:`max_token_requests` counts."""
        return self._flight.budget.window

    # -- public API ---------------------------------------------------------------------

    def token(self) -> Token:
        """A valid token: from memory (no I/O), else the cache file, else the token endpoint.

        Raises:
            RestrictedError: AxelGlobe restricts this client and no valid token is cached.
            AuthenticationError: The token endpoint rejected the credentials or answered
                no usable token, or the token budget (:data:`MAX_TOKEN_REQUESTS`) is spent.
            ConfigurationError: A token must be fetched but no secret is configured.
            APIRequestError: The token endpoint kept failing (5xx, no connection, no
                answer within the deadline).

        Example:
            >>> TokenProvider.shared(Settings.from_env()).token().expires_at  # doctest: +SKIP
            1767225600.0
        """
        flight = self._flight
        current = flight.current
        if current is not None:
            now = flight.clock()
            if now < current[1]:
                return current[0]  # the fast path: fresh token in memory, no I/O, no lock
            if now < current[0].expires_at and (now < flight.hold_until
                                                or flight.restriction.in_force(now)):
                return current[0]  # a refresh failed recently; the token still works
        with self._lock:
            return flight.obtain(failed=None)

    def refresh(self, failed: str) -> Token:
        """A new token after the API rejected ``failed`` with 401.

        Fetches only if ``failed`` is still the current token in memory and in the cache
        file: N threads (or processes) that saw one token fail cause one fetch, and each
        token causes at most one. Fetches count against the token budget.

        Example:
            >>> p = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
            >>> p.refresh(p.token().access_token)  # doctest: +SKIP
        """
        with self._lock:
            return self._flight.obtain(failed=failed)

    def clear(self) -> None:
        """Forget the token (logout), in memory and in the cache file.

        A recorded restriction and the log of recent token requests are kept: forgetting
        them would only prolong the one and let logout/login loops defeat the other.

        Example:
            >>> TokenProvider.shared(Settings.from_env()).clear()  # doctest: +SKIP
        """
        with self._lock:
            self._flight.forget()

    def record_restriction(self, until: float, *, status: int | None = None) -> RestrictedError:
        """Remember that AxelGlobe restricts this client until ``until`` (epoch seconds).

        For a restriction seen on the API (HTTP 429 with a long ``Retry-After``) as well as
        on the token endpoint: it goes into memory and the cache file, so that neither this
        process (:meth:`check_restriction`) nor others (on their next look at the cache)
        send anything before it ends. Returns the error to raise.

        Example:
            >>> p = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
            >>> raise p.record_restriction(time.time() + 60, status=429)  # doctest: +SKIP
        """
        with self._lock:
            return self._flight.record_restriction(until, status)

    def cached(self) -> tuple[Token | None, float]:
        """What the cache file holds, read without a lock or a request (``auth status``).

        Returns:
            The cached token (possibly expired) or ``None``, and the end of a restriction in
            force (epoch seconds) or ``0.0``. A damaged file reads as empty.

        Example:
            >>> token, until = TokenProvider.shared(Settings.from_env()).cached()  # doctest: +SKIP
        """
        now = self._flight.clock()
        state = self._flight.store.read()
        return token_from_state(state, now), restriction_of(state, now)

    def check_restriction(self) -> None:
        """Raise :class:`RestrictedError` while a known restriction lasts (no I/O).

        Example:
            >>> TokenProvider.shared(Settings.from_env()).check_restriction()  # doctest: +SKIP
        """
        self._flight.restriction.check(self._flight.clock())


def _check_limits(margin: float | None, timeout: tuple[float, float], deadline: float,
                  max_requests: int, window: float) -> None:
    # Bad limits are a ConfigurationError when the provider is built, not a hang later.
    def positive(value: float) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

    problems = []
    if margin is not None and not (margin == 0 or positive(margin)):
        problems.append(f"refresh_margin must be >= 0 seconds, not {margin}")
    if len(timeout) != 2 or not all(positive(t) for t in timeout):
        problems.append(f"timeout must be two positive (connect, read) seconds, not {timeout}")
    if not positive(deadline):
        problems.append(f"deadline must be positive seconds, not {deadline}")
    if not isinstance(max_requests, int) or isinstance(max_requests, bool) or max_requests < 1:
        problems.append(f"max_token_requests must be an int >= 1, not {max_requests!r}")
    if not positive(window):
        problems.append(f"token_request_window must be positive seconds, not {window}")
    if problems:
        raise ConfigurationError("; ".join(problems))


_DEFAULT_OPTIONS = {"timeout": DEFAULT_TIMEOUT, "deadline": DEFAULT_DEADLINE,
                    "max_token_requests": MAX_TOKEN_REQUESTS,
                    "token_request_window": TOKEN_REQUEST_WINDOW}


def _unpickle_provider(fields: dict[str, Any], margin: float | None,
                       options: dict[str, Any] | None = None) -> TokenProvider:
    fields = dict(fields, client_secret=os.environ.get(ENV_CLIENT_SECRET, "").strip() or None)
    settings = Settings(**fields)
    options = options or {}
    if margin is None and all(options.get(k, v) == v for k, v in _DEFAULT_OPTIONS.items()):
        return TokenProvider.shared(settings)
    return TokenProvider(settings, refresh_margin=margin, **options)


# Re-exported for callers of the earlier layout (the policy now lives in _retry).
default_retry = token_retry

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_REFRESH_FRACTION", "DEFAULT_REFRESH_MARGIN",
           "FAILURE_HOLD", "MAX_TOKEN_LIFETIME", "MAX_TOKEN_REQUESTS", "MAX_TOKEN_RESPONSE",
           "RESTRICTION_THRESHOLD", "TOKEN_REQUEST_WINDOW", "Token", "TokenProvider",
           "TokenSource", "credential_key", "default_retry", "parse_retry_after",
           "set_token_source"]
