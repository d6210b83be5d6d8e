"""Restriction bookkeeping: until when AxelGlobe restricts a client, known to every process.

Whether an answer means a restriction is decided in one place,
:func:`~pystac_axelglobe._retry.restriction_until`; this module remembers the result. A
:class:`Restriction` holds its end in memory (checked without I/O before every request)
and writes it into the token cache file (``restricted_until``), where the other threads
and processes of the machine find it on their next look; until then nothing is sent to
AxelGlobe, and each call raises :class:`~pystac_axelglobe.errors.RestrictedError` saying
until when.

Example:
    >>> r = Restriction("me", Path("/tmp/t.json"))
    >>> err = r.note(2e9, status=429)
    >>> r.in_force(now=1e9), err.until.year, "(AxelGlobe answered HTTP 429)" in str(err)
    (True, 2033, True)
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from ._retry import MAX_RESTRICTION
from ._token import iso
from ._token_cache import number
from .errors import RestrictedError
from .settings import ENV_CACHE_DIR

# The tokens' own logger: one name to configure for everything about tokens.
logger = logging.getLogger("pystac_axelglobe.tokens")


class Restriction:
    """The end of a restriction of one client (epoch seconds; 0 when none is known).

    Args:
        client_id: For messages.
        cache_path: The token cache file that shares it, for messages.
    """

    def __init__(self, client_id: str, cache_path: Path) -> None:
        self.client_id, self.cache_path = client_id, cache_path
        self.until = 0.0

    def in_force(self, now: float) -> bool:
        """Whether a known restriction lasts at ``now``."""
        return now < self.until

    def check(self, now: float) -> None:
        """Raise :class:`RestrictedError` while a known restriction lasts."""
        if self.in_force(now):
            raise self.error(status=None)

    def note(self, until: float, *, status: int | None) -> RestrictedError:
        """Remember a restriction until ``until`` seen in an answer; the error to raise."""
        self.until = max(self.until, until)
        logger.warning("client %r is restricted by AxelGlobe until %s%s", self.client_id,
                       iso(self.until), f" (HTTP {status})" if status is not None else "")
        return self.error(status=status)

    def merge(self, state: dict[str, Any], now: float) -> None:
        """Take in the restriction another process recorded in the cache file's ``state``."""
        self.until = max(self.until, restriction_of(state, now))

    def put_into(self, state: dict[str, Any], now: float) -> None:
        """Write the restriction in force (this process's or the file's) into ``state``."""
        mine = self.until if self.in_force(now) else 0.0
        restricted = max(mine, restriction_of(state, now))
        if restricted:
            state["restricted_until"] = restricted
        else:
            state.pop("restricted_until", None)

    def error(self, *, status: int | None) -> RestrictedError:
        """The error that says until when, and what to do."""
        until = self.until
        cause = (f"AxelGlobe answered HTTP {status}" if status is not None
                 else "recorded in the token cache " + str(self.cache_path))
        return RestrictedError(
            f"AxelGlobe restricts client {self.client_id!r} until {iso(until)} ({cause}). "
            f"Nothing is sent to AxelGlobe before then: wait until {iso(until)} and try again, "
            f"and let all processes share one token cache ({ENV_CACHE_DIR}).",
            until=dt.datetime.fromtimestamp(until, dt.timezone.utc),
        )


def restriction_of(state: dict[str, Any], now: float) -> float:
    """The restriction recorded in a cache file's ``state``, if it has not ended (else 0).

    One longer than any ``Retry-After`` accepted (``parse_retry_after``) is a damaged file:
    ignored, not obeyed forever (and not passed to datetime, which overflows).

    Example:
        >>> restriction_of({"restricted_until": 1060.0}, now=1000.0)
        1060.0
        >>> restriction_of({"restricted_until": 1e300}, now=1000.0)
        0.0
    """
    until = number(state.get("restricted_until"))
    return until if now < until <= now + MAX_RESTRICTION else 0.0


__all__ = ["Restriction", "restriction_of"]
