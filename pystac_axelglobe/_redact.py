"""The one home of redaction: no bearer token or presigned-URL signature in logs or messages.

Secrets travel in three shapes, and each has one masking rule here:

- ``Authorization: Bearer <token>`` headers: :class:`BearerHeader` (a ``str`` whose repr hides
  the token, for libraries that log ``prepared.headers``) and :func:`redact_headers`;
- presigned URLs (``X-Amz-Signature=…``, ``X-Amz-Credential=…``, ``X-Amz-Security-Token=…``)
  in urllib3's request lines, rasterio's dataset names and odc-loader's errors;
- both of those inside free text (exception messages): :func:`redact`.

:func:`install` puts one filter on the loggers of the libraries that print them. It is
idempotent and runs when the package first sends something (``open()``, ``resolve()``,
``download()``, ``load()``), never at import time.

Example:
    >>> redact("GET /f.tif?X-Amz-Signature=abc123&X-Amz-Expires=60 Bearer eyJ.x.y")
    'GET /f.tif?X-Amz-Signature=REDACTED&X-Amz-Expires=60 Bearer REDACTED'
    >>> redact_headers({"Authorization": "Bearer eyJ", "Accept": "*/*"})
    {'Authorization': '<redacted>', 'Accept': '*/*'}
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

#: Query parameters of a presigned URL that grant access, and bearer tokens in text.
_SECRETS = re.compile(
    r"(?P<key>X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"<>]+"
    r"|(?P<bearer>Bearer\s+)[A-Za-z0-9._~+/=-]+",
    re.IGNORECASE,
)
#: Headers whose values are never logged.
_SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-amz-security-token"}
)

#: Loggers (other libraries') that may print presigned URLs or headers: a filter on each.
REDACTED_LOGGERS = (
    "pystac_client.stac_api_io",
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "rasterio._base",
    "rasterio._env",
    "rasterio._io",
    "rasterio._filepath",
    "rasterio.env",
    "odc.loader._rio",
)


def redact(text: str) -> str:
    """``text`` with presigned-URL credentials and bearer tokens masked.

    Example:
        >>> redact("https://s.example/f.tif?X-Amz-Credential=AK%2F1&X-Amz-Date=1")
        'https://s.example/f.tif?X-Amz-Credential=REDACTED&X-Amz-Date=1'
    """
    return _SECRETS.sub(lambda m: (m.group("key") or m.group("bearer")) + "REDACTED", text)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``headers`` with credential-bearing values replaced by ``<redacted>``."""
    return {key: ("<redacted>" if key.lower() in _SECRET_HEADERS else value)
            for key, value in headers.items()}


class BearerHeader(str):
    """An ``Authorization`` value whose repr hides the token.

    pystac-client (and others) log ``prepared.headers`` at DEBUG; a dict's repr uses its
    values' reprs, so the token stays out of those lines while the bytes sent are unchanged.

    Example:
        >>> repr({"Authorization": BearerHeader("Bearer eyJ")})
        "{'Authorization': 'Bearer <redacted>'}"
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer <redacted>'"


class RedactFilter(logging.Filter):
    """Rewrite a log record whose rendered message holds a secret, masking it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # A traceback's last line repeats the exception's message: render it now, masked.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_FILTER = RedactFilter()
_LOCK = threading.Lock()


def install() -> None:
    """Put the redacting filter on every logger in :data:`REDACTED_LOGGERS` (idempotent).

    Example:
        >>> install(); install()
        >>> filters = logging.getLogger("urllib3.connectionpool").filters
        >>> sum(isinstance(f, RedactFilter) for f in filters)
        1
    """
    with _LOCK:
        for name in REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
