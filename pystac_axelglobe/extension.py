"""The ``ag`` STAC extension, the grus-1 band table and the item-normalising modifier.

AxelGlobe items carry ``ag:capture_id`` (all tiles of one capture share it) but declare no
extension for it. This module declares one under the project's own namespace, ships its
JSON Schema as package data, and reads it the way pystac's own extensions do
(``pystac/extensions/view.py``).

This module is the front door: the typed extension and pystac's hooks live here, and it
re-exports the rest, one room each: ``_ag_schema.py`` (the schema URI, the JSON Schemas
shipped and their registration with pystac's validator), ``_bands.py`` (the grus-1 band and
asset tables) and ``_normalize.py`` (:func:`normalize_item` and the quirks it fixes).

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

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

import pystac
from pystac.extensions.base import (
    ExtensionManagementMixin,
    PropertiesExtension,
    SummariesExtension,
)
from pystac.extensions.hooks import ExtensionHooks

from ._ag_schema import (
    BUNDLED_SCHEMAS,
    CAPTURE_ID_PROP,
    PREFIX,
    SCHEMA_URI,
    register_schemas,
    schema,
)
from ._ag_schema import EO_SCHEMA_URI as EO_SCHEMA_URI  # importable here as before the split
from ._ag_schema import SCHEMA_RESOURCE as SCHEMA_RESOURCE
from ._bands import (
    ASSET_KEYS,
    BAND_ASSET_KEYS,
    GRUS1_BANDS,
    Band,
    band_by_common_name,
    band_by_name,
)
from ._normalize import (
    carry_capture_id,
    drop_api_root_links,
    ensure_extension_hooks,
    normalize_item,
)

if TYPE_CHECKING:
    from pystac.serialization.identify import STACJSONDescription, STACVersionID

T = TypeVar("T", pystac.Item, pystac.Asset)


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
        drop_api_root_links(obj)


AXELGLOBE_EXTENSION_HOOKS: ExtensionHooks = AxelGlobeExtensionHooks()


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
