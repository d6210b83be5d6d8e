"""Metadata-only items in bulk (``extra_items=N``): searches over thousands of items.

The items are valid grus-1 STAC items like the archive's (:func:`.scenes.item_dict`: the
same properties, assets, links and ``crs`` member in the geometry) but have no files:
their asset hrefs redirect to storage, which answers 404 ``NoSuchKey``. They are a pure
function of their index:

- captures of 4 tiles (2 x 2, each 0.05 degrees a side);
- over northern Australia (from lon 115, lat -12 eastwards and southwards), far from every
  scene of the archive, and dated from 2022-01-01 on, a capture every three hours (the
  archive ends in 2021), so the guide's searches find exactly what they find without them;
- cloud cover, platform and off-nadir angle vary with the index.

The API searches :func:`record` (what a filter can see: id, geometry, properties) and
expands only the items it answers with (:func:`expand`): 10,000 of them cost a fraction of
a second and a few MB, not the minutes and hundreds of MB of whole items.

Example:
    >>> items = bulk_items(5, "http://127.0.0.1:9/x")
    >>> len(items), len({i["properties"]["ag:capture_id"] for i in items})
    (5, 2)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Any

from .scenes import (
    _BANDS,
    _UUID_NAMESPACE,
    API_ROOT_PLACEHOLDER,
    COLLECTION_ID,
    ItemFacts,
    _band_dict,
    _capture_id,
    item_dict,
)

#: Tiles per bulk capture (2 x 2).
TILES_PER_CAPTURE = 4
#: Side of a bulk tile, in degrees.
TILE_DEGREES = 0.05
#: Time of the first bulk capture; each next one is three hours later.
START = dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)
_WEST, _NORTH, _STEP = 115.0, -12.0, 0.06  # tiles 0.05 a side, 0.01 apart
_COLUMNS, _ROWS = 300, 200  # capture blocks per row; rows before the grid starts again
_PLATFORMS = ("GRUS-1A", "GRUS-1B", "GRUS-1C", "GRUS-1D", "GRUS-1E")
_CRS = {"type": "Polygon", "properties": {"name": "urn:ogc:def:crs:OGC::CRS84"}}
# Shared by every record: nothing mutates an item the API serves.
_PROPERTY_BANDS = [_band_dict(n, c, w, f, s) for n, c, w, f, s, _ in _BANDS]


@functools.lru_cache(maxsize=256)
def _capture(capture: int) -> tuple[str, dt.datetime, str]:
    """Capture number ``capture``: its id, its time and its day (shared by its 4 tiles)."""
    when = START + dt.timedelta(hours=3 * capture)
    return _capture_id(f"bulk-{capture}"), when, when.strftime("%Y-%m-%d")


def _item_uuid(capture_id: str, col: int, row: int) -> str:
    """:func:`.scenes._item_id` (a uuid5) without building a ``uuid.UUID``: 10x faster."""
    name = f"{COLLECTION_ID}/{capture_id}/{col}/{row}".encode()
    raw = bytearray(hashlib.sha1(_UUID_NAMESPACE.bytes + name).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def facts(index: int) -> ItemFacts:
    """What bulk item ``index`` says (its capture, footprint, time, cloud cover).

    Example:
        >>> facts(0).when.isoformat(), facts(4).when.isoformat()
        ('2022-01-01T00:00:00+00:00', '2022-01-01T03:00:00+00:00')
    """
    capture, tile = divmod(index, TILES_PER_CAPTURE)
    capture_id, when, day = _capture(capture)
    col, row = tile % 2, tile // 2
    west = round(_WEST + (2 * (capture % _COLUMNS) + col) * _STEP, 6)
    north = round(_NORTH - (2 * ((capture // _COLUMNS) % _ROWS) + row) * _STEP, 6)
    south, east = round(north - TILE_DEGREES, 6), round(west + TILE_DEGREES, 6)
    noise = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=2).digest()
    return ItemFacts(
        item_id=_item_uuid(capture_id, col, row),
        capture_id=capture_id,
        ring=[[west, south], [west, north], [east, north], [east, south], [west, south]],
        # the second row of tiles was seen a little later, as in the archive
        when=when + dt.timedelta(seconds=2 * row),
        day=day,
        cover=noise[0] % 201 / 2,  # 0 to 100 in steps of 0.5
        platform=_PLATFORMS[capture % len(_PLATFORMS)],
        orbit_state="descending",
        off_nadir=round(noise[1] / 255 * 20, 6),
    )


def record(index: int) -> dict[str, Any]:
    """Bulk item ``index`` as far as a search can see it (no links, no assets).

    Example:
        >>> sorted(record(0))
        ['bbox', 'collection', 'geometry', 'id', 'properties', 'type']
    """
    f = facts(index)
    (west, south), (east, north) = f.ring[0], f.ring[2]
    return {
        "type": "Feature",
        "id": f.item_id,
        "properties": {
            "eo:bands": _PROPERTY_BANDS,
            "eo:cloud_cover": float(f.cover),
            "view:off_nadir": f.off_nadir,
            "sat:orbit_state": f.orbit_state,
            "constellation": "GRUS-1",
            "instruments": ["msi"],
            "platform": f.platform,
            "gsd": 2.5,
            "datetime": f"{f.day}T{f.when:%H:%M:%S}Z",
            "ag:capture_id": f.capture_id,
        },
        "geometry": {"type": "Polygon", "crs": _CRS, "coordinates": [f.ring]},
        "bbox": [west, south, east, north],
        "collection": COLLECTION_ID,
    }


def expand(item: dict[str, Any], api_root: str) -> dict[str, Any]:
    """The whole STAC item of a :func:`record` (hrefs under ``api_root``); others as they are.

    A record is an item without assets: it gets the links and assets
    :func:`.scenes.item_dict` would give it.

    Example:
        >>> item = expand(record(0), "http://h/x")
        >>> item["assets"]["tci"]["href"].startswith("http://h/x/collections/grus-1/")
        True
    """
    if "assets" in item:
        return item
    # A capture's day: its tiles are seen at 00:00, 03:00, ... (+ 2 s), never past midnight.
    whole = _template(api_root, item["properties"]["datetime"][:10])
    item_href = whole["links"][1]["href"].replace("{id}", item["id"])
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item["id"],
        "properties": item["properties"],
        "geometry": item["geometry"],
        "links": [whole["links"][0], {**whole["links"][1], "href": item_href},
                  whole["links"][2]],
        "assets": {key: {**asset, "href": asset["href"].replace("{id}", item["id"])}
                   for key, asset in whole["assets"].items()},
        "bbox": item["bbox"],
        "stac_extensions": whole["stac_extensions"],
        "collection": COLLECTION_ID,
    }


@functools.lru_cache(maxsize=64)
def _template(api_root: str, day: str) -> dict[str, Any]:
    """An item of ``day`` whose hrefs hold ``{id}``: the links and assets to copy."""
    ring = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    template = item_dict(ItemFacts("{id}", "", ring, START, day, 0.0, "", "", 0.0))
    root = api_root.rstrip("/")
    for entry in (*template["links"], *template["assets"].values()):
        entry["href"] = entry["href"].replace(API_ROOT_PLACEHOLDER, root, 1)
    return template


def bulk_items(count: int, api_root: str) -> list[dict[str, Any]]:
    """``count`` whole bulk items, with hrefs under ``api_root`` (the same every time).

    Example:
        >>> bulk_items(1, "http://h/x")[0]["links"][1]["href"].startswith("http://h/x/")
        True
    """
    return [expand(record(index), api_root) for index in range(count)]
