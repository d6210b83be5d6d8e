"""Datacubes from grus-1 items: :func:`odc.stac.load`, configured for grus-1, signed at read time.

:func:`load` is a thin wrapper over :func:`odc.stac.load`. It adds three things:

* the grus-1 configuration odc-stac needs because AxelGlobe items carry no ``proj:`` or
  ``raster:`` metadata (:data:`GRUS1_STAC_CFG`: data types, nodata, band aliases);
* defaults that put the pixels on their native grid: the UTM zone of the items, 5 m (2.5 m
  when only ``pan``/``tci`` is asked for), pixel edges on multiples of the resolution (which
  is where the archive's COGs put them), and one time slice per capture (``ag:capture_id``;
  for items without it, tiles of one platform taken within :data:`CAPTURE_WINDOW` seconds
  of each other);
* :class:`AxelGlobeDriver`, an odc-loader reader driver that turns an asset href into a
  presigned storage URL *when a chunk is read*, on the process doing the read, through
  :func:`pystac_axelglobe.presigned.resolve` (cached per process, single-flight). A URL that has
  expired or is refused is resolved again once. odc-stac's own ``patch_url=`` signs every URL
  when the graph is built instead, so a lazy job that outlives the URLs would fail with 403.

GDAL is configured so that storage never sees an ``Authorization`` header or a ``HEAD``
request (S3-style presigned URLs refuse both): see :data:`GDAL_OPTIONS`. GDAL options that
would add credentials (``GDAL_HTTP_HEADERS``, ``GDAL_HTTP_USERPWD``...) are cancelled for
these reads wherever they are set, and every storage request is bounded in time
(:data:`pystac_axelglobe._gdal.READ_BOUNDS`; a slower limit can be set with
``rasterio.Env(GDAL_HTTP_TIMEOUT=...)`` around ``load()``).

Dask clusters:
    The driver goes into the dask graph. It pickles with the API/token URLs, the client id
    and the token cache folder, never with the client secret or a token. A worker process
    builds its own :class:`~pystac_axelglobe.auth.AxelGlobeAuth` from those and gets its token
    the way every process does: memory, then the token cache file (``AXELGLOBE_CACHE_DIR``;
    the caller's folder where it exists, i.e. on the same machine), then, where a process
    would ask the token endpoint:

    * with a ``distributed`` client active when :func:`load` is called, the caller: ``load()``
      shares its token with the cluster's workers, present and future, and renews it for
      them (:mod:`pystac_axelglobe.cluster`), so the workers need no secret and the whole
      cluster makes one token request per token lifetime;
    * otherwise the token endpoint, with the worker's own ``AXELGLOBE_CLIENT_SECRET``: one
      token per machine, shared by its worker processes through the cache file.

This module is the front door; the rooms behind it: ``_load_args`` (every argument checked
before anything is sent), ``_grus1`` (the odc-stac configuration), ``_geobox`` (the native
grid), ``_captures`` (one time slice per capture), ``_driver`` (the reader that signs at
read time) and ``_load_hrefs`` (the hrefs a load reads, resolved ahead of its reads).

Example:
    >>> import pystac_axelglobe as ag
    >>> search = ag.open().search(bbox=[133, 35, 137, 36], max_items=4)  # doctest: +SKIP
    >>> ds = ag.load(search.items(), bands=["red", "nir", "udm"], chunks={})  # doctest: +SKIP
    >>> clean = ag.mask_unusable(ds)  # doctest: +SKIP
    >>> ndvi = (clean.nir - clean.red) / (clean.nir + clean.red)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import dask.system
import numpy as np
import pystac
import xarray as xr

from ._captures import CAPTURE_WINDOW, capture_key, shown
from ._driver import DEFAULT_MIN_VALIDITY, PREFETCH_AHEAD, AxelGlobeDriver, SigningReader
from ._gdal import GDAL_OPTIONS
from ._geobox import (
    DEFAULT_RESOLUTION,
    PAN_RESOLUTION,
    default_resolution,
    native_geobox,
    utm_crs,
)
from ._grus1 import (
    GRUS1_STAC_CFG,
    MASK_ALIASES,
    MASK_ASSET,
    MASK_NODATA,
    Grus1Parser,
    assets_read,
)
from ._load_args import checked
from ._load_hrefs import first_reads
from ._redact import redact
from .auth import default_auth
from .errors import ConfigurationError
from .presigned import prefetch

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = [
    "CAPTURE_WINDOW",
    "DEFAULT_RESOLUTION",
    "GDAL_OPTIONS",
    "GRUS1_STAC_CFG",
    "MASK_ASSET",
    "MASK_NODATA",
    "PAN_RESOLUTION",
    "AxelGlobeDriver",
    "Grus1Parser",
    "SigningReader",
    "default_resolution",
    "load",
    "mask_unusable",
    "native_geobox",
    "utm_crs",
]

log = logging.getLogger(__name__)

# odc.stac.load arguments that choose the extent or the grid themselves
_EXTENT_ARGS = ("bbox", "lon", "lat", "x", "y", "geopolygon", "intersects", "anchor", "align")


def _given(odc_kwargs: dict[str, Any], names: Iterable[str]) -> bool:
    """Whether the caller passed any of these odc.stac.load arguments (``None`` is not)."""
    return any(odc_kwargs.get(k) is not None for k in names)


def load(
    items: Iterable[pystac.Item | Mapping[str, Any]],
    bands: str | Sequence[str] | None = None,
    *,
    crs: Any = None,
    resolution: float | None = None,
    groupby: Any = "capture",
    chunks: Mapping[str, int | Literal["auto"]] | None = None,
    auth: AxelGlobeAuth | None = None,
    share_token: bool = True,
    **odc_kwargs: Any,
) -> xr.Dataset:
    """Load grus-1 items into an :class:`xarray.Dataset` with :func:`odc.stac.load`.

    Pixels are read from storage through presigned URLs that are resolved when each chunk
    is read (on the dask worker doing it) and again when they expire, so a lazy load
    (``chunks={}``) can be computed any time later. The token is fetched (or read from the
    token cache) before this returns, so credentials are checked up front and dask workers
    on this machine find it in the shared cache; with a ``distributed`` client active, its
    workers get it (and its renewals) from this process.

    Args:
        items: pystac Items, an ItemCollection, a search (its pages are read), item dicts or
            a FeatureCollection dict.
        bands: asset keys or aliases: ``band0``..``band5`` or ``pan``, ``blue``, ``green``,
            ``red``, ``rededge``, ``nir``; ``msi_udm`` (alias ``udm``/``mask``); ``tci`` (three
            bands ``tci_red``/``tci_green``/``tci_blue``, or ``tci.1``..``tci.3``). Default:
            all of them.
        crs: output CRS. Default: the UTM zone of the items (an error if they span zones).
        resolution: output pixel size in CRS units. Default: 5 m, or 2.5 m when only
            ``pan``/``tci`` bands are asked for. Pixel edges fall on multiples of it (odc's
            ``anchor="edge"``), the native grid of the COGs.
        groupby: ``"capture"`` (default): one time slice per ``ag:capture_id``, its tiles
            mosaicked, with a ``capture_id`` coordinate. Items without the property: tiles
            of one ``platform`` whose datetimes follow each other within
            :data:`CAPTURE_WINDOW` seconds are one capture (``capture_id`` ``""``). Or
            anything :func:`odc.stac.load` takes (``"time"``, ``"solar_day"``, ``"id"``, a
            property name, a callable).
        chunks: dask chunks, e.g. ``{}`` or ``{"x": 2048, "y": 2048}``; ``None`` loads now,
            as many chunks at once as dask's thread count (``pool=None``: one at a time).
        auth: the :class:`~pystac_axelglobe.auth.AxelGlobeAuth` to use. Default: one built
            from the ``AXELGLOBE_*`` environment.
        share_token: with a ``distributed`` client active, hand the token (never the
            secret) to its workers and renew it for them from here
            (:func:`pystac_axelglobe.cluster.share_token`); ``False``: the workers get
            tokens themselves (their own ``AXELGLOBE_CLIENT_SECRET`` or a shared cache).
        **odc_kwargs: passed on to :func:`odc.stac.load` (``bbox=``, ``geobox=``,
            ``resampling=``, ``pool=``, ``stac_cfg=`` merged over :data:`GRUS1_STAC_CFG`...),
            except ``min_validity=`` (seconds a presigned URL must still be valid when a
            chunk read starts; default 30), which goes to :class:`AxelGlobeDriver`.

    Returns:
        The dataset; integer bands keep their dtype and nodata (0), see :func:`mask_unusable`.

    Raises:
        ConfigurationError: no items, items of another collection (without ``stac_cfg=``),
            an unknown band, a resolution that is not a positive number, a CRS pyproj does
            not know, items in several UTM zones without ``crs=``, ``patch_url=``/``driver=``
            (the loader signs URLs itself), or missing credentials; all before any request.
        AssetError: when pixels are read (now, or at ``compute()``): an asset the API or
            storage refuses, or storage that does not answer within the read bounds
            (see :data:`GDAL_OPTIONS`); unless ``fail_on_error=False``.

    Example:
        >>> ds = load(items, bands=["red", "nir"], chunks={})  # doctest: +SKIP
        >>> ds.red.isel(time=0).compute()  # doctest: +SKIP
    """
    import odc.stac

    item_list, band_list = checked(items, bands, crs, resolution, odc_kwargs)
    # no grid and no extent asked for: _grid loads the items' whole extent
    whole = not _given(odc_kwargs, ("geobox", "like", *_EXTENT_ARGS))
    crs, resolution = _grid(item_list, band_list, crs, resolution, odc_kwargs)
    if auth is None:
        auth = default_auth()  # the last ag.open()'s, else from the environment
    # Credentials are checked now, not on the first chunk read; and the token lands in the
    # shared cache, where dask workers on this machine pick it up.
    auth.provider.token()
    if share_token:
        _share_with_cluster(auth)
    cfg, driver = _reader(auth, item_list, band_list, odc_kwargs)
    if chunks is None:
        _read_now(auth, driver, item_list, whole, odc_kwargs)

    captures: list[str] | None = None
    if groupby == "capture":
        key = capture_key(item_list)
        groupby = key
        captures = [shown(cid) for _, cid in sorted({key(i, None, 0) for i in item_list})]

    ds = odc.stac.load(
        item_list, band_list, crs=crs, resolution=resolution, groupby=groupby,
        chunks=None if chunks is None else dict(chunks), stac_cfg=cfg, driver=driver,
        **odc_kwargs,
    )
    if captures is not None and ds.sizes.get("time") == len(captures):
        ds = ds.assign_coords(capture_id=("time", captures))
    return ds


def _grid(items: list[pystac.Item], bands: list[str] | None, crs: Any, resolution: Any,
          odc_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The ``crs=`` and ``resolution=`` for odc-stac; the native grid as ``geobox=`` if none."""
    if _given(odc_kwargs, ("geobox", "like")):
        return crs, resolution
    if crs is None:
        crs = utm_crs(items)
    if resolution is None:
        resolution = default_resolution(bands)
    if not _given(odc_kwargs, _EXTENT_ARGS):
        # no extent asked for: exactly the tiles' extent on the native grid
        odc_kwargs["geobox"] = native_geobox(items, crs, resolution)
        return None, None
    return crs, resolution


def _reader(auth: AxelGlobeAuth, items: list[pystac.Item], bands: list[str] | None,
            odc_kwargs: dict[str, Any]) -> tuple[dict[str, Any], AxelGlobeDriver]:
    """The ``stac_cfg=`` and the driver that reads for odc-stac (their arguments popped)."""
    cfg: dict[str, Any] = {**GRUS1_STAC_CFG, **(odc_kwargs.pop("stac_cfg", None) or {})}
    with_properties = odc_kwargs.pop("with_properties", None)
    if with_properties is not None:
        cfg["with_properties"] = list(with_properties)
    min_validity = float(odc_kwargs.pop("min_validity", DEFAULT_MIN_VALIDITY))
    parser = Grus1Parser(cfg)
    # The asset keys the load reads: its first read resolves all their hrefs side by side.
    driver = AxelGlobeDriver(auth, md_parser=parser, min_validity=min_validity,
                             assets=assets_read(items, bands, parser))
    return cfg, driver


def _read_now(auth: AxelGlobeAuth, driver: AxelGlobeDriver, items: list[pystac.Item],
              whole: bool, odc_kwargs: dict[str, Any]) -> None:
    """Set an eager load up to hide its round trips: reads side by side, redirects started.

    odc-stac reads an eager load's chunks one after another unless given a ``pool``: over a
    network each read then waits out its own round trips. And since this process reads right
    away, the redirects of its first reads start now, while odc-stac parses the items (tens
    of ms), instead of in front of the first read. Only for a load of the items' whole
    extent: with ``bbox=`` and the like, some tiles are not read at all.
    """
    odc_kwargs.setdefault("pool", dask.system.CPU_COUNT)
    if whole and driver.assets:
        prefetch(first_reads(items, driver.assets, PREFETCH_AHEAD), auth=auth,
                 min_validity=driver.min_validity)


def _share_with_cluster(auth: AxelGlobeAuth) -> None:
    """With a distributed client active, its workers get this token (see :mod:`.cluster`)."""
    from . import cluster

    client = cluster.active_client()
    if client is None:
        return
    try:
        cluster.share_token(client, auth)
    except Exception as err:  # the scheduler's comms raise anything; the load itself is fine
        log.warning("could not share the token with the dask workers (%s): workers without "
                    "AXELGLOBE_CLIENT_SECRET will fail to read; see pystac_axelglobe.cluster."
                    "share_token", redact(str(err)) or type(err).__name__)


def mask_unusable(ds: xr.Dataset, mask: str | None = None) -> xr.Dataset:
    """Blank unusable pixels: where the mask is not 0, every other band becomes NaN.

    Integer bands become float32, with NaN for unusable pixels (mask != 0, which includes
    the mask's 255 outside every tile) and for their own nodata pixels; the mask variable is
    dropped. Works lazily on dask-backed datasets.

    Args:
        ds: a dataset from :func:`load` that includes the mask (``msi_udm``, ``udm`` or
            ``mask``).
        mask: the name of the mask variable, if it is none of those.

    Raises:
        ConfigurationError: no mask variable in ``ds``; load it with the other bands.

    Example:
        >>> ds = load(items, bands=["red", "nir", "udm"])  # doctest: +SKIP
        >>> clean = mask_unusable(ds)  # doctest: +SKIP
    """
    names = [mask] if mask else [MASK_ASSET, *MASK_ALIASES]
    found = [n for n in names if n in ds.data_vars]
    if not found:
        raise ConfigurationError(
            f"no mask in the dataset (looked for {', '.join(names)}); load it too, e.g. "
            "load(items, bands=['red', 'nir', 'udm'])"
        )
    udm = ds[found[0]]
    usable = udm == 0
    out = {}
    for name, var in ds.data_vars.items():
        if name in found:
            continue
        valid = usable
        nodata = var.attrs.get("nodata")
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
            valid = valid & (var != nodata)
        dtype = var.dtype if np.issubdtype(var.dtype, np.floating) else np.float32
        masked = var.astype(dtype).where(valid)
        masked.attrs = {**var.attrs, "nodata": float("nan")}
        out[name] = masked
    result: xr.Dataset = ds.drop_vars(found).assign(out)
    return result
