"""Asset hrefs → presigned storage URLs: :func:`resolve`, its cache, :func:`invalidate`.

Every AxelGlobe asset href lives on the API origin and answers, with the bearer token, a
redirect (302/307) to an expiring S3-style presigned URL on a storage host. :func:`resolve`
turns an href into a :class:`PresignedURL` with one authorised request (cached per process,
single-flight per href, bounded by :data:`RESOLVE_TIMEOUT`); :func:`resolve_many` resolves
many at once (at most :data:`PREFETCH_CONCURRENCY` requests in flight); :func:`prefetch` does
the same in the background, for readers that will ask :func:`resolve` for them shortly;
:func:`invalidate` forgets one after storage answered 403. Downloading is
:mod:`pystac_axelglobe.downloads`.

(The module is not called ``resolve.py``: a submodule named like the function would replace
``pystac_axelglobe.resolve`` once imported.)

Example:
    >>> import pystac_axelglobe as ag
    >>> url = ag.resolve(item.assets["tci"].href)  # doctest: +SKIP
    >>> url                                         # doctest: +SKIP
    PresignedURL(https://storage.example/…/tci.tif, expires in 899 s)
"""

from __future__ import annotations

import calendar
import collections
import concurrent.futures
import dataclasses
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from ._http import GaveUp, Session, count_failure, deadline, display, timeouts
from ._redact import redact
from ._retry import RETRY_STATUSES, resolve_retry
from .auth import default_auth
from .errors import AssetError, ConfigurationError

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = [
    "API_POOL_SIZE",
    "DEFAULT_EXPIRY",
    "PREFETCH_CONCURRENCY",
    "RESOLVE_TIMEOUT",
    "PresignedURL",
    "invalidate",
    "prefetch",
    "resolve",
    "resolve_many",
]

log = logging.getLogger(__name__)

#: Assumed lifetime (seconds) of a redirect target whose URL says nothing about its expiry.
DEFAULT_EXPIRY = 60.0
#: Seconds one :func:`resolve` may take at most, retries and backoff included: a silent or
#: trickling API makes it fail then.
RESOLVE_TIMEOUT = 60.0
#: (connect, read) timeouts in seconds of each request to the API (the read timeout bounds
#: each silence; :data:`RESOLVE_TIMEOUT` the whole answer).
TIMEOUT = (10.0, 30.0)
#: Retry policy of the redirect request (a restriction is not slept through).
RESOLVE_RETRY = resolve_retry()
#: Redirect requests :func:`resolve_many` and :func:`prefetch` keep in flight at most. Over a
#: wide-area link each one is a round trip of waiting: side by side they cost about one.
#: 0 turns :func:`prefetch` off (reads then resolve their own hrefs, one after another).
PREFETCH_CONCURRENCY = 16
#: Connections the API session of one auth keeps (per host): its threads that may resolve
#: at once with the defaults. :func:`prefetch` in the background, and in the foreground a
#: download's resolves ahead and its transfers, or :func:`resolve_many` / ``ag.sign``: up to
#: :data:`PREFETCH_CONCURRENCY` each.
API_POOL_SIZE = 4 * PREFETCH_CONCURRENCY

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclasses.dataclass(frozen=True)
class PresignedURL:
    """A downloadable URL and when it stops working.

    Attributes:
        url: The presigned storage URL (or the href itself when it needed no resolving).
            Its signature is a credential until it expires: do not log it.
        expires_at: Epoch seconds after which storage refuses the URL; ``math.inf`` when the
            URL does not expire.

    Example:
        >>> p = PresignedURL("https://s.example/a.tif?X-Amz-Signature=abc", math.inf)
        >>> p
        PresignedURL(https://s.example/a.tif, does not expire)
    """

    url: str = dataclasses.field(repr=False)
    expires_at: float

    def remaining(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def __repr__(self) -> str:
        # The signature is a credential: show where the URL points and when it expires only.
        if math.isinf(self.expires_at):
            when = "does not expire"
        else:
            when = f"expires in {self.remaining():.0f} s"
        return f"PresignedURL({display(self.url)}, {when})"


def _expiry_from_url(url: str, requested_at: float) -> float | None:
    """Expiry of an S3-style presigned URL (``X-Amz-Date`` + ``X-Amz-Expires``), if it says.

    The smaller of "server's signing time + lifetime" and "our request time + lifetime" is
    returned, so a clock skew in either direction errs on the early side.
    """
    query = {k.lower(): v for k, v in parse_qs(urlsplit(url).query).items()}
    expires = query.get("x-amz-expires")
    if not expires:
        return None
    try:
        lifetime = float(expires[0])
    except ValueError:
        return None
    if not math.isfinite(lifetime):
        return None
    candidates = [requested_at + lifetime]
    date = query.get("x-amz-date")
    if date:
        try:
            signed = calendar.timegm(time.strptime(date[0], _AMZ_DATE))
            candidates.append(signed + lifetime)
        except ValueError:
            pass
    return min(candidates)


# --- process-wide state: cache, single-flight locks, sessions ------------------------------

@dataclasses.dataclass(frozen=True)
class _Cached:
    url: PresignedURL
    lifetime: float  # seconds from resolving to expiry, to cap the reuse margin


_state_lock = threading.Lock()
_cache: dict[tuple[str, str], _Cached] = {}
_flight_locks: dict[tuple[str, str], threading.Lock] = {}
_sessions: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()


def _reset_after_fork() -> None:
    # A forked child (e.g. a dask process worker) must not inherit held locks or the parent's
    # pooled sockets; the cached URLs stay valid and are kept.
    global _state_lock, _sessions, _prefetcher
    _state_lock = threading.Lock()
    _flight_locks.clear()
    _sessions = weakref.WeakKeyDictionary()
    _prefetcher = _Prefetcher()  # its threads stayed in the parent


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _api_session(auth: AxelGlobeAuth) -> Session:
    """The session that carries ``auth`` (one per auth object, shared by threads)."""
    with _state_lock:
        session = _sessions.get(auth)
        if session is None:
            session = Session(pool_size=API_POOL_SIZE)
            session.auth = auth
            _sessions[auth] = session
        return session


def _cache_key(href: str, auth: AxelGlobeAuth) -> tuple[str, str]:
    # Presigned URLs grant access: never hand one credential's URL to another credential.
    settings = auth.settings
    return (f"{settings.client_id}@{settings.api_url}", href)


def _fresh(entry: _Cached | None, min_validity: float) -> bool:
    if entry is None:
        return False
    # "Shortly before expiry" is min_validity, but never more than half the URL's lifetime,
    # so that URLs living only a few seconds are still reused.
    margin = min(min_validity, entry.lifetime / 2)
    return entry.url.remaining() > margin


def resolve(
    href: str,
    *,
    auth: AxelGlobeAuth | None = None,
    min_validity: float = 30.0,
    timeout: float | None = None,
) -> PresignedURL:
    """The presigned storage URL an asset href redirects to, and when it expires.

    One authorised ``GET`` (redirects not followed, body not read) on a session carrying
    ``auth``; 5xx, 429 and dropped connections are retried with backoff (``Retry-After``
    honoured), a 401 is cured by the auth's token refresh. The whole call, retries included,
    ends within ``timeout`` seconds, however slowly the API answers. The answer is cached per
    process and shared by all threads until ``min_validity`` seconds (at most half its
    lifetime) before it expires; threads asking for the same href at once cause a single
    request.

    Hrefs that are not on the API origin (a storage URL, a presigned URL, any other host)
    need no token and no redirect: they are returned as they are, with no request sent; their
    expiry is read from ``X-Amz-Date``/``X-Amz-Expires`` when present, else they never
    expire. Other schemes (``file://``, local paths) raise :class:`AssetError`.

    Safe to call from many threads and from dask workers (threads or processes).

    Args:
        href: An asset href, e.g. ``item.assets["tci"].href``.
        auth: The authorisation; default: one ``AxelGlobeAuth()`` per process built from the
            ``AXELGLOBE_*`` environment.
        min_validity: Seconds the returned URL must still be valid for; a cached URL closer
            to expiry is replaced by a fresh one.
        timeout: Seconds the call may take at most; default :data:`RESOLVE_TIMEOUT` (60).

    Returns:
        The presigned URL; its ``repr`` never shows the signature.

    Raises:
        AssetError: The API did not answer a redirect (status and a hint in the message),
            did not answer in time, or redirected to something other than http(s).
        ConfigurationError: ``timeout`` is not a positive number.
        RestrictedError: AxelGlobe restricts this client for now.

    Example:
        >>> url = resolve(item.assets["band3"].href)  # doctest: +SKIP
        >>> requests.get(url.url)  # no Authorization header: storage refuses it  # doctest: +SKIP
    """
    seconds = _check_timeout(timeout)
    _check_href(href)
    if auth is None:
        auth = default_auth()
    if not auth.is_api_url(href):
        expiry = _expiry_from_url(href, time.time())
        return PresignedURL(href, math.inf if expiry is None else expiry)

    url = _resolve_api(href, auth, min_validity, seconds, wait=True)
    assert url is not None  # a waiting call answers or raises
    return url


def _resolve_api(href: str, auth: AxelGlobeAuth, min_validity: float, seconds: float, *,
                 wait: bool) -> PresignedURL | None:
    """:func:`resolve` of an API href; ``wait=False``: ``None`` if another thread is at it."""
    until = time.monotonic() + seconds
    key = _cache_key(href, auth)
    with _state_lock:
        entry = _cache.get(key)
        if _fresh(entry, min_validity):
            assert entry is not None
            return entry.url
        flight = _flight_locks.setdefault(key, threading.Lock())
    # Single flight: the first thread resolves while the others wait on the href's lock and
    # then find the fresh answer in the cache.
    if not wait:
        if not flight.acquire(blocking=False):
            return None  # in flight: whoever needs it waits for that request
    elif not flight.acquire(timeout=max(until - time.monotonic(), 0.0)):
        raise AssetError(f"could not resolve {redact(href)}: no answer within {seconds:g} s "
                         "(another thread was still waiting for the API); try again later")
    try:
        with _state_lock:
            entry = _cache.get(key)
        if _fresh(entry, min_validity):
            assert entry is not None
            return entry.url
        entry = _Redirect(href, auth, until, seconds).request()
        with _state_lock:
            _cache[key] = entry
            if len(_cache) > _CACHE_SWEEP_SIZE:
                _sweep_expired(time.time())
    finally:
        flight.release()
    return entry.url


def _check_timeout(timeout: float | None) -> float:
    seconds = RESOLVE_TIMEOUT if timeout is None else timeout
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(seconds)


def _check_href(href: str) -> None:
    scheme = urlsplit(href).scheme.lower() if isinstance(href, str) else ""
    if scheme not in ("http", "https"):
        raise AssetError(
            f"cannot resolve {redact(str(href))!r}: only http(s) asset hrefs can be resolved "
            "(a local path is already downloaded; open it directly)"
        )


def _cached_url(href: str, auth: AxelGlobeAuth, min_validity: float) -> PresignedURL | None:
    """The cached URL of an API href if it is still valid for ``min_validity`` s (no request)."""
    with _state_lock:
        entry = _cache.get(_cache_key(href, auth))
    return entry.url if entry is not None and _fresh(entry, min_validity) else None


#: Past this many cached URLs, a new one sweeps out the expired (long-running workers
#: resolve hrefs without end; each entry is small, so sweeping rarely is enough).
_CACHE_SWEEP_SIZE = 4096


def _sweep_expired(now: float) -> None:
    """Drop expired URLs and the locks of their hrefs (call with ``_state_lock`` held)."""
    for key in [k for k, e in _cache.items() if e.url.expires_at <= now]:
        del _cache[key]
        # A thread that took this lock but has not acquired it yet would then race a newer
        # one for this expired href: at worst one extra redirect, never a wrong URL.
        lock = _flight_locks.get(key)
        if lock is not None and not lock.locked():
            del _flight_locks[key]


class _Redirect:
    """The authorised GET of one href whose answer is a redirect, retried until a deadline."""

    def __init__(self, href: str, auth: AxelGlobeAuth, until: float, seconds: float) -> None:
        self.href, self.auth, self.until, self.seconds = href, auth, until, seconds
        self.where = redact(href)
        self.retry = RESOLVE_RETRY.new()

    def request(self) -> _Cached:
        """Send until a redirect arrives; its target and expiry."""
        session = _api_session(self.auth)
        while True:
            left = self.until - time.monotonic()
            if left <= 0:
                raise self._timed_out("")
            started = time.time()
            with deadline(self.until) as watch:
                try:
                    response = session.get(self.href, allow_redirects=False, stream=True,
                                           timeout=timeouts(*TIMEOUT, left),
                                           **session.env_for(self.href))
                except requests.RequestException as err:
                    self._failed(err, watch.fired)
                    continue
                with response:
                    if watch.fired:
                        # Cut off mid-headers: http.client took the cut for their end.
                        raise self._timed_out(" (the API answered too slowly)")
                    location = response.headers.get("Location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        _release(response)
                        return self._target(location, started)
                    try:
                        body = _read_some(response)
                    except requests.RequestException as err:
                        self._failed(err, watch.fired)
                        continue
            if self._retry_status(response):
                continue
            raise self._status_error(response.status_code, body)

    def _failed(self, err: Exception, cut_off: bool) -> None:
        """Count a request that got no (whole) answer, or raise when the budget is spent."""
        if cut_off:
            raise self._timed_out(" (the API answered too slowly)")
        try:
            self.retry = count_failure(self.retry, self.where, err, until=self.until,
                                       until_means=f"no answer within {self.seconds:g} s")
        except GaveUp as gave_up:
            raise AssetError(
                f"could not resolve {self.where}: {gave_up}; the API could not be reached, "
                "check the network and try again"
            ) from None

    def _retry_status(self, response: requests.Response) -> bool:
        """Whether a 429/5xx answer was counted for another try (after its backoff)."""
        status = response.status_code
        if status == 429:
            self.auth.provider.check_restriction()  # recorded by the auth: a RestrictedError
        retry_after = "Retry-After" in response.headers
        if status not in RETRY_STATUSES or not self.retry.is_retry("GET", status, retry_after):
            return False
        try:
            self.retry = count_failure(self.retry, self.where, None, response,
                                       until=self.until,
                                       until_means=f"no answer within {self.seconds:g} s")
        except GaveUp:
            return False  # the status and its hint say it best
        return True

    def _timed_out(self, why: str) -> AssetError:
        return AssetError(
            f"could not resolve {self.where}: no answer within {self.seconds:g} s{why}; "
            "check the network or try again later"
        )

    def _status_error(self, status: int, body: bytes) -> AssetError:
        return AssetError(
            f"could not resolve {self.where}: HTTP {status}{_describe(body)}; {_hint(status)}"
        )

    def _target(self, location: str, started: float) -> _Cached:
        url = urljoin(self.href, location)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise AssetError(
                f"could not resolve {self.where}: the API redirected to a {scheme!r} URL; "
                "only http(s) redirects are followed"
            )
        expiry = _expiry_from_url(url, started)
        if expiry is None:
            expiry = started + DEFAULT_EXPIRY
        log.debug("resolved %s -> %s (valid %.0f s)", self.where, display(url),
                  expiry - started)
        return _Cached(PresignedURL(url, expiry), lifetime=max(expiry - started, 0.0))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _release(response: requests.Response, limit: int = 65536) -> None:
    """Put the connection back in the pool if the (unwanted) body is small, else drop it.

    A redirect's body is of no use, but reading a few hundred bytes of it lets the next
    request reuse the connection instead of paying for a new one (a TLS handshake).
    """
    length = _int(response.headers.get("Content-Length"))
    if length is not None and 0 <= length <= limit:
        try:
            response.raw.drain_conn()
            response.raw.release_conn()
        except Exception:  # a broken body only costs the connection
            response.close()


def _read_some(response: requests.Response, limit: int = 65536) -> bytes:
    """Up to ``limit`` bytes of the body; raises if the connection drops before its end."""
    data = b""
    for chunk in response.iter_content(8192):
        data += chunk
        if len(data) >= limit:
            break
    return data


def _describe(body: bytes) -> str:
    """The API's own ``description`` of an error, if its body says one."""
    try:
        text = json.loads(body).get("description")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return f" ({redact(str(text))[:200]})" if text else ""


def _hint(status: int) -> str:
    if status == 200:
        return "expected a redirect to the file; is this href an AxelGlobe asset href?"
    if status == 401:
        return ("the token was refused even after a refresh: check AXELGLOBE_CLIENT_ID and "
                "AXELGLOBE_CLIENT_SECRET")
    if status == 403:
        return "access denied: your contract may not cover this item or AOI"
    if status == 404:
        return "no such asset: take hrefs from the item's assets as the API returned them"
    if status == 429:
        return "AxelGlobe restricts this client for now: wait a minute and try again"
    if status >= 500:
        return "the AxelGlobe API kept failing after retries: try again later"
    return "expected a redirect (302/307) to the file"


def invalidate(href: str) -> None:
    """Forget the cached presigned URL of ``href`` (for every credential).

    Call it after storage refused the URL (403: expired or revoked); the next
    :func:`resolve` asks the API again.

    Example:
        >>> invalidate("https://api.axelglobe.com/…/x_tci.tif")  # no-op when not cached
    """
    with _state_lock:
        for key in [k for k in _cache if k[1] == href]:
            del _cache[key]


# --- many hrefs at once ---------------------------------------------------------------------


def resolve_many(
    hrefs: Iterable[str],
    *,
    auth: AxelGlobeAuth | None = None,
    max_workers: int = PREFETCH_CONCURRENCY,
    min_validity: float = 30.0,
    timeout: float | None = None,
) -> dict[str, PresignedURL]:
    """The presigned URLs of many hrefs, resolved side by side (at most ``max_workers`` at once).

    Each href goes through :func:`resolve`: cached ones cost nothing, one being resolved by
    another thread is waited for, not asked twice. Over a wide-area link the requests overlap,
    so 100 hrefs cost about ``100 / max_workers`` round trips instead of 100.

    Args:
        hrefs: Asset hrefs (duplicates are resolved once).
        auth: The authorisation; default as in :func:`resolve`.
        max_workers: Redirect requests in flight at most; default :data:`PREFETCH_CONCURRENCY`.
        min_validity: As in :func:`resolve`.
        timeout: Seconds each :func:`resolve` may take at most; default
            :data:`RESOLVE_TIMEOUT`.

    Returns:
        ``{href: PresignedURL}`` in the order of ``hrefs``.

    Raises:
        AssetError: The first href, in the order given, that could not be resolved: once
            one fails, those not started are not sent and those in flight are finished (no
            request outlives the call); an href that is not http(s), before anything is
            sent. On Ctrl-C the call returns at once (what is in flight ends on its own).
        ConfigurationError: ``max_workers`` or ``timeout`` is not a positive number, before
            anything is sent.
        RestrictedError: AxelGlobe restricts this client for now.

    Example:
        >>> urls = resolve_many(item.assets[k].href for k in ("band3", "band5"))  # doctest: +SKIP
        >>> list(urls.values())  # doctest: +SKIP
        [PresignedURL(https://storage.example/…_band3.tif, expires in 899 s), ...]
    """
    if isinstance(hrefs, str):
        raise ConfigurationError("hrefs must be a list of hrefs, not one string: "
                                 "resolve_many([href]) or resolve(href)")
    unique = list(dict.fromkeys(hrefs))
    if not (isinstance(max_workers, int) and not isinstance(max_workers, bool)
            and max_workers > 0):
        raise ConfigurationError(f"max_workers must be a positive whole number, got "
                                 f"{max_workers!r}")
    _check_timeout(timeout)
    for href in unique:
        _check_href(href)
    if auth is None:
        auth = default_auth()
    found: dict[str, PresignedURL] = {}
    todo = []
    for href in unique:
        if not auth.is_api_url(href):
            found[href] = resolve(href, auth=auth)  # no request: used as it is
        elif (url := _cached_url(href, auth, min_validity)) is not None:
            found[href] = url
        else:
            todo.append(href)
    if todo:
        found.update(_side_by_side(todo, auth, max_workers, min_validity, timeout))
    return {href: found[href] for href in unique}


def _side_by_side(hrefs: list[str], auth: AxelGlobeAuth, max_workers: int,
                  min_validity: float, timeout: float | None) -> dict[str, PresignedURL]:
    """:func:`resolve` of each href in a pool of ``max_workers`` threads; a failure stops it.

    The first failure cancels the requests not started yet and waits for those in flight
    (each bounded by its timeout), so that no request outlives the call; then the failure
    of the first href in the order given is raised. Ctrl-C returns at once: what is in
    flight then ends on its own, within its bound.
    """
    pool = ThreadPoolExecutor(min(max_workers, len(hrefs)), thread_name_prefix="ag-resolve")
    try:
        futures = {href: pool.submit(resolve, href, auth=auth, min_validity=min_validity,
                                     timeout=timeout) for href in hrefs}
        done, _ = concurrent.futures.wait(futures.values(),
                                          return_when=concurrent.futures.FIRST_EXCEPTION)
        if any(future.exception() is not None for future in done):  # none cancelled yet
            pool.shutdown(wait=True, cancel_futures=True)
            for future in futures.values():
                error = None if future.cancelled() else future.exception()
                if error is not None:
                    raise error
        return {href: future.result() for href, future in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def prefetch(hrefs: Iterable[str], *, auth: AxelGlobeAuth, min_validity: float = 30.0) -> int:
    """Start resolving API hrefs in the background, :data:`PREFETCH_CONCURRENCY` at once.

    For a reader that will need these URLs shortly: its :func:`resolve` then finds them
    cached, or waits for the request already in flight (single flight), instead of sending
    its own. Hrefs are sent in the order given; one that another thread is resolving at
    that moment is not asked again (its request serves everyone). Hrefs already cached
    (valid for ``min_validity`` s), already queued or not on the API origin are skipped, and
    so is, for a minute, one whose prefetch failed. Returns at once; errors are not raised
    (nor cached): the :func:`resolve` that needs the href asks again and reports them. The
    threads are daemons and end when the queue is empty.

    Returns:
        How many hrefs were queued.

    Example:
        >>> prefetch([i.assets["band3"].href for i in items], auth=auth)  # doctest: +SKIP
        9
    """
    return _prefetcher.submit(hrefs, auth, min_validity)


#: Seconds during which an href whose prefetch failed is not prefetched again.
_FAILED_PAUSE = 60.0


class _Prefetcher:
    """A queue of hrefs and up to :data:`PREFETCH_CONCURRENCY` daemon threads resolving them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[tuple[str, str], str, AxelGlobeAuth, float]] = (
            collections.deque())
        self._pending: set[tuple[str, str]] = set()  # queued or being resolved
        # href -> when it may be prefetched again after a failure (the read that needs it
        # asks once more and reports the error; prefetching it again would only repeat it)
        self._failed: dict[tuple[str, str], float] = {}
        self._threads = 0
        self._busy = 0

    def submit(self, hrefs: Iterable[str], auth: AxelGlobeAuth, min_validity: float) -> int:
        if PREFETCH_CONCURRENCY <= 0:
            return 0
        queued = 0
        now = time.monotonic()
        with self._lock:
            if len(self._failed) > _CACHE_SWEEP_SIZE:
                self._failed = {k: t for k, t in self._failed.items() if t > now}
            for href in hrefs:
                if not auth.is_api_url(href):
                    continue
                key = _cache_key(href, auth)
                if (key in self._pending or self._failed.get(key, 0.0) > now
                        or _cached_url(href, auth, min_validity) is not None):
                    continue
                self._pending.add(key)
                self._queue.append((key, href, auth, min_validity))
                queued += 1
            grow = self._reserve_thread()
        if grow:
            self._start_thread()
        return queued

    def _reserve_thread(self) -> bool:
        """Whether to start one more thread: hrefs wait, none idle, below the limit (locked)."""
        if (self._threads < PREFETCH_CONCURRENCY
                and self._threads - self._busy < len(self._queue)):
            self._threads += 1
            return True
        return False

    def _start_thread(self) -> None:
        threading.Thread(target=self._work, name="ag-prefetch", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                key, href, auth, min_validity = self._queue.popleft()
                self._busy += 1
                grow = self._reserve_thread()
            if grow:
                # The pool grows from its own threads, one by one: the reader that submitted
                # the hrefs started one thread, not sixteen, before asking for its own URL.
                self._start_thread()
            try:
                # Not waiting for an href another thread is resolving (a read): the slot
                # goes to the next href instead; the read's request serves everyone.
                _resolve_api(href, auth, min_validity, RESOLVE_TIMEOUT, wait=False)
            except Exception as err:  # the read that needs it resolves again and reports
                log.debug("prefetch of %s failed: %s", redact(href), redact(str(err)))
                with self._lock:
                    self._failed[key] = time.monotonic() + _FAILED_PAUSE
            finally:
                with self._lock:
                    self._busy -= 1
                    self._pending.discard(key)


_prefetcher = _Prefetcher()
