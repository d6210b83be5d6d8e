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

A restriction (HTTP 429 or 403 from the token endpoint) is written to the cache file too,
so no thread or process sends a token request until it ends; they raise
:class:`~pystac_axelglobe.errors.RestrictedError` saying until when. The cache folder is
created 0700 and the files 0600; they hold the token and its expiry, never the secret.

Example:
    >>> provider = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
    >>> headers = {"Authorization": f"Bearer {provider.token().access_token}"}  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._retry import (
    MAX_RESTRICTION,
    RESTRICTION_THRESHOLD,
    parse_retry_after,
    restriction_until,
    token_retry,
)
from .errors import APIRequestError, AuthenticationError, ConfigurationError, RestrictedError
from .settings import ENV_CACHE_DIR, ENV_CLIENT_SECRET, Settings

logger = logging.getLogger(__name__)

#: Refresh a token when less than this many seconds of it remain (at most) ...
DEFAULT_REFRESH_MARGIN = 300.0
#: ... or this fraction of its lifetime, whichever is smaller (so 4 s tokens work too).
DEFAULT_REFRESH_FRACTION = 0.25
#: A cached token said to live longer than this (a year) is taken as garbage.
MAX_TOKEN_LIFETIME = 366 * 86400.0
#: How long to wait for another thread or process that is fetching the token.
DEFAULT_LOCK_TIMEOUT = 300.0
#: (connect, read) timeouts of one token request.
DEFAULT_TIMEOUT = (10.0, 30.0)
#: After a failed proactive refresh, keep using the still-valid token this long before retrying.
_REFRESH_HOLD = 5.0
_CACHE_VERSION = 1


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


# Every provider alive in this process, so that a forked child can renew their locks.
_PROVIDERS: weakref.WeakSet[TokenProvider] = weakref.WeakSet()
_SHARED: dict[tuple[str, str, str, str, str], TokenProvider] = {}
_SHARED_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child, and a
    # connection pool must not be shared with the parent: renew both.
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
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        if not self.settings.client_id:
            self.settings.require_credentials()  # raises, naming the missing variables
        if refresh_margin is not None and refresh_margin < 0:
            raise ConfigurationError(f"refresh_margin must be >= 0 seconds, not {refresh_margin}")
        self.client_id: str = self.settings.client_id or ""
        self._margin = refresh_margin
        self._clock = clock
        self._retry = retry if retry is not None else token_retry()
        key = "\n".join((self.settings.token_url, self.client_id, self.settings.audience))
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        #: The folder of token cache files (created 0700).
        self.cache_folder: Path = Path(self.settings.cache_dir) / "tokens"
        #: The token cache file of this credential (0600; token and expiry, no secret).
        self.cache_path: Path = self.cache_folder / f"{digest}.json"
        self._lock_path = self.cache_folder / f"{digest}.lock"
        # (token, refresh_at): one attribute, so the fast path reads a consistent pair.
        self._current: tuple[Token, float] | None = None
        self._hold_until = 0.0  # no proactive refresh attempt before this (after a failure)
        self._restricted_until = 0.0
        self._file_ok = True
        self._lock = threading.RLock()
        self._session: requests.Session | None = None
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
        # Locks and sessions do not pickle, and the secret must not travel: rebuild from
        # the settings without it (the receiving side reads AXELGLOBE_CLIENT_SECRET).
        fields = dataclasses.asdict(self.settings)
        fields["client_secret"] = None
        return (_unpickle_provider, (fields, self._margin))

    def _after_fork(self) -> None:
        self._lock = threading.RLock()
        self._session = None

    def __repr__(self) -> str:
        return (f"TokenProvider(client_id={self.client_id!r}, "
                f"token_url={self.settings.token_url!r}, cache_path={str(self.cache_path)!r})")

    # -- public API ---------------------------------------------------------------------

    def token(self) -> Token:
        """A valid token: from memory (no I/O), else the cache file, else the token endpoint.

        Raises:
            RestrictedError: AxelGlobe restricts this client and no valid token is cached.
            AuthenticationError: The token endpoint rejected the credentials.
            ConfigurationError: A token must be fetched but no secret is configured.
            APIRequestError: The token endpoint kept failing (5xx, no connection).

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
        file: N threads (or processes) that saw one token fail cause one fetch.

        Example:
            >>> p = TokenProvider.shared(Settings.from_env())  # doctest: +SKIP
            >>> p.refresh(p.token().access_token)  # doctest: +SKIP
        """
        with self._lock:
            return self._obtain(failed=failed)

    def clear(self) -> None:
        """Forget the token (logout), in memory and in the cache file.

        A recorded restriction is kept: forgetting it would only prolong it.

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
                    state = self._read_state()
                    state.pop("access_token", None)
                    state.pop("expires_at", None)
                    state.pop("issued_at", None)
                    if _restriction_of(state, self._clock()):
                        self._write_state(state)
                    else:
                        self.cache_path.unlink(missing_ok=True)
            except OSError as err:
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
                        state = self._read_state()
                        self._restricted_until = max(
                            self._restricted_until, _restriction_of(state, self._clock()))
                        state["restricted_until"] = self._restricted_until
                        self._save(state)
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
        state = self._read_state()
        return self._token_from_state(state, now), _restriction_of(state, now)

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

    def _refresh_at(self, token: Token) -> float:
        margin = self._margin
        if margin is None:
            lifetime = token.lifetime or 86400.0
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
                f"{DEFAULT_LOCK_TIMEOUT:.0f} s; try again, or point {ENV_CACHE_DIR} at "
                "another folder", url=self.settings.token_url) from err
        except OSError as err:
            self._disable_file(err)
            return self._fetch_or_fallback(memory, failed, now, state=None)
        try:
            state = self._read_state()
            now = self._clock()  # waiting for the lock may have taken a while
            # A restriction another process recorded holds here too (check_restriction).
            self._restricted_until = max(self._restricted_until, _restriction_of(state, now))
            cached = self._token_from_state(state, now)
            if self._usable(cached, failed, now):
                assert cached is not None
                return self._adopt(cached)
            # Fall back on the newer of the two if fetching fails.
            best = max((t for t in (memory, cached) if t is not None and t.access_token != failed),
                       key=lambda t: t.expires_at, default=memory or cached)
            return self._fetch_or_fallback(best, failed, now, state=state)
        finally:
            lock.release()

    def _fetch_or_fallback(self, current: Token | None, failed: str | None, now: float,
                           state: dict[str, Any] | None) -> Token:
        # A token that is merely "expiring" still works: if fetching fails for a reason that
        # will pass (restriction, 5xx), keep using it rather than failing the user's request.
        still_valid = (current is not None and current.access_token != failed
                       and now < current.expires_at)
        try:
            if now < self._restricted_until:
                raise self._restricted_error(self._restricted_until, status=None)
            if failed is not None:
                reason = "rejected by a 401"
            elif current is None:
                reason = "none cached"
            else:
                reason = "expiring"
            token = self._fetch(reason)
        except (RestrictedError, APIRequestError, ConfigurationError) as err:
            if isinstance(err, RestrictedError) and state is not None:
                state["restricted_until"] = self._restricted_until
                self._save(state)
            if still_valid:
                assert current is not None
                self._hold_until = now + _REFRESH_HOLD
                logger.warning("could not refresh the token of client %r (%s); using the "
                               "current one until %s", self.client_id,
                               type(err).__name__, _iso(current.expires_at))
                return current
            raise
        if state is not None:
            state.update(access_token=token.access_token, expires_at=token.expires_at,
                         issued_at=token.issued_at)
            self._save(state)
        return self._adopt(token)

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

    def _get_session(self) -> requests.Session:
        # A private session: the user's session (its hooks, auth, adapters) never sees the
        # secret, and the user's retries never apply to token requests.
        if self._session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=self._retry)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
        return self._session

    def _fetch(self, reason: str) -> Token:
        settings = self.settings
        if not settings.client_secret:
            raise ConfigurationError(
                f"a token for client {self.client_id!r} must be fetched, but no client secret "
                f"is configured: set {ENV_CLIENT_SECRET} (or pass client_secret=). A pickled "
                "AxelGlobeAuth carries no secret; on another process it uses the token cache "
                f"({ENV_CACHE_DIR}) or {ENV_CLIENT_SECRET}."
            )
        settings.check_urls()  # the secret travels over HTTPS only (HTTP to loopback only)
        secret = settings.client_secret
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": secret,
            "audience": settings.audience,
        }
        issued_at = self._clock()  # before sending: the server's clock starts no later
        try:
            resp = self._get_session().post(settings.token_url, json=body,
                                            timeout=DEFAULT_TIMEOUT, allow_redirects=False)
        except requests.RequestException as err:
            raise APIRequestError(
                f"could not reach the token endpoint {settings.token_url} for client "
                f"{self.client_id!r} ({type(err).__name__}); check the network and "
                "AXELGLOBE_TOKEN_URL, then try again", url=settings.token_url) from None
        with resp:
            status = resp.status_code
            if status == 200:
                token = self._parse_token(resp, issued_at)
                logger.info("fetched a token for client %r from %s (%s); valid until %s",
                            self.client_id, settings.token_url, reason,
                            _iso(token.expires_at))
                return token
            until = restriction_until(status, settings.token_url,
                                      resp.headers.get("Retry-After"), api_url=settings.api_url,
                                      token_url=settings.token_url, now=self._clock())
            if until is not None:
                self._restricted_until = max(self._restricted_until, until)
                logger.warning("client %r is restricted by AxelGlobe until %s (HTTP %d)",
                               self.client_id, _iso(until), status)
                raise self._restricted_error(until, status=status)
            if status in (400, 401):
                error, description = self._oauth_error(resp, secret)
                raise AuthenticationError(
                    f"the token endpoint rejected client {self.client_id!r}: HTTP {status} "
                    f"{error}" + (f" ({description})" if description else "")
                    + "; check AXELGLOBE_CLIENT_ID and AXELGLOBE_CLIENT_SECRET (retrying "
                    "will not help)",
                    client_id=self.client_id, status=status, oauth_error=error)
            if resp.is_redirect:
                # Not followed (allow_redirects=False): the secret goes to the configured URL
                # only, never to wherever a response points.
                raise APIRequestError(
                    f"the token endpoint {settings.token_url} redirected (HTTP {status}); the "
                    "client secret is never sent to a redirect target: set "
                    "AXELGLOBE_TOKEN_URL to the token endpoint itself",
                    status=status, url=settings.token_url)
            raise APIRequestError(
                f"the token endpoint {settings.token_url} answered HTTP {status} for client "
                f"{self.client_id!r}" + (" after retries" if status >= 500 else "")
                + "; try again later", status=status, url=settings.token_url)

    def _parse_token(self, resp: requests.Response, issued_at: float) -> Token:
        try:
            data = resp.json()
            access_token = data["access_token"]
            expires_in = float(data.get("expires_in", 86400))
            if not isinstance(access_token, str) or not access_token:
                raise ValueError("empty access_token")
            # A token that is stale on arrival would make every request fetch a new one.
            if not (math.isfinite(expires_in) and expires_in >= 1):
                raise ValueError("expires_in below 1 s")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise APIRequestError(
                f"the token endpoint {self.settings.token_url} answered 200 without a usable "
                f"access_token/expires_in ({type(err).__name__}); is AXELGLOBE_TOKEN_URL right?",
                status=200, url=self.settings.token_url) from None
        token_type = str(data.get("token_type", "Bearer"))
        if token_type.lower() != "bearer":
            raise APIRequestError(f"the token endpoint issued a {token_type!r} token, not a "
                                  "Bearer token", status=200, url=self.settings.token_url)
        return Token(access_token, expires_at=issued_at + expires_in, issued_at=issued_at)

    @staticmethod
    def _oauth_error(resp: requests.Response, secret: str) -> tuple[str, str]:
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        error = str(data.get("error") or "invalid_client")[:100]
        description = str(data.get("error_description") or "")[:300]
        # Never echo the secret, even if the server does.
        return error.replace(secret, "***"), description.replace(secret, "***")

    # -- the cache file -----------------------------------------------------------------

    def _file_lock(self) -> filelock.BaseFileLock:
        _make_private_dir(self.cache_folder)
        # A fresh lock object per acquisition: the thread lock already serialises this
        # provider, and flock() then excludes other providers and processes.
        return filelock.FileLock(self._lock_path, timeout=DEFAULT_LOCK_TIMEOUT, mode=0o600)

    def _disable_file(self, err: OSError) -> None:
        self._file_ok = False
        logger.warning("cannot use the token cache %s (%s); tokens are kept in memory only, so "
                       "each process fetches its own. Set %s to a writable folder.",
                       self.cache_folder, err, ENV_CACHE_DIR)

    def _read_state(self) -> dict[str, Any]:
        try:
            with open(self.cache_path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            logger.debug("ignoring unreadable token cache %s: %s", self.cache_path,
                         type(err).__name__)
            return {}
        if not isinstance(state, dict) or state.get("version") != _CACHE_VERSION:
            return {}
        return state

    @staticmethod
    def _token_from_state(state: dict[str, Any], now: float) -> Token | None:
        token, expires_at = state.get("access_token"), _number(state.get("expires_at"))
        # An expiry no token endpoint would grant is a damaged file, not a token to trust
        # (and beyond year 9999 it cannot even be printed).
        if (not isinstance(token, str) or not token or not expires_at
                or expires_at > now + MAX_TOKEN_LIFETIME):
            return None
        return Token(token, expires_at=expires_at, issued_at=_number(state.get("issued_at")))

    def _save(self, state: dict[str, Any]) -> None:
        try:
            self._write_state(state)
        except OSError as err:
            self._disable_file(err)

    def _write_state(self, state: dict[str, Any]) -> None:
        state["version"] = _CACHE_VERSION
        state.pop("client_secret", None)  # never, whatever a caller put in
        data = json.dumps(state).encode()
        tmp = self.cache_path.with_name(
            f".{self.cache_path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        # 0600 from creation (O_EXCL: never reuse a file someone else made), then an atomic
        # rename: readers see the old file or the new one, never half of one.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.cache_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


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


def _unpickle_provider(fields: dict[str, Any], margin: float | None) -> TokenProvider:
    fields = dict(fields, client_secret=os.environ.get(ENV_CLIENT_SECRET, "").strip() or None)
    settings = Settings(**fields)
    if margin is None:
        return TokenProvider.shared(settings)
    return TokenProvider(settings, refresh_margin=margin)


def _make_private_dir(path: Path) -> None:
    # mode applies at creation (minus the umask, which can only remove bits): 0700 from
    # the start, no window in which others could list or enter the folder.
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return
    info = path.stat()
    if not hasattr(os, "getuid"):  # no owners to compare (Windows)
        return
    if info.st_uid != os.getuid():
        # Its owner could read our token or plant one (a shared /tmp, say): never use it.
        raise PermissionError(
            f"the token cache folder {path} belongs to another user (uid {info.st_uid})")
    # A folder of ours made by something else: tighten it.
    if info.st_mode & 0o077:
        logger.warning("token cache folder %s was readable by others; making it 0700", path)
        path.chmod(0o700)


# Re-exported for callers of the earlier layout (the policy now lives in _retry).
default_retry = token_retry

__all__ = ["DEFAULT_REFRESH_MARGIN", "RESTRICTION_THRESHOLD", "Token", "TokenProvider",
           "default_retry", "parse_retry_after"]
