"""The native grid of grus-1 items: their UTM zone, their resolution, pixel edges on its multiples.

:func:`pystac_axelglobe.load`'s defaults when no grid is given: :func:`utm_crs` (the items'
zone; an error if they span several), :func:`default_resolution` (5 m, or 2.5 m for ``pan``
and ``tci`` alone) and :func:`native_geobox` (the tiles' own extent on that grid).

Example:
    >>> default_resolution(["pan"]), default_resolution(["red", "pan"])
    (2.5, 5.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from ._grus1 import TCI_ALIASES, TCI_ASSET
from .errors import ConfigurationError
from .extension import GRUS1_BANDS

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

__all__ = ["DEFAULT_RESOLUTION", "PAN_RESOLUTION", "default_resolution", "native_geobox",
           "utm_crs"]

#: Output resolution (metres) unless only 2.5 m bands are asked for.
DEFAULT_RESOLUTION = 5.0
#: Output resolution (metres) when every asked-for band is a 2.5 m one (pan, tci).
PAN_RESOLUTION = 2.5


def _gsd(band: str) -> float:
    if band in (TCI_ASSET, *TCI_ALIASES) or band.startswith(TCI_ASSET + "."):
        return PAN_RESOLUTION
    for b in GRUS1_BANDS:
        if band in (b.name, b.common_name):
            return float(b.gsd)
    return DEFAULT_RESOLUTION


def default_resolution(bands: Sequence[str] | None) -> float:
    """5 m, or 2.5 m when every band asked for is a 2.5 m one (pan, tci).

    Example:
        >>> default_resolution(["pan"]), default_resolution(["red", "pan"])
        (2.5, 5.0)
    """
    if bands and all(_gsd(b) == PAN_RESOLUTION for b in bands):
        return PAN_RESOLUTION
    return DEFAULT_RESOLUTION


def _utm_epsg(lon: float, lat: float) -> int:
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def utm_crs(items: Sequence[pystac.Item]) -> str:
    """The UTM zone (``"EPSG:326NN"``/``"EPSG:327NN"``) of the items' footprints.

    Raises:
        ConfigurationError: the items lie in different zones; pass ``crs=`` to pick one.

    Example:
        >>> import datetime
        >>> box = {"type": "Polygon", "coordinates": [[[135, 35], [135.1, 35], [135.1, 35.1],
        ...                                             [135, 35.1], [135, 35]]]}
        >>> when = datetime.datetime(2021, 1, 1)
        >>> utm_crs([pystac.Item("a", box, [135, 35, 135.1, 35.1], when, {})])
        'EPSG:32653'
    """
    import shapely.geometry

    zones: dict[int, list[str]] = {}
    for item in items:
        if item.geometry is None:
            raise ConfigurationError(f"item {item.id} has no geometry; pass crs= and geobox= "
                                     "to load it")
        geometry = {k: v for k, v in item.geometry.items() if k in ("type", "coordinates")}
        c = shapely.geometry.shape(geometry).centroid
        zones.setdefault(_utm_epsg(c.x, c.y), []).append(item.id)
    if len(zones) > 1:
        listing = "; ".join(f"EPSG:{epsg}: {len(ids)} item(s), e.g. {ids[0]}"
                            for epsg, ids in sorted(zones.items()))
        raise ConfigurationError(
            f"the items span several UTM zones ({listing}); pass crs= (e.g. "
            f"crs='EPSG:{max(zones, key=lambda z: len(zones[z]))}') to load them on one grid"
        )
    return f"EPSG:{next(iter(zones))}"


def native_geobox(items: Sequence[pystac.Item], crs: Any, resolution: float) -> GeoBox:
    """The grid covering the items' footprints, pixel edges on multiples of ``resolution``.

    The extent is that of the footprints' vertices projected to ``crs``. odc-stac would
    project the lon/lat polygons densified, whose edges bow outwards by a few metres in UTM
    and add a row or column of nodata pixels; the footprints' vertices are the tiles'
    corners, so these bounds are the tiles' own.

    Example:
        >>> import datetime
        >>> box = {"type": "Polygon", "coordinates": [[[135, 35], [135.1, 35], [135.1, 35.1],
        ...                                             [135, 35.1], [135, 35]]]}
        >>> item = pystac.Item("a", box, None, datetime.datetime(2021, 1, 1), {})
        >>> native_geobox([item], "EPSG:32653", 5).transform.c % 5  # doctest: +SKIP
        0.0
    """
    import shapely
    import shapely.geometry
    from odc.geo.geobox import GeoBox
    from pyproj import Transformer

    lonlat = np.concatenate([
        shapely.get_coordinates(shapely.geometry.shape(
            {k: v for k, v in (item.geometry or {}).items() if k in ("type", "coordinates")}))
        for item in items
    ])
    to_crs = Transformer.from_crs("EPSG:4326", str(crs), always_xy=True)
    x, y = to_crs.transform(lonlat[:, 0], lonlat[:, 1])
    bbox = (float(np.min(x)), float(np.min(y)), float(np.max(x)), float(np.max(y)))
    return GeoBox.from_bbox(bbox, crs=crs, resolution=resolution, anchor="edge")
