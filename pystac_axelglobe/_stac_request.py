"""One request of the STAC I/O: sent, retried, its whole body read within bounds, checked.

:class:`BoundedRequest` is what :class:`~pystac_axelglobe._stac_io.AxelGlobeStacApiIO` does
with a request once it is built (in AxelGlobe's dialect, through the request modifier):

- sent on the session, whose adapter retries statuses and connection errors under the
  ``Retry`` policy, with the bearer token redacted from the debug log line;
- its body read as it arrives, within ``deadline`` seconds and ``max_bytes`` (a server
  trickling a byte every few seconds never trips a read timeout); a body that breaks
  mid-way is retried under the same policy, which the adapter never sees;
- a 429 from AxelGlobe's own origins recorded as a restriction
  (:func:`~pystac_axelglobe._retry.restriction_until`), any other error status an
  :class:`~pystac_axelglobe.errors.APIRequestError` (:mod:`._stac_errors`).

Example:
    >>> bounded = BoundedRequest(requests.Session(), timeout=(10, 15), deadline=60,
    ...                          retry=Retry(3), max_bytes=2**20)
    >>> bounded.deadline
    60
    >>> bounded.fetch(requests.Request("GET", url), "GET", url).json()  # doctest: +SKIP
    {'type': 'Catalog', ...}
"""

from __future__ import annotations

import logging
import time

import requests
from pystac_client.stac_api_io import Timeout
from urllib3.exceptions import DecodeError, MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from ._redact import redact_headers
from ._retry import restriction_until
from ._stac_errors import no_answer, status_error
from .errors import APIRequestError, AxelGlobeError

logger = logging.getLogger("pystac_axelglobe.client")  # the name users configure

_CHUNK = 64 * 1024

# A body that stops or breaks mid-way: retried under the policy, like a dropped connection.
_DROPPED = (ProtocolError, ReadTimeoutError, DecodeError,
            requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class BoundedRequest:
    """Sends requests on ``session`` within these bounds, reading each whole body.

    Args:
        session: The I/O's session (its adapter carries ``retry``; its auth, the token).
        timeout: Seconds, or ``(connect, read)``, of each send.
        deadline: Seconds a whole response body may take once its headers have come.
        retry: The retry policy, also counted down by bodies broken mid-way.
        max_bytes: The largest response body read.
    """

    def __init__(self, session: requests.Session, *, timeout: Timeout | None, deadline: float,
                 retry: Retry, max_bytes: int) -> None:
        self.session, self.timeout, self.deadline = session, timeout, deadline
        self.retry, self.max_bytes = retry, max_bytes

    def fetch(self, request: requests.Request, method: str, href: str) -> requests.Response:
        """Send, retry, read the whole body (``resp.content``) and check the status.

        Raises:
            AuthenticationError, RestrictedError, ConfigurationError: from the auth, as they
                are; RestrictedError also for a 429 from AxelGlobe's own origins.
            APIRequestError: an error status, no answer in time, a body too slow or too big.
        """
        # Connections dropped mid-body surface after urllib3 has handed the response over
        # (the body is read here, or by the auth's 401 hook inside _send), so the adapter's
        # Retry never sees them. Re-issue the request under the same policy object:
        # Retry.increment counts the read error (raising MaxRetryError when exhausted) and
        # Retry.sleep backs off.
        retry: Retry = self.retry
        started = time.monotonic()
        while True:
            resp: requests.Response | None = None
            try:
                resp = self._send(request, method, href)
                resp._content = self._read_body(resp, method, href)
                resp._content_consumed = True  # type: ignore[attr-defined]  # as requests does
                break
            except _DROPPED as err:
                if resp is not None:
                    resp.close()
                retry = self._again(retry, method, href, err, started)
        if resp.status_code == 429:
            self._raise_if_restricted(resp, href)
        if not 200 <= resp.status_code < 300:
            raise status_error(resp, method, href)
        return resp

    def _send(self, request: requests.Request, method: str, href: str) -> requests.Response:
        """One send (the adapter retries statuses and connection errors); body not read."""
        try:
            prepped = self.session.prepare_request(request)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s %s Headers: %s", prepped.method, prepped.url,
                             redact_headers(prepped.headers))
            settings = self.session.merge_environment_settings(
                prepped.url, proxies={}, stream=True, verify=True, cert=None
            )
            return self.session.send(prepped, timeout=self.timeout, **settings)
        except AxelGlobeError:
            raise  # auth errors (restricted, rejected, unconfigured) as themselves
        except _DROPPED:
            raise  # a redirect's or a 401's body broke: retried by the caller
        except requests.RequestException as err:
            raise no_answer(method, href, err, self.timeout) from err

    def _read_body(self, resp: requests.Response, method: str, href: str) -> bytes:
        """The whole body as it arrives, within :attr:`deadline` s and the size limit."""
        end = time.monotonic() + self.deadline
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1 returns what has arrived (up to 64 KiB), so a server trickling bytes
            # cannot hold one read open past the deadline.
            chunk = resp.raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes or time.monotonic() > end:
                resp.close()
                what = (f"more than {self.max_bytes:,} bytes" if size > self.max_bytes
                        else f"only {size:,} bytes in {self.deadline:g} s")
                raise APIRequestError(
                    f"{method} {href}: the answer (HTTP {resp.status_code}) came too slowly "
                    f"or too big: {what}. Try again later (a slow network: "
                    "ag.open(deadline=seconds))", status=resp.status_code, url=resp.url or href)

    def _again(self, retry: Retry, method: str, href: str, err: Exception,
               started: float) -> Retry:
        """The policy after a body broke mid-way (slept), or an error when it is spent."""
        try:
            retry = retry.increment(method, href, error=ProtocolError(str(err)))
        except MaxRetryError as exhausted:
            raise APIRequestError(
                f"{method} {href}: the connection kept dropping mid-response "
                f"({exhausted.reason}); try again later", url=href) from err
        except ProtocolError as not_retried:  # a policy that retries no reads (read=False)
            raise APIRequestError(
                f"{method} {href}: the connection dropped mid-response ({not_retried}), and "
                "the retry policy retries no reads; try again later, or pass a Retry with "
                "read= retries", url=href) from err
        if time.monotonic() - started > self.deadline:
            raise APIRequestError(
                f"{method} {href}: no complete answer within {self.deadline:g} s (the "
                "connection kept dropping mid-response); try again later", url=href) from err
        logger.debug("%s %s: connection dropped mid-body, retrying", method, href)
        retry.sleep()
        return retry

    def _raise_if_restricted(self, resp: requests.Response, href: str) -> None:
        # Only AxelGlobe's own origins can restrict this client (_retry.restriction_until);
        # a 429 from anywhere else is that host's problem, reported as an APIRequestError.
        auth = self.session.auth
        settings = getattr(auth, "settings", None)
        if settings is None:
            return
        until = restriction_until(429, resp.url or href, resp.headers.get("Retry-After"),
                                  api_url=settings.api_url, token_url=settings.token_url,
                                  now=time.time())
        if until is not None:  # remembered for every thread and process
            raise auth.provider.record_restriction(until, status=429)  # type: ignore[union-attr]
