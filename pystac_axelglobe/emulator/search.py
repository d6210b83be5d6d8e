"""Search for the emulator: query parameters, and CQL2 filters evaluated over item dicts.

The filter text is parsed by the ``cql2`` library (``cql2.parse_text(...).to_json()``); this
module evaluates the resulting CQL2-JSON tree against plain STAC item dicts.

What the emulator supports (as the AxelGlobe guide documents it):

* comparisons ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=`` on item properties (and ``id``,
  ``collection``), plus ``IN``, ``BETWEEN``, ``LIKE`` and ``IS NULL``;
* ``AND`` / ``OR`` / ``NOT``;
* ``S_INTERSECTS(geometry, <geometry>)`` with ``POINT``, ``LINESTRING``, ``MULTIPOINT``,
  ``MULTILINESTRING``, ``POLYGON``, ``MULTIPOLYGON`` and ``BBOX(...)``; ``GEOMETRYCOLLECTION``
  and ``ENVELOPE`` are refused (400), as AxelGlobe refuses them;
* ``avg(<property>)``: the AOI-level aggregate.

The AOI of ``avg()``, exactly:

1. ``G`` is the union of *every* geometry literal that appears in an ``S_INTERSECTS`` anywhere
   in the filter (whatever ``AND`` / ``OR`` / ``NOT`` surrounds it).
2. ``S`` is the search area: the ``bbox`` parameter or the ``intersects`` parameter (both
   at once are refused, as STAC API requires). The AOI is ``G`` intersected with ``S`` when
   both exist, ``G`` or ``S`` when only one does, and unbounded (the whole capture) when
   neither does.
3. The group of an item is every item of the searched collections with the same
   ``ag:capture_id`` whose geometry intersects the AOI, regardless of the other clauses of
   the filter and of ``datetime``. An item without ``ag:capture_id`` is a group of its own.
4. ``avg(p)`` for an item is the mean of ``p`` over its group (items lacking ``p`` are left
   out; no values → null, and a comparison with null is false). An item that does not
   itself intersect the AOI belongs to no group: its ``avg(p)`` is null, so it never passes
   (this matters only when ``bbox`` and ``S_INTERSECTS`` are combined and the item touches
   each of them but not their intersection).

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
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
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
        if str(op).lower() == "envelope":
            raise SearchError(
                "ENVELOPE is not supported in S_INTERSECTS; use BBOX(minx, miny, maxx, maxy)"
            )
        if op not in _COMPARISONS and op not in _LOGICAL and op not in _OTHER:
            raise SearchError(f"the CQL2 operator {op!r} is not supported by this API")
        args = node.get("args", [])
        if op == "s_intersects":
            if len(args) != 2 or args[0] != {"property": "geometry"}:
                raise SearchError(
                    "S_INTERSECTS must be written S_INTERSECTS(geometry, <geometry>)"
                )
            _literal_geometry(args[1])
        if op == "avg" and (len(args) != 1 or "property" not in args[0]):
            raise SearchError("avg() takes one property, e.g. avg(eo:cloud_cover)")
        _check(args)


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


# --- evaluation -----------------------------------------------------------------------------


def item_datetime(item: Mapping[str, Any]) -> datetime | None:
    """The item's ``datetime`` (or ``start_datetime``) as an aware datetime."""
    props = item.get("properties") or {}
    text = props.get("datetime") or props.get("start_datetime")
    return parse_datetime(text) if isinstance(text, str) else None


def item_geometry(item: Mapping[str, Any]) -> BaseGeometry | None:
    """The item's geometry as shapely sees it (``None`` without one).

    Example:
        >>> item_geometry({"geometry": {"type": "Point", "coordinates": [1, 2],
        ...                "crs": {"type": "name"}}}).wkt
        'POINT (1 2)'
    """
    geom = item.get("geometry")
    if not geom:
        return None
    # The real items carry a non-GeoJSON "crs" member in their geometry: ignore it.
    return shapely.geometry.shape({k: v for k, v in geom.items() if k != "crs"})


def sort_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """Deterministic order of results: datetime, then id."""
    dt = item_datetime(item)
    return (dt.isoformat() if dt else "", str(item.get("id", "")))


class _Evaluator:
    """Evaluates one CQL2-JSON tree over the items of one search."""

    def __init__(
        self,
        tree: dict[str, Any],
        universe: Sequence[Mapping[str, Any]],
        area: BaseGeometry | None,
        geometry: Callable[[Mapping[str, Any]], BaseGeometry | None],
    ) -> None:
        self.tree = tree
        self.universe = universe
        self.aoi = self._aoi(tree, area)
        self.geometry = geometry
        self._literals: dict[int, BaseGeometry] = {}
        self._groups: dict[str, list[Mapping[str, Any]]] | None = None
        self._means: dict[tuple[str, str], float | None] = {}

    @staticmethod
    def _aoi(tree: dict[str, Any], box: BaseGeometry | None) -> BaseGeometry | None:
        literals: list[BaseGeometry] = []

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for sub in node:
                    walk(sub)
            elif isinstance(node, dict) and "op" in node:
                if node["op"] == "s_intersects":
                    literals.append(_literal_geometry(node["args"][1]))
                walk(node.get("args", []))

        walk(tree)
        union = shapely.union_all(literals) if literals else None
        if union is not None and box is not None:
            return union.intersection(box)
        return union if union is not None else box

    def _literal(self, node: Any) -> BaseGeometry:
        """The geometry of a literal, built once per search (not once per item)."""
        key = id(node)
        if key not in self._literals:
            self._literals[key] = _literal_geometry(node)
        return self._literals[key]

    def _group_key(self, item: Mapping[str, Any]) -> str:
        capture = (item.get("properties") or {}).get("ag:capture_id")
        return f"capture:{capture}" if capture is not None else f"item:{item.get('id')}"

    def mean(self, item: Mapping[str, Any], prop: str) -> float | None:
        if self._groups is None:
            self._groups = {}
            for other in self.universe:
                geom = self.geometry(other)
                if self.aoi is not None and (geom is None or not geom.intersects(self.aoi)):
                    continue
                self._groups.setdefault(self._group_key(other), []).append(other)
        key = self._group_key(item)
        if not any(other is item for other in self._groups.get(key, [])):
            return None  # the item does not touch the AOI: it belongs to no group
        if (key, prop) not in self._means:
            values = [
                v
                for other in self._groups.get(key, [])
                if isinstance(v := (other.get("properties") or {}).get(prop), (int, float))
            ]
            self._means[(key, prop)] = sum(values) / len(values) if values else None
        return self._means[(key, prop)]

    def value(self, node: Any, item: Mapping[str, Any]) -> Any:
        if isinstance(node, dict):
            if "property" in node:
                name = node["property"]
                if name in ("id", "collection"):
                    return item.get(name)
                if name == "geometry":
                    return self.geometry(item)
                value = (item.get("properties") or {}).get(name)
                if name in ("datetime", "start_datetime", "end_datetime") and value:
                    return parse_datetime(value)
                return value
            if "timestamp" in node:
                return parse_datetime(node["timestamp"])
            if "date" in node:
                return date.fromisoformat(node["date"])
            if node.get("op") == "avg":
                return self.mean(item, node["args"][0]["property"])
            if "op" in node:
                return self.test(node, item)
        return node

    def test(self, node: Any, item: Mapping[str, Any]) -> bool:
        if isinstance(node, bool):
            return node
        op = node["op"]
        args = node.get("args", [])
        if op == "and":
            return all(self.test(a, item) for a in args)
        if op == "or":
            return any(self.test(a, item) for a in args)
        if op == "not":
            return not self.test(args[0], item)
        if op == "s_intersects":
            geom = self.geometry(item)
            return geom is not None and bool(geom.intersects(self._literal(args[1])))
        if op == "isNull":
            return self.value(args[0], item) is None
        left = self.value(args[0], item)
        if op == "in":
            return left is not None and any(_compare("=", left, v) for v in args[1])
        if op == "between":
            low, high = self.value(args[1], item), self.value(args[2], item)
            return _compare(">=", left, low) and _compare("<=", left, high)
        if op == "like":
            pattern = re.escape(str(args[1])).replace("%", ".*").replace("_", ".")
            return isinstance(left, str) and re.fullmatch(pattern, left, re.S) is not None
        return _compare(op, left, self.value(args[1], item))


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    # A datetime compared with a plain string literal: read the string as a date-time.
    if isinstance(left, datetime) and isinstance(right, str):
        right = parse_datetime(right)
    elif isinstance(right, datetime) and isinstance(left, str):
        left = parse_datetime(left)
    elif isinstance(left, datetime) and isinstance(right, date) and not isinstance(
        right, datetime
    ):
        left = left.date()
    try:
        return _COMPARISONS[op](left, right)
    except TypeError:
        return False  # incomparable types simply do not match


def _search_area(params: SearchParams) -> BaseGeometry | None:
    """The ``bbox`` or ``intersects`` parameter as a geometry (never both: refused earlier)."""
    if params.bbox:
        return bbox_geometry(*params.bbox)
    if params.intersects:
        return shapely.geometry.shape(params.intersects)
    return None


def search(
    items: Sequence[Mapping[str, Any]],
    params: SearchParams,
    *,
    geometry: Callable[[Mapping[str, Any]], BaseGeometry | None] | None = None,
    ordered: bool = False,
) -> list[dict[str, Any]]:
    """All items matching ``params`` (every page), sorted by datetime then id.

    Args:
        items: The items to search.
        params: What to find.
        geometry: The shapely geometry of an item (default: built from its GeoJSON on each
            call; a caller searching the same items again may pass a cached one).
        ordered: ``items`` are already sorted by :func:`sort_key`: keep their order.

    Example:
        >>> item = {"id": "a", "collection": "grus-1", "geometry": None,
        ...         "properties": {"datetime": "2021-05-01T00:00:00Z", "eo:cloud_cover": 5}}
        >>> [i["id"] for i in search([item], parse_params({"filter": "eo:cloud_cover < 10"}))]
        ['a']
    """
    universe = [
        i for i in items if params.collections is None or i.get("collection") in params.collections
    ]
    area = _search_area(params)
    shape_of = geometry if geometry is not None else _memo_geometry()
    evaluator = _Evaluator(params.filter, universe, area, shape_of) if params.filter else None
    found: list[dict[str, Any]] = []
    for item in universe:
        if params.ids is not None and item.get("id") not in params.ids:
            continue
        if area is not None:
            geom = shape_of(item)
            if geom is None or not geom.intersects(area):
                continue
        if params.interval is not None:
            when = item_datetime(item)
            start, end = params.interval
            if when is None or (start and when < start) or (end and when > end):
                continue
        if evaluator is not None and not evaluator.test(params.filter, item):
            continue
        found.append(dict(item))
    if not ordered:
        found.sort(key=sort_key)
    return found


def _memo_geometry() -> Callable[[Mapping[str, Any]], BaseGeometry | None]:
    """:func:`item_geometry`, each item's built once for the length of one search."""
    cache: dict[int, BaseGeometry | None] = {}

    def shape_of(item: Mapping[str, Any]) -> BaseGeometry | None:
        key = id(item)
        if key not in cache:
            cache[key] = item_geometry(item)
        return cache[key]

    return shape_of
