"""The arguments of :func:`pystac_axelglobe.load`, checked before anything is sent.

Each check raises :class:`~pystac_axelglobe.errors.ConfigurationError` with what to do
instead: items that are not STAC items or not grus-1's (without ``stac_cfg=``), a band
grus-1 does not have, a resolution that is not a positive number, a CRS pyproj does not
know, ``patch_url=``/``driver=`` (the loader signs URLs itself), a bad ``min_validity=``.

Example:
    >>> try:
    ...     checked([], ["red"], None, 5, {})
    ... except ConfigurationError as err:
    ...     print(err)
    no items to load: the search returned nothing; widen the bbox, datetime or filter
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pystac

from ._driver import DEFAULT_MIN_VALIDITY
from ._grus1 import COLLECTION_ID, TCI_ALIASES, TCI_ASSET, known_band_names
from ._items import as_items
from .errors import ConfigurationError

__all__ = ["checked"]


def checked(items: Iterable[pystac.Item | Mapping[str, Any]],
             bands: str | Sequence[str] | None, crs: Any, resolution: Any,
             odc_kwargs: dict[str, Any]) -> tuple[list[pystac.Item], list[str] | None]:
    """The items and the bands to load, every argument checked (before anything is sent)."""
    for arg in ("patch_url", "driver"):
        if odc_kwargs.get(arg) is not None:
            raise ConfigurationError(
                f"{arg}= is not supported by pystac_axelglobe.load: it signs asset URLs itself "
                "when each chunk is read; call odc.stac.load directly for a custom "
                f"{arg} (with driver=AxelGlobeDriver(auth) for signing)"
            )
        odc_kwargs.pop(arg, None)
    item_list = as_items(items, caller="load()", dicts=True)
    if not item_list:
        raise ConfigurationError("no items to load: the search returned nothing; widen the "
                                 "bbox, datetime or filter")
    if isinstance(bands, str) or bands is None:
        band_list: list[str] | None = None if bands is None else [bands]
    elif isinstance(bands, Iterable):
        band_list = list(bands)
    else:
        raise ConfigurationError(f"bands must be a name or a list of names; got {bands!r}")
    _check_args(band_list, crs, resolution, odc_kwargs)
    if band_list is not None:
        # "tci" is one asset but three bands: ask for all three (odc-stac would give only
        # the first under the asset's name).
        band_list = [b for name in band_list
                     for b in (TCI_ALIASES if name == TCI_ASSET else (name,))]
    if odc_kwargs.get("stac_cfg") is None:
        _check_collection(item_list)
        _check_bands(band_list)
    return item_list, band_list


def _check_collection(items: Sequence[pystac.Item]) -> None:
    """Refuse items of another collection: their bands would be read with grus-1's config."""
    others = [i for i in items if i.collection_id != COLLECTION_ID]
    if others:
        first = others[0]
        raise ConfigurationError(
            f"load() reads {COLLECTION_ID} items; {len(others)} of the {len(items)} items are "
            f"not (e.g. {first.id!r}, collection {first.collection_id!r}). Search "
            f"collections=['{COLLECTION_ID}'], or pass stac_cfg= describing the other "
            "collection's bands"
        )


def _check_resolution(resolution: Any) -> None:
    from odc.geo import Resolution

    hint = ("resolution must be a positive number of CRS units (metres in UTM), e.g. "
            f"resolution=5; got {resolution!r}")
    if isinstance(resolution, Resolution):
        values = [abs(resolution.x), abs(resolution.y)]
    elif isinstance(resolution, numbers.Real) and not isinstance(resolution, bool):
        values = [float(resolution)]
    else:
        raise ConfigurationError(hint)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigurationError(hint)


def _check_crs(crs: Any, resolution: Any) -> None:
    from odc.geo.crs import norm_crs

    try:
        parsed = norm_crs(crs)
    except Exception as err:  # pyproj's CRSError, or whatever a strange object raises
        raise ConfigurationError(
            f"crs={crs!r} is not a coordinate reference system pyproj knows: {err}. Pass "
            "e.g. crs='EPSG:32653', or leave crs out for the items' UTM zone"
        ) from None
    if parsed is not None and parsed.geographic and resolution is None:
        raise ConfigurationError(
            f"crs={crs!r} is in degrees: pass resolution= in degrees too (e.g. "
            "resolution=0.00005 for about 5 m), or leave crs out for metres in UTM"
        )


def _check_args(bands: list[str] | None, crs: Any, resolution: Any,
                odc_kwargs: Mapping[str, Any]) -> None:
    """Every argument :func:`load` can check, before anything is sent."""
    if bands is not None:
        if not bands:
            raise ConfigurationError("bands= is empty: name some bands, or leave bands out "
                                     "for all of them")
        if not all(isinstance(b, str) for b in bands):
            raise ConfigurationError(f"bands must be names (str), e.g. ['red', 'nir']; "
                                     f"got {bands!r}")
    if resolution is not None:
        _check_resolution(resolution)
    if crs is not None:
        _check_crs(crs, resolution)
    min_validity = odc_kwargs.get("min_validity", DEFAULT_MIN_VALIDITY)
    if (not isinstance(min_validity, numbers.Real) or isinstance(min_validity, bool)
            or not 0 <= float(min_validity) < math.inf):
        raise ConfigurationError(f"min_validity must be a number of seconds >= 0; got "
                                 f"{min_validity!r}")


def _check_bands(bands: Sequence[str] | None) -> None:
    if bands is None:
        return
    known = known_band_names()
    unknown = [b for b in bands if b not in known]
    if unknown:
        raise ConfigurationError(
            f"grus-1 has no band {', '.join(map(repr, unknown))}; use asset keys or aliases "
            f"from: {', '.join(sorted(known))}"
        )
