"""Every retry policy of the package, named by use, and the one rule for "restricted".

AxelGlobe restricts clients that ask for tokens too often: for a while every call answers
429 (maybe with ``Retry-After``) or, at the token endpoint, 403. Retrying then only
prolongs the restriction, so the package remembers it (:meth:`TokenProvider.record_restriction`)
and sends nothing until it ends. *Which* answers mean that is decided here and only here,
by :func:`restriction_until`: only the token endpoint's and the API origin's own answers
count, never a 429 from storage or from a ``next`` link on another host.

The policies are urllib3 ``Retry`` objects (backoff, ``Retry-After`` honoured), one per use:

============== ===================================================================
:func:`search_retry`    API GETs of searches, collections, items (``ag.open()``)
:func:`token_retry`     token requests: 5xx and dropped connections, never 4xx, stops
                        at the request's deadline (:func:`with_deadline`)
:func:`resolve_retry`   the authorised GET of an asset href that answers a redirect
:func:`download_retry`  each storage transfer (its budget also bounded in time)
============== ===================================================================

Each sleeps between attempts on the thread's watch (:func:`._deadline.sleep`), not with
``time.sleep``: a request given up (:meth:`._deadline.Watch.cancel`, e.g. a page fetched
ahead for a search broken off) or past its :func:`._deadline.deadline` stops waiting at
once, and is not tried again. A plain ``Retry`` the user passes (``ag.open(retry=...)``) is
used as :func:`watched`: a copy with its fields that waits the same way.

Example:
    >>> 503 in search_retry().status_forcelist
    True
    >>> parse_retry_after("30", now=1000.0)
    1030.0
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import math
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from . import _deadline
from .errors import ConfigurationError
from .settings import url_origin

if TYPE_CHECKING:
    from urllib3.response import BaseHTTPResponse

#: Statuses retried with backoff (``Retry-After`` honoured).
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: How long to back off after a restriction that says no ``Retry-After``.
DEFAULT_RESTRICTION = 60.0
#: A Retry-After longer than this (a week) is taken as garbage, not as a restriction.
MAX_RESTRICTION = 7 * 86400.0
#: A 429 from the API whose Retry-After is longer than this (seconds) is a restriction of
#: the client, not a passing rate limit: it is not waited out but recorded and reported.
RESTRICTION_THRESHOLD = 30.0
#: The longest wait any retry takes, whatever ``Retry-After`` says.
MAX_RETRY_WAIT = 30.0


def parse_retry_after(value: str | None, *, now: float, default: float = DEFAULT_RESTRICTION
                      ) -> float:
    """The epoch time a ``Retry-After`` header (seconds or an HTTP date) points at.

    Example:
        >>> parse_retry_after("Thu, 01 Jan 1970 00:20:00 GMT", now=1000.0)
        1200.0
        >>> parse_retry_after(None, now=1000.0)
        1060.0
    """
    if value:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:  # "nan", "inf" or absurd values: the default, not an overflow
            if math.isfinite(seconds) and seconds <= MAX_RESTRICTION:
                return now + max(0.0, seconds)
            return now + default
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            return min(max(now, when.timestamp()), now + MAX_RESTRICTION)
    return now + default


def restriction_until(status: int, url: str, retry_after: str | None, *, api_url: str,
                      token_url: str, now: float) -> float | None:
    """When the restriction an answer announces ends (epoch s), or ``None`` if it announces none.

    The one rule, used for every answer the package sees:

    - from the token endpoint (its exact URL): 429 or 403 is a restriction, for
      ``Retry-After`` or :data:`DEFAULT_RESTRICTION` seconds;
    - from the API's origin (scheme, host, port): a 429 whose ``Retry-After`` is longer
      than :data:`RESTRICTION_THRESHOLD` (a shorter one is a passing rate limit, retried);
    - from anywhere else (storage, a ``next`` link on another host): never. Only
      AxelGlobe's own origins can change what the client believes about AxelGlobe.

    Example:
        >>> api, tok = "https://api.example/stac", "https://auth.example/oauth/token"
        >>> restriction_until(429, "https://api.example/stac/search", "120", api_url=api,
        ...                   token_url=tok, now=0.0)
        120.0
        >>> restriction_until(429, "https://evil.example/search", "120", api_url=api,
        ...                   token_url=tok, now=0.0) is None
        True
    """
    if status == 429 or status == 403:
        origin = url_origin(url)
        if origin == url_origin(token_url) and url.split("?")[0] == token_url.split("?")[0]:
            return parse_retry_after(retry_after, now=now)
        if status == 429 and origin == url_origin(api_url):
            until = parse_retry_after(retry_after, now=now, default=0.0)
            if until - now > RESTRICTION_THRESHOLD:
                return until
    return None


class WatchedRetry(Retry):
    """urllib3 ``Retry`` whose waits between attempts end when the request is given up.

    urllib3 sleeps the backoff (or a ``Retry-After``) with ``time.sleep``, on the thread
    that sends; here it waits on that thread's watch instead (:func:`._deadline.sleep`), so
    a cancel or a deadline cuts the wait short, and the request fails at once with the
    watch's error (:class:`._deadline.RequestCancelled`, or a dropped connection) instead of
    being tried again. Without a watch it sleeps as urllib3 does.

    Example:
        >>> watch = _deadline.Watch()
        >>> watch.cancel()
        >>> with _deadline.watching(watch):
        ...     WatchedRetry(backoff_factor=30).sleep()  # at once, not in 30 s
        Traceback (most recent call last):
        ...
        pystac_axelglobe._deadline.RequestCancelled: the request was cancelled
    """

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """As ``Retry.sleep`` (``Retry-After``, else the backoff), on the thread's watch."""
        wait = None
        if self.respect_retry_after_header and response:
            wait = self.get_retry_after(response)
        # A Retry-After of 0 falls back to the backoff, as urllib3's own sleep() does.
        _deadline.sleep(wait or self.get_backoff_time())


class AxelGlobeRetry(WatchedRetry):
    """urllib3 ``Retry`` that does not wait out a long ``Retry-After`` (a restriction).

    Use it with ``raise_on_status=False``: the response is then handed back as it is, for
    the caller to judge with :func:`restriction_until`.
    """

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        """As ``Retry.increment``; gives up at once on a ``Retry-After`` over the threshold."""
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > RESTRICTION_THRESHOLD:
                raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After {wait:g}s"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def watched(retry: Retry | int) -> Retry:
    """A user's retry policy as the package uses it: a plain ``Retry`` as a watched copy.

    A plain ``Retry`` sleeps with ``time.sleep``: a cancel (a page fetched ahead for a search
    broken off) could not cut its backoff or ``Retry-After`` short. The copy has the same
    fields and waits on the thread's watch; the user's object is left as it is. A subclass
    of the user's is used as it is (its overrides are its own, its sleep too), and so is a
    policy of the package (already watched). A number ``n`` means what it means to requests
    and pystac-client (``max_retries=n``): ``n`` retries of connections, none of reads.

    Raises:
        ConfigurationError: anything else (before any request is sent).

    Example:
        >>> policy = Retry(total=3, status_forcelist=[503])
        >>> used = watched(policy)
        >>> type(used).__name__, used.total, type(policy).__name__
        ('WatchedRetry', 3, 'Retry')
        >>> used = watched(2)
        >>> type(used).__name__, used.total, used.read
        ('WatchedRetry', 2, False)
    """
    if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0:
        retry = Retry(total=retry, read=False)  # requests' HTTPAdapter(max_retries=n)
    if not isinstance(retry, Retry):
        raise ConfigurationError(
            f"retry= takes a urllib3 Retry or a number of retries (0 or more), not "
            f"{type(retry).__name__} {retry!r}: e.g. retry=Retry(total=5, backoff_factor=1, "
            "status_forcelist=[429, 500, 502, 503, 504]), or retry=None for the default")
    if type(retry) is not Retry:
        return retry
    clone: Any = copy.copy(retry)
    # WatchedRetry only adds a sleep() to Retry: the same fields, the same state.
    clone.__class__ = WatchedRetry
    return cast(Retry, clone)


_T = TypeVar("_T", bound="_TokenRetry")


class _TokenRetry(WatchedRetry):
    """urllib3 ``Retry`` for token requests: no 429 retried, Retry-After and time capped.

    It never retries a 429 (a restriction), and starts no attempt (and sleeps no longer)
    than its ``deadline`` allows.

    Args:
        deadline: A ``time.monotonic()`` time after which it is exhausted (``None``: none).
            Set per token request with :func:`with_deadline`.
    """

    # urllib3 retries 413/429/503 carrying Retry-After even outside status_forcelist: a 429
    # from the token endpoint means "restricted", and asking again only prolongs it.
    RETRY_AFTER_STATUS_CODES = frozenset({503})

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def new(self: _T, **kw: Any) -> _T:
        """As ``Retry.new``, keeping the deadline."""
        kw.setdefault("deadline", self.deadline)
        return super().new(**kw)

    def _left(self) -> float:
        return math.inf if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def is_exhausted(self) -> bool:
        """Out of attempts, or out of time."""
        return super().is_exhausted() or self._left() <= 0

    def get_backoff_time(self) -> float:
        """urllib3's backoff, never past the deadline."""
        return min(super().get_backoff_time(), self._left())

    def get_retry_after(self, response: Any) -> float | None:
        """The server's Retry-After, at most :data:`MAX_RETRY_WAIT` s and the time left."""
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_WAIT, self._left())


def with_deadline(retry: Retry, deadline: float) -> Retry:
    """``retry`` that gives up at ``deadline`` (``time.monotonic()``), if it can.

    A :func:`token_retry` policy gets the deadline; any other ``Retry`` is returned as it
    is (its own counts and backoff bound it).

    Example:
        >>> with_deadline(token_retry(), time.monotonic() - 1).is_exhausted()
        True
    """
    if isinstance(retry, _TokenRetry):
        return retry.new(deadline=deadline)
    return retry


def search_retry(backoff_factor: float = 0.25) -> Retry:
    """API GETs (searches, collections, items): 429/5xx/connection errors, bounded.

    Args:
        backoff_factor: urllib3's: sleep ``backoff_factor * 2 ** (n - 1)`` s (at most 8 s)
            before retry ``n``, unless the answer says ``Retry-After``.

    Example:
        >>> search_retry().total
        10
    """
    return AxelGlobeRetry(
        total=10,
        connect=5,
        read=5,
        status=8,
        backoff_factor=backoff_factor,
        backoff_max=8,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def token_retry() -> Retry:
    """Token requests: 5xx and dropped connections, never 4xx.

    429 and 403 are deliberately absent: they mean "restricted", and asking again only
    prolongs the restriction.

    Example:
        >>> token_retry().allowed_methods
        frozenset({'POST'})
    """
    return _TokenRetry(
        total=4,
        connect=4,
        read=4,
        status=4,
        other=0,
        backoff_factor=0.5,
        backoff_max=10.0,
        status_forcelist=(500, 502, 503, 504),
        # POST is not retried by default; a token request is safe to repeat.
        allowed_methods=frozenset({"POST"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def resolve_retry() -> Retry:
    """The authorised GET of an asset href (a redirect is the answer, never followed).

    Example:
        >>> resolve_retry().raise_on_redirect  # the redirect is the answer, handed back
        False
    """
    return AxelGlobeRetry(
        total=6,
        connect=6,
        read=6,
        status=6,
        redirect=False,
        backoff_factor=0.25,
        backoff_max=10.0,
        status_forcelist=sorted(RETRY_STATUSES),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def download_retry() -> Retry:
    """Each storage transfer: 5xx/429 and dropped connections, backoff honouring Retry-After.

    Example:
        >>> download_retry().total
        8
    """
    return WatchedRetry(
        total=8,
        connect=8,
        read=8,
        status=8,
        other=2,
        redirect=False,
        backoff_factor=0.25,
        backoff_max=20.0,
        status_forcelist=sorted(RETRY_STATUSES),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
    )


__all__ = [
    "DEFAULT_RESTRICTION",
    "MAX_RESTRICTION",
    "RESTRICTION_THRESHOLD",
    "RETRY_STATUSES",
    "AxelGlobeRetry",
    "WatchedRetry",
    "download_retry",
    "parse_retry_after",
    "resolve_retry",
    "restriction_until",
    "search_retry",
    "token_retry",
    "watched",
    "with_deadline",
]
