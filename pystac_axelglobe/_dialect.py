"""AxelGlobe's search dialect: pystac-client's search arguments, checked and sent as ``GET``.

Everything here runs before a request is sent: a bad argument is an
:class:`~pystac_axelglobe.errors.InvalidQueryError` that says what to pass instead, and the
API never sees it. :func:`to_axelglobe_params` turns pystac-client's parameters (its GET or
POST form) into AxelGlobe's: lists become comma-separated, CQL2-JSON becomes CQL2 text,
``intersects=`` becomes ``S_INTERSECTS(geometry, <WKT>)`` ANDed with the filter.
:func:`searched_capture_id` (from ``_capture_filter.py``) reads the capture a query names.

Example:
    >>> to_axelglobe_params({"collections": ["grus-1"], "limit": 10})
    {'collections': 'grus-1', 'limit': '10'}
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pystac_client.item_search import BaseSearch

from ._capture_filter import searched_capture_id
from ._geometry import check_lonlat
from ._time import parse_rfc3339
from .errors import InvalidQueryError
from .filters import format_number, validate_filter
from .filters import intersects as _intersects_clause
from .settings import COLLECTION_ID, MAX_PAGE_LIMIT

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


#: What a valid bbox looks like, as the errors of :func:`check_bbox` say it by default.
BBOX_HINT = " (a valid bbox: [minX, minY, maxX, maxY] in lon/lat, e.g. [133, 35, 137, 36])"


def check_bbox(bbox: Any, *, hint: str = BBOX_HINT) -> list[float]:
    """Validate a bbox (4 or 6 numbers, lon/lat, min <= max) and return it as floats.

    Args:
        bbox: a list of numbers, or the text ``"minX,minY,maxX,maxY"``.
        hint: appended to each error, saying what a valid bbox looks like (the command
            line says it in its own syntax).

    Raises:
        InvalidQueryError: saying what is wrong and what a valid bbox looks like.

    Example:
        >>> check_bbox("133,35,137,36")
        [133.0, 35.0, 137.0, 36.0]
    """
    numbers = _numbers(bbox, "bbox")
    if len(numbers) not in (4, 6):
        raise InvalidQueryError(f"bbox must have 4 or 6 numbers, got {len(numbers)}" + hint)
    half = len(numbers) // 2
    lo, hi = numbers[:half], numbers[half:]
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidQueryError(f"bbox contains NaN or infinity: {numbers}" + hint)
    for axis, a, b in zip(("minX/maxX", "minY/maxY", "minZ/maxZ"), lo, hi, strict=False):
        if a > b:
            raise InvalidQueryError(f"bbox {axis} are reversed: {a} > {b}" + hint)
    try:
        check_lonlat((lo[0], lo[1], hi[0], hi[1]))
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_id_list(value: Any, what: str) -> list[str]:
    """Validate ``ids=`` or ``collections=`` (text, or strings / objects with ``.id``).

    AxelGlobe takes these as one comma-separated parameter, so an id cannot hold a comma,
    and an empty list is refused: pystac-client would drop it and search everything.

    Raises:
        InvalidQueryError: not strings, empty, a comma or a control character (NUL...).

    Example:
        >>> check_id_list("grus-1", "collections")
        ['grus-1']
    """
    example = f"['{COLLECTION_ID}']" if what == "collections" else "['<item id>', '<item id>']"
    hint = f"; pass a list of strings, e.g. {what}={example}"
    if isinstance(value, str):
        parts: list[Any] = value.split(",")
    elif isinstance(getattr(value, "id", None), str):
        parts = [value.id]  # one pystac Collection, as pystac-client takes
    elif isinstance(value, (bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise InvalidQueryError(f"{what} must be a list of strings, got {value!r:.80}" + hint)
    else:
        parts = [getattr(v, "id", v) for v in value]  # pystac Collections give their id
    if not parts:
        raise InvalidQueryError(
            f"{what} is empty; pystac-client would drop it and search everything. Pass None "
            f"to search without {what}, or skip the search"
        )
    for part in parts:
        if not isinstance(part, str):
            raise InvalidQueryError(f"{what} must contain strings, got {part!r:.80}" + hint)
        if not part.strip():
            raise InvalidQueryError(f"{what} contains an empty id: {value!r:.80}" + hint)
        if "," in part:
            raise InvalidQueryError(
                f"{what} contains {part!r:.80}, with a comma: AxelGlobe takes {what} as one "
                "comma-separated list, so such an id cannot be searched for"
            )
        if _CONTROL.search(part):
            raise InvalidQueryError(
                f"{what} contains {part!r:.80}, with a control character (NUL, newline...)"
                + hint
            )
    return parts


def check_max_items(value: Any) -> None:
    """Validate ``max_items=``: None or a whole number of at least 1.

    pystac-client takes ``max_items=0`` as "no limit" and fails on text mid-search.

    Example:
        >>> check_max_items(100)
    """
    if value is None:
        return
    try:
        if isinstance(value, bool):
            raise TypeError("a bool")
        number = operator.index(value)  # int or numpy integer; not 2.5, not "10"
    except TypeError as err:
        raise InvalidQueryError(
            f"max_items must be a whole number, got {value!r:.80}; pass None for every item"
        ) from err
    if number < 1:
        raise InvalidQueryError(
            f"max_items must be at least 1, got {number} (pystac-client would take 0 as no "
            "limit); pass None for every item"
        )


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
    _pop_unsupported(params)
    clauses = _pop_filter_clauses(params)
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is not None:
            text = _FORMATS.get(name, _format_other)(name, value)
            if text is not None:
                out[name] = text
    if clauses:
        out["filter"] = clauses[0] if len(clauses) == 1 else " AND ".join(
            f"({clause})" for clause in clauses
        )
    return out


def _pop_unsupported(params: dict[str, Any]) -> None:
    """Refuse a parameter AxelGlobe does not implement (:data:`_UNSUPPORTED`); drop it empty."""
    for name, advice in _UNSUPPORTED.items():
        if params.get(name) not in (None, "", [], {}):
            raise InvalidQueryError(f"{name}= is not supported by AxelGlobe: {advice}")
        params.pop(name, None)


def _pop_filter_clauses(params: dict[str, Any]) -> list[str]:
    """The CQL2 text clauses of ``filter`` and ``intersects``, taken out of ``params``.

    ``filter-lang`` and ``filter-crs`` are checked and taken out too: AxelGlobe's GET takes
    CQL2 text in lon/lat only, which is what the clauses are.
    """
    filter_lang = params.pop("filter-lang", None) or params.pop("filter_lang", None)
    if filter_lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidQueryError(
            f"filter-lang {filter_lang!r:.80} is not supported; use 'cql2-text' or 'cql2-json'"
        )
    crs = params.pop("filter-crs", None)
    if crs not in (None, "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
        raise InvalidQueryError(f"filter-crs {crs!r} is not supported; use lon/lat (CRS84)")
    clauses: list[str] = []
    if params.get("filter") is not None:  # "" too: an empty filter would match everything
        clauses.append(validate_filter(params.pop("filter"), filter_lang))
    geometry = params.pop("intersects", None)
    if geometry is not None:
        clauses.append(_intersects_clause(_geometry_from(geometry)))
    return clauses


def _format_bbox(name: str, value: Any) -> str:
    """``bbox`` checked, as ``minX,minY,maxX,maxY``."""
    numbers = check_bbox(value)
    if len(numbers) == 6:
        # AxelGlobe documents minX,minY,maxX,maxY only; footprints are 2D, so the heights
        # change nothing, while a server reading the first four numbers of a 3D bbox would
        # take minZ for maxX.
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    return ",".join(format_number(n) for n in numbers)


def _format_datetime(name: str, value: Any) -> str | None:
    """``datetime`` checked and formatted as pystac-client does (None: no datetime)."""
    return check_datetime(value)


def _format_ids(name: str, value: Any) -> str:
    """``collections`` or ``ids`` checked, comma-separated."""
    return ",".join(check_id_list(value, name))


def _format_limit(name: str, value: Any) -> str:
    """``limit`` as a whole number."""
    try:
        return str(int(value))
    except (TypeError, ValueError) as err:
        raise InvalidQueryError(f"limit must be an integer, got {value!r}") from err


def _format_other(name: str, value: Any) -> str:
    """Any other parameter: JSON for a dict or list, else its text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


#: How each parameter with rules of its own is sent (the rest: :func:`_format_other`).
_FORMATS: dict[str, Callable[[str, Any], str | None]] = {
    "bbox": _format_bbox,
    "datetime": _format_datetime,
    "collections": _format_ids,
    "ids": _format_ids,
    "limit": _format_limit,
}


def is_search(url: str) -> bool:
    """Whether ``url`` is a search endpoint (its path ends in ``/search``).

    Example:
        >>> is_search("https://api.example/stac/search?page=2")
        True
    """
    return urlsplit(url).path.rstrip("/").endswith("/search")


def check_limit(limit: Any, max_items: Any = None) -> None:
    """Validate ``limit=`` (items per page): a whole number from 1 to 10000.

    Example:
        >>> check_limit(50)
    """
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
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidQueryError(
            f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit} (items per page; use "
            "max_items= to cap the total)"
        )


__all__ = [
    "BBOX_HINT",
    "check_bbox",
    "check_datetime",
    "check_id_list",
    "check_limit",
    "check_max_items",
    "is_search",
    "searched_capture_id",
    "to_axelglobe_params",
]
