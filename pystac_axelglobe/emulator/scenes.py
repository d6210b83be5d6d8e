"""The archive's scenes: where and when each capture lies, its tiles, and their STAC items.

Designed so that the guide's search scenarios give distinct, non-trivial answers (see
:mod:`.archive` for the scenes in words). Pure data and geometry: no pixels here
(:mod:`.pixels` writes them).

Example:
    >>> from pystac_axelglobe.emulator.scenes import COLLECTION_ID, SCALES
    >>> COLLECTION_ID, SCALES["small"]
    ('grus-1', 256)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Stands for the API root (``.../stac/v1/catalogs/axelglobe``) in stored hrefs.
API_ROOT_PLACEHOLDER = "{api_root}"
#: Pixels per side of a 5 m tile at each scale (pan and tci have twice as many).
SCALES: dict[str, int] = {"small": 256, "large": 768}

COLLECTION_ID = "grus-1"
ASSET_KEYS = ("thumbnail", "tci", "band0", "band1", "band2", "band3", "band4", "band5",
              "msi_udm", "msi_udm_metadata")
BAND_KEYS = ("band0", "band1", "band2", "band3", "band4", "band5")

# (name, common_name, center_wave_length, full_width_half_max, item-scale solar_illumination,
#  collection-scale solar_illumination): the guide's numbers, quirks included.
_BANDS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("band0", "pan", 0.673, 0.446, 1.60411216811148, 1604.11),
    ("band1", "blue", 0.476, 0.054, 1.98583364081622, 1985.83),
    ("band2", "green", 0.549, 0.068, 1.8232034021491599, 1823.2),
    ("band3", "red", 0.652, 0.063, 1.5716542224007, 1571.65),
    ("band4", "rededge", 0.724, 0.038, 1.34418032275358, 1344.18),
    ("band5", "nir", 0.834, 0.128, 1.09804143023128, 1098.04),
)
_ASSET_TITLES = {
    "thumbnail": "Thumbnail",
    "tci": "Pansharpened True Color Image",
    "band0": "Panchromatic band",
    "band1": "Blue band",
    "band2": "Green band",
    "band3": "Red band",
    "band4": "RedEdge band",
    "band5": "Near-Infrared band",
    # The provider's spelling, on purpose.
    "msi_udm": "Unusable Data Musk for Multi Spectral Image",
    "msi_udm_metadata": "Unusable Data Musk Metadata for Multi Spectral Image",
}
_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
]
_UUID_NAMESPACE = uuid.UUID("6d1c4f4e-9a51-5b3c-8f0e-0a7e1b0e6a11")

#: The guide's MULTIPOLYGON (the AOI of its third search scenario), as lon/lat rings.
GUIDE_MULTIPOLYGON: tuple[tuple[tuple[float, float], ...], ...] = (
    ((-50.377998355519196, -21.25571182037737), (-50.39389773429008, -21.306903229767897),
     (-50.33831203728997, -21.326928577662557), (-50.30119747112292, -21.30514840932203),
     (-50.30233752991262, -21.265344869483116), (-50.377998355519196, -21.25571182037737)),
    ((-50.30307167289692, -21.33556537511332), (-50.29675481118801, -21.352508108156158),
     (-50.320483483126424, -21.37151690592809), (-50.33829784306903, -21.37531838541942),
     (-50.32083308423938, -21.415381832666043), (-50.27781101074311, -21.39743120280255),
     (-50.26742062143981, -21.40399484490206), (-50.24515788837763, -21.3798116216757),
     (-50.20469383948901, -21.389847864440497), (-50.19355419558164, -21.371524192627504),
     (-50.249239808424704, -21.337647270055186), (-50.30307167289692, -21.33556537511332)),
)


@dataclass(frozen=True)
class _Capture:
    capture_id: str
    region: str
    epsg: int
    when: dt.datetime
    platform: str
    orbit_state: str
    off_nadir: float
    # (col, row) offsets from the region's anchor tile; row grows southwards.
    tiles: tuple[tuple[int, int], ...]
    # Cloud cover per tile; None means "derived from the MULTIPOLYGON" (Brazil).
    covers: tuple[float, ...] | None
    aoi_average: float = 0.0  # Brazil: mean over tiles intersecting the MULTIPOLYGON
    other_covers: tuple[float, ...] = ()  # Brazil: covers of the other tiles, in order
    offset: int = 0  # per-capture brightness offset, so captures of one place differ


def _capture_id(name: str) -> str:
    """A deterministic 16-character id of letters and digits, like AxelGlobe's."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    chars = []
    for _ in range(16):
        number, digit = divmod(number, 62)
        chars.append(alphabet[digit])
    return "".join(chars)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


_BLOCK_2X2 = ((0, 0), (1, 0), (0, 1), (1, 1))
# Columns -2 and -1 lie west of the MULTIPOLYGON's westmost vertex; the others reach into it.
_BRAZIL_BLOCK = ((-2, -1), (-1, -1), (0, -1), (1, -1), (-2, 0), (-1, 0), (0, 0), (1, 0))

_CAPTURES: tuple[_Capture, ...] = (
    _Capture("52eZg9k7rPEyYQGX", "japan", 32653, _utc("2021-05-12T01:44:42"), "GRUS-1A",
             "descending", 4.699864, _BLOCK_2X2, (10.0, 20.0, 50.0, 60.0), offset=0),
    _Capture(_capture_id("japan-2021-06-03"), "japan", 32653, _utc("2021-06-03T01:38:15"),
             "GRUS-1C", "descending", 12.305127, ((0, 0), (1, 0)), (35.0, 15.0), offset=40),
    _Capture(_capture_id("japan-2021-03-20"), "japan", 32653, _utc("2021-03-20T01:51:09"),
             "GRUS-1B", "descending", 7.118532, _BLOCK_2X2, (5.0, 0.0, 10.0, 5.0), offset=80),
    _Capture(_capture_id("japan-2021-07-15"), "japan", 32653, _utc("2021-07-15T01:47:30"),
             "GRUS-1D", "descending", 18.027441, ((1, 1), (2, 1), (3, 1)),
             (25.0, 30.0, 40.0), offset=120),
    _Capture(_capture_id("kyushu-2021-12-23"), "kyushu", 32652, _utc("2021-12-23T01:44:42"),
             "GRUS-1A", "ascending", 4.699864, ((0, 0), (1, 0)), (0.0, 12.5), offset=20),
    _Capture(_capture_id("brazil-2021-04-22"), "brazil", 32722, _utc("2021-04-22T13:21:05"),
             "GRUS-1E", "descending", 9.874210, _BRAZIL_BLOCK, None, aoi_average=18.75,
             other_covers=(70.0, 80.0, 75.0, 65.0, 90.0, 85.0, 60.0), offset=60),
    _Capture(_capture_id("brazil-2021-05-30"), "brazil", 32722, _utc("2021-05-30T13:17:48"),
             "GRUS-1B", "descending", 2.331907, _BRAZIL_BLOCK, None, aoi_average=30.0,
             other_covers=(0.0, 5.0, 0.0, 10.0, 5.0, 0.0, 5.0), offset=100),
    _Capture(_capture_id("brazil-2021-08-10"), "brazil", 32722, _utc("2021-08-10T13:25:33"),
             "GRUS-1D", "descending", 15.552016, _BRAZIL_BLOCK, None, aoi_average=5.0,
             other_covers=(5.0, 0.0, 10.0, 15.0, 0.0, 5.0, 10.0), offset=140),
    # South to north, so the guide's examples find some of its tiles but not all of them.
    _Capture(_capture_id("brazil-2021-08-27"), "brazil-south", 32722,
             _utc("2021-08-27T13:19:42"), "GRUS-1C", "descending", 6.418263,
             ((0, 0), (0, -1), (0, -2), (0, -3), (0, -4), (0, -5)),
             (20.0, 45.0, 10.0, 35.0, 0.0, 60.0), offset=160),
)

# Anchor points (lon, lat) of each region: the anchor tile is the one containing the point.
# Brazil's is the MULTIPOLYGON's westmost vertex, so the block's two west columns lie
# entirely west of the AOI and its east column touches it, at every scale.
_ANCHORS: dict[str, tuple[float, float]] = {
    "japan": (135.5, 35.5),
    "kyushu": (131.4355, 32.6820),
    "brazil": (-50.39389773429008, -21.306903229767897),
    # The guide's POINT example (also the start of its LINESTRING, MULTIPOINT and
    # MULTILINESTRING examples and a corner of its BBOX example).
    "brazil-south": (-50.38, -21.5),
}


def _aoi_covers(count: int, average: float) -> list[float]:
    """``count`` covers (multiples of 0.25) averaging exactly ``average``."""
    spread = [-8.75, 8.75, -3.75, 3.75, -1.25, 1.25, -6.25, 6.25]
    covers = [average + spread[i] for i in range(count - count % 2)]
    if count % 2:
        covers.append(average)
    return [min(100.0, max(0.0, c)) for c in covers]


# ---------------------------------------------------------------------------------------------
# Pixels


def _item_id(capture_id: str, col: int, row: int) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{COLLECTION_ID}/{capture_id}/{col}/{row}"))


def _band_dict(name: str, common: str, cwl: float, fwhm: float, sun: float) -> dict[str, Any]:
    return {"name": name, "common_name": common, "center_wave_length": cwl,
            "full_width_half_max": fwhm, "solar_illumination": sun}


def _collection() -> dict[str, Any]:
    root = API_ROOT_PLACEHOLDER
    return {
        "type": "Collection",
        "id": COLLECTION_ID,
        "stac_version": "1.0.0",
        "description": "GRUS imagery processed to level 1",
        "links": [
            {"rel": "items", "href": f"{root}/collections/{COLLECTION_ID}/features"},
            {"rel": "self", "href": f"{root}/collections/{COLLECTION_ID}",
             "type": "application/json"},
            {"rel": "parent", "href": root, "type": "application/json",
             "title": "The AxelGlobe STAC catalog"},
        ],
        "stac_extensions": list(_EXTENSIONS),
        "title": "GRUS 1",
        "extent": {
            "spatial": {"bbox": [[-180.0, -80.0, 180.0, 80.0]]},
            "temporal": {"interval": [["2019-10-15T00:00:00Z", None]]},
        },
        "license": "proprietary",
        "providers": [
            {"name": "Axelspace", "roles": ["producer"], "url": "https://www.axelspace.com"},
            {"name": "AxelGlobe", "roles": ["host", "processor"],
             "url": "https://axelglobe.com"},
        ],
        "summaries": {
            "platform": ["GRUS-1A", "GRUS-1B", "GRUS-1C", "GRUS-1D", "GRUS-1E"],
            "constellation": ["GRUS-1"],
            "instruments": ["msi"],
            "eo:bands": [_band_dict(n, c, w, f, big) for n, c, w, f, _, big in _BANDS],
        },
    }


@dataclass(frozen=True)
class _Tile:
    capture: _Capture
    col: int  # absolute tile column on the region's grid (x = col * size)
    row: int  # absolute tile row (top edge y = row * size)
    cover: float
    along: int  # tiles from the capture's first row, along the track

    @property
    def item_id(self) -> str:
        return _item_id(self.capture.capture_id, self.col, self.row)


def _tile_size(scale: str) -> float:
    return SCALES[scale] * 5.0


def _footprint(epsg: int, col: int, row: int, size: float) -> list[list[float]]:
    """Lon/lat ring of a tile: lower-left, upper-left, upper-right, lower-right, closed."""
    from rasterio.warp import transform

    left, right, top = col * size, (col + 1) * size, row * size
    bottom = top - size
    xs, ys = transform(f"EPSG:{epsg}", "EPSG:4326", [left, left, right, right],
                       [bottom, top, top, bottom])
    ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    return ring + [list(ring[0])]


def _anchor_tile(region: str, epsg: int, size: float) -> tuple[int, int]:
    from rasterio.warp import transform

    lon, lat = _ANCHORS[region]
    xs, ys = transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
    return int(np.floor(xs[0] / size)), int(np.ceil(ys[0] / size))


def _plan(scale: str) -> list[_Tile]:
    """Every tile of every capture, with its cloud cover."""
    from shapely.geometry import MultiPolygon, Polygon

    size = _tile_size(scale)
    aoi = MultiPolygon([Polygon(ring) for ring in GUIDE_MULTIPOLYGON])
    tiles: list[_Tile] = []
    for capture in _CAPTURES:
        anchor_col, anchor_row = _anchor_tile(capture.region, capture.epsg, size)
        cells = [(anchor_col + dc, anchor_row - dr) for dc, dr in capture.tiles]
        if capture.covers is not None:
            covers = list(capture.covers)
        else:
            hits = [Polygon(_footprint(capture.epsg, c, r, size)).intersects(aoi)
                    for c, r in cells]
            inside = iter(_aoi_covers(sum(hits), capture.aoi_average))
            outside = iter(capture.other_covers)
            covers = [next(inside) if hit else next(outside) for hit in hits]
        tiles += [_Tile(capture, c, r, cover, dr)
                  for (c, r), (_, dr), cover in zip(cells, capture.tiles, covers, strict=True)]
    return tiles


@dataclass(frozen=True)
class ItemFacts:
    """What one item says: a tile of a capture, its lon/lat footprint, when, how cloudy."""

    item_id: str
    capture_id: str
    ring: list[list[float]]  # lower-left, upper-left, upper-right, lower-right, closed
    when: dt.datetime  # the tile's own time (UTC)
    day: str  # YYYY-MM-DD of the capture, in the asset file names
    cover: float
    platform: str
    orbit_state: str
    off_nadir: float


def _item(tile: _Tile, size: float) -> dict[str, Any]:
    capture = tile.capture
    return item_dict(ItemFacts(
        item_id=tile.item_id,
        capture_id=capture.capture_id,
        ring=_footprint(capture.epsg, tile.col, tile.row, size),
        # Tiles further along the track were seen a little later.
        when=capture.when + dt.timedelta(seconds=2 * tile.along),
        day=capture.when.strftime("%Y-%m-%d"),
        cover=tile.cover,
        platform=capture.platform,
        orbit_state=capture.orbit_state,
        off_nadir=capture.off_nadir,
    ))


def _assets(item_href: str, item_id: str, day: str) -> dict[str, Any]:
    small_bands = {n: _band_dict(n, c, w, f, s) for n, c, w, f, s, _ in _BANDS}
    assets: dict[str, Any] = {}
    for key in ASSET_KEYS:
        ext = "jpg" if key == "thumbnail" else "json" if key == "msi_udm_metadata" else "tif"
        asset: dict[str, Any] = {"href": f"{item_href}/{day}_{item_id}_{key}.{ext}",
                                 "title": _ASSET_TITLES[key]}
        if key in small_bands:
            asset["eo:bands"] = [dict(small_bands[key])]
        asset["roles"] = ["thumbnail" if key == "thumbnail"
                          else "metadata" if key == "msi_udm_metadata" else "data"]
        assets[key] = asset
    return assets


def item_dict(facts: ItemFacts) -> dict[str, Any]:
    """The STAC item AxelGlobe would serve for ``facts`` (hrefs under the placeholder root).

    Example:
        >>> ring = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
        >>> item = item_dict(ItemFacts("i", "c", ring, dt.datetime(2022, 1, 1,
        ...     tzinfo=dt.timezone.utc), "2022-01-01", 5.0, "GRUS-1A", "descending", 3.0))
        >>> item["properties"]["datetime"], item["bbox"]
        ('2022-01-01T00:00:00Z', [0.0, 0.0, 1.0, 1.0])
    """
    lons = [p[0] for p in facts.ring]
    lats = [p[1] for p in facts.ring]
    base = f"{API_ROOT_PLACEHOLDER}/collections/{COLLECTION_ID}"
    item_href = f"{base}/features/{facts.item_id}"
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": facts.item_id,
        "properties": {
            "eo:bands": [_band_dict(n, c, w, f, s) for n, c, w, f, s, _ in _BANDS],
            "eo:cloud_cover": float(facts.cover),
            "view:off_nadir": facts.off_nadir,
            "sat:orbit_state": facts.orbit_state,
            "constellation": "GRUS-1",
            "instruments": ["msi"],
            "platform": facts.platform,
            "gsd": 2.5,
            "datetime": facts.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ag:capture_id": facts.capture_id,
        },
        "geometry": {
            "type": "Polygon",
            # Not GeoJSON, but what AxelGlobe sends (type "Polygon" included).
            "crs": {"type": "Polygon",
                    "properties": {"name": "urn:ogc:def:crs:OGC::CRS84"}},
            "coordinates": [facts.ring],
        },
        "links": [
            {"rel": "parent", "href": base, "type": "application/json", "title": "GRUS 1"},
            {"rel": "self", "href": item_href, "type": "application/json"},
            {"rel": "collection", "href": base, "type": "application/json",
             "title": "GRUS 1"},
        ],
        "assets": _assets(item_href, facts.item_id, facts.day),
        "bbox": [round(min(lons), 6), round(min(lats), 6), round(max(lons), 6),
                 round(max(lats), 6)],
        "stac_extensions": list(_EXTENSIONS),
        "collection": COLLECTION_ID,
    }
