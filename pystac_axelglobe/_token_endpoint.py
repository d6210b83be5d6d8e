"""The token endpoint: one client-credentials request, bounded, and its answer distrusted.

:func:`post_credentials` sends the request over a private session (the user's hooks and
adapters never see the secret) within an overall deadline (:func:`._deadline.deadline`, the
package's one watchdog), follows no redirect, and reads at most :data:`MAX_TOKEN_RESPONSE`
bytes. :func:`read_token` accepts only a JSON object with a header-safe ``access_token``
and a sane ``expires_in`` (:func:`token_from` makes it a :class:`~._token.Token`); what it
says about anything else never quotes the token. No function here keeps the secret in a
local that outlives the request (traceback tools print locals).

Example:
    >>> read_token(b'{"access_token": "abc", "expires_in": "3600"}')
    ('abc', 3600.0)
    >>> read_token(b"<html>")
    'the answer is not a JSON object (an HTML page?)'
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import Any

import requests
from urllib3.util.retry import Retry

from ._deadline import Watch
from ._deadline import deadline as watched_until
from ._http import mount
from ._retry import with_deadline
from ._token import DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, Token, header_safe
from ._token_cache import load_json_object
from .errors import APIRequestError, AuthenticationError, AxelGlobeError, ConfigurationError
from .settings import ENV_CACHE_DIR, ENV_CLIENT_SECRET, Settings

#: A token endpoint's answer longer than this is not a token response.
MAX_TOKEN_RESPONSE = 64 * 1024
_DIGITS = re.compile(r"\d{1,10}(?:\.\d{1,9})?")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,20}")


@dataclasses.dataclass(frozen=True)
class Answer:
    """The token endpoint's answer; the repr leaves the body (maybe a token) out."""

    status: int
    retry_after: str | None
    is_redirect: bool
    #: The body, or ``None`` when it was longer than :data:`MAX_TOKEN_RESPONSE`.
    body: bytes | None = dataclasses.field(repr=False)


def require_secret(settings: Settings) -> None:
    """Raise unless ``settings`` holds the client secret a token request needs.

    Example:
        >>> require_secret(Settings.from_env(client_id="me", client_secret="s"))
    """
    if not settings.client_secret:
        raise ConfigurationError(
            f"a token for client {settings.client_id!r} must be fetched, but no client "
            f"secret is configured: set {ENV_CLIENT_SECRET} (or pass client_secret=). A "
            "pickled AxelGlobeAuth carries no client secret; on another process it uses the "
            f"token cache ({ENV_CACHE_DIR}) or {ENV_CLIENT_SECRET}."
        )


def post_credentials(settings: Settings, *, retry: Retry, timeout: tuple[float, float],
                     deadline: float) -> Answer:
    """POST the client credentials to ``settings.token_url``; the answer within ``deadline`` s.

    Raises:
        APIRequestError: No answer (connection failed, timed out, deadline passed),
            retries included.
    """
    failure = ""
    answer = None
    # One session per request: token requests are rare, and a fresh connection is one the
    # deadline watches. One thread sends one request through it (no redirect followed, the
    # retries one after another): a pool of one keeps every connection it opens.
    with watched_until(time.monotonic() + deadline) as limit, requests.Session() as session:
        mount(session, concurrency=1, max_retries=with_deadline(retry, limit.at))
        try:
            resp = session.post(settings.token_url, json=_credentials(settings),
                                timeout=timeout, allow_redirects=False, stream=True)
            with resp:
                answer = Answer(resp.status_code, resp.headers.get("Retry-After"),
                                resp.is_redirect, _read_at_most(resp, MAX_TOKEN_RESPONSE))
        except requests.RequestException as err:
            failure = _unreachable(settings, err, limit, deadline)
        if limit.fired:
            # Cut off mid-answer: what was read may look complete (headers ended by EOF, a
            # body without Content-Length) but is not the server's whole answer.
            answer, failure = None, _unreachable(settings, None, limit, deadline)
    if answer is None:
        # Raised out here, not in the except block: no chained exception keeps requests'
        # frames alive, and with them the request body that holds the secret.
        raise APIRequestError(failure, url=settings.token_url)
    return answer


def _credentials(settings: Settings) -> dict[str, str | None]:
    # The request body, built while the request is sent so that no caller's frame keeps it.
    return {"grant_type": "client_credentials", "client_id": settings.client_id,
            "client_secret": settings.client_secret, "audience": settings.audience}


def _read_at_most(resp: requests.Response, limit: int) -> bytes | None:
    # The body, or None when it is longer than limit (a token answer is small).
    data = bytearray()
    for chunk in resp.iter_content(16 * 1024):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _unreachable(settings: Settings, err: requests.RequestException | None,
                 limit: Watch, seconds: float) -> str:
    url, client = settings.token_url, settings.client_id
    if limit.fired or limit.remaining() <= 0:
        return (f"the token endpoint {url} did not answer client {client!r} within "
                f"{seconds:g} s (the limit of a token request, retries included); "
                "check the network and AXELGLOBE_TOKEN_URL, then try again")
    return (f"could not reach the token endpoint {url} for client {client!r} "
            f"({type(err).__name__}); check the network and AXELGLOBE_TOKEN_URL, then try "
            "again")


def read_token(body: bytes | None) -> tuple[str, float] | str:
    """The (token, lifetime in s) of a 200 answer, or what is wrong with it (never the token).

    ``expires_in`` may be a number or a string of digits (some servers send ``"3600"``);
    it must lie between 1 s (a token stale on arrival would be fetched again and again) and
    :data:`MAX_TOKEN_LIFETIME`. Without it the token is taken to live a day.

    Example:
        >>> read_token(b'{"access_token": "t", "expires_in": 1e308}')[:25]
        'expires_in is not a numbe'
    """
    if body is None:
        return f"an answer longer than {MAX_TOKEN_RESPONSE // 1024} KiB"
    data = load_json_object(body)
    if data is None:
        return "the answer is not a JSON object (an HTML page?)"
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        return "no access_token"
    if not header_safe(access_token):
        return ("an access_token that cannot go into an HTTP header (control, space or "
                "non-ASCII characters, or over 8 KiB)")
    lifetime = _lifetime(data.get("expires_in", DEFAULT_TOKEN_LIFETIME))
    if lifetime is None:
        return (f"expires_in is not a number of seconds from 1 to {MAX_TOKEN_LIFETIME:.0f} "
                "(a token stale on arrival, or an absurd one)")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        named = isinstance(token_type, str) and _NAME.fullmatch(token_type)
        return f"a {token_type!r} token, not a Bearer token" if named else "not a Bearer token"
    return access_token, lifetime


def _lifetime(value: Any) -> float | None:
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int with hundreds of digits
        return None
    return seconds if math.isfinite(seconds) and 1 <= seconds <= MAX_TOKEN_LIFETIME else None


def token_from(answer: Answer, settings: Settings, issued_at: float) -> Token:
    """The token of a 200 ``answer`` to a request sent at ``issued_at`` (epoch seconds).

    Raises:
        AuthenticationError: The answer holds no usable token (what is wrong is said, the
            token never quoted).

    Example:
        >>> answer = Answer(200, None, False, b'{"access_token": "t", "expires_in": 60}')
        >>> token_from(answer, Settings.from_env(client_id="me"), 1000.0).expires_at
        1060.0
    """
    read = read_token(answer.body)
    if isinstance(read, str):
        raise AuthenticationError(
            f"the token endpoint {settings.token_url} answered HTTP 200 without a usable "
            f"token for client {settings.client_id!r}: {read}; is AXELGLOBE_TOKEN_URL the "
            "OAuth token endpoint?", client_id=settings.client_id or "", status=200)
    return Token(read[0], expires_at=issued_at + read[1], issued_at=issued_at)


def refusal(answer: Answer, settings: Settings) -> AxelGlobeError:
    """The error an answer means that is neither a token nor a restriction.

    400/401: the credentials are wrong (:class:`AuthenticationError`, with the OAuth error,
    printable and short, the secret masked should the server echo it); a redirect: never
    followed; anything else: :class:`APIRequestError`.
    """
    url, status, client = settings.token_url, answer.status, settings.client_id or ""
    if status in (400, 401):
        error, description = _oauth_error(answer.body, settings.client_secret or "")
        return AuthenticationError(
            f"the token endpoint rejected client {client!r}: HTTP {status} {error}"
            + (f" ({description})" if description else "")
            + "; check AXELGLOBE_CLIENT_ID and AXELGLOBE_CLIENT_SECRET (retrying will not "
            "help)", client_id=client, status=status, oauth_error=error)
    if answer.is_redirect:
        # Not followed (allow_redirects=False): the secret goes to the configured URL only,
        # never to wherever a response points.
        return APIRequestError(
            f"the token endpoint {url} redirected (HTTP {status}); the client secret is never "
            "sent to a redirect target: set AXELGLOBE_TOKEN_URL to the token endpoint itself",
            status=status, url=url)
    return APIRequestError(
        f"the token endpoint {url} answered HTTP {status} for client {client!r}"
        + (" after retries" if status >= 500 else "") + "; try again later",
        status=status, url=url)


def _oauth_error(body: bytes | None, secret: str) -> tuple[str, str]:
    data = (load_json_object(body) if body is not None else None) or {}

    def clean(value: Any, limit: int) -> str:
        text = "".join(c for c in str(value) if c.isprintable())
        # Never echo the secret (masked before truncating, which could leave part of it).
        return (text.replace(secret, "***") if secret else text)[:limit]

    return (clean(data.get("error") or "invalid_client", 100),
            clean(data.get("error_description") or "", 300))


__all__ = ["MAX_TOKEN_RESPONSE", "Answer", "post_credentials", "read_token", "refusal",
           "require_secret", "token_from"]
