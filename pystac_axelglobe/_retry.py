"""The retry policy of requests to the AxelGlobe API (searches, asset redirects).

urllib3's ``Retry`` with one change: a ``Retry-After`` longer than
:data:`~pystac_axelglobe.tokens.RESTRICTION_THRESHOLD` is AxelGlobe restricting the client,
so it is not slept through (urllib3 would wait it out on every retry) but handed back at
once, for the caller to record and report as a ``RestrictedError``.

Example:
    >>> 503 in AxelGlobeRetry(status_forcelist=RETRY_STATUSES).status_forcelist
    True
"""

from __future__ import annotations

from typing import Any

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from .tokens import RESTRICTION_THRESHOLD

#: Statuses retried with backoff (``Retry-After`` honoured).
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


class AxelGlobeRetry(Retry):
    """urllib3 ``Retry`` that does not wait out a long ``Retry-After`` (a restriction).

    Use it with ``raise_on_status=False``: the response is then handed back as it is.
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
