"""Asset hrefs → presigned storage URLs: :func:`resolve`, its cache, :func:`invalidate`.

Every AxelGlobe asset href lives on the API origin and answers, with the bearer token, a
redirect (302/307) to an expiring S3-style presigned URL on a storage host. :func:`resolve`
turns an href into a :class:`PresignedURL` with one authorised request (cached per process,
single-flight per href, bounded by :data:`RESOLVE_TIMEOUT`); :func:`resolve_many` resolves
many at once (at most :data:`PREFETCH_CONCURRENCY` requests in flight); :func:`prefetch` does
the same in the background, for readers that will ask :func:`resolve` for them shortly;
:func:`invalidate` forgets one after storage answered 403. Downloading is
:mod:`pystac_axelglobe.downloads`.

This module is the front door: the public names, their bounds, and the per-process state
(the URL cache, the single-flight locks, one API session per auth). The redirect request
itself, its retries and its error messages, and expiry parsing are :mod:`._redirect`; the
threads of :func:`resolve_many` and :func:`prefetch` are :mod:`._resolve_threads`.

(The module is not called ``resolve.py``: a submodule named like the function would replace
``pystac_axelglobe.resolve`` once imported.)

Example:
    >>> import pystac_axelglobe as ag
    >>> url = ag.resolve(item.assets["tci"].href)  # doctest: +SKIP
    >>> url                                         # doctest: +SKIP
    PresignedURL(https://storage.example/…/tci.tif, expires in 899 s)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._http import Session, display
from ._redact import redact
from ._redirect import Redirect, expiry_from_url
from ._resolve_threads import Prefetcher, side_by_side
from ._retry import resolve_retry
from .auth import default_auth
from .errors import AssetError, ConfigurationError

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = [
    "API_POOL_SIZE",
    "MAX_WORKERS_LIMIT",
    "DEFAULT_EXPIRY",
    "PREFETCH_CONCURRENCY",
    "RESOLVE_TIMEOUT",
    "PresignedURL",
    "invalidate",
    "prefetch",
    "resolve",
    "resolve_many",
]

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
#: The most threads :func:`resolve_many` uses, whatever ``max_workers`` says: half the
#: pool, the other half being for the background prefetch and the reads beside it. More
#: threads would open connections the pool cannot keep (urllib3 discards them, with a log
#: line, and the next request pays for a new one).
MAX_WORKERS_LIMIT = API_POOL_SIZE // 2


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
    _prefetcher = _new_prefetcher()  # its threads stayed in the parent


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
        expiry = expiry_from_url(href, time.time())
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
        entry = _request(href, auth, until, seconds)
        with _state_lock:
            _cache[key] = entry
            if len(_cache) > _CACHE_SWEEP_SIZE:
                _sweep_expired(time.time())
    finally:
        flight.release()
    return entry.url


def _request(href: str, auth: AxelGlobeAuth, until: float, seconds: float) -> _Cached:
    """The redirect of ``href``, under this module's bounds as they are now."""
    target = Redirect(href, auth, _api_session(auth), until=until, seconds=seconds,
                      retry=RESOLVE_RETRY, timeout=TIMEOUT,
                      default_expiry=DEFAULT_EXPIRY).request()
    return _Cached(PresignedURL(target.url, target.expires_at), target.lifetime)


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
        max_workers: Redirect requests in flight at most; default :data:`PREFETCH_CONCURRENCY`,
            at most :data:`MAX_WORKERS_LIMIT` (32).
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
        one = functools.partial(resolve, auth=auth, min_validity=min_validity, timeout=timeout)
        found.update(side_by_side(one, todo, min(max_workers, MAX_WORKERS_LIMIT)))
    return {href: found[href] for href in unique}


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
    # A generator: the prefetcher reads it under its lock, as it queues.
    wanted = ((_cache_key(href, auth), href) for href in hrefs
              if auth.is_api_url(href) and _cached_url(href, auth, min_validity) is None)
    return _prefetcher.submit(wanted, auth, min_validity)


def _prefetch_one(href: str, auth: AxelGlobeAuth, min_validity: float) -> None:
    # Not waiting for an href another thread is resolving (a read): the prefetcher's slot
    # goes to the next href instead; the read's request serves everyone.
    _resolve_api(href, auth, min_validity, RESOLVE_TIMEOUT, wait=False)


def _new_prefetcher() -> Prefetcher:
    # The limit is read at each use, so that setting PREFETCH_CONCURRENCY takes effect.
    return Prefetcher(_prefetch_one, limit=lambda: PREFETCH_CONCURRENCY)


_prefetcher = _new_prefetcher()
