"""What odc-stac needs to know about grus-1 items, which carry no ``raster:`` metadata.

The asset table odc-stac reads with (:data:`GRUS1_STAC_CFG`: data types, nodata, band
aliases), the metadata parser that keeps to the raster assets and makes ``tci`` three bands
(:class:`Grus1Parser`), and the band names and aliases :func:`pystac_axelglobe.load` takes.

Example:
    >>> GRUS1_STAC_CFG["grus-1"]["aliases"]["nir"]
    ('band5', 1)
    >>> MASK_ASSET, MASK_NODATA
    ('msi_udm', 255)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pystac
from odc.stac._mdtools import StacMDParser

from .extension import GRUS1_BANDS
from .settings import COLLECTION_ID

__all__ = [
    "COLLECTION_ID",
    "GRUS1_STAC_CFG",
    "MASK_ALIASES",
    "MASK_ASSET",
    "MASK_NODATA",
    "RASTER_ASSETS",
    "TCI_ALIASES",
    "TCI_ASSET",
    "Grus1Parser",
    "assets_read",
    "known_band_names",
]

#: The unusable-data mask asset; also reachable as ``"udm"`` or ``"mask"``.
MASK_ASSET = "msi_udm"
MASK_ALIASES = ("udm", "mask")
#: Value of the mask outside every tile (the files themselves have no nodata).
MASK_NODATA = 255
#: The pansharpened true-colour asset, three bands: red, green, blue.
TCI_ASSET = "tci"
TCI_ALIASES = ("tci_red", "tci_green", "tci_blue")
#: Assets that hold rasters (the thumbnail is a JPEG preview, not data).
RASTER_ASSETS = (TCI_ASSET, *(b.name for b in GRUS1_BANDS), MASK_ASSET)


def _build_stac_cfg() -> dict[str, Any]:
    assets: dict[str, Any] = {
        "*": {"data_type": "uint16", "nodata": 0, "unit": "1"},
        # 0 outside the footprint, the same convention as the archive's COGs use.
        TCI_ASSET: {"data_type": "uint8", "nodata": 0, "unit": "1"},
        # 0 = usable, 1 = cloud. The files have no nodata; 255 marks pixels outside every
        # tile, which would otherwise read 0, "usable".
        MASK_ASSET: {"data_type": "uint8", "nodata": MASK_NODATA, "unit": "1"},
    }
    aliases: dict[str, tuple[str, int]] = {}
    for band in GRUS1_BANDS:
        assets[band.name] = {"data_type": "uint16", "nodata": 0, "unit": "1"}
        aliases[band.common_name] = (band.name, 1)
    for alias in MASK_ALIASES:
        aliases[alias] = (MASK_ASSET, 1)
    for idx, alias in enumerate(TCI_ALIASES, start=1):
        aliases[alias] = (TCI_ASSET, idx)
    return {COLLECTION_ID: {"assets": assets, "aliases": aliases}}


#: The ``stac_cfg=`` that :func:`odc.stac.load` needs for grus-1 items (no ``raster:``
#: metadata): uint16 bands with nodata 0, the uint8 three-band ``tci`` (nodata 0), the uint8
#: mask ``msi_udm`` (0 usable, 1 cloud, 255 outside every tile); aliases by eo common name
#: (``pan``, ``blue``, ``green``, ``red``, ``rededge``, ``nir``), ``udm``/``mask`` for the
#: mask, ``tci_red``/``tci_green``/``tci_blue`` for the bands of ``tci`` (``tci.1``..``tci.3``
#: work as well).
GRUS1_STAC_CFG: dict[str, Any] = _build_stac_cfg()


class Grus1Parser(StacMDParser):
    """odc-stac metadata parser for grus-1: only raster assets, ``tci`` as three bands.

    odc-stac reads the band count of an asset from ``raster:bands``, which AxelGlobe items do
    not have, and would take the JPEG thumbnail for a raster band.
    """

    def extract(self, md: Any) -> Any:  # noqa: D102 - the MDParser protocol's method
        meta = super().extract(md)
        if getattr(md, "collection_id", None) != COLLECTION_ID:
            return meta
        bands = {k: v for k, v in meta.bands.items()
                 if k[0] in RASTER_ASSETS or k[0] == "_stac_metadata"
                 or k[0] not in md.assets}
        first = bands.get((TCI_ASSET, 1))
        if first is not None:
            for idx in range(2, len(TCI_ALIASES) + 1):
                bands.setdefault((TCI_ASSET, idx), first)
        return meta.patch(bands=bands)


def known_band_names() -> set[str]:
    """Every name :func:`pystac_axelglobe.load` takes for a grus-1 band.

    Example:
        >>> {"red", "band3", "udm", "tci_blue", "tci.3"} <= known_band_names()
        True
    """
    names = set(RASTER_ASSETS) | set(MASK_ALIASES) | set(TCI_ALIASES)
    names |= {b.common_name for b in GRUS1_BANDS}
    names |= {f"{TCI_ASSET}.{i}" for i in range(1, len(TCI_ALIASES) + 1)}
    return names


def assets_read(items: Sequence[pystac.Item], bands: Sequence[str] | None,
                parser: Grus1Parser) -> frozenset[str] | None:
    """The asset keys odc-stac reads for ``bands``, as odc-stac resolves them; ``None``: unsure.

    Example:
        >>> import datetime
        >>> item = pystac.Item("x", None, None, datetime.datetime(2021, 1, 1), {},
        ...                    collection=COLLECTION_ID)
        >>> for key in ("band3", "band5", "msi_udm"):
        ...     item.add_asset(key, pystac.Asset(f"https://api.example/x_{key}.tif"))
        >>> sorted(assets_read([item], ["red", "udm"], Grus1Parser(GRUS1_STAC_CFG)))
        ['band3', 'msi_udm']
    """
    from odc.stac import parse_item

    try:  # odc-stac takes the bands of the first item's collection too
        collection = parse_item(items[0], md_plugin=parser).collection
        return frozenset(collection.band_key(band)[0]
                         for band in collection.normalize_band_query(bands))
    except Exception:  # a band odc-stac does not know: it says so itself, in a moment
        return None
