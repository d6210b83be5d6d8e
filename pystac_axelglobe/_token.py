"""What a token is: a bearer string that fits a header, and when it expires.

Every way a token arrives (the token endpoint, the cache file, a token source) ends in a
:class:`Token`, and each checks it with :func:`header_safe` first: a token with CR/LF
would inject headers.

Example:
    >>> t = Token("abc", expires_at=100.0, issued_at=40.0)
    >>> t.lifetime, header_safe(t.access_token), "abc" in repr(t)
    (60.0, True, False)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time

#: A token said to live longer than this (a year) is taken as garbage.
MAX_TOKEN_LIFETIME = 366 * 86400.0
#: The lifetime of a token whose answer gives no ``expires_in`` (AxelGlobe's: a day).
DEFAULT_TOKEN_LIFETIME = 86400.0
#: What goes into an ``Authorization`` header: visible ASCII (no CR/LF: header injection).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,8192}")


@dataclasses.dataclass(frozen=True)
class Token:
    """A bearer token and when it expires (epoch seconds). The repr hides the token.

    Example:
        >>> t = Token("abc", expires_at=100.0, issued_at=0.0)
        >>> t.expires_within(10, now=95.0), "abc" in repr(t)
        (True, False)
    """

    access_token: str = dataclasses.field(repr=False)
    expires_at: float
    #: When it was requested (epoch seconds); its lifetime sets the refresh margin.
    issued_at: float = 0.0

    @property
    def lifetime(self) -> float:
        """Seconds between request and expiry (0 when unknown)."""
        return max(0.0, self.expires_at - self.issued_at) if self.issued_at else 0.0

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """Whether fewer than ``seconds`` of validity remain.

        Example:
            >>> Token("x", expires_at=time.time() + 60).expires_within(300)
            True
        """
        return (time.time() if now is None else now) + seconds >= self.expires_at


def header_safe(token: str) -> bool:
    r"""Whether ``token`` can go into an ``Authorization`` header as it is.

    Example:
        >>> header_safe("eyJ.abc-_~+/="), header_safe("a\r\nX-Injected: 1"), header_safe("é")
        (True, False, False)
    """
    return _HEADER_SAFE.fullmatch(token) is not None


def iso(epoch: float) -> str:
    """An epoch time as messages show it (UTC, to the second).

    Example:
        >>> iso(0)
        '1970-01-01T00:00:00+00:00'
    """
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["DEFAULT_TOKEN_LIFETIME", "MAX_TOKEN_LIFETIME", "Token", "header_safe", "iso"]
