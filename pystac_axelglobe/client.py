"""``open()``: a standard :class:`pystac_client.Client` that speaks AxelGlobe's dialect.

The client is pystac-client's own (a thin subclass that checks search arguments before
anything is sent); what changes is the I/O underneath,
:class:`~pystac_axelglobe._stac_io.AxelGlobeStacApiIO`:

- every search goes out as ``GET`` in AxelGlobe's dialect, whatever ``method=`` says (the
  API may refuse ``POST`` with 405 and pystac-client does not fall back): lists become
  comma-separated, CQL2-JSON becomes CQL2 text, ``intersects=`` becomes
  ``S_INTERSECTS(geometry, <WKT>)`` ANDed with the filter (:mod:`._dialect`);
- ``next`` links that carry only ``?page=N`` are followed with the original parameters
  re-sent (the link's own parameters win); paging stops after ``max_pages`` pages (an
  error) or at a page with no new items; up to ``prefetch_pages`` pages (4) are requested
  at once, ahead of the reader, never beyond ``max_items``, and come in the server's order;
- every request has a connect and read timeout, and each response body a deadline; 429,
  5xx and dropped connections are retried with backoff honouring ``Retry-After``;
- a failed request is an :class:`~pystac_axelglobe.errors.APIRequestError`, which is also
  pystac-client's ``APIError``;
- the bearer token never reaches a log line;
- a landing page without ``conformsTo`` gets the classes AxelGlobe supports;
- items are normalised (:func:`~pystac_axelglobe.extension.normalize_item`) so the eo, view,
  sat and ``ag`` extensions read them.

Example:
    >>> import pystac_axelglobe as ag
    >>> client = ag.open()  # doctest: +SKIP
    >>> search = client.search(bbox=[133, 35, 137, 36],
    ...                        filter=ag.filters.cloud_cover(30))  # doctest: +SKIP
    >>> items = search.item_collection()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pystac_client
import requests
from pystac_client._utils import call_modifier
from pystac_client.item_search import ItemSearch
from pystac_client.stac_api_io import Timeout
from urllib3.util.retry import Retry

from . import filters
from ._dialect import (
    check_bbox,
    check_datetime,
    check_id_list,
    check_limit,
    check_max_items,
    searched_capture_id,
    to_axelglobe_params,
)
from ._retry import AxelGlobeRetry, search_retry
from ._stac_io import (
    AXELGLOBE_CONFORMS_TO,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_PAGES,
    DEFAULT_PREFETCH_PAGES,
    DEFAULT_TIMEOUT,
    AxelGlobeStacApiIO,
    complete_conformance,
)
from .errors import ConfigurationError, InvalidQueryError
from .extension import carry_capture_id, ensure_extension_hooks, normalize_item
from .filters import to_shapely
from .settings import Settings

if TYPE_CHECKING:
    from pystac.catalog import Catalog

    from .auth import AxelGlobeAuth

#: The retry policy of :func:`open` (kept under its earlier name).
default_retry = search_retry


# --- the client ----------------------------------------------------------------------------


class AxelGlobeClient(pystac_client.Client):
    """``pystac_client.Client`` whose ``search()`` checks its arguments before sending.

    Searches always go out as ``GET`` (``method=`` is accepted for compatibility).
    """

    @classmethod
    def from_dict(  # type: ignore[override]
        cls,
        d: dict[str, Any],
        href: str | None = None,
        root: Catalog | None = None,
        migrate: bool = False,
        preserve_dict: bool = True,
    ) -> AxelGlobeClient:
        """As ``Client.from_dict``, completing a missing ``conformsTo``."""
        if not d.get("conformsTo"):
            d = dict(d)
            complete_conformance(d)
        client = super().from_dict(d, href, root, migrate, preserve_dict)
        assert isinstance(client, AxelGlobeClient)
        return client

    def search(self, *, method: str | None = "POST",
               capture_id: str | Iterable[str] | None = None, **kwargs: Any) -> Any:
        """``Client.search`` with AxelGlobe's checks; always sent as ``GET``.

        Args:
            method: accepted for compatibility; the search goes out as ``GET``.
            capture_id: the tiles of this capture (or of these captures), ANDed with
                ``filter``: the same as ``filter="ag:capture_id = '...'"``. Items found for
                one capture carry its id even when the server leaves ``ag:capture_id`` out.
            **kwargs: as ``pystac_client.Client.search``.

        Raises:
            InvalidQueryError: a bad bbox, datetime, filter, capture id, geometry, ids,
                collections, limit or max_items, or a parameter AxelGlobe does not
                implement; raised before any request.

        Example:
            >>> client.search(collections="grus-1", bbox=[133, 35, 137, 36],
            ...               filter="eo:cloud_cover <= 30", limit=50)  # doctest: +SKIP
            >>> client.search(capture_id="52eZg9k7rPEyYQGX")  # doctest: +SKIP
        """
        if method not in (None, "GET", "POST"):
            raise InvalidQueryError(f"method must be 'GET' or 'POST', got {method!r}")
        if capture_id is not None:
            _add_capture_clause(kwargs, capture_id)
        # Checked here and formatted by pystac-client: an iterator must survive both.
        for name in ("bbox", "ids", "collections"):
            value = kwargs.get(name)
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
                kwargs[name] = list(value)
        for name in ("ids", "collections"):
            if kwargs.get(name) is not None:
                check_id_list(kwargs[name], name)
        check_max_items(kwargs.get("max_items"))
        check_limit(kwargs.get("limit"), kwargs.get("max_items"))
        raw = {
            "bbox": kwargs.get("bbox"),
            "datetime": kwargs.get("datetime"),
            "intersects": kwargs.get("intersects"),
            "filter": kwargs.get("filter"),
            "filter-lang": kwargs.get("filter_lang"),
            "sortby": kwargs.get("sortby"),
            "fields": kwargs.get("fields"),
            "query": kwargs.get("query"),
        }
        to_axelglobe_params(raw)  # raises InvalidQueryError before anything is sent
        if raw["intersects"] is not None:
            # One form for pystac-client, which reads GeoJSON only (WKT text would crash it).
            import shapely.geometry

            kwargs["intersects"] = shapely.geometry.mapping(to_shapely(raw["intersects"]))
        search = super().search(method="GET", **kwargs)
        if type(search) is ItemSearch:
            search.__class__ = AxelGlobeItemSearch  # as it is, plus max_items for the I/O
        return search


def _capture_clause(value: str | Iterable[str]) -> str:
    """``ag:capture_id = 'X'`` for one id, ``ag:capture_id IN ('X', 'Y')`` for several."""
    ids = [value] if isinstance(value, str) else value
    if isinstance(ids, (bytes, bytearray, Mapping)) or not isinstance(ids, Iterable):
        raise InvalidQueryError(
            f"capture_id must be a string or a list of strings, got {value!r:.80}")
    ids = list(ids)
    clauses = [filters.capture_id(one) for one in ids]  # each checked: a non-empty string
    if len(clauses) == 1:
        return clauses[0]
    if not clauses:
        raise InvalidQueryError("capture_id is an empty list; pass None to search every "
                                "capture")
    # CQL2 text escapes a quote inside a string literal by doubling it.
    literals = ", ".join("'" + one.replace("'", "''") + "'" for one in ids)
    return f"ag:capture_id IN ({literals})"


def _add_capture_clause(kwargs: dict[str, Any], value: str | Iterable[str]) -> None:
    """AND ``capture_id=`` into ``kwargs["filter"]`` (as CQL2 text)."""
    clause = _capture_clause(value)
    given = kwargs.get("filter")
    if given is None:
        kwargs["filter"] = clause
    else:
        text = filters.validate_filter(given, kwargs.get("filter_lang"))
        kwargs["filter"] = filters.all_of(text, clause)
    kwargs["filter_lang"] = "cql2-text"


class AxelGlobeItemSearch(ItemSearch):
    """pystac-client's ``ItemSearch``, telling the I/O how many items will be read.

    With ``max_items``, :class:`AxelGlobeStacApiIO` then requests no page ahead that those
    items do not need.
    """

    def pages_as_dicts(self) -> Iterator[dict[str, Any]]:
        """As ``ItemSearch.pages_as_dicts`` (pystac-client 0.9), passing ``max_items`` down.

        Example:
            >>> next(client.search(max_items=3).pages_as_dicts())  # doctest: +SKIP
        """
        io = self._stac_io
        if not isinstance(io, AxelGlobeStacApiIO):
            yield from super().pages_as_dicts()
            return
        read = 0
        parameters = self.get_parameters()
        # Items of one capture carry its id, even from a server that leaves it out.
        capture = searched_capture_id(to_axelglobe_params(parameters))
        pages = io.get_pages(self.url, self.method, parameters, max_items=self._max_items)
        with contextlib.closing(pages):  # stopping here stops the pages requested ahead
            for page in pages:
                if capture is not None:
                    carry_capture_id(page, capture)
                call_modifier(self.modifier, page)
                features = page.get("features", [])
                if not features:
                    return
                read += len(features)
                if self._max_items and read > self._max_items:
                    page["features"] = features[: len(features) - (read - self._max_items)]
                yield page
                if self._max_items and read >= self._max_items:
                    return


# --- open() ------------------------------------------------------------------------------


def _chain(first: Callable[[Any], None], second: Callable[[Any], Any]) -> Callable[[Any], None]:
    def modifier(obj: Any) -> None:
        first(obj)
        second(obj)

    return modifier


def open(  # noqa: A001 - the public name, like pystac_client.Client.open
    url: str | None = None,
    *,
    auth: AxelGlobeAuth | requests.auth.AuthBase | None = None,
    api_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    token_url: str | None = None,
    audience: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retry: Retry | int | None = None,
    timeout: Timeout | None = None,
    deadline: float | None = None,
    max_pages: int | None = None,
    prefetch_pages: int | None = None,
    **client_kwargs: Any,
) -> AxelGlobeClient:
    """Open the AxelGlobe STAC API as a ``pystac_client.Client``.

    The client is an :class:`AxelGlobeClient`: pystac-client's, whose ``search()`` also
    takes ``capture_id=``.

    Args:
        url: the API root. Default: ``AXELGLOBE_API_URL``, else production.
        auth: the auth to use. Default: ``AxelGlobeAuth`` from these settings. An
            ``AxelGlobeAuth`` also gives the API URL when ``url`` is not given.
        api_url: the same as ``url`` (so ``open(**emulator.settings_kwargs())`` works).
        client_id: overrides ``AXELGLOBE_CLIENT_ID``.
        client_secret: overrides ``AXELGLOBE_CLIENT_SECRET``.
        token_url: overrides ``AXELGLOBE_TOKEN_URL``.
        audience: overrides ``AXELGLOBE_AUDIENCE``.
        cache_dir: the token cache folder; overrides ``AXELGLOBE_CACHE_DIR``.
        retry: a urllib3 ``Retry`` policy instead of :func:`default_retry`. A plain one is
            used as a copy whose waits a search broken off cuts short (the object is not
            changed); a subclass of yours, as it is. A number ``n``: as in requests,
            ``n`` retries of connections and none of reads.
        timeout: seconds, or ``(connect, read)`` seconds, for every request; default
            :data:`DEFAULT_TIMEOUT` ``(10, 15)``. There is no "no timeout".
        deadline: seconds a whole response body may take to arrive; default
            :data:`DEFAULT_DEADLINE` (60).
        max_pages: the most pages a search follows before failing; default
            :data:`DEFAULT_MAX_PAGES` (1000).
        prefetch_pages: page requests a search keeps in flight at once, ahead of the
            reader (at most 10); default :data:`DEFAULT_PREFETCH_PAGES` (4). 1 fetches one
            page after another, each only when the one before has been read.
        **client_kwargs: passed to ``pystac_client.Client.open`` (``headers``,
            ``parameters``, ``request_modifier``; a ``modifier`` runs after
            :func:`~pystac_axelglobe.extension.normalize_item`).

    Raises:
        ConfigurationError: missing credentials, a bad URL (named variables), or a bad
            timeout, deadline, max_pages or prefetch_pages; before any request.
        AuthenticationError, RestrictedError: from the token endpoint.
        APIRequestError: the API did not answer in time, or not with a STAC landing page.

    Example:
        >>> import pystac_axelglobe as ag
        >>> client = ag.open()  # doctest: +SKIP
        >>> next(client.search(collections="grus-1", max_items=1).items())  # doctest: +SKIP
    """
    ensure_extension_hooks()
    # Checked first: a bad value costs no token request.
    stac_io = AxelGlobeStacApiIO(retry=retry, timeout=timeout, deadline=deadline,
                                 max_pages=max_pages, prefetch_pages=prefetch_pages)
    if "stac_io" in client_kwargs:
        raise ConfigurationError(
            "open() builds its own StacApiIO; pass headers=/timeout=/retry= instead of "
            "stac_io=, or use pystac_client.Client.open(url, stac_io=AxelGlobeStacApiIO(...))"
        )
    if url is not None and api_url is not None and url.rstrip("/") != api_url.rstrip("/"):
        raise ConfigurationError(f"url {url!r} and api_url {api_url!r} differ; pass one")
    given: Settings | None = getattr(auth, "settings", None)
    if url is None and api_url is None and isinstance(given, Settings):
        api_url = given.api_url  # open(auth=AxelGlobeAuth(...)): the auth knows the API
    settings = Settings.from_env(client_id, client_secret, url or api_url, token_url, audience,
                                 cache_dir)
    from .auth import AxelGlobeAuth, set_default_auth

    if auth is None:
        auth = AxelGlobeAuth(settings=settings)
    if isinstance(auth, AxelGlobeAuth):
        # download()/resolve()/load() without auth= then use what the user opened with.
        set_default_auth(auth)
    modifier = client_kwargs.pop("modifier", None)
    stac_io.session.auth = auth
    client = AxelGlobeClient.open(
        settings.api_url,
        stac_io=stac_io,
        modifier=normalize_item if modifier is None else _chain(normalize_item, modifier),
        **client_kwargs,
    )
    # An AxelGlobeClient: its from_dict, and AxelGlobeStacApiIO.stac_object_from_dict, make one.
    return cast(AxelGlobeClient, client)




__all__ = [
    "AXELGLOBE_CONFORMS_TO",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_PREFETCH_PAGES",
    "DEFAULT_TIMEOUT",
    "AxelGlobeClient",
    "AxelGlobeItemSearch",
    "AxelGlobeRetry",
    "AxelGlobeStacApiIO",
    "check_bbox",
    "check_datetime",
    "default_retry",
    "ensure_extension_hooks",
    "normalize_item",
    "open",
    "to_axelglobe_params",
]
