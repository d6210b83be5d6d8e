"""The redirect request behind :func:`~pystac_axelglobe.presigned.resolve`, and expiry parsing.

:class:`Redirect` is the authorised ``GET`` of one asset href on the API, its redirect not
followed and its body not read: retried under a urllib3 ``Retry`` until a deadline (a silent
or trickling API is cut off by the package's watchdog), a 429 checked against a
restriction, and any answer other than a redirect an
:class:`~pystac_axelglobe.errors.AssetError` with the status, the API's own description and
a hint. Its :class:`Target` is where the href redirected to and until when:
:func:`expiry_from_url` reads that from the URL's ``X-Amz-Date``/``X-Amz-Expires``. The
cache, the sessions and the public names are :mod:`pystac_axelglobe.presigned`'s.

Example:
    >>> url = "https://s.example/a.tif?X-Amz-Date=20240101T000000Z&X-Amz-Expires=900"
    >>> expiry_from_url(url, requested_at=2e9) - 1704067200
    900.0
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import logging
import math
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from urllib3.util.retry import Retry

from ._http import GaveUp, Session, count_failure, deadline, display, timeouts
from ._redact import redact
from ._retry import RETRY_STATUSES
from .errors import AssetError

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

log = logging.getLogger("pystac_axelglobe.presigned")  # the logger users know for resolves

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def expiry_from_url(url: str, requested_at: float) -> float | None:
    """Expiry of an S3-style presigned URL (``X-Amz-Date`` + ``X-Amz-Expires``), if it says.

    The smaller of "server's signing time + lifetime" and "our request time + lifetime" is
    returned, so a clock skew in either direction errs on the early side.

    Example:
        >>> expiry_from_url("https://s.example/a.tif?X-Amz-Expires=60", 1000.0)
        1060.0
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


@dataclasses.dataclass(frozen=True)
class Target:
    """Where an href redirected to, when that URL expires, and how long it lived then."""

    url: str = dataclasses.field(repr=False)  # a credential until it expires
    expires_at: float
    lifetime: float  # seconds from the request to expiry, to cap the reuse margin


class Redirect:
    """The authorised GET of one href whose answer is a redirect, retried until a deadline.

    Args:
        href: The asset href on the API origin.
        auth: The authorisation (its provider knows whether the client is restricted).
        session: The API session carrying ``auth``.
        until: ``time.monotonic()`` moment by which an answer must have come.
        seconds: The whole budget, for the messages.
        retry: The retry policy (a fresh copy is counted down).
        timeout: ``(connect, read)`` timeouts of each request.
        default_expiry: Lifetime assumed for a target whose URL says nothing of it.

    Example:
        >>> Redirect(href, auth, session, until=time.monotonic() + 60, seconds=60,
        ...          retry=resolve_retry(), timeout=(10, 30), default_expiry=60
        ...          ).request()  # doctest: +SKIP
        Target(expires_at=1735689600.0, lifetime=900.0)
    """

    def __init__(self, href: str, auth: AxelGlobeAuth, session: Session, *, until: float,
                 seconds: float, retry: Retry, timeout: tuple[float, float],
                 default_expiry: float) -> None:
        self.href, self.auth, self.session = href, auth, session
        self.until, self.seconds = until, seconds
        self.timeout, self.default_expiry = timeout, default_expiry
        self.where = redact(href)
        self.retry = retry.new()

    def request(self) -> Target:
        """Send until a redirect arrives; its target and expiry."""
        session = self.session
        while True:
            left = self.until - time.monotonic()
            if left <= 0:
                raise self._timed_out("")
            started = time.time()
            with deadline(self.until) as watch:
                try:
                    response = session.get(self.href, allow_redirects=False, stream=True,
                                           timeout=timeouts(*self.timeout, left),
                                           **session.env_for(self.href))
                except requests.RequestException as err:
                    self._failed(err, watch.fired)
                    continue
                with response:
                    if watch.fired:
                        # Cut off mid-headers: http.client took the cut for their end.
                        raise self._timed_out(" (the API answered too slowly)")
                    location = response.headers.get("Location")
                    if response.status_code in REDIRECT_STATUSES and location:
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

    def _target(self, location: str, started: float) -> Target:
        url = urljoin(self.href, location)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise AssetError(
                f"could not resolve {self.where}: the API redirected to a {scheme!r} URL; "
                "only http(s) redirects are followed"
            )
        expiry = expiry_from_url(url, started)
        if expiry is None:
            expiry = started + self.default_expiry
        log.debug("resolved %s -> %s (valid %.0f s)", self.where, display(url),
                  expiry - started)
        return Target(url, expiry, lifetime=max(expiry - started, 0.0))


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
