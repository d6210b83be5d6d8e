"""Typed builders of AxelGlobe's CQL2-text filters, and client-side validation of filters.

Each builder returns CQL2 text that can be passed as ``filter=`` to a search, and refuses
values AxelGlobe would refuse (:class:`~pystac_axelglobe.errors.InvalidQueryError`) before
anything is sent.

Filters are bounded before they are parsed (:data:`MAX_FILTER_LENGTH`,
:data:`MAX_FILTER_DEPTH`, :data:`MAX_FILTER_CLAUSES`): cql2's parser recurses on the C stack
and crashes the interpreter (SIGSEGV) on deeply nested or very long expressions.

Example:
    >>> all_of(cloud_cover(30), capture_id("52eZg9k7rPEyYQGX"))
    "(eo:cloud_cover <= 30) AND (ag:capture_id = '52eZg9k7rPEyYQGX')"
    >>> intersects({"type": "Point", "coordinates": [-50.38, -21.5]})
    'S_INTERSECTS(geometry, POINT (-50.38 -21.5))'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import InvalidQueryError
from .queryables import check_properties

#: Geometry types AxelGlobe's ``S_INTERSECTS`` accepts (besides ``BBOX(...)``).
SUPPORTED_GEOMETRY_TYPES: tuple[str, ...] = (
    "Point",
    "LineString",
    "MultiPoint",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)

#: The longest filter accepted, in characters (a GET URL this long is already beyond what
#: most servers accept).
MAX_FILTER_LENGTH = 1_000_000
#: The deepest nesting accepted: parentheses plus ``NOT`` s (CQL2-JSON: nested operators).
#: cql2's parser overflows a 512 KiB thread stack (macOS threads, some dask workers) at
#: about 64 levels of ``NOT (``; 32 leaves a margin.
MAX_FILTER_DEPTH = 32
#: The most ``AND``/``OR`` clauses accepted. cql2's parser overflows a 512 KiB thread stack
#: at about 1,000 (an 8 MiB main thread at about 16,000); 500 leaves a margin.
MAX_FILTER_CLAUSES = 500

# Operators of CQL2 that AxelGlobe evaluates. Anything else (other spatial, temporal or
# array operators, custom functions) is refused here rather than by a 400 from the server.
_LOGICAL = {"and", "or", "not"}
_COMPARISON = {"=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isnull"}
_AVG_ARGS = [{"property": "eo:cloud_cover"}]
_HELP = (
    "AxelGlobe supports comparisons, AND/OR/NOT, avg(eo:cloud_cover) and "
    "S_INTERSECTS(geometry, <POINT|LINESTRING|MULTIPOINT|MULTILINESTRING|POLYGON|"
    "MULTIPOLYGON|BBOX(...)>)"
)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidQueryError(f"{what} must be a number, got {value!r}")
    return float(value)


def format_number(value: float) -> str:
    """A number as query text: every digit kept, no exponent, no trailing ``.0``.

    ``f"{n:g}"`` keeps 6 significant digits only: 135.499248 would become 135.499, ~50 m
    off, and a cloud cover of 12.3456789 would become 12.3457.

    Example:
        >>> format_number(135.499248), format_number(133.0), format_number(0.00001)
        ('135.499248', '133', '0.00001')
    """
    number = float(value)
    if number.is_integer():
        return str(int(number))
    # repr() is the shortest text that reads back as the same float; Decimal drops "e-05".
    return format(Decimal(repr(number)), "f")


def _percent(value: Any, what: str) -> str:
    number = _number(value, what)
    if not 0 <= number <= 100:
        raise InvalidQueryError(f"{what} must be between 0 and 100 (percent), got {value!r}")
    return format_number(number)


def cloud_cover(max: float, min: float | None = None) -> str:  # noqa: A002 - the API's words
    """Item-level cloud cover at most ``max`` percent (and at least ``min``).

    Args:
        max: the largest ``eo:cloud_cover`` kept, 0..100.
        min: the smallest ``eo:cloud_cover`` kept, 0..100, or None.

    Raises:
        InvalidQueryError: a value outside 0..100, or ``min`` above ``max``.

    Example:
        >>> cloud_cover(30)
        'eo:cloud_cover <= 30'
        >>> cloud_cover(30, min=5)
        'eo:cloud_cover >= 5 AND eo:cloud_cover <= 30'
    """
    upper = _percent(max, "cloud_cover max")
    if min is None:
        return f"eo:cloud_cover <= {upper}"
    lower = _percent(min, "cloud_cover min")
    if float(lower) > float(upper):
        raise InvalidQueryError(f"cloud_cover min ({min}) is above max ({max}); swap them")
    return f"eo:cloud_cover >= {lower} AND eo:cloud_cover <= {upper}"


def aoi_cloud_cover(max: float) -> str:  # noqa: A002 - the API's words
    """AOI-level cloud cover: the mean over the tiles of a capture that touch the AOI.

    The AOI is the search's ``bbox`` and/or ``intersects``/``S_INTERSECTS`` geometry. All
    tiles of a capture are kept when their mean ``eo:cloud_cover`` is at most ``max``.

    Raises:
        InvalidQueryError: a value outside 0..100.

    Example:
        >>> aoi_cloud_cover(20)
        'avg(eo:cloud_cover) <= 20'
    """
    return f"avg(eo:cloud_cover) <= {_percent(max, 'aoi_cloud_cover max')}"


def capture_id(id: str) -> str:  # noqa: A002 - the API's words
    """All tiles of one capture (e.g. the capture id the Tasking API returned).

    Raises:
        InvalidQueryError: ``id`` is not a non-empty string.

    Example:
        >>> capture_id("52eZg9k7rPEyYQGX")
        "ag:capture_id = '52eZg9k7rPEyYQGX'"
        >>> capture_id("it's")
        "ag:capture_id = 'it''s'"
    """
    if not isinstance(id, str) or not id.strip():
        raise InvalidQueryError(f"capture_id must be a non-empty string, got {id!r}")
    # CQL2 text escapes a quote inside a string literal by doubling it.
    return "ag:capture_id = '" + id.replace("'", "''") + "'"


def to_shapely(geom: Any) -> Any:
    """A shapely geometry from GeoJSON (dict or text), WKT, shapely or ``__geo_interface__``.

    Raises:
        InvalidQueryError: not a geometry, empty, or of a type AxelGlobe cannot search with
            (GeometryCollection, LinearRing).

    Example:
        >>> to_shapely("POINT (1 2)").geom_type
        'Point'
    """
    import shapely
    import shapely.geometry

    try:
        if isinstance(geom, shapely.Geometry):
            shape = geom
        elif isinstance(geom, str):
            text = geom.strip()
            shape = (
                shapely.geometry.shape(json.loads(text))
                if text.startswith("{")
                else shapely.from_wkt(text)
            )
        else:
            if not isinstance(geom, Mapping) and hasattr(geom, "__geo_interface__"):
                geom = geom.__geo_interface__
            if not isinstance(geom, Mapping):
                raise TypeError(f"{type(geom).__name__} is not a geometry")
            if geom.get("type") == "Feature":
                geom = geom.get("geometry") or {}
            if geom.get("type") == "GeometryCollection":
                raise InvalidQueryError(_geometry_collection_message())
            shape = shapely.geometry.shape(geom)
    except InvalidQueryError:
        raise
    except Exception as err:
        raise InvalidQueryError(
            f"cannot read {geom!r:.120} as a geometry ({err}); pass a GeoJSON geometry "
            "dict, a shapely geometry, an object with __geo_interface__ or WKT text"
        ) from err
    if shape.geom_type == "GeometryCollection":
        raise InvalidQueryError(_geometry_collection_message())
    if shape.geom_type not in SUPPORTED_GEOMETRY_TYPES:
        raise InvalidQueryError(
            f"AxelGlobe cannot search with a {shape.geom_type}; use one of "
            + ", ".join(SUPPORTED_GEOMETRY_TYPES)
        )
    if shape.is_empty:
        raise InvalidQueryError("the geometry is empty; pass one with coordinates")
    _check_lonlat(shape.bounds)
    return shape


def _geometry_collection_message() -> str:
    return (
        "AxelGlobe does not support GEOMETRYCOLLECTION in S_INTERSECTS; use a MULTIPOLYGON "
        "(or MULTIPOINT/MULTILINESTRING), or search once per member"
    )


def _check_lonlat(bounds: tuple[float, ...]) -> None:
    minx, miny, maxx, maxy = bounds
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidQueryError(
            f"longitudes must be within -180..180 (WGS84 lon/lat), got {minx}..{maxx}"
        )
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidQueryError(
            f"latitudes must be within -90..90 (WGS84 lon/lat), got {miny}..{maxy}; "
            "coordinates are (lon, lat)"
        )


def intersects(geom: Any) -> str:
    """Items whose footprint intersects ``geom``: ``S_INTERSECTS(geometry, <WKT>)``.

    Args:
        geom: a GeoJSON geometry (or Feature) dict, a shapely geometry, anything with
            ``__geo_interface__``, or WKT text. Point, LineString, MultiPoint,
            MultiLineString, Polygon and MultiPolygon are supported.

    Raises:
        InvalidQueryError: a GeometryCollection or another unsupported or unreadable value.

    Example:
        >>> intersects("POLYGON ((0 0, 1 0, 1 1, 0 0))")
        'S_INTERSECTS(geometry, POLYGON ((0 0, 1 0, 1 1, 0 0)))'
    """
    import shapely

    # Footprints are 2D and the guide's literals are 2D: a Z (GeoJSON altitude) is dropped
    # rather than sent as "POINT Z (...)", which AxelGlobe does not document.
    shape = shapely.force_2d(to_shapely(geom))
    return f"S_INTERSECTS(geometry, {shapely.to_wkt(shape, rounding_precision=-1)})"


# Literals ('it''s') and quoted identifiers ("eo:cloud_cover") as cql2 reads them, so that
# nothing inside them counts; then parentheses and the logical keywords.
_TOKENS = re.compile(r"""'[^']*(?:''[^']*)*'|"[^"]*"|[()]|\b(?:and|or|not)\b""",
                     re.IGNORECASE)
_DEPTH_ADVICE = (
    "; flatten it (NOT (NOT (x)) is x; alternatives need no nesting: a = 1 OR a = 2, "
    "or a IN (1, 2))"
)
_CLAUSE_ADVICE = (
    "; match many values with IN, e.g. ag:capture_id IN ('a', 'b'), search by ids=[...], "
    "or split the search into several"
)


def _text_shape(text: str) -> tuple[int, int]:
    """The deepest nesting (parentheses and NOTs) and the number of clauses of CQL2 text.

    A linear scan of tokens, no parsing. ``NOT`` binds tighter than ``AND``/``OR``: the NOTs
    pending at a level end at the next ``AND``, ``OR`` or ``)`` of that level. An unclosed
    quote counts what follows as code: over-counting refuses, it never lets through.
    """
    pending: list[int] = []  # NOTs pending at each enclosing level
    nots = outer = deepest = clauses = 0
    for match in _TOKENS.finditer(text):
        token = match.group(0).lower()
        if token[0] in "'\"":
            continue
        if token == "(":
            pending.append(nots)
            outer, nots = outer + nots, 0
        elif token == ")":
            if pending:
                outer -= pending.pop()
            nots = 0
        elif token == "not":
            nots += 1
        else:
            clauses += 1
            nots = 0
        deepest = max(deepest, len(pending) + outer + nots)
    return deepest, clauses + 1


def check_filter_size(text: str) -> None:
    """Refuse CQL2 text longer, deeper or with more clauses than the limits, before parsing.

    Raises:
        InvalidQueryError: naming the limit and what to write instead.

    Example:
        >>> check_filter_size("eo:cloud_cover <= 30 AND NOT (platform = 'GRUS-1A')")
        >>> try:
        ...     check_filter_size("NOT (" * 100 + "a = 1" + ")" * 100)
        ... except InvalidQueryError as err:
        ...     print(str(err)[:58])
        the filter nests 200 levels deep (parentheses and NOTs); t
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidQueryError(
            f"the filter is {len(text):,} characters long; the limit is "
            f"{MAX_FILTER_LENGTH:,}. Search with a simpler geometry (e.g. its convex hull or "
            "shapely's simplify()) or split the search into several"
        )
    depth, clauses = _text_shape(text)
    if depth > MAX_FILTER_DEPTH:
        raise InvalidQueryError(
            f"the filter nests {depth} levels deep (parentheses and NOTs); the limit is "
            f"{MAX_FILTER_DEPTH}" + _DEPTH_ADVICE
        )
    if clauses > MAX_FILTER_CLAUSES:
        raise InvalidQueryError(
            f"the filter has {clauses:,} AND/OR clauses; the limit is {MAX_FILTER_CLAUSES}"
            + _CLAUSE_ADVICE
        )


def _check_json_size(tree: Any) -> None:
    """Bound CQL2-JSON like text: operator nesting and AND/OR clauses, without recursion."""
    # node, container depth, operator depth (the root operator is level 0, as in text)
    stack: list[tuple[Any, int, int]] = [(tree, 0, -1)]
    clauses = 1
    while stack:
        node, depth, ops = stack.pop()
        if depth > 4 * MAX_FILTER_DEPTH:  # geometry coordinates nest too, a few levels
            raise InvalidQueryError(
                f"the CQL2-JSON filter nests more than {4 * MAX_FILTER_DEPTH} levels deep"
                + _DEPTH_ADVICE
            )
        if isinstance(node, Mapping):
            if "op" in node:
                ops += 1
                if ops > MAX_FILTER_DEPTH:
                    raise InvalidQueryError(
                        f"the CQL2-JSON filter nests operators more than {MAX_FILTER_DEPTH} "
                        "levels deep" + _DEPTH_ADVICE
                    )
                args = node.get("args")
                if str(node["op"]).lower() in ("and", "or") and isinstance(args, list):
                    clauses += max(0, len(args) - 1)
            stack.extend((child, depth + 1, ops) for child in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth + 1, ops) for child in node)
        if clauses > MAX_FILTER_CLAUSES:
            raise InvalidQueryError(
                f"the CQL2-JSON filter has more than {MAX_FILTER_CLAUSES} AND/OR clauses"
                + _CLAUSE_ADVICE
            )


def _combine(op: str, clauses: tuple[str, ...]) -> str:
    texts = []
    for clause in clauses:
        if not isinstance(clause, str) or not clause.strip():
            raise InvalidQueryError(f"{op} expects CQL2 text clauses, got {clause!r}")
        texts.append(clause.strip())
    if not texts:
        raise InvalidQueryError(f"{op.lower()} needs at least one clause")
    if len(texts) > MAX_FILTER_CLAUSES:  # before joining thousands of clauses
        builder = "all_of" if op == "AND" else "any_of"
        raise InvalidQueryError(
            f"{builder}() got {len(texts):,} clauses; the limit is {MAX_FILTER_CLAUSES}"
            + _CLAUSE_ADVICE
        )
    combined = texts[0] if len(texts) == 1 else f" {op} ".join(f"({text})" for text in texts)
    check_filter_size(combined)
    return combined


def all_of(*clauses: str) -> str:
    """All clauses must hold (``AND``); each clause is parenthesised.

    Raises:
        InvalidQueryError: no clause, a clause that is not text, or a result beyond the
            limits of :func:`check_filter_size` (at most :data:`MAX_FILTER_CLAUSES`).

    Example:
        >>> all_of(cloud_cover(30), aoi_cloud_cover(20))
        '(eo:cloud_cover <= 30) AND (avg(eo:cloud_cover) <= 20)'
    """
    return _combine("AND", clauses)


def any_of(*clauses: str) -> str:
    """At least one clause must hold (``OR``); each clause is parenthesised.

    For many values of one property, ``IN`` is shorter and has no clause limit:
    ``"ag:capture_id IN ('a', 'b', 'c')"``.

    Raises:
        InvalidQueryError: no clause, a clause that is not text, or a result beyond the
            limits of :func:`check_filter_size` (at most :data:`MAX_FILTER_CLAUSES`).

    Example:
        >>> any_of(capture_id("a"), capture_id("b"))
        "(ag:capture_id = 'a') OR (ag:capture_id = 'b')"
    """
    return _combine("OR", clauses)


def _walk(node: Any) -> None:
    """Refuse what AxelGlobe cannot evaluate, with a message saying what it can."""
    if isinstance(node, list):
        for child in node:
            _walk(child)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "GeometryCollection":
        raise InvalidQueryError(_geometry_collection_message())
    if "op" not in node:
        for child in node.values():
            _walk(child)
        return
    op = str(node["op"]).lower()
    args = node.get("args") or []
    if op == "envelope":
        raise InvalidQueryError(
            "AxelGlobe does not support ENVELOPE in S_INTERSECTS; write the same box as "
            "BBOX(minx, miny, maxx, maxy)"
        )
    if op == "avg":
        if args != _AVG_ARGS:
            raise InvalidQueryError(
                f"avg() is supported only as avg(eo:cloud_cover), got avg({args!r:.80})"
            )
        return
    if op == "s_intersects":
        if not args or args[0] != {"property": "geometry"}:
            raise InvalidQueryError(
                "S_INTERSECTS must test the 'geometry' queryable: "
                "S_INTERSECTS(geometry, <geometry>)"
            )
    elif op.startswith("s_"):
        raise InvalidQueryError(
            f"AxelGlobe does not support the spatial operator {op.upper()}; only "
            "S_INTERSECTS. " + _HELP
        )
    elif op not in _LOGICAL and op not in _COMPARISON:
        raise InvalidQueryError(f"AxelGlobe does not support {op}(...) in filters. {_HELP}")
    _walk(args)


_SPATIAL_FN = re.compile(r"'(?:[^']|'')*'|\bs_intersects\b", re.IGNORECASE)


def _spatial_upper(text: str) -> str:
    # cql2 prints s_intersects in lower case; the provider's guide writes S_INTERSECTS. Upper
    # -case it outside string literals so we send the documented spelling.
    return _SPATIAL_FN.sub(lambda m: m.group(0) if m.group(0).startswith("'") else "S_INTERSECTS",
                           text)


def _load_json_filter(text: str) -> Any:
    if len(text) > MAX_FILTER_LENGTH:
        check_filter_size(text)  # the same length message
    try:
        tree = json.loads(text)
    except RecursionError as err:
        raise InvalidQueryError("the CQL2-JSON filter nests too deeply" + _DEPTH_ADVICE) from err
    except ValueError as err:
        if text.startswith("{"):
            raise
        raise InvalidQueryError(
            f"filter_lang='cql2-json' but the filter is not CQL2-JSON: "
            f"{text!r:.80}; drop filter_lang (or pass 'cql2-text') for CQL2 "
            "text, or pass the filter as a CQL2-JSON dict"
        ) from err
    _check_json_size(tree)
    return tree


def validate_filter(filter: str | Mapping[str, Any], filter_lang: str | None = None) -> str:  # noqa: A002
    """Check a filter client-side and return it as CQL2 text for AxelGlobe.

    Args:
        filter: CQL2 text, CQL2-JSON (dict or JSON text).
        filter_lang: ``"cql2-text"``, ``"cql2-json"`` or None (guessed from ``filter``).

    Returns:
        The CQL2 text to send (text input is sent as written, once it parses).

    Raises:
        InvalidQueryError: syntax errors, GEOMETRYCOLLECTION, ENVELOPE, spatial operators
            other than S_INTERSECTS, functions other than avg(eo:cloud_cover), a filter
            beyond :data:`MAX_FILTER_LENGTH`, :data:`MAX_FILTER_DEPTH` or
            :data:`MAX_FILTER_CLAUSES`.

    Example:
        >>> validate_filter({"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]})
        'eo:cloud_cover <= 30'
        >>> validate_filter("eo:cloud_cover <= 30 AND avg(eo:cloud_cover) <= 20")
        'eo:cloud_cover <= 30 AND avg(eo:cloud_cover) <= 20'
    """
    import cql2

    if filter_lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidQueryError(
            f"filter-lang {filter_lang!r} is not supported; use 'cql2-text' or 'cql2-json'"
        )
    text: str | None = None
    try:
        if isinstance(filter, Mapping):
            _check_json_size(filter)  # before cql2, whose conversion recurses
            expr = cql2.Expr(dict(filter))
        elif isinstance(filter, str):
            stripped = filter.strip()
            if not stripped:
                raise InvalidQueryError("the filter is empty; pass CQL2 text or leave it out")
            if filter_lang == "cql2-json" or stripped.startswith("{"):
                expr = cql2.Expr(_load_json_filter(stripped))
            else:
                check_filter_size(stripped)  # before cql2, whose parser recurses
                expr = cql2.parse_text(stripped)
                text = stripped
        else:
            raise InvalidQueryError(
                f"filter must be CQL2 text or a CQL2-JSON dict, got {type(filter).__name__}"
            )
        tree = expr.to_json()
    except InvalidQueryError:
        raise
    except Exception as err:
        raise InvalidQueryError(
            f"the filter is not valid CQL2: {str(err).strip()}\n"
            "Example of a valid filter: eo:cloud_cover <= 30 AND "
            "S_INTERSECTS(geometry, POINT(-50.38 -21.5))"
        ) from err
    _walk(tree)
    check_properties(tree)  # a typo'd property would find nothing, silently
    if text is None:
        text = _spatial_upper(str(expr.to_text()))
    return text


__all__ = [
    "MAX_FILTER_CLAUSES",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "SUPPORTED_GEOMETRY_TYPES",
    "all_of",
    "any_of",
    "aoi_cloud_cover",
    "capture_id",
    "check_filter_size",
    "cloud_cover",
    "format_number",
    "intersects",
    "to_shapely",
    "validate_filter",
]
