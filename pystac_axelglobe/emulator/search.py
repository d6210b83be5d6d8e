"""Search for the emulator: CQL2 filters evaluated over item dicts, and the result order.

The parameters are read by :mod:`.params` (the filter parsed by the ``cql2`` library into
CQL2-JSON); this module evaluates them against plain STAC item dicts.

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

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from .params import (
    _COMPARISONS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SUPPORTED_GEOMETRIES,
    SearchError,
    SearchParams,
    _literal_geometry,
    bbox_geometry,
    parse_datetime,
    parse_filter,
    parse_interval,
    parse_params,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SUPPORTED_GEOMETRIES",
    "SearchError",
    "SearchParams",
    "bbox_geometry",
    "item_datetime",
    "item_geometry",
    "parse_datetime",
    "parse_filter",
    "parse_interval",
    "parse_params",
    "search",
    "sort_key",
]


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
