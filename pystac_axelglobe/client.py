"""``open()``: a standard :class:`pystac_client.Client` that speaks AxelGlobe's dialect.

The client is pystac-client's own (a thin subclass that checks search arguments before
anything is sent); what changes is the I/O underneath, :class:`AxelGlobeStacApiIO`:

- every search goes out as ``GET`` in AxelGlobe's dialect, whatever ``method=`` says (the
  API may refuse ``POST`` with 405 and pystac-client does not fall back): lists become
  comma-separated, CQL2-JSON becomes CQL2 text, ``intersects=`` becomes
  ``S_INTERSECTS(geometry, <WKT>)`` ANDed with the filter;
- ``next`` links that carry only ``?page=N`` are followed with the original parameters
  re-sent (the link's own parameters win);
- 429, 5xx and dropped connections are retried with backoff honouring ``Retry-After``;
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

import datetime as dt
import json
import logging
import operator
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pystac
import pystac_client
import requests
from pystac.serialization import identify_stac_object_type
from pystac_client.exceptions import APIError
from pystac_client.item_search import BaseSearch
from pystac_client.stac_api_io import StacApiIO, Timeout
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from ._redact import redact_headers
from ._retry import AxelGlobeRetry, restriction_until, search_retry
from ._time import parse_rfc3339
from .errors import AxelGlobeError, ConfigurationError, InvalidQueryError
from .extension import ensure_extension_hooks, normalize_item
from .filters import _check_lonlat, format_number, to_shapely, validate_filter
from .filters import intersects as _intersects_clause
from .settings import Settings

if TYPE_CHECKING:
    from pystac.catalog import Catalog
    from pystac.stac_object import STACObject

    from .auth import AxelGlobeAuth

logger = logging.getLogger(__name__)

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


# Parameters of the STAC API that AxelGlobe does not implement, with what to do instead.
_UNSUPPORTED = {
    "sortby": "AxelGlobe returns results sorted by datetime and id; sort them client-side "
    "(e.g. sorted(items, key=lambda i: i.datetime))",
    "fields": "AxelGlobe always returns whole items; drop fields= and pick the properties "
    "you need from each item",
    "query": "AxelGlobe does not implement the query extension; use filter= with CQL2, e.g. "
    "filter='eo:cloud_cover <= 30' (see pystac_axelglobe.filters)",
    "q": "AxelGlobe has no free-text search; use filter= with CQL2",
}

def _complete_conformance(d: dict[str, Any]) -> None:
    if d.get("type") == "Catalog" and not d.get("conformsTo"):
        d["conformsTo"] = list(AXELGLOBE_CONFORMS_TO)


# --- retries ---------------------------------------------------------------------------


#: The retry policy of :func:`open` (kept under its earlier name).
default_retry = search_retry


# --- the search dialect ----------------------------------------------------------------


def _numbers(value: Any, what: str) -> list[float]:
    items: Sequence[Any]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, Mapping)):
        # any iterable, as pystac-client takes: numpy arrays (geopandas' total_bounds),
        # tuples (shapely's bounds), generators
        items = list(value)
    else:
        raise InvalidQueryError(f"{what} must be a list of numbers, got {value!r}")
    numbers = []
    for item in items:
        if isinstance(item, bool):
            raise InvalidQueryError(f"{what} must contain numbers, got {item!r}")
        try:
            numbers.append(float(item))
        except (TypeError, ValueError) as err:
            raise InvalidQueryError(f"{what} must contain numbers, got {item!r}") from err
    return numbers


def check_bbox(bbox: Any) -> list[float]:
    """Validate a bbox (4 or 6 numbers, lon/lat, min <= max) and return it as floats.

    Raises:
        InvalidQueryError: saying what is wrong and what a valid bbox looks like.

    Example:
        >>> check_bbox("133,35,137,36")
        [133.0, 35.0, 137.0, 36.0]
    """
    hint = " (a valid bbox: [minX, minY, maxX, maxY] in lon/lat, e.g. [133, 35, 137, 36])"
    numbers = _numbers(bbox, "bbox")
    if len(numbers) not in (4, 6):
        raise InvalidQueryError(f"bbox must have 4 or 6 numbers, got {len(numbers)}" + hint)
    half = len(numbers) // 2
    lo, hi = numbers[:half], numbers[half:]
    if any(a != a or b != b for a, b in zip(lo, hi, strict=True)):  # NaN
        raise InvalidQueryError("bbox contains NaN" + hint)
    for axis, a, b in zip(("minX/maxX", "minY/maxY", "minZ/maxZ"), lo, hi, strict=False):
        if a > b:
            raise InvalidQueryError(f"bbox {axis} are reversed: {a} > {b}" + hint)
    try:
        _check_lonlat((lo[0], lo[1], hi[0], hi[1]))
    except InvalidQueryError as err:
        raise InvalidQueryError(f"bbox: {err}" + hint) from None
    return numbers


def _parse_instant(text: str) -> dt.datetime:
    parsed = parse_rfc3339(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def check_datetime(value: Any) -> str | None:
    """Validate and format a datetime the way pystac-client does, with a clear error.

    Accepts what ``Client.search(datetime=...)`` accepts: a :class:`datetime.datetime`,
    RFC 3339 text, a year / month / day (``"2021"``, ``"2021-05"``), an interval
    ``"start/end"`` with ``..`` open ends, or a two-element list.

    Raises:
        InvalidQueryError: unparseable, too many parts, or start after end.

    Example:
        >>> check_datetime("2021-05")
        '2021-05-01T00:00:00Z/2021-05-31T23:59:59Z'
    """
    if value is None:
        return None
    hint = (
        "; use RFC 3339, e.g. '2021-04-10T00:00:00Z/2021-06-30T23:59:59Z', a date such as "
        "'2021-05-01', or '..' for an open end"
    )
    try:
        # pystac-client's own parsing (expands "2021" to the year, etc.); it needs no
        # request and no client.
        formatted = BaseSearch._format_datetime(_FORMATTER, value)  # type: ignore[arg-type]
    except Exception as err:
        raise InvalidQueryError(f"datetime {value!r} is not valid: {err}" + hint) from err
    if formatted is None:
        return None
    parts = str(formatted).split("/")
    instants: list[dt.datetime | None] = []
    for part in parts:
        if part in ("..", ""):
            instants.append(None)
            continue
        try:
            instants.append(_parse_instant(part))
        except ValueError as err:
            raise InvalidQueryError(
                f"datetime {value!r} is not valid: {part!r} is not a date-time" + hint
            ) from err
    if len(instants) == 2 and instants[0] and instants[1] and instants[0] > instants[1]:
        raise InvalidQueryError(
            f"datetime {value!r}: the start is after the end; swap them" + hint
        )
    return str(formatted)


class _Formatter:
    """Just enough of a BaseSearch for pystac-client's datetime formatting."""

    _to_isoformat_range = BaseSearch._to_isoformat_range
    _to_utc_isoformat = staticmethod(BaseSearch._to_utc_isoformat)


_FORMATTER = _Formatter()


def _comma_list(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    try:
        parts = [getattr(v, "id", v) for v in value]
    except TypeError as err:
        raise InvalidQueryError(f"{what} must be a list of strings, got {value!r}") from err
    return ",".join(str(part) for part in parts)


def _geometry_from(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError as err:
                raise InvalidQueryError(f"intersects is not valid GeoJSON: {err}") from err
    return value


def to_axelglobe_params(parameters: Mapping[str, Any] | None) -> dict[str, str]:
    """Translate pystac-client's search parameters (GET or POST form) to AxelGlobe's GET.

    Raises:
        InvalidQueryError: anything AxelGlobe would refuse; nothing has been sent.

    Example:
        >>> cql2_json = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]}
        >>> to_axelglobe_params({"collections": ["grus-1"], "bbox": [133, 35, 137, 36],
        ...                      "filter": cql2_json, "filter-lang": "cql2-json"})
        {'collections': 'grus-1', 'bbox': '133,35,137,36', 'filter': 'eo:cloud_cover <= 30'}
    """
    params = dict(parameters or {})
    out: dict[str, str] = {}
    for name, advice in _UNSUPPORTED.items():
        if params.get(name) not in (None, "", [], {}):
            raise InvalidQueryError(f"{name}= is not supported by AxelGlobe: {advice}")
        params.pop(name, None)
    filter_lang = params.pop("filter-lang", None) or params.pop("filter_lang", None)
    crs = params.pop("filter-crs", None)
    if crs not in (None, "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
        raise InvalidQueryError(f"filter-crs {crs!r} is not supported; use lon/lat (CRS84)")
    clauses: list[str] = []
    if params.get("filter") not in (None, ""):
        clauses.append(validate_filter(params.pop("filter"), filter_lang))
    params.pop("filter", None)
    geometry = params.pop("intersects", None)
    if geometry is not None:
        clauses.append(_intersects_clause(_geometry_from(geometry)))
    for name, value in params.items():
        if value is None:
            continue
        if name == "bbox":
            numbers = check_bbox(value)
            if len(numbers) == 6:
                # AxelGlobe documents minX,minY,maxX,maxY only; footprints are 2D, so the
                # heights change nothing, while a server reading the first four numbers
                # of a 3D bbox would take minZ for maxX.
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            out["bbox"] = ",".join(format_number(n) for n in numbers)
        elif name == "datetime":
            checked = check_datetime(value)
            if checked is not None:
                out["datetime"] = checked
        elif name in ("collections", "ids"):
            out[name] = _comma_list(value, name)
        elif name == "limit":
            try:
                out["limit"] = str(int(value))
            except (TypeError, ValueError) as err:
                raise InvalidQueryError(f"limit must be an integer, got {value!r}") from err
        elif isinstance(value, (dict, list, tuple)):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    if clauses:
        out["filter"] = clauses[0] if len(clauses) == 1 else " AND ".join(
            f"({clause})" for clause in clauses
        )
    return out


def _is_search(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/search")


# --- the I/O -----------------------------------------------------------------------------


class AxelGlobeStacApiIO(StacApiIO):
    """pystac-client's ``StacApiIO`` for AxelGlobe: dialect, paging, retries, safe logs.

    Args:
        auth: attaches the bearer token (``session.auth``); an :class:`AxelGlobeAuth`.
        retry: the retry policy; default :func:`default_retry`.
        headers, parameters, timeout: as for ``StacApiIO``.

    Example:
        >>> io = AxelGlobeStacApiIO()
        >>> pystac_client.Client.open(url, stac_io=io)  # doctest: +SKIP
    """

    def __init__(
        self,
        auth: requests.auth.AuthBase | None = None,
        *,
        retry: Retry | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        request_modifier: Callable[[requests.Request], requests.Request | None] | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        self.retry = retry if retry is not None else default_retry()
        super().__init__(
            headers=headers,
            parameters=parameters,
            request_modifier=request_modifier,
            timeout=timeout,
            max_retries=self.retry,
        )
        self.session.auth = auth

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """One request, in AxelGlobe's dialect for searches, retried, token never logged.

        Raises:
            InvalidQueryError: a search AxelGlobe would refuse (nothing is sent).
            AuthenticationError, RestrictedError, ConfigurationError: from the auth, as they
                are (not wrapped in ``APIError``).
            pystac_client.exceptions.APIError: the API answered an error status.
        """
        method = (method or "GET").upper()
        if _is_search(href):
            # AxelGlobe documents only GET /search; POST may answer 405.
            parameters = to_axelglobe_params(parameters)
            method = "GET"
        if method in ("POST", "PUT", "PATCH"):
            request = requests.Request(method, href, headers=headers, json=parameters)
        else:
            request = requests.Request(method, href, headers=headers, params=parameters or {})
        if self._req_modifier is not None:
            request = self._req_modifier(request) or request

        # Connections dropped mid-body surface after urllib3 has handed the response to
        # requests (requests reads the body itself), so the adapter's Retry never sees
        # them. Re-issue the request under the same policy object: Retry.increment counts
        # the read error (raising MaxRetryError when exhausted) and Retry.sleep backs off.
        retry: Retry = self.retry
        while True:
            try:
                prepped = self.session.prepare_request(request)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("%s %s Headers: %s", prepped.method, prepped.url,
                                 redact_headers(prepped.headers))
                settings = self.session.merge_environment_settings(
                    prepped.url, proxies={}, stream=None, verify=True, cert=None
                )
                resp = self.session.send(prepped, timeout=self.timeout, **settings)
                break
            except AxelGlobeError:
                raise  # auth errors (restricted, rejected, unconfigured) as themselves
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as err:
                try:
                    retry = retry.increment(method, href, error=ProtocolError(str(err)))
                except MaxRetryError as exhausted:
                    raise APIError(
                        f"{method} {href}: the connection kept dropping mid-response "
                        f"({exhausted.reason}); try again later"
                    ) from err
                logger.debug("%s %s: connection dropped mid-body, retrying", method, href)
                retry.sleep()
            except requests.RequestException as err:
                raise APIError(f"{method} {href}: {err}") from err
        if resp.status_code == 429:
            self._raise_if_restricted(resp, href)
        if not 200 <= resp.status_code < 300:
            raise APIError.from_response(resp)
        return resp.content.decode("utf-8")

    def _raise_if_restricted(self, resp: requests.Response, href: str) -> None:
        # Only AxelGlobe's own origins can restrict this client (_retry.restriction_until);
        # a 429 from anywhere else is that host's problem, reported as an APIError.
        auth = self.session.auth
        settings = getattr(auth, "settings", None)
        if settings is None:
            return
        until = restriction_until(429, resp.url or href, resp.headers.get("Retry-After"),
                                  api_url=settings.api_url, token_url=settings.token_url,
                                  now=time.time())
        if until is not None:  # remembered for every thread and process
            raise auth.provider.record_restriction(until, status=429)  # type: ignore[union-attr]

    def get_pages(
        self,
        url: str,
        method: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Pages of a search or ``/features`` listing; ``next`` links keep the query.

        AxelGlobe's ``next`` links may carry only ``?page=N``. The original parameters are
        re-sent with the link's own query parameters (and body, if any) taking precedence.
        """
        base = to_axelglobe_params(parameters) if _is_search(url) else dict(parameters or {})
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        target, params = url, base
        while True:
            key = (target, tuple(sorted((k, str(v)) for k, v in params.items())))
            if key in seen:  # a server that links a page to itself would loop forever
                logger.warning("stopping: next link repeats an earlier page (%s)", target)
                return
            seen.add(key)
            page = self.read_json(target, method="GET", parameters=params)
            if not (page.get("features") or page.get("collections")):
                return
            yield page
            link = next((lk for lk in page.get("links", []) if lk.get("rel") == "next"), None)
            if link is None:
                return
            parts = urlsplit(link["href"])
            target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            own: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
            body = link.get("body")
            if isinstance(body, dict):
                own.update(to_axelglobe_params(body) if _is_search(target) else body)
            params = {**base, **own}

    def stac_object_from_dict(
        self,
        d: dict[str, Any],
        href: pystac.link.HREF | None = None,
        root: Catalog | None = None,
        preserve_dict: bool = True,
    ) -> STACObject:
        """As pystac-client's, after completing ``conformsTo`` and loading extension hooks."""
        ensure_extension_hooks()
        if identify_stac_object_type(d) == pystac.STACObjectType.CATALOG and not d.get(
            "conformsTo"
        ):
            d = dict(d)
            _complete_conformance(d)
        obj = super().stac_object_from_dict(d, href, root, preserve_dict)
        if type(obj) is pystac_client.Client:
            obj.__class__ = AxelGlobeClient
        return obj


# --- the client ----------------------------------------------------------------------------


def _check_limit(limit: Any, max_items: Any) -> None:
    # pystac-client refuses these too, but with a bare Exception (or a TypeError for text).
    if limit is None:
        return
    try:
        if isinstance(limit, bool):
            raise TypeError("a bool")
        limit = operator.index(limit)  # int or numpy integer; not 2.5, not "10"
    except TypeError as err:
        raise InvalidQueryError(
            f"limit must be an integer, got {limit!r} (items per page)"
        ) from err
    if isinstance(max_items, int) and max_items >= 1:
        limit = min(limit, max_items)  # what pystac-client sends
    if not 1 <= limit <= 10000:
        raise InvalidQueryError(
            f"limit must be between 1 and 10000, got {limit} (items per page; use "
            "max_items= to cap the total)"
        )


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
            _complete_conformance(d)
        client = super().from_dict(d, href, root, migrate, preserve_dict)
        assert isinstance(client, AxelGlobeClient)
        return client

    def search(self, *, method: str | None = "POST", **kwargs: Any) -> Any:
        """``Client.search`` with AxelGlobe's checks; always sent as ``GET``.

        Raises:
            InvalidQueryError: a bad bbox, datetime, filter or geometry, or a parameter
                AxelGlobe does not implement; raised before any request.

        Example:
            >>> client.search(collections="grus-1", bbox=[133, 35, 137, 36],
            ...               filter="eo:cloud_cover <= 30", limit=50)  # doctest: +SKIP
        """
        if method not in (None, "GET", "POST"):
            raise InvalidQueryError(f"method must be 'GET' or 'POST', got {method!r}")
        bbox = kwargs.get("bbox")
        if bbox is not None and not isinstance(bbox, str):
            # checked here and formatted by pystac-client: an iterator must survive both
            kwargs["bbox"] = bbox = list(bbox) if isinstance(bbox, Iterable) else bbox
        _check_limit(kwargs.get("limit"), kwargs.get("max_items"))
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
        return super().search(method="GET", **kwargs)


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
    retry: Retry | None = None,
    **client_kwargs: Any,
) -> pystac_client.Client:
    """Open the AxelGlobe STAC API as a ``pystac_client.Client``.

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
        retry: a urllib3 ``Retry`` policy instead of :func:`default_retry`.
        **client_kwargs: passed to ``pystac_client.Client.open`` (``headers``,
            ``parameters``, ``timeout``, ``request_modifier``; a ``modifier`` runs after
            :func:`~pystac_axelglobe.extension.normalize_item`).

    Raises:
        ConfigurationError: missing credentials or a bad URL (named variables).
        AuthenticationError, RestrictedError: from the token endpoint.

    Example:
        >>> import pystac_axelglobe as ag
        >>> client = ag.open()  # doctest: +SKIP
        >>> next(client.search(collections="grus-1", max_items=1).items())  # doctest: +SKIP
    """
    ensure_extension_hooks()
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
    stac_io = AxelGlobeStacApiIO(auth, retry=retry)
    return AxelGlobeClient.open(
        settings.api_url,
        stac_io=stac_io,
        modifier=normalize_item if modifier is None else _chain(normalize_item, modifier),
        **client_kwargs,
    )


__all__ = [
    "AXELGLOBE_CONFORMS_TO",
    "AxelGlobeClient",
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
