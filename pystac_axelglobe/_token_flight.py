"""The slow path of a token provider: one token request for the whole machine, or none.

When the token in memory is due for refresh, a :class:`Flight` takes the cache lock
(:mod:`._token_store`), so that the threads and processes of the machine wait for one
request instead of each sending theirs, and reads the file: another process may have
fetched already. Only if it has not, the three rooms that may refuse a token request are
asked in turn (a restriction in force, :mod:`._token_restriction`; a failure held and the
request budget, :mod:`._token_budget`), then the token source (:mod:`._token_source`) or
the token endpoint (:mod:`._token_endpoint`). Whatever was learnt goes back into the files
before the lock is released. A refresh that fails for a passing reason (a restriction, a
5xx) leaves the caller with the current token while it is valid.

Example:
    >>> import tempfile
    >>> flight = Flight(Settings.from_env(client_id="me", cache_dir=tempfile.mkdtemp()),
    ...                 margin=None, clock=lambda: 1e9, retry=Retry(0), timeout=(10, 30),
    ...                 deadline=90, max_requests=3, window=600)
    >>> flight.obtain(failed=None)  # no token anywhere, and no secret to fetch one
    Traceback (most recent call last):
    ...
    pystac_axelglobe.errors.ConfigurationError: a token for client 'me' must be fetched, ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from urllib3.util.retry import Retry

from ._retry import restriction_until
from ._token import DEFAULT_TOKEN_LIFETIME, Token, iso
from ._token_budget import RequestBudget
from ._token_endpoint import post_credentials, refusal, require_secret, token_from
from ._token_restriction import Restriction
from ._token_source import ask_source, credential_key, has_source
from ._token_store import TokenStore, token_from_state
from .errors import APIRequestError, AuthenticationError, ConfigurationError, RestrictedError
from .settings import Settings

# The tokens' own logger: one name to configure for everything about tokens.
logger = logging.getLogger("pystac_axelglobe.tokens")

#: Refresh a token when less than this many seconds of it remain (at most) ...
DEFAULT_REFRESH_MARGIN = 300.0
#: ... or this fraction of its lifetime, whichever is smaller (so 4 s tokens work too).
DEFAULT_REFRESH_FRACTION = 0.25
#: How long to wait for another process that holds the cache lock, beyond the deadline.
_LOCK_SLACK = 30.0
#: After a failed proactive refresh, keep using the still-valid token this long before retrying.
_REFRESH_HOLD = 5.0

class Flight:
    """The state and slow path of one :class:`~pystac_axelglobe.tokens.TokenProvider`.

    Not thread-safe by itself: the provider calls it under its own lock. Its arguments are
    the provider's (checked there).

    Attributes:
        current: The token in memory and when to refresh it (one attribute, so that the
            provider's lock-free fast path reads a consistent pair).
        hold_until: No proactive refresh is attempted before this (after a failed one).
    """

    def __init__(self, settings: Settings, *, margin: float | None,
                 clock: Callable[[], float], retry: Retry, timeout: tuple[float, float],
                 deadline: float, max_requests: int, window: float) -> None:
        self.settings, self.client_id = settings, settings.client_id or ""
        self.margin, self.clock, self.retry = margin, clock, retry
        self.timeout, self.deadline = timeout, deadline
        # The holder's fetch ends within the deadline; the slack is the backstop for a
        # stuck one.
        self.store = TokenStore(settings, lock_timeout=deadline + _LOCK_SLACK)
        self.restriction = Restriction(self.client_id, self.store.path)
        self.budget = RequestBudget(self.client_id, settings.token_url,
                                    max_requests=max_requests, window=window)
        self.current: tuple[Token, float] | None = None
        self.hold_until = 0.0

    def __repr__(self) -> str:
        return f"Flight(client_id={self.client_id!r}, cache_path={str(self.store.path)!r})"

    def refresh_at(self, token: Token) -> float:
        """When ``token`` is due for refresh (epoch seconds)."""
        margin = self.margin
        if margin is None:
            lifetime = token.lifetime or DEFAULT_TOKEN_LIFETIME
            margin = min(DEFAULT_REFRESH_MARGIN, lifetime * DEFAULT_REFRESH_FRACTION)
        return token.expires_at - margin

    def fresh(self, token: Token) -> bool:
        """Whether ``token`` would be used without refreshing it."""
        return self.clock() < self.refresh_at(token)

    def forget(self) -> None:
        """Forget the token in memory and in the file (a restriction stays recorded)."""
        self.current = None
        self.hold_until = 0.0
        self.store.forget_token(self.clock())

    def record_restriction(self, until: float, status: int | None) -> RestrictedError:
        """Remember a restriction in memory and in the file; the error to raise."""
        error = self.restriction.note(until, status=status)
        self.store.update(self._save, "record the restriction")
        return error

    def obtain(self, failed: str | None) -> Token:
        """A token not due for refresh (and not ``failed``): from memory, the file, or fetched."""
        now = self.clock()
        memory = self.current[0] if self.current is not None else None
        if self._usable(memory, failed, now):
            assert memory is not None
            return memory  # another thread refreshed while this one waited for the lock
        lock = self.store.acquire() if self.store.ok else None
        if lock is None:  # tokens in memory only
            return self._fetch_or_fallback(memory, failed, now, state=None)
        try:
            state = self.store.read()
            now = self.clock()  # waiting for the lock may have taken a while
            # A restriction another process recorded holds here too (check_restriction).
            self.restriction.merge(state, now)
            cached = token_from_state(state, now)
            if self._usable(cached, failed, now):
                assert cached is not None
                return self._adopt(cached)
            # Fall back on the newer of the two if fetching fails.
            best = max((t for t in (memory, cached) if t is not None and t.access_token != failed),
                       key=lambda t: t.expires_at, default=memory or cached)
            if not has_source(credential_key(self.settings)):
                return self._fetch_or_fallback(best, failed, now, state=state)
        finally:
            lock.release()
        # A token source may wait for another process (a dask client) that needs this very
        # lock to renew the token: ask it without the lock, then share what it gave.
        token = self._fetch_or_fallback(best, failed, now, state=None)
        self.store.update(lambda state: self._share(state, token), "share the token")
        return token

    def _usable(self, token: Token | None, failed: str | None, now: float) -> bool:
        if token is None or token.access_token == failed:
            return False
        return now < self.refresh_at(token)

    def _adopt(self, token: Token) -> Token:
        self.current = (token, self.refresh_at(token))
        self.hold_until = 0.0
        return token

    def _share(self, state: dict[str, Any], token: Token) -> None:
        # Put the token in the cache file unless it holds a newer one.
        cached = token_from_state(state, self.clock())
        if cached is None or cached.expires_at < token.expires_at:
            state.update(access_token=token.access_token, expires_at=token.expires_at,
                         issued_at=token.issued_at)
            self._save(state)

    def _fetch_or_fallback(self, current: Token | None, failed: str | None, now: float,
                           state: dict[str, Any] | None) -> Token:
        # With state (the cache file's, under the lock), what is learnt is written back.
        log = self.store.read_log() if state is not None else None
        try:
            token = self._fetch(_reason(current, failed), failed, now, log)
        except (RestrictedError, APIRequestError, AuthenticationError, ConfigurationError) as err:
            if state is not None and log is not None:
                self._save(state, log)
            # A token that is merely "expiring" still works: if fetching fails for a reason
            # that will pass (restriction, 5xx), keep using it rather than failing the
            # user's request.
            if current is None or current.access_token == failed or now >= current.expires_at:
                raise
            self.hold_until = now + _REFRESH_HOLD
            logger.warning("could not refresh the token of client %r (%s); using the "
                           "current one until %s", self.client_id, type(err).__name__,
                           iso(current.expires_at))
            return current
        if state is not None and log is not None:
            state.update(access_token=token.access_token, expires_at=token.expires_at,
                         issued_at=token.issued_at)
            self._save(state, log)
        self._adopt(token)
        if not self.fresh(token):
            # Already due for refresh when received (a source's clock behind ours, or a
            # lifetime below the margin): use it, without asking again on every request.
            self.hold_until = now + _REFRESH_HOLD
        return token

    def _fetch(self, reason: str, failed: str | None, now: float,
               log: dict[str, Any] | None) -> Token:
        # The three rooms that may refuse a token request, then the source or the endpoint.
        self.restriction.check(now)
        self.budget.check(reason, now, log)
        try:
            token = ask_source(self.settings, failed, self.fresh, reason)
            token = token if token is not None else self._from_endpoint(reason)
        except (APIRequestError, AuthenticationError) as err:
            self.budget.hold(err, now)
            raise
        self.budget.failure = None
        return token

    def _from_endpoint(self, reason: str) -> Token:
        # No local here holds the secret (traceback tools print locals): the request body
        # is built while the request is sent, and is gone afterwards.
        require_secret(self.settings)
        self.settings.check_urls()  # the secret travels over HTTPS only (HTTP to loopback only)
        url = self.settings.token_url
        issued_at = self.clock()  # before sending: the server's clock starts no later
        answer = post_credentials(self.settings, retry=self.retry, timeout=self.timeout,
                                  deadline=self.deadline)
        if answer.status == 200:
            self.budget.note(issued_at)  # issued, even if the answer turns out unusable
            token = token_from(answer, self.settings, issued_at)
            logger.info("fetched a token for client %r from %s (%s); valid until %s",
                        self.client_id, url, reason, iso(token.expires_at))
            return token
        until = restriction_until(answer.status, url, answer.retry_after,
                                  api_url=self.settings.api_url, token_url=url,
                                  now=self.clock())
        if until is not None:
            raise self.restriction.note(until, status=answer.status)
        raise refusal(answer, self.settings)

    def _save(self, state: dict[str, Any], log: dict[str, Any] | None = None) -> None:
        # Write what this process knows into the files (under the file lock).
        now = self.clock()
        self.restriction.put_into(state, now)
        entry = self.budget.log_entry(now, log) if log is not None else None
        if self.store.write(state, entry) and entry is not None:
            self.budget.saved()


def _reason(current: Token | None, failed: str | None) -> str:
    # Why a token is wanted; only "expiring" is spared by the budget.
    if failed is not None:
        return "rejected by a 401"
    return "none cached" if current is None else "expiring"


__all__ = ["DEFAULT_REFRESH_FRACTION", "DEFAULT_REFRESH_MARGIN", "Flight"]
