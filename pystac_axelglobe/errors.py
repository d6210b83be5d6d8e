"""Errors raised by pystac-axelglobe.

Every error derives from :class:`AxelGlobeError`, and each leaf also derives from the
builtin a caller would naturally catch, so ``except ValueError`` keeps working::

    AxelGlobeError
    ├── ConfigurationError (ValueError)      settings or arguments are missing or wrong
    ├── InvalidQueryError (ValueError)       a filter, bbox or datetime the API would refuse
    ├── AuthenticationError (PermissionError) the token endpoint rejected the credentials
    ├── RestrictedError (PermissionError)    AxelGlobe restricts this client until a time
    ├── APIRequestError (pystac_client APIError, OSError)
    │                                        a request to the API (or the token endpoint)
    │                                        failed: an error status, no answer in time,
    │                                        an answer that is not JSON; has status and url
    ├── AssetError (OSError)                 an asset could not be resolved or read
    └── DownloadError (OSError)              one or more assets failed to download

``APIRequestError`` also derives from pystac-client's
:class:`pystac_client.exceptions.APIError`, so code written for pystac-client (``except
APIError``, ``err.status_code``) keeps working with :func:`pystac_axelglobe.open`.

Messages say what to do next and never contain a client secret or a bearer token.

Example:
    >>> try:
    ...     raise ConfigurationError("set AXELGLOBE_CLIENT_ID")
    ... except ValueError as err:
    ...     print(err)
    set AXELGLOBE_CLIENT_ID
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pystac_client.exceptions import APIError

from ._redact import redact


class AxelGlobeError(Exception):
    """Root of every error this package raises."""


class ConfigurationError(AxelGlobeError, ValueError):
    """Settings or arguments are missing or invalid (raised before any request)."""


class InvalidQueryError(AxelGlobeError, ValueError):
    """A search parameter the AxelGlobe API would refuse (raised before any request)."""


class AuthenticationError(AxelGlobeError, PermissionError):
    """The token endpoint rejected the credentials (HTTP 400/401); retrying will not help."""

    def __init__(self, message: str, *, client_id: str = "", status: int | None = None,
                 oauth_error: str | None = None) -> None:
        super().__init__(message)
        self.client_id = client_id
        self.status = status
        self.oauth_error = oauth_error


class RestrictedError(AxelGlobeError, PermissionError):
    """AxelGlobe restricts this client; no request is sent until :attr:`until`."""

    def __init__(self, message: str, *, until: dt.datetime) -> None:
        super().__init__(message)
        self.until = until


class APIRequestError(AxelGlobeError, APIError, OSError):
    """A request failed: an error status, no answer in time, or HTML/invalid JSON.

    Raised once retrying has not cured it. Also a pystac-client ``APIError``.

    Attributes:
        status: the HTTP status, or None when no answer came.
        status_code: the same, under pystac-client's name.
        url: the URL requested.

    Example:
        >>> err = APIRequestError("HTTP 502 from GET https://api.example/search", status=502,
        ...                       url="https://api.example/search")
        >>> isinstance(err, APIError), err.status_code
        (True, 502)
    """

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.status_code = status  # pystac-client's name (Client.get_collection reads it)
        self.url = url


class AssetError(AxelGlobeError, OSError):
    """An asset href could not be resolved to a downloadable URL or read."""


class DownloadError(AxelGlobeError, OSError):
    """Some assets failed to download; each is named with its reason and its exception.

    Attributes:
        failures: ``item_id/asset_key`` → the reason, as text (presigned-URL signatures and
            bearer tokens masked).
        exceptions: ``item_id/asset_key`` → the exception that failed it (as stac-asset's
            ``DownloadError.exceptions``), e.g. to tell a full disk (``OSError``) from a
            refusal of the server (``AssetError``).

    Example:
        >>> err = DownloadError({"item/tci": "HTTP 503"})
        >>> err.failures, err.exceptions
        ({'item/tci': 'HTTP 503'}, {})
    """

    def __init__(self, failures: Mapping[str, str],
                 exceptions: Mapping[str, BaseException] | None = None) -> None:
        self.failures = {name: redact(reason) for name, reason in failures.items()}
        self.exceptions = dict(exceptions or {})
        lines = [f"{len(self.failures)} asset(s) failed to download:"]
        lines += [f"  {name}: {reason}" for name, reason in self.failures.items()]
        lines.append("Run the same download again to resume; complete files are skipped.")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[DownloadError], tuple[dict[str, str],
                                                              dict[str, BaseException]]]:
        # OSError would pickle the message alone; rebuild from what it was made of.
        return type(self), (self.failures, self.exceptions)


__all__ = [
    "APIRequestError",
    "AssetError",
    "AuthenticationError",
    "AxelGlobeError",
    "ConfigurationError",
    "DownloadError",
    "InvalidQueryError",
    "RestrictedError",
]
