"""The hrefs a load reads, and the order to resolve them in ahead of its reads.

While odc-stac parses a load's items, :class:`HrefRecorder` (the driver's metadata parser)
notes each raster asset's href, tile by tile (:class:`Recorded`). When odc-stac starts the
load, the driver keeps those of the assets and tiles the load reads in the load's state
(:class:`SigningLoad`), which every task of the dask graph refers to. A read that finds no
URL for its href asks it for the hrefs to resolve with its own (:meth:`SigningLoad.ahead`).

Example:
    >>> load = SigningLoad(None, None, ({"band3": "a3", "band5": "a5"},
    ...                                 {"band3": "b3", "band5": "b5"}), every_asset=True)
    >>> load.ahead("b5", 3)
    ['b5', 'b3', 'a3']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pystac
from odc.loader._rio import GlobalContext

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

__all__ = ["HrefRecorder", "Recorded", "SigningLoad", "first_reads"]


def first_reads(items: Iterable[pystac.Item], assets: frozenset[str], limit: int) -> list[str]:
    """The hrefs of ``assets`` in ``items``, item by item: the order a whole load reads them.

    Example:
        >>> from datetime import datetime
        >>> item = pystac.Item("a", None, None, datetime(2021, 5, 1), {})
        >>> item.add_asset("band3", pystac.Asset("https://api.example/a_band3.tif"))
        >>> first_reads([item], frozenset({"band3", "band5"}), 64)
        ['https://api.example/a_band3.tif']
    """
    hrefs = (asset.get_absolute_href() or asset.href
             for item in items for key, asset in item.assets.items() if key in assets)
    return list(itertools.islice(hrefs, limit))


class Recorded:
    """The raster asset hrefs odc-stac parsed for one load, tile by tile, and the footprints.

    What one process saw while building a graph: it does not travel with the driver (a
    pickled one is empty); :meth:`AxelGlobeDriver.new_load` hands it to the load's state.
    """

    def __init__(self) -> None:
        self.tiles: list[dict[str, str]] = []  # per item: asset key -> href
        self.footprints: list[Any] = []  # the items' geometries (GeoJSON), or None
        self._index: dict[int, int] = {}  # id(item) -> its index (items live on meanwhile)

    def __reduce__(self) -> tuple[type[Recorded], tuple[()]]:
        return (Recorded, ())

    def add(self, item: Any, asset_key: str, href: str) -> None:
        index = self._index.get(id(item))
        if index is None:
            index = self._index[id(item)] = len(self.footprints)
            self.footprints.append(getattr(item, "geometry", None))
            self.tiles.append({})
        self.tiles[index].setdefault(asset_key, href)

    def within(self, geobox: GeoBox, assets: frozenset[str] | None
               ) -> tuple[dict[str, str], ...]:
        """The hrefs odc-stac reads: of ``assets`` (all: ``None``), of tiles meeting ``geobox``."""
        from odc.geo.geom import Geometry

        tiles = [{k: h for k, h in hrefs.items() if assets is None or k in assets}
                 for hrefs in self.tiles]
        if not any(tiles):
            return ()
        try:
            extent = geobox.geographic_extent
        except Exception:  # an odd grid: keep every href rather than fail the load
            extent = None

        def meets(footprint: Any) -> bool:
            if extent is None or not footprint:
                return True
            try:
                return bool(Geometry(footprint, "EPSG:4326").intersects(extent))
            except Exception:  # an odd geometry: keep its hrefs
                return True

        return tuple(hrefs for hrefs, footprint in zip(tiles, self.footprints, strict=True)
                     if hrefs and meets(footprint))


class HrefRecorder:
    """The driver's metadata parser, noting the href of each raster asset odc-stac parses."""

    def __init__(self, parser: Any, recorded: Recorded) -> None:
        self._parser, self._recorded = parser, recorded

    def extract(self, md: Any) -> Any:  # noqa: D102 - the MDParser protocol's methods
        return self._parser.extract(md)

    def driver_data(self, md: Any, band_key: tuple[str, int]) -> Any:  # noqa: D102
        # odc-stac asks this for every raster band of every item, with the item at hand
        asset = getattr(md, "assets", {}).get(band_key[0])
        if isinstance(asset, pystac.Asset):
            self._recorded.add(md, band_key[0], asset.get_absolute_href() or asset.href)
        return self._parser.driver_data(md, band_key)


class SigningLoad(GlobalContext):
    """odc-loader's state of one load, plus the API hrefs it reads, tile by tile.

    Every task of the graph refers to this one object: it pickles once per graph, with
    hrefs only (never a presigned URL or a token).

    Args:
        tiles: per tile (item) that the load reads, its hrefs by asset key.
        every_asset: the tiles hold only the assets the load reads (else each read asks
            for the hrefs of its own asset only).
    """

    def __init__(self, geobox: GeoBox, chunks: dict[str, int] | None,
                 tiles: tuple[dict[str, str], ...], every_asset: bool) -> None:
        super().__init__(geobox, chunks)
        self.tiles, self.every_asset = tiles, every_asset
        self._where: dict[str, tuple[int, str]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "tiles": self.tiles, "every_asset": self.every_asset}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.tiles = state.get("tiles", ())
        self.every_asset = state.get("every_asset", False)
        self._where = None

    def ahead(self, href: str, limit: int) -> list[str]:
        """``href``, then the load's other hrefs in reading order: ``limit`` hrefs at most.

        Reading order: the other assets of ``href``'s tile (the tasks of the other bands
        read it at the same time), then the tiles after it, then those before.
        """
        if self._where is None:  # two threads may build it at once: the same dict
            self._where = {h: (i, key) for i, hrefs in enumerate(self.tiles)
                           for key, h in hrefs.items()}
        index, key = self._where.get(href, (-1, ""))
        if index < 0:
            return [href]
        order = self.tiles[index:] + self.tiles[:index]
        others = (h for hrefs in order for k, h in hrefs.items()
                  if h != href and (self.every_asset or k == key))
        return [href, *itertools.islice(others, max(limit - 1, 0))]
