"""Typed builders of AxelGlobe's CQL2-text filters, and client-side validation of filters.

Each builder returns CQL2 text that can be passed as ``filter=`` to a search, and refuses
values AxelGlobe would refuse (:class:`~pystac_axelglobe.errors.InvalidQueryError`) before
anything is sent.

Filters are bounded before they are parsed (:data:`MAX_FILTER_LENGTH`,
:data:`MAX_FILTER_DEPTH`, :data:`MAX_FILTER_CLAUSES`): cql2's parser recurses on the C stack
and crashes the interpreter (SIGSEGV) on deeply nested or very long expressions.

This module is the front door: the builders are here; the bounds-before-parsing check
(:mod:`._filter_limits`), the validation of whole filters (:mod:`._filter_check`) and the
conversion of geometries (:mod:`._geometry`) each live in a module of their own, and their
public names are re-exported here.

Example:
    >>> all_of(cloud_cover(30), capture_id("52eZg9k7rPEyYQGX"))
    "(eo:cloud_cover <= 30) AND (ag:capture_id = '52eZg9k7rPEyYQGX')"
    >>> intersects({"type": "Point", "coordinates": [-50.38, -21.5]})
    'S_INTERSECTS(geometry, POINT (-50.38 -21.5))'
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from ._filter_check import validate_filter
from ._filter_limits import (
    CLAUSE_ADVICE,
    MAX_FILTER_CLAUSES,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    check_filter_size,
)
from ._geometry import SUPPORTED_GEOMETRY_TYPES, to_shapely
from .errors import InvalidQueryError


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
            + CLAUSE_ADVICE
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
