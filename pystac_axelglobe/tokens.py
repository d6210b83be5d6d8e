"""Access tokens: one token per credential per machine, and never a restricted client.

AxelGlobe restricts clients that ask for tokens "unnecessarily frequently". A
:class:`TokenProvider` therefore keeps each token in three places and asks the token
endpoint only when none of them can serve:

1. memory (no I/O at all while the token is fresh: the per-request fast path);
2. a cache file per (token URL, client id, audience) under ``AXELGLOBE_CACHE_DIR``
   (``Settings.cache_dir``), read and written under a file lock so that every thread,
   process and dask worker on the machine shares one token and one fetch (single flight);
3. the token endpoint (JSON client-credentials body), over a private session that retries
   5xx answers and dropped connections with backoff (urllib3 ``Retry``).

Bounds, so that no misbehaving server can storm the endpoint or hang a call:

- **Token budget**: besides the refresh of a token about to expire, at most
  :data:`MAX_TOKEN_REQUESTS` tokens are requested per credential within
  :data:`TOKEN_REQUEST_WINDOW` seconds, counted across threads and processes in a log file
  beside the cache (``<hash>.issued``, kept by :meth:`TokenProvider.clear`). An API that
  rejects every token with 401 thus costs a few token requests, then each call fails with
  :class:`~pystac_axelglobe.errors.AuthenticationError` saying until when.
- **Deadline**: one token request, retries and a server trickling bytes included, ends
  within :data:`DEFAULT_DEADLINE` seconds; a failure is shared for :data:`FAILURE_HOLD`
  seconds with the threads and processes that waited for it, instead of each repeating it.
- **Answers**: only a JSON object of at most :data:`MAX_TOKEN_RESPONSE` bytes with a
  header-safe ``access_token`` and a sane ``expires_in`` is a token; anything else is an
  ``AuthenticationError`` that never quotes the token or the secret.

A process that must not ask the token endpoint itself (a dask worker, which has no secret)
can be given another **token source** for a credential with :func:`set_token_source`: it is
asked instead of the endpoint, and its tokens are cached like fetched ones
(:mod:`pystac_axelglobe.cluster` installs one that asks the dask client).

A restriction (HTTP 429 or 403 from the token endpoint) is written to the cache file too,
so no thread or process sends a token request until it ends; they raise
:class:`~pystac_axelglobe.errors.RestrictedError` saying until when. The cache folder is
created 0700 and the files 0600 (see :mod:`._token_cache`); they hold the token and its
expiry, never the secret.

Example:
    >>> provider = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
    >>> headers = {"Authorization": f"Bearer {provider.token().access_token}"}  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import filelock
from urllib3.util.retry import Retry

from ._retry import (
    MAX_RESTRICTION,
    RESTRICTION_THRESHOLD,
    parse_retry_after,
    restriction_until,
    token_retry,
)
from ._token_cache import CacheFile
from ._token_endpoint import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    MAX_TOKEN_RESPONSE,
    header_safe,
    post_credentials,
    read_token,
    refusal,
)
from .errors import APIRequestError, AuthenticationError, ConfigurationError, RestrictedError
from .settings import ENV_CACHE_DIR, ENV_CLIENT_SECRET, Settings

logger = logging.getLogger(__name__)

#: Refresh a token when less than this many seconds of it remain (at most) ...
DEFAULT_REFRESH_MARGIN = 300.0
#: ... or this fraction of its lifetime, whichever is smaller (so 4 s tokens work too).
DEFAULT_REFRESH_FRACTION = 0.25
#: Tokens requested per credential within :data:`TOKEN_REQUEST_WINDOW`, beyond which no more
#: are requested (refreshes of a token about to expire do not count against it). AxelGlobe's
#: threshold is unknown ("a handful a minute is already too many"): 3 per 10 minutes covers
#: a first token, a revoked one and a logout, and stays far below any plausible rule.
MAX_TOKEN_REQUESTS = 3
#: The sliding window of :data:`MAX_TOKEN_REQUESTS`, in seconds.
TOKEN_REQUEST_WINDOW = 600.0
#: (connect, read) timeouts of each socket operation of a token request.
DEFAULT_TIMEOUT = (10.0, 30.0)
#: The limit of one token request, in seconds: retries, backoff and a trickling answer
#: included (a silent endpoint fails in 1.5 minutes, not 5 x 30 s plus backoff).
DEFAULT_DEADLINE = 90.0
#: After a failed token request, the threads and processes that waited for it fail with the
#: same error for this many seconds instead of each sending (and waiting) again.
FAILURE_HOLD = 10.0
#: How long to wait for another process that holds the cache lock, beyond the deadline.
_LOCK_SLACK = 30.0
#: After a failed proactive refresh, keep using the still-valid token this long before retrying.
_REFRESH_HOLD = 5.0


@dataclasses.dataclass(frozen=True)
class Token:
    """A bearer token and when it expires (epoch seconds). The repr hides the token.

    Example:
        >>> t = Token("abc", expires_at=100.0, issued_at=0.0)
        >>> t.expires_within(10, now=95.0), "abc" in repr(t)
        (True, False)
    """

    access_token: str = dataclasses.field(repr=False)
    expires_at: float
    #: When it was requested (epoch seconds); its lifetime sets the refresh margin.
    issued_at: float = 0.0

    @property
    def lifetime(self) -> float:
        """Seconds between request and expiry (0 when unknown)."""
        return max(0.0, self.expires_at - self.issued_at) if self.issued_at else 0.0

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """Whether fewer than ``seconds`` of validity remain.

        Example:
            >>> Token("x", expires_at=time.time() + 60).expires_within(300)
            True
        """
        return (time.time() if now is None else now) + seconds >= self.expires_at


#: What :func:`set_token_source` takes: called as ``source(settings, failed, fresh)`` when a
#: token is needed and neither memory nor the cache file has one. ``failed`` is the token
#: the API just rejected with 401 (else ``None``); ``fresh(token)`` says whether a token
#: would be used without refreshing it. Returns a token, or ``None`` to let the provider ask
#: the token endpoint as usual; raises an :class:`~pystac_axelglobe.errors.AxelGlobeError`
#: to fail the request.
TokenSource = Callable[[Settings, str | None, Callable[[Token], bool]], Token | None]
_SOURCES: dict[tuple[str, str, str], TokenSource] = {}


def credential_key(settings: Settings) -> tuple[str, str, str]:
    """The (token URL, client id, audience) a token belongs to, whatever the secret or cache.

    Example:
        >>> credential_key(Settings.from_env(client_id="me", token_url="http://127.0.0.1/t",
        ...                                  audience="a", api_url="http://127.0.0.1/s"))
        ('http://127.0.0.1/t', 'me', 'a')
    """
    return (settings.token_url, settings.client_id or "", settings.audience)


def set_token_source(key: tuple[str, str, str], source: TokenSource | None) -> None:
    """Let ``source`` supply this process's tokens of a credential instead of the endpoint.

    Every provider of the credential ``key`` (see :func:`credential_key`) in this process
    then calls ``source`` where it would send the client secret to the token endpoint: for
    the first token, for one about to expire and after a 401. Memory, the cache file, the
    single flight across threads and processes and the fallback on a still-valid token work
    as for fetched tokens. ``None`` removes the source.

    Example:
        >>> key = ("http://127.0.0.1/t", "me", "a")
        >>> set_token_source(key, lambda settings, failed, fresh: None)
        >>> set_token_source(key, None)
    """
    with _SHARED_LOCK:
        if source is None:
            _SOURCES.pop(key, None)
        else:
            _SOURCES[key] = source


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


def _secret_key(secret: str | None) -> str:
    # The shared-provider key distinguishes secrets without keeping them in clear.
    return hashlib.sha256(secret.encode()).hexdigest() if secret else ""


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


class _Failure(NamedTuple):
    """A failed token request, held for the threads and processes that waited for it."""

    until: float
    kind: str  # "APIRequestError" or "AuthenticationError"
    message: str
    status: int | None

    def error(self, client_id: str, url: str) -> APIRequestError | AuthenticationError:
        text = (f"{self.message} [a token request failed moments ago; not asked again "
                f"before {_iso(self.until)}]")
        if self.kind == "AuthenticationError":
            return AuthenticationError(text, client_id=client_id, status=self.status)
        return APIRequestError(text, status=self.status, url=url)


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
        self._clock = clock
        self._retry = retry if retry is not None else token_retry()
        self.timeout = timeout
        self.deadline = deadline
        self.max_token_requests = max_token_requests
        self.token_request_window = token_request_window
        key = "\n".join((self.settings.token_url, self.client_id, self.settings.audience))
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        #: The folder of token cache files (created 0700).
        self.cache_folder: Path = Path(self.settings.cache_dir) / "tokens"
        self._cache = CacheFile(self.cache_folder, digest)
        # Times of recent token requests (and a failure to share), kept apart from the
        # token so that clear() (logout) forgets the token but not how often one was asked.
        self._log = CacheFile(self.cache_folder, digest, ".issued")
        #: The token cache file of this credential (0600; token and expiry, no secret).
        self.cache_path: Path = self._cache.path
        self._lock_path = self._cache.lock_path
        # (token, refresh_at): one attribute, so the fast path reads a consistent pair.
        self._current: tuple[Token, float] | None = None
        self._hold_until = 0.0  # no proactive refresh attempt before this (after a failure)
        self._restricted_until = 0.0
        self._issued: list[float] = []  # when tokens were requested (without a log file)
        self._unsaved: list[float] = []  # ... and those not yet written to the log file
        self._failure: _Failure | None = None
        self._file_ok = True
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
        base = (settings.token_url, settings.client_id or "", settings.audience,
                os.fspath(settings.cache_dir))
        key = (*base, _secret_key(settings.client_secret))
        with _SHARED_LOCK:
            provider = None
            if not settings.client_secret:
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
        current = self._current
        if current is not None:
            now = self._clock()
            if now < current[1]:
                return current[0]  # the fast path: fresh token in memory, no I/O, no lock
            if now < current[0].expires_at and (now < self._hold_until
                                                or now < self._restricted_until):
                return current[0]  # a refresh failed recently; the token still works
        with self._lock:
            return self._obtain(failed=None)

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
            return self._obtain(failed=failed)

    def clear(self) -> None:
        """Forget the token (logout), in memory and in the cache file.

        A recorded restriction and the log of recent token requests are kept: forgetting
        them would only prolong the one and let logout/login loops defeat the other.

        Example:
            >>> TokenProvider.shared(Settings.from_env()).clear()  # doctest: +SKIP
        """
        with self._lock:
            self._current = None
            self._hold_until = 0.0
            if not self._file_ok:
                return
            try:
                with self._file_lock():
                    state = self._cache.read()
                    if _restriction_of(state, self._clock()):
                        self._cache.write({"restricted_until": state["restricted_until"]})
                    else:
                        self._cache.remove()
            except (OSError, filelock.Timeout) as err:
                logger.warning("could not clear the token cache %s: %s", self.cache_path, err)

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
            self._restricted_until = max(self._restricted_until, until)
            logger.warning("client %r is restricted by AxelGlobe until %s", self.client_id,
                           _iso(self._restricted_until))
            if self._file_ok:
                try:
                    with self._file_lock():
                        self._save(self._cache.read())
                except (OSError, filelock.Timeout) as err:
                    logger.warning("could not record the restriction in %s: %s",
                                   self.cache_path, err)
            return self._restricted_error(self._restricted_until, status=status)

    def cached(self) -> tuple[Token | None, float]:
        """What the cache file holds, read without a lock or a request (``auth status``).

        Returns:
            The cached token (possibly expired) or ``None``, and the end of a restriction in
            force (epoch seconds) or ``0.0``. A damaged file reads as empty.

        Example:
            >>> token, until = TokenProvider.shared(Settings.from_env()).cached()  # doctest: +SKIP
        """
        now = self._clock()
        state = self._cache.read()
        return _token_from_state(state, now), _restriction_of(state, now)

    def check_restriction(self) -> None:
        """Raise :class:`RestrictedError` while a known restriction lasts (no I/O).

        Example:
            >>> TokenProvider.shared(Settings.from_env()).check_restriction()  # doctest: +SKIP
        """
        until = self._restricted_until
        if until and self._clock() < until:
            raise self._restricted_error(until, status=None)

    # -- the slow path (under self._lock) --------------------------------------------------

    def _usable(self, token: Token | None, failed: str | None, now: float) -> bool:
        if token is None or token.access_token == failed:
            return False
        return now < self._refresh_at(token)

    def _fresh(self, token: Token) -> bool:
        return self._clock() < self._refresh_at(token)

    def _refresh_at(self, token: Token) -> float:
        margin = self._margin
        if margin is None:
            lifetime = token.lifetime or DEFAULT_TOKEN_LIFETIME
            margin = min(DEFAULT_REFRESH_MARGIN, lifetime * DEFAULT_REFRESH_FRACTION)
        return token.expires_at - margin

    def _adopt(self, token: Token) -> Token:
        self._current = (token, self._refresh_at(token))
        self._hold_until = 0.0
        return token

    def _obtain(self, failed: str | None) -> Token:
        now = self._clock()
        memory = self._current[0] if self._current is not None else None
        if self._usable(memory, failed, now):
            assert memory is not None
            return memory  # another thread refreshed while this one waited for the lock
        if not self._file_ok:
            return self._fetch_or_fallback(memory, failed, now, state=None)
        try:
            lock = self._file_lock()
            lock.acquire()
        except filelock.Timeout as err:
            raise APIRequestError(
                f"another process has held the token cache lock {self._lock_path} for "
                f"{self._lock_timeout:.0f} s; try again, or point {ENV_CACHE_DIR} at "
                "another folder", url=self.settings.token_url) from err
        except OSError as err:
            self._disable_file(err)
            return self._fetch_or_fallback(memory, failed, now, state=None)
        try:
            state = self._cache.read()
            now = self._clock()  # waiting for the lock may have taken a while
            # A restriction another process recorded holds here too (check_restriction).
            self._restricted_until = max(self._restricted_until, _restriction_of(state, now))
            cached = _token_from_state(state, now)
            if self._usable(cached, failed, now):
                assert cached is not None
                return self._adopt(cached)
            # Fall back on the newer of the two if fetching fails.
            best = max((t for t in (memory, cached) if t is not None and t.access_token != failed),
                       key=lambda t: t.expires_at, default=memory or cached)
            if credential_key(self.settings) not in _SOURCES:
                return self._fetch_or_fallback(best, failed, now, state=state)
        finally:
            lock.release()
        # A token source may wait for another process (a dask client) that needs this very
        # lock to renew the token: ask it without the lock, then share what it gave.
        token = self._fetch_or_fallback(best, failed, now, state=None)
        self._share(token)
        return token

    def _share(self, token: Token) -> None:
        """Put ``token`` in the cache file unless it holds a newer one."""
        try:
            with self._file_lock():
                state = self._cache.read()
                cached = _token_from_state(state, self._clock())
                if cached is None or cached.expires_at < token.expires_at:
                    state.update(access_token=token.access_token, expires_at=token.expires_at,
                                 issued_at=token.issued_at)
                    self._save(state)
        except (OSError, filelock.Timeout) as err:
            logger.warning("could not share the token in %s: %s", self.cache_path, err)

    def _fetch_or_fallback(self, current: Token | None, failed: str | None, now: float,
                           state: dict[str, Any] | None) -> Token:
        # A token that is merely "expiring" still works: if fetching fails for a reason that
        # will pass (restriction, 5xx), keep using it rather than failing the user's request.
        still_valid = (current is not None and current.access_token != failed
                       and now < current.expires_at)
        if failed is not None:
            reason = "rejected by a 401"
        elif current is None:
            reason = "none cached"
        else:
            reason = "expiring"
        log = self._log.read() if state is not None else None
        try:
            self._may_fetch(reason, now, log)
            try:
                token = self._fetch(reason, failed)
            except (APIRequestError, AuthenticationError) as err:
                self._failure = _Failure(now + FAILURE_HOLD, type(err).__name__, str(err),
                                         getattr(err, "status", None))
                raise
        except (RestrictedError, APIRequestError, AuthenticationError, ConfigurationError) as err:
            if state is not None and log is not None:
                self._save(state, log)
            if still_valid:
                assert current is not None
                self._hold_until = now + _REFRESH_HOLD
                logger.warning("could not refresh the token of client %r (%s); using the "
                               "current one until %s", self.client_id,
                               type(err).__name__, _iso(current.expires_at))
                return current
            raise
        self._failure = None
        if state is not None and log is not None:
            state.update(access_token=token.access_token, expires_at=token.expires_at,
                         issued_at=token.issued_at)
            self._save(state, log)
        self._adopt(token)
        if not self._fresh(token):
            # Already due for refresh when received (a source's clock behind ours, or a
            # lifetime below the margin): use it, without asking again on every request.
            self._hold_until = now + _REFRESH_HOLD
        return token

    def _may_fetch(self, reason: str, now: float, log: dict[str, Any] | None) -> None:
        """Raise if no token request may be sent now: restriction, held failure, budget."""
        if now < self._restricted_until:
            raise self._restricted_error(self._restricted_until, status=None)
        failure = self._failure
        if failure is None or now >= failure.until:
            failure = _failure_of(log or {}, now)
        if failure is not None:
            raise failure.error(self.client_id, self.settings.token_url)
        recent = self._recent_requests(now, log)
        # The refresh of an expiring token is what the token's lifetime asks for; every
        # other request (first token, after a 401, after a logout) draws on the budget.
        if reason == "expiring" or len(recent) < self.max_token_requests:
            return
        free_at = recent[-self.max_token_requests] + self.token_request_window
        hint = ("the API rejects fresh tokens (401): check that AXELGLOBE_API_URL, "
                "AXELGLOBE_TOKEN_URL and AXELGLOBE_AUDIENCE belong together"
                if reason == "rejected by a 401" else
                f"tokens are being discarded: let all processes share one token cache "
                f"({ENV_CACHE_DIR}) and avoid logging out repeatedly")
        raise AuthenticationError(
            f"client {self.client_id!r} has requested {len(recent)} tokens in the last "
            f"{self.token_request_window / 60:g} minutes ({reason} now); to keep AxelGlobe "
            f"from restricting the client no more are requested before {_iso(free_at)}. "
            f"Most likely {hint}; then try again after that time.",
            client_id=self.client_id)

    def _recent_requests(self, now: float, log: dict[str, Any] | None) -> list[float]:
        # The times of token requests within the window: the log file's (every process's)
        # plus this process's not yet written there; without a file, this process's alone.
        if log is None:
            base = self._issued
        else:
            logged = log.get("issued")
            base = [_number(t) for t in logged[:64]] if isinstance(logged, list) else []
        start = now - self.token_request_window
        # A time far in the future is damage, not a request: it must not block forever.
        recent = sorted(t for t in [*base, *self._unsaved] if start < t <= now + 60)
        recent = recent[-max(64, self.max_token_requests):]
        if log is None:
            self._issued, self._unsaved = recent, []
        return recent

    def _restricted_error(self, until: float, status: int | None) -> RestrictedError:
        when = dt.datetime.fromtimestamp(until, dt.timezone.utc)
        cause = (f"AxelGlobe answered HTTP {status}" if status is not None
                 else "recorded in the token cache " + str(self.cache_path))
        return RestrictedError(
            f"AxelGlobe restricts client {self.client_id!r} until {_iso(until)} ({cause}). "
            f"Nothing is sent to AxelGlobe before then: wait until {_iso(until)} and try again, "
            f"and let all processes share one token cache ({ENV_CACHE_DIR}).",
            until=when,
        )

    # -- the token endpoint -------------------------------------------------------------

    def _fetch(self, reason: str, failed: str | None = None) -> Token:
        source = _SOURCES.get(credential_key(self.settings))
        if source is not None:
            received = source(self.settings, failed, self._fresh)
            if received is not None:
                if not header_safe(received.access_token):
                    raise AuthenticationError(
                        f"the token source of client {self.client_id!r} gave a token that "
                        "cannot go into a header", client_id=self.client_id)
                logger.info("received a token for client %r from its token source (%s); "
                            "valid until %s", self.client_id, reason,
                            _iso(received.expires_at))
                return received
        # No local here holds the secret (traceback tools print locals): the request body
        # is built in _credentials() while the request is sent, and is gone afterwards.
        if not self.settings.client_secret:
            raise ConfigurationError(
                f"a token for client {self.client_id!r} must be fetched, but no client secret "
                f"is configured: set {ENV_CLIENT_SECRET} (or pass client_secret=). A pickled "
                "AxelGlobeAuth carries no client secret; on another process it uses the token "
                f"cache ({ENV_CACHE_DIR}) or {ENV_CLIENT_SECRET}."
            )
        self.settings.check_urls()  # the secret travels over HTTPS only (HTTP to loopback only)
        url = self.settings.token_url
        issued_at = self._clock()  # before sending: the server's clock starts no later
        answer = post_credentials(self.settings, retry=self._retry, timeout=self.timeout,
                                  deadline=self.deadline)
        if answer.status == 200:
            self._unsaved.append(issued_at)  # issued, even if the answer turns out unusable
            read = read_token(answer.body)
            if isinstance(read, str):
                raise AuthenticationError(
                    f"the token endpoint {url} answered HTTP 200 without a usable token for "
                    f"client {self.client_id!r}: {read}; is AXELGLOBE_TOKEN_URL the OAuth "
                    "token endpoint?", client_id=self.client_id, status=200)
            token = Token(read[0], expires_at=issued_at + read[1], issued_at=issued_at)
            logger.info("fetched a token for client %r from %s (%s); valid until %s",
                        self.client_id, url, reason, _iso(token.expires_at))
            return token
        until = restriction_until(answer.status, url, answer.retry_after,
                                  api_url=self.settings.api_url, token_url=url,
                                  now=self._clock())
        if until is not None:
            self._restricted_until = max(self._restricted_until, until)
            logger.warning("client %r is restricted by AxelGlobe until %s (HTTP %d)",
                           self.client_id, _iso(until), answer.status)
            raise self._restricted_error(until, status=answer.status)
        raise refusal(answer, self.settings)

    # -- the cache file -----------------------------------------------------------------

    @property
    def _lock_timeout(self) -> float:
        # The holder's fetch ends within the deadline; this is the backstop for a stuck one.
        return self.deadline + _LOCK_SLACK

    def _file_lock(self) -> filelock.BaseFileLock:
        return self._cache.lock(self._lock_timeout)

    def _disable_file(self, err: OSError) -> None:
        self._file_ok = False
        logger.warning("cannot use the token cache %s (%s); tokens are kept in memory only, so "
                       "each process fetches its own. Set %s to a writable folder.",
                       self.cache_folder, err, ENV_CACHE_DIR)

    def _save(self, state: dict[str, Any], log: dict[str, Any] | None = None) -> None:
        # Write what this process knows into the files (under the file lock).
        now = self._clock()
        mine = self._restricted_until if now < self._restricted_until else 0.0
        restricted = max(mine, _restriction_of(state, now))
        if restricted:
            state["restricted_until"] = restricted
        else:
            state.pop("restricted_until", None)
        try:
            self._cache.write(state)
            if log is not None:
                self._log.write(self._log_state(now, log))
                self._unsaved = []
        except OSError as err:
            self._disable_file(err)

    def _log_state(self, now: float, log: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"issued": self._recent_requests(now, log)}
        failure = self._failure
        # Only an endpoint failure is shared with other processes; a rejected credential
        # stays in this process (another may hold a corrected secret).
        if failure is not None and now < failure.until and failure.kind == "APIRequestError":
            entry["failed"] = {"until": failure.until, "message": failure.message,
                               "status": failure.status}
        return entry


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


def _token_from_state(state: dict[str, Any], now: float) -> Token | None:
    token, expires_at = state.get("access_token"), _number(state.get("expires_at"))
    # An expiry no token endpoint would grant is a damaged file, not a token to trust
    # (and beyond year 9999 it cannot even be printed); a token that cannot go into a
    # header (CR/LF) is planted, not fetched.
    if (not isinstance(token, str) or not header_safe(token) or not expires_at
            or expires_at > now + MAX_TOKEN_LIFETIME):
        return None
    return Token(token, expires_at=expires_at, issued_at=_number(state.get("issued_at")))


def _failure_of(log: dict[str, Any], now: float) -> _Failure | None:
    # A failure another process recorded in the log file, while it is held.
    failed = log.get("failed")
    if not isinstance(failed, dict):
        return None
    until, message, status = _number(failed.get("until")), failed.get("message"), \
        failed.get("status")
    if not (now < until <= now + FAILURE_HOLD) or not isinstance(message, str):
        return None
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    return _Failure(until, "APIRequestError", message[:1000], status)


def _number(value: Any) -> float:
    # Values from the cache file: anything but a finite number counts as absent (0).
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def _restriction_of(state: dict[str, Any], now: float) -> float:
    # The restriction recorded in a cache file, if it has not ended. One longer than any
    # Retry-After we accept (parse_retry_after) is a damaged file: ignored, not obeyed
    # forever (and not passed to datetime, which overflows).
    until = _number(state.get("restricted_until"))
    return until if now < until <= now + MAX_RESTRICTION else 0.0


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

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_REFRESH_MARGIN", "MAX_TOKEN_LIFETIME",
           "MAX_TOKEN_REQUESTS", "MAX_TOKEN_RESPONSE", "RESTRICTION_THRESHOLD",
           "TOKEN_REQUEST_WINDOW", "Token", "TokenProvider", "TokenSource", "credential_key",
           "default_retry", "parse_retry_after", "set_token_source"]
