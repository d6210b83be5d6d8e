"""The emulator's token origin: ``POST /oauth/token`` (OAuth client credentials, JSON body).

:class:`Grants` keeps the tokens issued and the clients restricted for asking too often;
the API (:mod:`.api`) checks bearer tokens against it. :class:`TokenApp` is the WSGI app.

Example:
    >>> from .state import State, Switches
    >>> grants = Grants(State(Switches()))
    >>> grants.check(grants.issue("me")).client_id
    'me'
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import secrets
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .responses import guard, json_response
from .state import State

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN_PATH = "/oauth/token"


@dataclasses.dataclass(frozen=True)
class Grant:
    """Who a token was issued to, and until when (seconds since the epoch)."""

    client_id: str
    expires_at: float


class Grants:
    """Tokens issued so far, and restrictions of clients that asked for tokens too often.

    Every token is an opaque random string; the switches of ``state`` say how long it lives,
    whether the API honours it (``reject_tokens``) and when a client gets restricted.
    """

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._tokens: dict[str, Grant] = {}
        self._times: dict[str, deque[float]] = {}
        self._restricted_until: dict[str, float] = {}

    def issue(self, client_id: str) -> str:
        """Record and return a new token for ``client_id`` (no request counted)."""
        token = secrets.token_urlsafe(32)
        lifetime = int(self._state.switches.token_lifetime)
        with self._lock:
            self._tokens[token] = Grant(client_id, self._state.clock() + lifetime)
        return token

    def revoke_all(self) -> None:
        """Every token issued so far is refused from now on."""
        with self._lock:
            self._tokens.clear()

    def check(self, token: str) -> Grant | None:
        """The grant of a valid, unexpired token; ``None`` if the API must refuse it."""
        if self._state.switches.reject_tokens:
            return None
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None or grant.expires_at <= self._state.clock():
            return None
        return grant

    def restricted_for(self, client_id: str) -> float:
        """Seconds of restriction left for ``client_id`` (0 when not restricted)."""
        with self._lock:
            until = self._restricted_until.get(client_id, 0.0)
        return max(0.0, until - self._state.clock())

    def note_request(self, client_id: str) -> float:
        """Record a token request; return the restriction left (0 if the request may pass)."""
        switches = self._state.switches
        now = self._state.clock()
        with self._lock:
            until = self._restricted_until.get(client_id, 0.0)
            if until > now:
                return until - now
            if switches.restrict_after is None:
                return 0.0
            times = self._times.setdefault(client_id, deque())
            times.append(now)
            while times and times[0] <= now - switches.restrict_window:
                times.popleft()
            if len(times) > switches.restrict_after:
                times.clear()
                self._restricted_until[client_id] = now + switches.restrict_period
                return float(switches.restrict_period)
            return 0.0


def restricted_response(client_id: str, left: float) -> Response:
    """429 with ``Retry-After`` for a restricted client (token endpoint and API alike).

    Example:
        >>> restricted_response("me", 0.2).headers["Retry-After"]
        '1'
    """
    seconds = max(1, math.ceil(left))
    return json_response(
        {
            "error": "too_many_requests",
            "code": "TooManyRequests",
            "description": f"Client {client_id} is restricted for requesting tokens too "
            f"often; try again in {seconds} s",
        },
        429,
        {"Retry-After": str(seconds)},
    )


def _oauth_error(status: int, error: str, description: str, **headers: str) -> Response:
    return json_response({"error": error, "error_description": description}, status,
                         headers or None)


def _credentials(request: Request) -> dict[str, Any] | Response:
    """The request's JSON body if it asks for client credentials, else the 400 to answer."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _oauth_error(400, "invalid_request", "The request body must be a JSON object")
    if body.get("grant_type") != "client_credentials":
        return _oauth_error(400, "invalid_request", "grant_type must be client_credentials")
    missing = [f for f in ("client_id", "client_secret", "audience")
               if not isinstance(body.get(f), str)]
    if missing:
        return _oauth_error(400, "invalid_request",
                            f"Missing required parameter: {', '.join(missing)}")
    return body


class TokenApp:
    """WSGI app of the token origin.

    Args:
        state: The emulator's shared state (answers wait ``api_latency`` too).
        grants: Where tokens are recorded.
        clients: ``{client_id: secret}`` of every client it accepts.
        audience: The audience a request must name.
    """

    def __init__(self, state: State, grants: Grants, clients: Mapping[str, str],
                 audience: str) -> None:
        self.state = state
        self.grants = grants
        self.clients = dict(clients)
        self.audience = audience

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        """The WSGI entry point."""
        # The token endpoint is as far away as the API: one latency switch for both.
        self.state.sleep(self.state.switches.api_latency)
        return guard(self.answer, environ, start_response)

    def answer(self, request: Request) -> Response:
        """The answer to one request."""
        if request.path != TOKEN_PATH:
            return _oauth_error(404, "not_found", "Not found")
        if request.method != "POST":
            return _oauth_error(405, "invalid_request", "Use POST", Allow="POST")
        self.state.counters.add("token_requests")
        body = _credentials(request)
        if isinstance(body, Response):
            return body
        client_id, secret = body["client_id"], body["client_secret"]
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return _oauth_error(401, "access_denied", "Unauthorized")
        left = self.grants.note_request(client_id)
        if left > 0:
            return restricted_response(client_id, left)
        if body["audience"] != self.audience:
            return _oauth_error(401, "access_denied", f"Service not found: {body['audience']}")
        lifetime = int(self.state.switches.token_lifetime)
        token = self.grants.issue(client_id)
        self.state.log_token()
        return json_response(
            {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
