"""Whether a token request may be sent now: the request budget, and a failure held.

AxelGlobe restricts clients that ask for tokens "unnecessarily frequently". Besides the
refresh of a token about to expire, at most :data:`MAX_TOKEN_REQUESTS` tokens are requested
per credential within :data:`TOKEN_REQUEST_WINDOW` seconds, counted across threads and
processes in the request log beside the cache file (``<hash>.issued``, which a logout
keeps). And a failed token request is held for :data:`FAILURE_HOLD` seconds: the threads
and processes that waited for it get its error instead of each sending (and waiting) again.

:class:`RequestBudget` keeps both for one provider; the log file's content comes in and
goes out as a plain ``dict`` (``{"issued": [...], "failed": {...}}``), read and written
under the cache lock by the provider.

Example:
    >>> budget = RequestBudget("me", "http://127.0.0.1/t", max_requests=1, window=600.0)
    >>> budget.check("none cached", now=1000.0, log=None)
    >>> budget.note(1000.0)
    >>> budget.check("none cached", now=1001.0, log=None)
    Traceback (most recent call last):
    ...
    pystac_axelglobe.errors.AuthenticationError: client 'me' has requested 1 tokens in ...
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._token import iso
from ._token_cache import number
from .errors import APIRequestError, AuthenticationError
from .settings import ENV_CACHE_DIR

#: Tokens requested per credential within :data:`TOKEN_REQUEST_WINDOW`, beyond which no more
#: are requested (refreshes of a token about to expire do not count against it). AxelGlobe's
#: threshold is unknown ("a handful a minute is already too many"): 3 per 10 minutes covers
#: a first token, a revoked one and a logout, and stays far below any plausible rule.
MAX_TOKEN_REQUESTS = 3
#: The sliding window of :data:`MAX_TOKEN_REQUESTS`, in seconds.
TOKEN_REQUEST_WINDOW = 600.0
#: After a failed token request, the threads and processes that waited for it fail with the
#: same error for this many seconds instead of each sending (and waiting) again.
FAILURE_HOLD = 10.0
#: Request times kept (a log file with more is damaged; the budget needs only the last few).
_KEPT = 64


class HeldFailure(NamedTuple):
    """A failed token request, held for the threads and processes that waited for it."""

    until: float
    kind: str  # "APIRequestError" or "AuthenticationError"
    message: str
    status: int | None

    def error(self, client_id: str, url: str) -> APIRequestError | AuthenticationError:
        """The error to raise again, saying that it is the held one."""
        text = (f"{self.message} [a token request failed moments ago; not asked again "
                f"before {iso(self.until)}]")
        if self.kind == "AuthenticationError":
            return AuthenticationError(text, client_id=client_id, status=self.status)
        return APIRequestError(text, status=self.status, url=url)


class RequestBudget:
    """The token requests of one credential: how many lately, and a failure to hold.

    Args:
        client_id: For messages.
        token_url: For messages.
        max_requests: Tokens requested per ``window`` beyond the refreshes of expiring ones.
        window: Seconds.
    """

    def __init__(self, client_id: str, token_url: str, *, max_requests: int,
                 window: float) -> None:
        self.client_id, self.token_url = client_id, token_url
        self.max_requests, self.window = max_requests, window
        self.failure: HeldFailure | None = None
        self._issued: list[float] = []  # when tokens were requested (without a log file)
        self._unsaved: list[float] = []  # ... and those not yet written to the log file

    def note(self, at: float) -> None:
        """A token request was answered at ``at`` with a token (usable or not)."""
        self._unsaved.append(at)

    def hold(self, err: APIRequestError | AuthenticationError, now: float) -> None:
        """Hold the failure ``err`` of a token request for :data:`FAILURE_HOLD` seconds."""
        self.failure = HeldFailure(now + FAILURE_HOLD, type(err).__name__, str(err),
                                   getattr(err, "status", None))

    def check(self, reason: str, now: float, log: dict[str, Any] | None) -> None:
        """Raise if no token request may be sent now: a failure held, or the budget spent.

        Args:
            reason: Why a token is wanted: ``"expiring"`` (never refused for the budget: it
                is what the token's lifetime asks for), ``"rejected by a 401"``,
                ``"none cached"``.
            now: Epoch seconds.
            log: The request log file's content, or ``None`` without a file.
        """
        failure = self.failure
        if failure is None or now >= failure.until:
            failure = _failure_of(log or {}, now)
        if failure is not None:
            raise failure.error(self.client_id, self.token_url)
        recent = self.recent(now, log)
        if reason == "expiring" or len(recent) < self.max_requests:
            return
        free_at = recent[-self.max_requests] + self.window
        hint = ("the API rejects fresh tokens (401): check that AXELGLOBE_API_URL, "
                "AXELGLOBE_TOKEN_URL and AXELGLOBE_AUDIENCE belong together"
                if reason == "rejected by a 401" else
                f"tokens are being discarded: let all processes share one token cache "
                f"({ENV_CACHE_DIR}) and avoid logging out repeatedly")
        raise AuthenticationError(
            f"client {self.client_id!r} has requested {len(recent)} tokens in the last "
            f"{self.window / 60:g} minutes ({reason} now); to keep AxelGlobe from "
            f"restricting the client no more are requested before {iso(free_at)}. "
            f"Most likely {hint}; then try again after that time.",
            client_id=self.client_id)

    def recent(self, now: float, log: dict[str, Any] | None) -> list[float]:
        """The times of token requests within the window, oldest first.

        The log file's (every process's) plus this process's not yet written there;
        without a file, this process's alone.
        """
        if log is None:
            base = self._issued
        else:
            logged = log.get("issued")
            base = [number(t) for t in logged[:_KEPT]] if isinstance(logged, list) else []
        start = now - self.window
        # A time far in the future is damage, not a request: it must not block forever.
        recent = sorted(t for t in [*base, *self._unsaved] if start < t <= now + 60)
        recent = recent[-max(_KEPT, self.max_requests):]
        if log is None:
            self._issued, self._unsaved = recent, []
        return recent

    def log_entry(self, now: float, log: dict[str, Any]) -> dict[str, Any]:
        """The request log file's new content, given its current ``log``."""
        entry: dict[str, Any] = {"issued": self.recent(now, log)}
        failure = self.failure
        # Only an endpoint failure is shared with other processes; a rejected credential
        # stays in this process (another may hold a corrected secret).
        if failure is not None and now < failure.until and failure.kind == "APIRequestError":
            entry["failed"] = {"until": failure.until, "message": failure.message,
                               "status": failure.status}
        return entry

    def saved(self) -> None:
        """The entry from :meth:`log_entry` is in the file: nothing is unsaved now."""
        self._unsaved = []


def _failure_of(log: dict[str, Any], now: float) -> HeldFailure | None:
    # A failure another process recorded in the log file, while it is held.
    failed = log.get("failed")
    if not isinstance(failed, dict):
        return None
    until, message, status = number(failed.get("until")), failed.get("message"), \
        failed.get("status")
    if not (now < until <= now + FAILURE_HOLD) or not isinstance(message, str):
        return None
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    return HeldFailure(until, "APIRequestError", message[:1000], status)


__all__ = ["FAILURE_HOLD", "MAX_TOKEN_REQUESTS", "TOKEN_REQUEST_WINDOW", "HeldFailure",
           "RequestBudget"]
