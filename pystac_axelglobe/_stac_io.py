"""``AxelGlobeStacApiIO``: pystac-client's I/O for AxelGlobe, bounded in time, size and pages.

What it adds to pystac-client's ``StacApiIO``:

- searches go out as ``GET`` in AxelGlobe's dialect (:mod:`pystac_axelglobe._dialect`);
- every request has a connect and a read timeout (:data:`DEFAULT_TIMEOUT`), and a whole
  response body must arrive within :data:`DEFAULT_DEADLINE` seconds (a server trickling a
  byte every few seconds never trips a read timeout); retries follow the urllib3 ``Retry``
  policy (:func:`~pystac_axelglobe._retry.search_retry`);
- a failure is an :class:`~pystac_axelglobe.errors.APIRequestError` (also pystac-client's
  ``APIError``) naming the URL and status: an error status, no answer, HTML or invalid JSON;
- paging follows ``next`` links with the original query re-sent, and stops: after
  :data:`DEFAULT_MAX_PAGES` pages (an error), at a page with no new items, or at a ``next``
  link already followed; up to :data:`DEFAULT_PREFETCH_PAGES` pages are requested ahead, at
  once (:mod:`~pystac_axelglobe._paging`), and still come in the server's order; the
  session keeps a connection for each page in flight of :data:`SEARCHES_AT_ONCE` searches
  (pystac-client's keeps 10);
- the bearer token never reaches a log line; a landing page without ``conformsTo`` gets the
  classes AxelGlobe supports.

This module is the I/O's front door: its bounds and their checks, the conformance classes,
and the class, which builds each request and reads its JSON. Sending it within the bounds
is :mod:`._stac_request`; the words of its failures, :mod:`._stac_errors`.

Example:
    >>> io = AxelGlobeStacApiIO(timeout=(5, 30), max_pages=100, prefetch_pages=2)
    >>> io.timeout, io.max_pages, io.prefetch_pages
    ((5, 30), 100, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pystac
import pystac_client
import requests
from pystac.serialization import identify_stac_object_type
from pystac_client.stac_api_io import StacApiIO, Timeout
from urllib3.util.retry import Retry

from ._dialect import is_search, to_axelglobe_params
from ._http import mount
from ._paging import walk
from ._retry import search_retry, watched
from ._stac_errors import not_json
from ._stac_request import BoundedRequest
from .errors import ConfigurationError
from .extension import ensure_extension_hooks

if TYPE_CHECKING:
    from pystac.catalog import Catalog
    from pystac.stac_object import STACObject

#: Seconds to wait for a connection, and for the server to send anything (the read
#: timeout). With :func:`~pystac_axelglobe._retry.search_retry` (5 read retries) a silent
#: API fails after about 6 x 15 s + 7.5 s of back-off: well within 2 minutes.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 15.0)
#: Seconds a whole response body may take to arrive once its headers have come.
DEFAULT_DEADLINE = 60.0
#: The most pages one search or listing follows (``ag.open(max_pages=...)`` changes it).
DEFAULT_MAX_PAGES = 1000
#: Page requests one search keeps in flight at once (``ag.open(prefetch_pages=...)``); 1
#: requests each page only when the one before has been read, strictly in sequence.
DEFAULT_PREFETCH_PAGES = 4
#: The most ``prefetch_pages`` allowed: page requests one search has in flight at once.
MAX_PREFETCH_PAGES = 10
#: Searches one client is expected to run side by side (from the caller's threads, e.g. one
#: per area): its connection pool keeps ``prefetch_pages`` connections for each. More still
#: work; the connections beyond the pool are closed after use.
SEARCHES_AT_ONCE = 16
#: The largest response body read, in bytes (a page of 10,000 items is about 60 MB).
MAX_RESPONSE_BYTES = 256 * 2**20

#: Conformance classes AxelGlobe implements; added when the landing page has no
#: ``conformsTo`` (pystac-client refuses to search or list collections without them).
AXELGLOBE_CONFORMS_TO: tuple[str, ...] = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
)


def complete_conformance(d: dict[str, Any]) -> None:
    """Add :data:`AXELGLOBE_CONFORMS_TO` to a landing page without ``conformsTo``."""
    if d.get("type") == "Catalog" and not d.get("conformsTo"):
        d["conformsTo"] = list(AXELGLOBE_CONFORMS_TO)


# --- checking the settings ------------------------------------------------------------------


def _seconds(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def check_timeout(value: Any) -> Timeout:
    """Validate ``timeout=``: seconds, or a ``(connect, read)`` pair; None is the default.

    Raises:
        ConfigurationError: not positive finite seconds (there is no "no timeout").

    Example:
        >>> check_timeout(None) == DEFAULT_TIMEOUT, check_timeout([5, 60])
        (True, (5, 60))
    """
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_seconds, value)):
        return (value[0], value[1])
    if _seconds(value):
        return float(value)
    raise ConfigurationError(
        f"timeout must be seconds > 0, or a (connect, read) pair of them, e.g. "
        f"timeout=(10, 60); got {value!r:.80}. Every request has a timeout"
    )


def _check_bound(value: Any, name: str, default: float, *, whole: bool = False) -> Any:
    if value is None:
        return default
    if _seconds(value) and (not whole or float(value).is_integer()):
        return int(value) if whole else float(value)
    kind = "a whole number >= 1" if whole else "seconds > 0"
    raise ConfigurationError(f"{name} must be {kind}, got {value!r:.80}")


def check_prefetch_pages(value: Any) -> int:
    """Validate ``prefetch_pages=``: a whole number 1..:data:`MAX_PREFETCH_PAGES`.

    Raises:
        ConfigurationError: anything else (None is the default).

    Example:
        >>> check_prefetch_pages(None), check_prefetch_pages(1)
        (4, 1)
    """
    pages: int = _check_bound(value, "prefetch_pages", DEFAULT_PREFETCH_PAGES, whole=True)
    if pages > MAX_PREFETCH_PAGES:
        raise ConfigurationError(
            f"prefetch_pages must be at most {MAX_PREFETCH_PAGES} (pages requested at once "
            f"by one search), got {value!r:.80}; 1 requests one page after another")
    return pages


# --- the I/O -----------------------------------------------------------------------------------


class AxelGlobeStacApiIO(StacApiIO):
    """pystac-client's ``StacApiIO`` for AxelGlobe: dialect, bounds, paging, retries, safe logs.

    Args:
        auth: attaches the bearer token (``session.auth``); an :class:`AxelGlobeAuth`.
        retry: the retry policy; default :func:`~pystac_axelglobe._retry.search_retry`.
            A plain urllib3 ``Retry`` of the user's is used as
            :func:`~pystac_axelglobe._retry.watched` (a copy; the object given is unchanged).
        headers, parameters, request_modifier: as for ``StacApiIO``.
        timeout: seconds, or ``(connect, read)``; default :data:`DEFAULT_TIMEOUT`. Never None.
        deadline: seconds a whole response body may take; default :data:`DEFAULT_DEADLINE`.
        max_pages: the most pages one search follows; default :data:`DEFAULT_MAX_PAGES`.
        prefetch_pages: page requests one search keeps in flight, ahead of the reader;
            default :data:`DEFAULT_PREFETCH_PAGES`; 1 fetches strictly one page after
            another. With more, ``request_modifier`` and the auth are also called from the
            pool's threads. The session keeps :data:`SEARCHES_AT_ONCE` times as many
            connections per host.

    Raises:
        ConfigurationError: a timeout, deadline, max_pages or prefetch_pages that is not a
            positive number (prefetch_pages: at most :data:`MAX_PREFETCH_PAGES`).

    Example:
        >>> io = AxelGlobeStacApiIO()
        >>> pystac_client.Client.open(url, stac_io=io)  # doctest: +SKIP
    """

    def __init__(
        self,
        auth: requests.auth.AuthBase | None = None,
        *,
        retry: Retry | int | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        request_modifier: Callable[[requests.Request], requests.Request | None] | None = None,
        timeout: Timeout | None = None,
        deadline: float | None = None,
        max_pages: int | None = None,
        prefetch_pages: int | None = None,
    ) -> None:
        # The user's policy as a watched copy: its waits end when a page fetched ahead is
        # given up (a search broken off), as the package's own policies' do.
        self.retry = watched(retry) if retry is not None else search_retry()
        self.prefetch_pages: int = check_prefetch_pages(prefetch_pages)
        self.deadline: float = _check_bound(deadline, "deadline", DEFAULT_DEADLINE)
        self.max_pages: int = _check_bound(max_pages, "max_pages", DEFAULT_MAX_PAGES,
                                           whole=True)
        super().__init__(
            headers=headers,
            parameters=parameters,
            request_modifier=request_modifier,
            timeout=check_timeout(timeout),
            max_retries=self.retry,
        )
        # pystac-client mounted adapters with requests' 10 connections per host: fewer than
        # the threads of a few searches fetching ahead at once. Watched (_deadline), so
        # that a search broken off can give up the pages still in flight (_paging).
        mount(self.session, concurrency=SEARCHES_AT_ONCE * self.prefetch_pages,
              max_retries=self.retry)
        self.session.auth = auth

    def update(
        self,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        request_modifier: Callable[[requests.Request], requests.Request | None] | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        """As ``StacApiIO.update``; ``timeout=None`` keeps the timeout (never "no timeout").

        ``Client.open(url, stac_io=io)`` calls this with ``timeout=None`` when it was given
        no timeout: that must not leave requests without one.
        """
        kept = self.timeout if timeout is None else check_timeout(timeout)
        super().update(headers=headers, parameters=parameters,
                       request_modifier=request_modifier, timeout=kept)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """One request, in AxelGlobe's dialect for searches, bounded, retried, token unlogged.

        Raises:
            InvalidQueryError: a search AxelGlobe would refuse (nothing is sent).
            AuthenticationError, RestrictedError, ConfigurationError: from the auth, as they
                are.
            APIRequestError: an error status, no answer in time, a body that is not text.
        """
        resp = self._fetch(href, method, headers, parameters)
        try:
            return resp.content.decode("utf-8")
        except UnicodeDecodeError as err:
            raise not_json(resp.url or href, resp.status_code, resp.content, str(err)) from err

    def read_json(self, source: pystac.link.HREF, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A JSON object from the API; HTML, invalid JSON or a non-object is an error.

        Raises:
            APIRequestError: as :meth:`request`, or the answer is not a JSON object.
        """
        if isinstance(source, str) and urlsplit(source).scheme in ("http", "https"):
            resp = self._fetch(source, *args, **kwargs)
            return self._json_object(resp.content, resp.url or source, resp.status_code)
        text = self.read_text(source, *args, **kwargs)  # a Link, or a local file
        href = source.href if isinstance(source, pystac.Link) else str(source)
        return self._json_object(text.encode("utf-8"), href, None)

    def _json_object(self, body: bytes, url: str, status: int | None) -> dict[str, Any]:
        try:
            value: Any = self.json_loads(body.decode("utf-8"))  # duplicate keys refused
        except pystac.DuplicateObjectKeyError as err:
            raise pystac.DuplicateObjectKeyError(f"{err} in {url}") from err
        except RecursionError as err:
            raise not_json(url, status, body, "nested too deeply") from err
        except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise not_json(url, status, body, str(err)[:120]) from err
        if not isinstance(value, dict):
            raise not_json(url, status, body, f"JSON {type(value).__name__}")
        return value

    def _fetch(self, href: str, method: str | None = None,
               headers: dict[str, str] | None = None,
               parameters: dict[str, Any] | None = None) -> requests.Response:
        """The request in AxelGlobe's dialect, sent within the bounds (:mod:`._stac_request`)."""
        method = (method or "GET").upper()
        if is_search(href):
            # AxelGlobe documents only GET /search; POST may answer 405.
            parameters = to_axelglobe_params(parameters)
            method = "GET"
        if method in ("POST", "PUT", "PATCH"):
            request = requests.Request(method, href, headers=headers, json=parameters)
        else:
            request = requests.Request(method, href, headers=headers, params=parameters or {})
        if self._req_modifier is not None:
            request = self._req_modifier(request) or request
        # Its bounds as they are now: update() may have changed the timeout.
        bounded = BoundedRequest(self.session, timeout=self.timeout, deadline=self.deadline,
                                 retry=self.retry, max_bytes=MAX_RESPONSE_BYTES)
        return bounded.fetch(request, method, href)

    def get_pages(
        self,
        url: str,
        method: str | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        max_items: int | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Pages of a search or ``/features`` listing; ``next`` links keep the query.

        AxelGlobe's ``next`` links may carry only ``?page=N``. The original parameters are
        re-sent with the link's own query parameters (and body, if any) taking precedence.
        The iteration ends at a page without new items or at a link already followed, and
        fails after :attr:`max_pages` pages.

        Up to :attr:`prefetch_pages` pages are requested at once, ahead of the reader, on
        a thread pool (:mod:`~pystac_axelglobe._paging`); the pages still come in the
        server's order, and an error when the iteration reaches its page.

        Args:
            url: the first page (a search or a listing).
            method: ignored: pages are always sent as GET.
            parameters: the query, re-sent with every page.
            max_items: how many items the caller will read at most (pystac-client's
                ``max_items``): no page beyond them is requested ahead.

        Raises:
            APIRequestError: more than :attr:`max_pages` pages, or a page that is not one.
        """
        base = to_axelglobe_params(parameters) if is_search(url) else dict(parameters or {})
        yield from walk(self._page, url, base, max_pages=self.max_pages,
                        prefetch=self.prefetch_pages, max_items=max_items)

    def _page(self, url: str, parameters: dict[str, Any]) -> dict[str, Any]:
        return self.read_json(url, method="GET", parameters=parameters)

    def stac_object_from_dict(
        self,
        d: dict[str, Any],
        href: pystac.link.HREF | None = None,
        root: Catalog | None = None,
        preserve_dict: bool = True,
    ) -> STACObject:
        """As pystac-client's, after completing ``conformsTo`` and loading extension hooks."""
        from .client import AxelGlobeClient

        ensure_extension_hooks()
        if identify_stac_object_type(d) == pystac.STACObjectType.CATALOG and not d.get(
            "conformsTo"
        ):
            d = dict(d)
            complete_conformance(d)
        obj = super().stac_object_from_dict(d, href, root, preserve_dict)
        if type(obj) is pystac_client.Client:
            obj.__class__ = AxelGlobeClient
        return obj


__all__ = [
    "AXELGLOBE_CONFORMS_TO",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_PREFETCH_PAGES",
    "DEFAULT_TIMEOUT",
    "MAX_PREFETCH_PAGES",
    "MAX_RESPONSE_BYTES",
    "SEARCHES_AT_ONCE",
    "AxelGlobeStacApiIO",
    "check_prefetch_pages",
    "check_timeout",
    "complete_conformance",
]
