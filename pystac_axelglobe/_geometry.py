"""Geometries for ``S_INTERSECTS``: read from what users hold, refused when AxelGlobe would.

:func:`to_shapely` reads GeoJSON (a dict or text, a Feature too), WKT, shapely geometries
and objects with ``__geo_interface__``, then keeps only what AxelGlobe can search with
(:data:`SUPPORTED_GEOMETRY_TYPES`, non-empty, WGS84 longitudes and latitudes).

Example:
    >>> to_shapely({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}})
    <POINT (1 2)>
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidQueryError

#: Geometry types AxelGlobe's ``S_INTERSECTS`` accepts (besides ``BBOX(...)``).
SUPPORTED_GEOMETRY_TYPES: tuple[str, ...] = (
    "Point",
    "LineString",
    "MultiPoint",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)


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

    if isinstance(geom, shapely.Geometry):
        shape = geom
    elif isinstance(geom, str):
        shape = _read(_shape_of_text, geom)
    else:
        shape = _read(_shape_of_geojson, geom)
    _check_shape(shape)
    return shape


def _read(reader: Callable[[Any], Any], value: Any) -> Any:
    """``reader(value)``; whatever it raises becomes an error that shows ``value``.

    Readers that unwrap a value (a Feature's geometry, ``__geo_interface__``) read the inner
    value through here too: the error then shows the part that could not be read.
    """
    try:
        return reader(value)
    except InvalidQueryError:
        raise
    except Exception as err:
        raise InvalidQueryError(
            f"cannot read {value!r:.120} as a geometry ({err}); pass a GeoJSON geometry "
            "dict, a shapely geometry, an object with __geo_interface__ or WKT text"
        ) from err


def _shape_of_text(geom: str) -> Any:
    import shapely
    import shapely.geometry

    text = geom.strip()
    if text.startswith("{"):
        return shapely.geometry.shape(json.loads(text))
    return shapely.from_wkt(text)


def _shape_of_geojson(geom: Any) -> Any:
    if not isinstance(geom, Mapping) and hasattr(geom, "__geo_interface__"):
        return _read(_shape_of_mapping, geom.__geo_interface__)
    return _shape_of_mapping(geom)


def _shape_of_mapping(geom: Any) -> Any:
    if not isinstance(geom, Mapping):
        raise TypeError(f"{type(geom).__name__} is not a geometry")
    if geom.get("type") == "Feature":
        return _read(_shape_of_geometry, geom.get("geometry") or {})
    return _shape_of_geometry(geom)


def _shape_of_geometry(geom: Any) -> Any:
    import shapely.geometry

    if geom.get("type") == "GeometryCollection":
        raise InvalidQueryError(geometry_collection_message())
    return shapely.geometry.shape(geom)


def _check_shape(shape: Any) -> None:
    """Refuse a geometry AxelGlobe cannot search with, saying what it can."""
    if shape.geom_type == "GeometryCollection":
        raise InvalidQueryError(geometry_collection_message())
    if shape.geom_type not in SUPPORTED_GEOMETRY_TYPES:
        raise InvalidQueryError(
            f"AxelGlobe cannot search with a {shape.geom_type}; use one of "
            + ", ".join(SUPPORTED_GEOMETRY_TYPES)
        )
    if shape.is_empty:
        raise InvalidQueryError("the geometry is empty; pass one with coordinates")
    check_lonlat(shape.bounds)


def geometry_collection_message() -> str:
    """Why a GeometryCollection is refused, and what to search with instead.

    Example:
        >>> geometry_collection_message()[:48]
        'AxelGlobe does not support GEOMETRYCOLLECTION in'
    """
    return (
        "AxelGlobe does not support GEOMETRYCOLLECTION in S_INTERSECTS; use a MULTIPOLYGON "
        "(or MULTIPOINT/MULTILINESTRING), or search once per member"
    )


def check_lonlat(bounds: tuple[float, ...]) -> None:
    """Refuse bounds ``(minx, miny, maxx, maxy)`` outside WGS84 longitudes and latitudes.

    Raises:
        InvalidQueryError: naming the coordinate out of range (and their order, lon/lat).

    Example:
        >>> check_lonlat((-50.38, -21.5, -50.3, -21.4))
        >>> check_lonlat((-21.5, -50.38, -21.4, 91))
        Traceback (most recent call last):
        ...
        pystac_axelglobe.errors.InvalidQueryError: latitudes must be within -90..90 ...
    """
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


__all__ = [
    "SUPPORTED_GEOMETRY_TYPES",
    "check_lonlat",
    "geometry_collection_message",
    "to_shapely",
]
