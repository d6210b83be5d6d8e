"""Search parameters as the emulator reads them: ``bbox``, ``datetime``, ``filter``, ...

A malformed parameter raises :class:`SearchError`, which the API answers with a 400
``InvalidParameterValue``. The filter text is parsed by the ``cql2`` library
(``cql2.parse_text(...).to_json()``) and checked against what AxelGlobe supports; see
:mod:`.search` for how it is evaluated.

Example:
    >>> params = parse_params({"filter": "eo:cloud_cover <= 30", "limit": "5"})
    >>> params.limit, params.filter["op"]
    (5, '<=')
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import cql2
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from .._time import parse_rfc3339

DEFAULT_LIMIT = 10
MAX_LIMIT = 100

# Geometry types S_INTERSECTS accepts; GeometryCollection is refused like AxelGlobe does.
SUPPORTED_GEOMETRIES = frozenset(
    {"Point", "LineString", "MultiPoint", "MultiLineString", "Polygon", "MultiPolygon"}
)


# RFC 3339 date-time: full date, time, and a Z or +hh:mm offset (no bare dates, no ",5").
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


class SearchError(ValueError):
    """A search parameter the emulator refuses: answered as 400 ``InvalidParameterValue``."""


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """Parsed search parameters (``GET /search`` or the items endpoint).

    Attributes:
        bbox: ``(minx, miny, maxx, maxy)`` (a 6-number bbox is reduced to its 2-D part).
        interval: ``(start, end)``, either end ``None`` when open; ``None`` without datetime.
        collections: collection ids, or ``None`` for all.
        ids: item ids, or ``None`` for all.
        limit: page size (1..100).
        page: 1-based page number.
        filter: the CQL2-JSON tree, or ``None``.
        intersects: a GeoJSON geometry (the standard ``intersects`` parameter), or ``None``.
    """

    bbox: tuple[float, float, float, float] | None = None
    interval: tuple[datetime | None, datetime | None] | None = None
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    limit: int = DEFAULT_LIMIT
    page: int = 1
    filter: dict[str, Any] | None = None
    intersects: dict[str, Any] | None = None


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 instant into an aware datetime (UTC when no offset is given).

    Example:
        >>> parse_datetime("2021-04-10T00:00:00Z").isoformat()
        '2021-04-10T00:00:00+00:00'
    """
    value = text.strip()
    if not _RFC3339.match(value):
        raise SearchError(
            f"{text!r} is not an RFC 3339 date-time (e.g. 2021-04-10T00:00:00Z)"
        )
    try:
        parsed = parse_rfc3339(value)
    except ValueError:
        raise SearchError(f"{text!r} is not an RFC 3339 date-time") from None
    return parsed


def parse_interval(text: str) -> tuple[datetime | None, datetime | None]:
    """Parse a ``datetime`` parameter: an instant, or ``start/end`` with ``..`` open ends.

    Example:
        >>> start, end = parse_interval("2021-04-10T00:00:00Z/..")
        >>> start.year, end
        (2021, None)
    """
    parts = text.split("/")
    if len(parts) == 1:
        if parts[0] in ("", ".."):
            raise SearchError("datetime must be an RFC 3339 instant or an interval 'start/end'")
        instant = parse_datetime(parts[0])
        return instant, instant
    if len(parts) != 2:
        raise SearchError(f"datetime {text!r} must be an instant or 'start/end'")
    ends = [None if p in ("", "..") else parse_datetime(p) for p in parts]
    start, end = ends
    if start is None and end is None:
        raise SearchError("datetime interval must have at least one closed end")
    if start is not None and end is not None and start > end:
        raise SearchError(f"datetime interval {text!r} ends before it starts")
    return start, end


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        raise SearchError(f"bbox {text!r} must be 4 or 6 comma-separated numbers") from None
    if len(numbers) not in (4, 6) or not all(math.isfinite(n) for n in numbers):
        raise SearchError(f"bbox {text!r} must be 4 or 6 comma-separated numbers")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if miny > maxy:
        raise SearchError(f"bbox {text!r} has its south edge above its north edge")
    return minx, miny, maxx, maxy


def _parse_int(name: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SearchError(f"{name} must be an integer, not {text!r}") from None
    if value < low:
        raise SearchError(f"{name} must be at least {low}, not {value}")
    return value


def _split(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_filter(text: str) -> dict[str, Any]:
    """Parse CQL2 text with ``cql2`` and check it uses only what AxelGlobe supports.

    Raises:
        SearchError: on a syntax error, ``GEOMETRYCOLLECTION``, ``ENVELOPE`` or an
            unsupported operator.

    Example:
        >>> parse_filter("ag:capture_id = 'abc'")["args"]
        [{'property': 'ag:capture_id'}, 'abc']
    """
    try:
        tree = cql2.parse_text(text).to_json()
    except Exception as err:  # cql2 raises ParseError / ValidationError
        raise SearchError(f"cannot parse filter as CQL2 text: {err}") from None
    if not isinstance(tree, dict):
        raise SearchError("filter must be a boolean CQL2 expression")
    _check(tree)
    return tree


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}
_LOGICAL = {"and", "or", "not"}
_OTHER = {"in", "between", "like", "isNull", "s_intersects", "avg"}


def _check(node: Any) -> None:
    """Walk the tree and refuse what the real API refuses, before evaluating anything."""
    if isinstance(node, list):
        for sub in node:
            _check(sub)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "GeometryCollection":
        raise SearchError(
            "GEOMETRYCOLLECTION is not supported in S_INTERSECTS; use MULTIPOLYGON, "
            "MULTILINESTRING or MULTIPOINT instead"
        )
    op = node.get("op")
    if op is not None:
        args = node.get("args", [])
        _check_operator(op, args)
        _check(args)


def _check_operator(op: Any, args: Any) -> None:
    """Refuse the operator ``op`` applied to ``args`` where the real API refuses it."""
    if str(op).lower() == "envelope":
        raise SearchError(
            "ENVELOPE is not supported in S_INTERSECTS; use BBOX(minx, miny, maxx, maxy)"
        )
    if op not in _COMPARISONS and op not in _LOGICAL and op not in _OTHER:
        raise SearchError(f"the CQL2 operator {op!r} is not supported by this API")
    if op == "s_intersects":
        if len(args) != 2 or args[0] != {"property": "geometry"}:
            raise SearchError(
                "S_INTERSECTS must be written S_INTERSECTS(geometry, <geometry>)"
            )
        _literal_geometry(args[1])
    if op == "avg" and (len(args) != 1 or "property" not in args[0]):
        raise SearchError("avg() takes one property, e.g. avg(eo:cloud_cover)")


def _literal_geometry(node: Any) -> BaseGeometry:
    if isinstance(node, dict) and str(node.get("op", "")).lower() == "envelope":
        raise SearchError(
            "ENVELOPE is not supported in S_INTERSECTS; use BBOX(minx, miny, maxx, maxy)"
        )
    if isinstance(node, dict) and "bbox" in node:
        box = node["bbox"]
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        return bbox_geometry(*box)
    if isinstance(node, dict) and node.get("type") in SUPPORTED_GEOMETRIES:
        return shapely.geometry.shape(node)
    if isinstance(node, dict) and node.get("type") == "GeometryCollection":
        raise SearchError("GEOMETRYCOLLECTION is not supported in S_INTERSECTS")
    raise SearchError("the second argument of S_INTERSECTS must be a geometry literal or BBOX")


def bbox_geometry(minx: float, miny: float, maxx: float, maxy: float) -> BaseGeometry:
    """A bbox as a geometry; a west edge east of the east edge crosses the antimeridian.

    STAC API (``bbox``) and CQL2 (``BBOX(...)``) both read ``minx > maxx`` that way; a plain
    ``shapely.box`` would instead span the other 340-odd degrees of longitude.

    Example:
        >>> bbox_geometry(170, -10, -170, 10).geom_type
        'MultiPolygon'
    """
    if minx <= maxx:
        return shapely.box(minx, miny, maxx, maxy)
    return shapely.MultiPolygon(
        [shapely.box(minx, miny, 180, maxy), shapely.box(-180, miny, maxx, maxy)]
    )


def parse_params(args: Mapping[str, str]) -> SearchParams:
    """Parse search query parameters; raise :class:`SearchError` on anything malformed.

    Example:
        >>> parse_params({"bbox": "133,35,137,36", "collections": "grus-1"}).collections
        ('grus-1',)
    """
    lang = args.get("filter-lang")
    if lang is not None and lang != "cql2-text":
        raise SearchError(f"filter-lang {lang!r} is not supported; use cql2-text")
    crs = args.get("filter-crs")
    if crs is not None and crs != "http://www.opengis.net/def/crs/OGC/1.3/CRS84":
        raise SearchError("filter-crs must be http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    filter_text = args.get("filter")
    if args.get("bbox") and args.get("intersects"):
        raise SearchError("bbox and intersects cannot be used together; use one of them")
    return SearchParams(
        bbox=_parse_bbox(args["bbox"]) if args.get("bbox") else None,
        interval=parse_interval(args["datetime"]) if args.get("datetime") else None,
        collections=_split(args["collections"]) if args.get("collections") else None,
        ids=_split(args["ids"]) if args.get("ids") else None,
        limit=min(_parse_int("limit", args["limit"], 1), MAX_LIMIT)
        if args.get("limit")
        else DEFAULT_LIMIT,
        page=_parse_int("page", args["page"], 1) if args.get("page") else 1,
        filter=parse_filter(filter_text) if filter_text else None,
        intersects=_parse_intersects(args["intersects"]) if args.get("intersects") else None,
    )


def _parse_intersects(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
        shapely.geometry.shape(value)
    except Exception:  # json or shapely: either way the parameter is unusable
        raise SearchError("intersects must be a GeoJSON geometry object") from None
    if not isinstance(value, dict):
        raise SearchError("intersects must be a GeoJSON geometry object")
    return value
