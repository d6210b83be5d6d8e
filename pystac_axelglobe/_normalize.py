"""Normalising AxelGlobe's quirks: :func:`normalize_item`, pystac-client's ``modifier=``.

Band keys and units, the geometry's ``crs`` member, the ``ag`` extension declared, asset
media types and roles, links to the API root: what :func:`normalize_item` fixes is listed
in its docstring. :func:`carry_capture_id` gives a page's items the capture searched for;
:func:`ensure_extension_hooks` makes pystac's hook discovery safe for threads.

Example:
    >>> page = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...         "geometry": {"type": "Point", "coordinates": [0, 0], "crs": {}}}]}
    >>> normalize_item(page); page["features"][0]["geometry"]
    {'type': 'Point', 'coordinates': [0, 0]}
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import pystac

from ._ag_schema import CAPTURE_ID_PROP, SCHEMA_URI
from ._bands import BAND_ASSET_KEYS
from .settings import DEFAULT_API_URL

# --- pystac's extension-hook discovery, made safe for concurrent first use --------------

_HOOKS_LOCK = threading.Lock()
_hooks_ready = False


def ensure_extension_hooks() -> None:
    """Load pystac's extension hooks once, under a lock, before items are parsed.

    pystac 1.15 discovers hooks lazily and sets its "discovered" flag *before* loading
    them, so threads parsing their first items at once iterate a dict another thread is
    still filling ("dictionary changed size during iteration"). Running discovery to
    completion under a lock first closes the window.

    Example:
        >>> ensure_extension_hooks()
    """
    global _hooks_ready
    if _hooks_ready:
        return
    with _HOOKS_LOCK:
        if not _hooks_ready:
            pystac.EXTENSION_HOOKS._discover()
            _hooks_ready = True


# --- normalising AxelGlobe's quirks -----------------------------------------------------

#: Item ``solar_illumination`` values below this are in the items' unit (1000× smaller than
#: W/m²/µm: 1.604 for band0, where the collection says 1604.11). No optical band has a solar
#: illumination below 100 W/m²/µm, and every item value is far below it, so the threshold
#: tells the two units apart and makes normalising idempotent.
_ITEM_UNIT_THRESHOLD = 100.0
_ITEM_UNIT_FACTOR = 1000.0


def _normalize_bands(bands: Any) -> None:
    """Fix ``eo:bands`` entries in place: the key name and one unit (W/m²/µm)."""
    if not isinstance(bands, list):
        return
    for band in bands:
        if not isinstance(band, dict):
            continue
        if "center_wave_length" in band:
            value = band.pop("center_wave_length")
            band.setdefault("center_wavelength", value)
        si = band.get("solar_illumination")
        if isinstance(si, (int, float)) and not isinstance(si, bool):
            if 0 < si < _ITEM_UNIT_THRESHOLD:
                band["solar_illumination"] = si * _ITEM_UNIT_FACTOR


def _declare_ag(extensions: Any) -> Any:
    # Every AxelGlobe item declares ag, with or without ag:capture_id (optional in the
    # schema): AxelGlobeExtension.ext(item).capture_id is then None on items that have
    # none, instead of raising on some items of a search and not on others.
    if not isinstance(extensions, list):
        extensions = []
    if SCHEMA_URI not in extensions:
        extensions.append(SCHEMA_URI)
    return extensions


# --- asset media types and roles: what stackstac & co. select assets by ------------------

#: Media types by file suffix. The GeoTIFFs are cloud-optimised (tiled, with overviews,
#: GDAL's COG layout) in the emulator's archive; the guide does not say so of AxelGlobe's,
#: but every GeoTIFF reader reads a COG-typed plain GeoTIFF all the same.
_MEDIA_TYPES: dict[str, str] = {
    ".tif": pystac.MediaType.COG,
    ".tiff": pystac.MediaType.COG,
    ".jpg": pystac.MediaType.JPEG,
    ".jpeg": pystac.MediaType.JPEG,
    ".json": pystac.MediaType.JSON,
}

#: Roles as the guide's example item gives them, by asset key.
_ROLES: dict[str, str] = {
    "thumbnail": "thumbnail",
    "msi_udm_metadata": "metadata",
    **{key: "data" for key in ("tci", *BAND_ASSET_KEYS, "msi_udm")},
}

#: Roles of assets with other keys, by media type.
_ROLES_BY_TYPE: dict[str, str] = {pystac.MediaType.COG: "data", pystac.MediaType.JSON: "metadata"}


def _asset_defaults(key: str, href: Any) -> tuple[str | None, str | None]:
    """The media type (by the file's suffix) and the role (by key) an asset should have."""
    path = urlsplit(href).path if isinstance(href, str) else ""
    media_type = _MEDIA_TYPES.get(posixpath.splitext(path)[1].lower())
    role = _ROLES.get(key) or _ROLES_BY_TYPE.get(media_type or "")
    return media_type, role


def _complete_asset_dict(key: str, asset: dict[str, Any]) -> None:
    media_type, role = _asset_defaults(key, asset.get("href"))
    if media_type and not asset.get("type"):  # never overwrite a type the server gave
        asset["type"] = media_type
    if role and not asset.get("roles"):
        asset["roles"] = [role]


def _complete_asset(key: str, asset: pystac.Asset) -> None:
    media_type, role = _asset_defaults(key, asset.href)
    if media_type and not asset.media_type:
        asset.media_type = media_type
    if role and not asset.roles:
        asset.roles = [role]


# --- links that would send a re-read item to the API without a token --------------------

_API_ROOT_PATH = urlsplit(DEFAULT_API_URL).path  # /stac/v1/catalogs/axelglobe


def _is_api_root(rel: Any, href: Any) -> bool:
    if rel != "root" or not isinstance(href, str):
        return False
    parts = urlsplit(href)
    return parts.scheme in ("http", "https") and parts.path.rstrip("/") == _API_ROOT_PATH


def drop_api_root_links(item: dict[str, Any]) -> None:
    links = item.get("links")
    if isinstance(links, list) and any(
        isinstance(ln, dict) and _is_api_root(ln.get("rel"), ln.get("href")) for ln in links
    ):
        item["links"] = [
            ln
            for ln in links
            if not (isinstance(ln, dict) and _is_api_root(ln.get("rel"), ln.get("href")))
        ]


def _normalize_item_dict(item: dict[str, Any]) -> None:
    geometry = item.get("geometry")
    if isinstance(geometry, dict):
        # "crs" is not a GeoJSON member (RFC 7946 dropped it); shapely and odc-stac choke on it.
        geometry.pop("crs", None)
    properties = item.get("properties")
    if isinstance(properties, dict):
        _normalize_bands(properties.get("eo:bands"))
    item["stac_extensions"] = _declare_ag(item.get("stac_extensions"))
    assets = item.get("assets")
    if isinstance(assets, dict):
        for key, asset in assets.items():
            if isinstance(asset, dict):
                _normalize_bands(asset.get("eo:bands"))
                _complete_asset_dict(key, asset)
    drop_api_root_links(item)


def _normalize_collection_dict(collection: dict[str, Any]) -> None:
    summaries = collection.get("summaries")
    if isinstance(summaries, dict):
        _normalize_bands(summaries.get("eo:bands"))
    item_assets = collection.get("item_assets")
    if isinstance(item_assets, dict):
        for asset in item_assets.values():
            if isinstance(asset, dict):
                _normalize_bands(asset.get("eo:bands"))


def _normalize_item_object(item: pystac.Item) -> None:
    if isinstance(item.geometry, dict):
        item.geometry.pop("crs", None)
    _normalize_bands(item.properties.get("eo:bands"))
    for key, asset in item.assets.items():
        _normalize_bands(asset.extra_fields.get("eo:bands"))
        _complete_asset(key, asset)
    _declare_ag(item.stac_extensions)
    # An unresolved root link to the API (a resolved one is the authenticated client: kept).
    item.links = [
        link
        for link in item.links
        # get_href(transform_href=False): the default transform resolves the root itself
        if link.is_resolved() or not _is_api_root(link.rel, link.get_href(transform_href=False))
    ]


def carry_capture_id(page: dict[str, Any], capture_id: str) -> bool:
    """Give the items of a search page without ``ag:capture_id`` the capture searched for.

    For the answer to a search whose filter names exactly one capture
    (:func:`~pystac_axelglobe._capture_filter.searched_capture_id`): the server matched
    every item on that capture, so the id is known even when the items do not carry it (the
    guide's example item does not). An item "without" one has none, ``null`` or ``""``; an id the
    server sent is never replaced. ``ag.open()`` and
    :class:`~pystac_axelglobe.auth.AxelGlobeAuth` as a ``request_modifier`` call this on
    each page, before the modifier (:func:`normalize_item`) sees it.

    Returns:
        Whether an item was changed.

    Example:
        >>> page = {"type": "FeatureCollection", "features": [
        ...     {"type": "Feature", "properties": {}},
        ...     {"type": "Feature", "properties": {"ag:capture_id": "sent"}}]}
        >>> carry_capture_id(page, "52eZg9k7rPEyYQGX")
        True
        >>> [f["properties"]["ag:capture_id"] for f in page["features"]]
        ['52eZg9k7rPEyYQGX', 'sent']
    """
    features = page.get("features")
    changed = False
    for feature in features if isinstance(features, list) else []:
        properties = feature.get("properties") if isinstance(feature, dict) else None
        if isinstance(properties, dict) and properties.get(CAPTURE_ID_PROP) in (None, ""):
            properties[CAPTURE_ID_PROP] = capture_id
            changed = True
    return changed


def normalize_item(obj: Any) -> None:
    """Normalise AxelGlobe's quirks in place; pystac-client's ``modifier=``.

    Accepts what pystac-client hands a modifier: an item, item-collection or collection
    dict (also ``{"collections": [...]}``), a :class:`pystac.Item`,
    :class:`pystac.ItemCollection` or :class:`pystac.Collection`. It:

    - renames ``center_wave_length`` to the eo extension's ``center_wavelength``;
    - gives ``solar_illumination`` one unit, the collection's W/m²/µm: item values are
      1000× smaller (1.604 for band0 where the collection says 1604.11) and are multiplied
      by 1000. Values already in W/m²/µm are left alone, so normalising twice is harmless;
    - drops the non-GeoJSON ``crs`` member of the geometry;
    - declares the ``ag`` extension (:data:`SCHEMA_URI`) on every item, so
      :meth:`AxelGlobeExtension.ext` works on all of them (``capture_id`` is None on an
      item without ``ag:capture_id``; nothing is invented);
    - gives assets without a ``type`` their media type by file suffix (the GeoTIFFs
      ``image/tiff; application=geotiff; profile=cloud-optimized``, the thumbnail
      ``image/jpeg``, the mask metadata ``application/json``) and assets without
      ``roles`` the guide's (``data``, ``thumbnail``, ``metadata``), so stackstac and other
      generic tools find the rasters by default. A type or roles the server gave are kept;
    - drops a ``rel=root`` link whose href is the AxelGlobe API root (path
      ``/stac/v1/catalogs/axelglobe``): pystac resolves an item's root on ``to_dict()``
      and ``validate()``, so a saved item carrying one would ask the API, without a token,
      when read back. (pystac-client adds its client as the root after this modifier runs;
      that link is saved as the API's URL and dropped when pystac reads the file back, by
      :meth:`AxelGlobeExtensionHooks.migrate`.) ``collection``, ``parent`` and ``self``
      stay: pystac follows them only when asked (``get_collection()``).

    Returns None (it works in place), as pystac-client expects of a modifier. It first
    makes sure pystac's extension hooks are loaded (:func:`ensure_extension_hooks`), since
    pystac-client parses items right after calling it, possibly in many threads.

    Example:
        >>> d = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0],
        ...      "crs": {}}, "properties": {"ag:capture_id": "x", "eo:bands": [
        ...      {"name": "band0", "center_wave_length": 0.673, "solar_illumination": 1.6}]}}
        >>> normalize_item(d)
        >>> d["properties"]["eo:bands"][0], "crs" in d["geometry"], d["stac_extensions"]
        ({'name': 'band0', 'solar_illumination': 1600.0, 'center_wavelength': 0.673}, \
False, ['https://pystac-axelglobe.github.io/extensions/ag/v1.0.0/schema.json'])
        >>> a = {"assets": {"band3": {"href": "https://x.invalid/i_band3.tif"}}}
        >>> normalize_item({"type": "Feature", **a}); a["assets"]["band3"]
        {'href': 'https://x.invalid/i_band3.tif', 'type': \
'image/tiff; application=geotiff; profile=cloud-optimized', 'roles': ['data']}
    """
    ensure_extension_hooks()
    if isinstance(obj, dict):
        _normalize_dict(obj)
    else:
        _normalize_object(obj)
    return None


def _dicts(values: Iterable[Any]) -> list[dict[str, Any]]:
    """The dicts among ``values`` (a page's features, a list's collections)."""
    return [value for value in values if isinstance(value, dict)]


def _normalize_dict(obj: dict[str, Any]) -> None:
    """:func:`normalize_item` on the JSON of an item, page, collection or collection list."""
    kind = obj.get("type")
    if kind == "Feature":
        _normalize_item_dict(obj)
    elif kind == "FeatureCollection":
        for feature in _dicts(obj.get("features") or []):
            _normalize_item_dict(feature)
    elif kind == "Collection":
        _normalize_collection_dict(obj)
    elif isinstance(obj.get("collections"), list):
        for collection in _dicts(obj["collections"]):
            _normalize_collection_dict(collection)


def _normalize_object(obj: Any) -> None:
    """:func:`normalize_item` on a pystac Item, ItemCollection or Collection."""
    if isinstance(obj, pystac.Item):
        _normalize_item_object(obj)
    elif isinstance(obj, pystac.ItemCollection):
        for item in obj.items:
            _normalize_item_object(item)
    elif isinstance(obj, pystac.Collection):
        _normalize_bands(obj.summaries.lists.get("eo:bands"))
        _normalize_bands(obj.summaries.other.get("eo:bands"))
        item_assets = obj.extra_fields.get("item_assets")
        if isinstance(item_assets, dict):
            _normalize_collection_dict({"item_assets": item_assets})
