"""The ``ag`` STAC extension, the grus-1 band table and the item-normalising modifier.

AxelGlobe items carry ``ag:capture_id`` (all tiles of one capture share it) but declare no
extension for it. This module declares one under the project's own namespace, ships its
JSON Schema as package data, and reads it the way pystac's own extensions do
(``pystac/extensions/view.py``).

Example:
    >>> import pystac, datetime
    >>> item = pystac.Item("x", None, None, datetime.datetime(2021, 5, 1), {})
    >>> AxelGlobeExtension.ext(item, add_if_missing=True).capture_id = "52eZg9k7rPEyYQGX"
    >>> item.properties["ag:capture_id"], SCHEMA_URI in item.stac_extensions
    ('52eZg9k7rPEyYQGX', True)
    >>> band_by_common_name("nir").name
    'band5'
"""

from __future__ import annotations

import json
import posixpath
import threading
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

import pystac
from pystac.extensions.base import (
    ExtensionManagementMixin,
    PropertiesExtension,
    SummariesExtension,
)
from pystac.extensions.hooks import ExtensionHooks

from .settings import DEFAULT_API_URL

if TYPE_CHECKING:
    from pystac.serialization.identify import STACJSONDescription, STACVersionID

T = TypeVar("T", pystac.Item, pystac.Asset)

SCHEMA_URI: str = "https://pystac-axelglobe.github.io/extensions/ag/v1.0.0/schema.json"
PREFIX: str = "ag:"
CAPTURE_ID_PROP: str = PREFIX + "capture_id"

#: Package-data location of :data:`SCHEMA_URI`'s document (``schemas/ag/v1.0.0/schema.json``).
SCHEMA_RESOURCE: tuple[str, ...] = ("schemas", "ag", "v1.0.0", "schema.json")

EO_SCHEMA_URI = "https://stac-extensions.github.io/eo/v1.0.0/schema.json"


class Band(NamedTuple):
    """One grus-1 band, in the units of the eo extension.

    ``center_wavelength`` and ``full_width_half_max`` are in µm, ``gsd`` in metres and
    ``solar_illumination`` in W/m²/µm (the collection's unit; see :func:`normalize_item`).
    """

    name: str
    common_name: str
    center_wavelength: float
    full_width_half_max: float
    gsd: float
    solar_illumination: float

    def to_eo_dict(self) -> dict[str, Any]:
        """The band as an ``eo:bands`` entry (no ``gsd``: eo v1.0.0 has none per band).

        Example:
            >>> GRUS1_BANDS[5].to_eo_dict()["center_wavelength"]
            0.834
        """
        return {
            "name": self.name,
            "common_name": self.common_name,
            "center_wavelength": self.center_wavelength,
            "full_width_half_max": self.full_width_half_max,
            "solar_illumination": self.solar_illumination,
        }


#: The grus-1 bands as the provider's guide lists them (collection summaries).
GRUS1_BANDS: tuple[Band, ...] = (
    Band("band0", "pan", 0.673, 0.446, 2.5, 1604.11),
    Band("band1", "blue", 0.476, 0.054, 5.0, 1985.83),
    Band("band2", "green", 0.549, 0.068, 5.0, 1823.2),
    Band("band3", "red", 0.652, 0.063, 5.0, 1571.65),
    Band("band4", "rededge", 0.724, 0.038, 5.0, 1344.18),
    Band("band5", "nir", 0.834, 0.128, 5.0, 1098.04),
)

#: Every asset key a grus-1 item carries.
ASSET_KEYS: tuple[str, ...] = (
    "thumbnail",
    "tci",
    "band0",
    "band1",
    "band2",
    "band3",
    "band4",
    "band5",
    "msi_udm",
    "msi_udm_metadata",
)

#: Asset keys holding one band each (the band table's names).
BAND_ASSET_KEYS: tuple[str, ...] = tuple(b.name for b in GRUS1_BANDS)


def band_by_common_name(common_name: str) -> Band:
    """The grus-1 band with this eo common name (``"red"``, ``"nir"``, ``"pan"``...).

    Raises:
        KeyError: no grus-1 band has that common name; the message lists those that do.

    Example:
        >>> band_by_common_name("red").name
        'band3'
    """
    for band in GRUS1_BANDS:
        if band.common_name == common_name:
            return band
    names = ", ".join(b.common_name for b in GRUS1_BANDS)
    raise KeyError(f"grus-1 has no band with common name {common_name!r}; use one of {names}")


def band_by_name(name_or_alias: str) -> Band:
    """The grus-1 band for an asset key (``"band3"``) or a common name (``"red"``).

    Raises:
        KeyError: neither an asset key nor a common name of a grus-1 band.

    Example:
        >>> band_by_name("band5").common_name, band_by_name("nir").name
        ('nir', 'band5')
    """
    for band in GRUS1_BANDS:
        if name_or_alias in (band.name, band.common_name):
            return band
    names = ", ".join(f"{b.name}/{b.common_name}" for b in GRUS1_BANDS)
    raise KeyError(f"grus-1 has no band {name_or_alias!r}; use one of {names}")


def schema() -> dict[str, Any]:
    """The JSON Schema of the ``ag`` extension, read from the package data.

    Example:
        >>> schema()["$id"] == SCHEMA_URI
        True
    """
    return _read_schema(SCHEMA_RESOURCE)


def _read_schema(parts: tuple[str, ...]) -> dict[str, Any]:
    path = resources.files("pystac_axelglobe").joinpath(*parts)
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


#: The schemas shipped as package data, by the URI ``validate()`` asks for: ours, and the
#: stac-extensions schemas of what normalised items declare (unmodified Apache-2.0 copies;
#: ``schemas/README.md``). eo is v1.1.0 because pystac migrates the served v1.0.0 on read.
BUNDLED_SCHEMAS: dict[str, tuple[str, ...]] = {
    SCHEMA_URI: SCHEMA_RESOURCE,
    **{
        f"https://stac-extensions.github.io/{name}/{version}/schema.json": (
            "schemas", "stac-extensions", name, version, "schema.json")
        for name, version in (("eo", "v1.1.0"), ("view", "v1.0.0"), ("sat", "v1.0.0"))
    },
}


def register_schemas(validator: Any = None) -> bool:
    """Give pystac's validator the shipped schemas, so ``item.validate()`` fetches none.

    pystac's :class:`~pystac.validation.stac_validator.JsonSchemaSTACValidator` fetches
    every extension schema it has not got in its ``schema_cache`` (keyed by URI) over
    HTTP, unauthenticated, each process anew; ours is not even published. This fills the
    cache with :data:`BUNDLED_SCHEMAS` (the STAC core schemas come with pystac), so
    validating a normalised item needs no network. Entries already there are kept.

    It runs when this module loads (which pystac's entry-point discovery does as soon as it
    parses an item), for the process-wide validator. Call it yourself for a validator you
    make later: ``pystac.validation.set_validator(v); register_schemas(v)``.

    Args:
        validator: the validator to fill; default: pystac's registered one.

    Returns:
        Whether the validator has a schema cache to fill (a custom validator may not).

    Example:
        >>> from pystac.validation import RegisteredValidator
        >>> register_schemas()
        True
        >>> SCHEMA_URI in RegisteredValidator.get_validator().schema_cache
        True
    """
    if validator is None:
        from pystac.validation import RegisteredValidator

        try:
            validator = RegisteredValidator.get_validator()
        except Exception:  # pystac without jsonschema cannot validate at all
            return False
    cache = getattr(validator, "schema_cache", None)
    if not isinstance(cache, dict):
        return False
    for uri, parts in BUNDLED_SCHEMAS.items():
        if uri not in cache:
            cache[uri] = _read_schema(parts)
    return True


class AxelGlobeExtension(
    Generic[T],
    PropertiesExtension,
    ExtensionManagementMixin[pystac.Item | pystac.Collection],
):
    """Typed access to the ``ag:`` properties of an AxelGlobe item.

    Use :meth:`ext` to get one; items fetched through :func:`pystac_axelglobe.open` already
    declare the extension.

    Example:
        >>> import pystac, datetime
        >>> item = pystac.Item("x", None, None, datetime.datetime(2021, 5, 1), {})
        >>> AxelGlobeExtension.ext(item, add_if_missing=True).capture_id is None
        True
    """

    name: Literal["ag"] = "ag"

    def apply(self, capture_id: str | None = None) -> None:
        """Set the ``ag:`` properties.

        Args:
            capture_id: the capture the tile belongs to (16 letters and digits).
        """
        self.capture_id = capture_id

    @property
    def capture_id(self) -> str | None:
        """The capture this tile belongs to (all tiles of one capture share it), or None."""
        return self._get_property(CAPTURE_ID_PROP, str)

    @capture_id.setter
    def capture_id(self, v: str | None) -> None:
        self._set_property(CAPTURE_ID_PROP, v)

    @classmethod
    def get_schema_uri(cls) -> str:
        """The versioned schema URI of the ``ag`` extension."""
        return SCHEMA_URI

    @classmethod
    def ext(cls, obj: T, add_if_missing: bool = False) -> AxelGlobeExtension[T]:
        """Extend an Item (or an Asset of one) with the ``ag:`` properties.

        Args:
            obj: a :class:`pystac.Item` or :class:`pystac.Asset`.
            add_if_missing: declare the extension on the item if it is not declared yet.

        Raises:
            pystac.ExtensionNotImplemented: the item does not declare the extension and
                ``add_if_missing`` is false.
            pystac.ExtensionTypeError: ``obj`` is neither an Item nor an Asset.

        Example:
            >>> import pystac, datetime
            >>> item = pystac.Item("x", None, None, datetime.datetime(2021, 5, 1), {})
            >>> AxelGlobeExtension.ext(item, add_if_missing=True).name
            'ag'
        """
        if isinstance(obj, pystac.Item):
            cls.ensure_has_extension(obj, add_if_missing)
            return cast(AxelGlobeExtension[T], ItemAxelGlobeExtension(obj))
        if isinstance(obj, pystac.Asset):
            cls.ensure_owner_has_extension(obj, add_if_missing)
            return cast(AxelGlobeExtension[T], AssetAxelGlobeExtension(obj))
        raise pystac.ExtensionTypeError(cls._ext_error_message(obj))

    @classmethod
    def summaries(
        cls, obj: pystac.Collection, add_if_missing: bool = False
    ) -> SummariesAxelGlobeExtension:
        """The ``ag:`` summaries of a collection.

        Example:
            >>> import pystac
            >>> extent = {"spatial": {"bbox": [[0, 0, 1, 1]]},
            ...           "temporal": {"interval": [[None, None]]}}
            >>> c = pystac.Collection("c", "d", pystac.Extent.from_dict(extent))
            >>> AxelGlobeExtension.summaries(c, add_if_missing=True).capture_id is None
            True
        """
        cls.ensure_has_extension(obj, add_if_missing)
        return SummariesAxelGlobeExtension(obj)


class ItemAxelGlobeExtension(AxelGlobeExtension[pystac.Item]):
    """:class:`AxelGlobeExtension` on an Item; get one through :meth:`AxelGlobeExtension.ext`."""

    item: pystac.Item
    properties: dict[str, Any]

    def __init__(self, item: pystac.Item) -> None:
        self.item = item
        self.properties = item.properties

    def __repr__(self) -> str:
        return f"<ItemAxelGlobeExtension Item id={self.item.id}>"


class AssetAxelGlobeExtension(AxelGlobeExtension[pystac.Asset]):
    """:class:`AxelGlobeExtension` on an Asset: reads fall back to the owning item."""

    asset_href: str
    properties: dict[str, Any]
    additional_read_properties: Iterable[dict[str, Any]] | None = None

    def __init__(self, asset: pystac.Asset) -> None:
        self.asset_href = asset.href
        self.properties = asset.extra_fields
        if asset.owner and isinstance(asset.owner, pystac.Item):
            self.additional_read_properties = [asset.owner.properties]

    def __repr__(self) -> str:
        return f"<AssetAxelGlobeExtension Asset href={self.asset_href}>"


class SummariesAxelGlobeExtension(SummariesExtension):
    """The ``ag:`` summaries of a collection (a list of capture ids, if the API gives one)."""

    @property
    def capture_id(self) -> list[str] | None:
        """The capture ids summarised in the collection, or None."""
        return self.summaries.get_list(CAPTURE_ID_PROP)

    @capture_id.setter
    def capture_id(self, v: list[str] | None) -> None:
        self._set_summary(CAPTURE_ID_PROP, v)


class AxelGlobeExtensionHooks(ExtensionHooks):
    """Hooks registered with pystac through the ``pystac.extensions`` entry point."""

    schema_uri: str = SCHEMA_URI
    prev_extension_ids: set[str] = {"ag"}
    stac_object_types: set[pystac.STACObjectType] = {pystac.STACObjectType.ITEM}

    def migrate(
        self, obj: dict[str, Any], version: STACVersionID, info: STACJSONDescription
    ) -> None:
        """Also drop a ``root`` link to the AxelGlobe API as pystac reads an item.

        pystac calls this for every item it parses, so an item collection saved from a
        search and read back (``ItemCollection.from_file``) loses the root link that would
        make ``to_dict()`` and ``validate()`` ask the API, without a token, for the root.
        See :func:`normalize_item`.
        """
        super().migrate(obj, version, info)
        _drop_api_root_links(obj)


AXELGLOBE_EXTENSION_HOOKS: ExtensionHooks = AxelGlobeExtensionHooks()


# --- pystac's extension-hook discovery, made safe for concurrent first use -----------

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


def _drop_api_root_links(item: dict[str, Any]) -> None:
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
    _drop_api_root_links(item)


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
    (:func:`~pystac_axelglobe._dialect.searched_capture_id`): the server matched every item
    on that capture, so the id is known even when the items do not carry it (the guide's
    example item does not). An item "without" one has none, ``null`` or ``""``; an id the
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
    elif isinstance(obj, dict):
        kind = obj.get("type")
        if kind == "Feature":
            _normalize_item_dict(obj)
        elif kind == "FeatureCollection":
            for feature in obj.get("features") or []:
                if isinstance(feature, dict):
                    _normalize_item_dict(feature)
        elif kind == "Collection":
            _normalize_collection_dict(obj)
        elif isinstance(obj.get("collections"), list):
            for collection in obj["collections"]:
                if isinstance(collection, dict):
                    _normalize_collection_dict(collection)
    return None


__all__ = [
    "ASSET_KEYS",
    "AXELGLOBE_EXTENSION_HOOKS",
    "BAND_ASSET_KEYS",
    "CAPTURE_ID_PROP",
    "GRUS1_BANDS",
    "PREFIX",
    "SCHEMA_URI",
    "AxelGlobeExtension",
    "AxelGlobeExtensionHooks",
    "BUNDLED_SCHEMAS",
    "Band",
    "band_by_common_name",
    "band_by_name",
    "carry_capture_id",
    "ensure_extension_hooks",
    "normalize_item",
    "register_schemas",
    "schema",
]

# pystac's entry-point discovery imports this module as it parses its first item: the
# schemas are in the process-wide validator before anything can be validated.
register_schemas()
