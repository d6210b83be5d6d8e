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

Example:
    >>> import pystac_axelglobe as ag
    >>> search = ag.open().search(bbox=[133, 35, 137, 36], max_items=4)  # doctest: +SKIP
    >>> ds = ag.load(search.items(), bands=["red", "nir", "udm"], chunks={})  # doctest: +SKIP
    >>> clean = ag.mask_unusable(ds)  # doctest: +SKIP
    >>> ndvi = (clean.nir - clean.red) / (clean.nir + clean.red)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import math
import numbers
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pystac
import rasterio
import rasterio.errors
import xarray as xr
from odc.loader import RioDriver, RioReader
from odc.loader._rio import GlobalContext, rio_read
from odc.stac._mdtools import StacAuxReader, StacMDParser

from . import _gdal
from . import presigned as _assets
from ._gdal import GDAL_OPTIONS
from ._redact import redact
from .auth import default_auth
from .errors import AssetError, ConfigurationError
from .extension import CAPTURE_ID_PROP, GRUS1_BANDS
from .settings import receiving_cache_dir

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox
    from odc.loader.types import RasterLoadParams, RasterSource

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

COLLECTION_ID = "grus-1"
#: Output resolution (metres) unless only 2.5 m bands are asked for.
DEFAULT_RESOLUTION = 5.0
#: Output resolution (metres) when every asked-for band is a 2.5 m one (pan, tci).
PAN_RESOLUTION = 2.5
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
#: URLs must stay valid this long after they are handed to GDAL for one chunk read.
DEFAULT_MIN_VALIDITY = 30.0
#: How many of a load's hrefs one read hands to the background resolution at most (its own
#: and those read after it): enough for several concurrent rounds, few enough that the
#: URLs of a large load are not resolved long before their reads (they could expire).
PREFETCH_AHEAD = 64


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

# --------------------------------------------------------------------------- odc-stac config


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


# --------------------------------------------------------------------------- reading


class _DropReadErrors(logging.Filter):
    """Drop odc-loader's error lines for reads our reader retries (it reports its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_state, "in_read", False) and record.levelno >= logging.ERROR)


_state = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("odc.loader._rio").addFilter(_DropReadErrors())
            _filter_installed = True


@contextmanager
def _reading() -> Iterator[None]:
    _state.in_read = True
    try:
        yield
    finally:
        _state.in_read = False


@dataclasses.dataclass(frozen=True)
class _AuthSpec:
    """What a worker needs to build its own auth: everything but the secret."""

    client_id: str | None
    api_url: str
    token_url: str
    audience: str
    cache_dir: str


_AUTHS: dict[_AuthSpec, AxelGlobeAuth] = {}
_AUTHS_LOCK = threading.Lock()


def _auth_for(spec: _AuthSpec) -> AxelGlobeAuth:
    # One auth per process and spec: its TokenProvider keeps the token in memory, so a
    # worker reads the token cache file once, not once per chunk.
    from .auth import AxelGlobeAuth

    with _AUTHS_LOCK:
        auth = _AUTHS.get(spec)
        if auth is None:
            # The secret, if this machine has one, comes from the worker's environment; the
            # caller's token cache folder is used where it exists (same machine).
            auth = AxelGlobeAuth(client_id=spec.client_id, api_url=spec.api_url,
                                 token_url=spec.token_url, audience=spec.audience,
                                 cache_dir=receiving_cache_dir(spec.cache_dir))
            _AUTHS[spec] = auth
        return auth


# URLs this process has opened once already (an LRU: only memory for the most recent ones).
_OPENED: OrderedDict[str, None] = OrderedDict()
_OPENED_MAX = 4096
_OPENING: dict[str, _Flight] = {}
_OPENED_LOCK = threading.Lock()
# A thread waiting for another's open of the same URL gives up waiting after this long and
# opens it itself (the other's open is bounded by GDAL's read bounds, far below this).
_FLIGHT_WAIT = 900.0


class _Flight:
    """One thread's open of a URL that other threads wait for; its error, if it failed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error = ""


def _open_once(url: str) -> None:
    """Open ``url`` with GDAL once per process before any concurrent read of it.

    Chunks and bands of one asset are read by several threads at once. Each read opens the
    file; GDAL caches its size and header per URL, but only once one open has finished:
    before that every thread sends its own whole-file size probe and header range. So the
    first open of a URL is single-flight; the others wait for it and then read from GDAL's
    cache, or fail with its error at once (a silent storage server costs one timeout, not
    one per waiting thread). Raises what :func:`rasterio.open` raises (the caller
    re-resolves the URL).
    """
    with _OPENED_LOCK:
        if url in _OPENED:
            _OPENED.move_to_end(url)
            return
        flight = _OPENING.get(url)
        leader = flight is None
        if flight is None:
            flight = _OPENING[url] = _Flight()
    if not leader:
        if flight.done.wait(_FLIGHT_WAIT) and not flight.error:
            return
        if flight.error:
            raise rasterio.errors.RasterioIOError(flight.error)
    try:
        with rasterio.open(url, sharing=False):
            pass
    except rasterio.errors.RasterioError as err:
        flight.error = str(err) or type(err).__name__
        raise
    else:
        with _OPENED_LOCK:
            _OPENED[url] = None
            while len(_OPENED) > _OPENED_MAX:
                _OPENED.popitem(last=False)
    finally:
        if leader:
            with _OPENED_LOCK:
                _OPENING.pop(url, None)
            flight.done.set()


class _Recorded:
    """The raster asset hrefs odc-stac parsed for one load, tile by tile, and the footprints.

    What one process saw while building a graph: it does not travel with the driver (a
    pickled one is empty); :meth:`AxelGlobeDriver.new_load` hands it to the load's state.
    """

    def __init__(self) -> None:
        self.tiles: list[dict[str, str]] = []  # per item: asset key -> href
        self.footprints: list[Any] = []  # the items' geometries (GeoJSON), or None
        self._index: dict[int, int] = {}  # id(item) -> its index (items live on meanwhile)

    def __reduce__(self) -> tuple[type[_Recorded], tuple[()]]:
        return (_Recorded, ())

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


class _HrefRecorder:
    """The driver's metadata parser, noting the href of each raster asset odc-stac parses."""

    def __init__(self, parser: Any, recorded: _Recorded) -> None:
        self._parser, self._recorded = parser, recorded

    def extract(self, md: Any) -> Any:  # noqa: D102 - the MDParser protocol's methods
        return self._parser.extract(md)

    def driver_data(self, md: Any, band_key: tuple[str, int]) -> Any:  # noqa: D102
        # odc-stac asks this for every raster band of every item, with the item at hand
        asset = getattr(md, "assets", {}).get(band_key[0])
        if isinstance(asset, pystac.Asset):
            self._recorded.add(md, band_key[0], asset.get_absolute_href() or asset.href)
        return self._parser.driver_data(md, band_key)


class _SigningLoad(GlobalContext):
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


class AxelGlobeDriver(RioDriver):
    """odc-loader reader driver that signs asset hrefs when a chunk is read.

    It reads with rasterio, as odc-loader's :class:`~odc.loader.RioDriver` does, after
    resolving the asset href (on the API host) to a presigned storage URL through
    :func:`pystac_axelglobe.presigned.resolve`; a read that fails is resolved again and retried
    once (the URL may have expired or been refused with 403). Pickles without the client
    secret and without any token.

    Args:
        auth: the auth to resolve hrefs with in this process; workers build their own from
            its settings, minus the secret (see the module docstring).
        md_parser: the odc-stac metadata parser (:class:`Grus1Parser` from :func:`load`).
        min_validity: seconds a presigned URL must still be valid when a read starts.
        assets: the asset keys the loads read (e.g. ``["band3", "band5"]``): the first read
            of a load then resolves the hrefs of all of them side by side. Default: those of
            its own asset only (the driver does not see which bands odc-stac was asked for).

    Example:
        >>> import odc.stac  # doctest: +SKIP
        >>> ds = odc.stac.load(items, bands=["band3"], driver=AxelGlobeDriver(auth),
        ...                    stac_cfg=GRUS1_STAC_CFG, crs="EPSG:32653",
        ...                    resolution=5)  # doctest: +SKIP
    """

    _recorded: _Recorded | None = None  # hrefs the parser saw since the last new_load()

    def __init__(self, auth: AxelGlobeAuth, *, md_parser: Any = None,
                 min_validity: float = DEFAULT_MIN_VALIDITY,
                 assets: Iterable[str] | None = None) -> None:
        super().__init__(md_parser=md_parser, aux_reader=StacAuxReader())
        s = auth.settings
        self._spec = _AuthSpec(s.client_id, s.api_url, s.token_url, s.audience,
                               str(s.cache_dir))
        self._auth: AxelGlobeAuth | None = auth
        self.min_validity = float(min_validity)
        self.assets = None if assets is None else frozenset(assets)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # the live auth holds the secret: a worker builds its own from _spec
        state["_auth"] = None
        # the parser is only used while the graph is built
        state["_md_parser"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        spec = self._spec
        return f"AxelGlobeDriver(client_id={spec.client_id!r}, api_url={spec.api_url!r})"

    @property
    def auth(self) -> AxelGlobeAuth:
        """The auth used for resolving hrefs in this process."""
        if self._auth is None:
            self._auth = _auth_for(self._spec)
        return self._auth

    def capture_env(self) -> dict[str, Any]:
        """GDAL options for the reads: the caller's, bounded, ours on top, no credentials.

        Runs where :func:`load` runs; the result goes into the dask graph, so it must hold
        no secret (see :func:`pystac_axelglobe._gdal.reading_env`).
        """
        return _gdal.reading_env(super().capture_env())

    @property
    def md_parser(self) -> Any:
        """The metadata parser, noting each raster asset href it parses (for prefetching)."""
        if self._md_parser is None:
            return None
        if self._recorded is None:
            self._recorded = _Recorded()
        return _HrefRecorder(self._md_parser, self._recorded)

    def new_load(self, geobox: GeoBox, *, chunks: dict[str, int] | None = None) -> Any:
        """The state of one load: the hrefs just parsed that it may read, tile by tile."""
        # odc-stac parses a load's items, then calls this: what was recorded since the last
        # call is this load's (two loads built at once on one driver would mix theirs: at
        # worst a few hrefs resolved ahead for nothing, or not ahead).
        recorded, self._recorded = self._recorded or _Recorded(), None
        return _SigningLoad(geobox, chunks, recorded.within(geobox, self.assets),
                            every_asset=self.assets is not None)

    @contextmanager
    def restore_env(self, env: dict[str, Any], load_state: Any) -> Iterator[Any]:
        """Enter ``env`` for one read, with every credential option in force here cancelled.

        Runs in the thread (and the dask worker process) that reads, where GDAL would pick
        up ``GDAL_HTTP_HEADERS`` and the like from the process environment or from a
        ``rasterio.Env`` entered in the main thread.
        """
        previous, _state.load = getattr(_state, "load", None), load_state  # for read()
        try:
            with super().restore_env({**env, **_gdal.credential_overrides()},
                                     load_state) as ctx:
                yield ctx
        finally:
            _state.load = previous

    def open(self, src: RasterSource, ctx: Any) -> SigningReader:
        """A reader for one asset band; nothing is resolved or read until ``read``."""
        return SigningReader(src, ctx, self)

    def read(self, src: RasterSource, cfg: RasterLoadParams, dst_geobox: GeoBox, *,
             dst: np.ndarray[Any, Any] | None = None, selection: Any = None,
             ) -> tuple[tuple[slice, slice], np.ndarray[Any, Any]]:
        """Resolve ``src.uri`` to a presigned URL and read the part of ``dst_geobox`` it covers."""
        _install_log_filter()
        href = src.uri
        self._prefetch(href)
        strict = dataclasses.replace(cfg, fail_on_error=True)
        problem = ""
        for attempt in (1, 2):
            try:
                signed = _assets.resolve(href, auth=self.auth, min_validity=self.min_validity)
            except AssetError as err:
                # The API refused the href (404: no such asset, 403: not in the contract,
                # 5xx after retries): not a URL problem, resolving again will not help.
                if cfg.fail_on_error:
                    raise
                problem = str(err)
                break
            started = time.monotonic()
            try:
                with _reading():
                    _open_once(signed.url)
                    return rio_read(src.patch(uri=signed.url), strict, dst_geobox, dst=dst,
                                    selection=selection)
            except rasterio.errors.RasterioError as err:
                error = redact(str(err)).rstrip(". ")
                log.debug("read of %s failed (attempt %d): %s", href, attempt, error)
                if _gdal.is_timeout(error):
                    # Storage is silent or too slow: a fresh URL would wait just as long.
                    problem = (
                        f"storage did not answer in time for {href} ({error}; the bounds: "
                        f"{_gdal.describe_bounds()}). Check the network; for a slow link, "
                        "raise them with rasterio.Env(GDAL_HTTP_TIMEOUT=..., "
                        "GDAL_HTTP_LOW_SPEED_TIME=...) around load()"
                    )
                    break
                # expired, refused (403) or dropped: forget this URL and get a fresh one
                _assets.invalidate(href)
                slow = _gdal.slow_hint(time.monotonic() - started)
                problem = (f"could not read {href} from storage, even with a freshly "
                           f"presigned URL: {error}{slow}. Check that the item is still in "
                           "the archive")
        if cfg.fail_on_error:
            raise AssetError(f"{problem}, or pass fail_on_error=False to skip unreadable "
                             "assets.")
        log.warning("skipping unreadable asset %s: %s", href, problem)
        empty = dst[0:0, 0:0] if dst is not None else np.ndarray((0, 0), dtype=cfg.dtype)
        return np.s_[0:0, 0:0], empty

    def _prefetch(self, href: str) -> None:
        """If ``href`` has no URL here yet, resolve it and the load's other hrefs side by side.

        The first read of a load in a process (and the first after its URLs expired) hands
        :func:`~pystac_axelglobe.presigned.prefetch` its own href, then the load's other
        hrefs in reading order (:data:`PREFETCH_AHEAD` in all, at most): their redirects
        overlap instead of each waiting in front of its own read, its own is sent first,
        and the reads after it, whichever band they are of, find their URLs cached or in
        flight.
        """
        load = getattr(_state, "load", None)
        if not isinstance(load, _SigningLoad) or not self.auth.is_api_url(href):
            return
        if _assets._cached_url(href, self.auth, self.min_validity) is None:
            _assets.prefetch(load.ahead(href, PREFETCH_AHEAD), auth=self.auth,
                             min_validity=self.min_validity)


class SigningReader(RioReader):
    """odc-loader ``RasterReader`` for one asset band; signs at :meth:`read` time."""

    def __init__(self, src: RasterSource, ctx: Any, driver: AxelGlobeDriver) -> None:
        super().__init__(src, ctx)
        self._driver = driver

    def read(self, cfg: RasterLoadParams, dst_geobox: GeoBox, *,
             dst: np.ndarray[Any, Any] | None = None, selection: Any = None,
             ) -> tuple[tuple[slice, slice], np.ndarray[Any, Any]]:
        """See :meth:`AxelGlobeDriver.read`."""
        return self._driver.read(self._src, cfg, dst_geobox, dst=dst, selection=selection)


# --------------------------------------------------------------------------- load


def _as_items(items: Iterable[pystac.Item | Mapping[str, Any]]) -> list[pystac.Item]:
    hint = ("load() takes pystac Items (a search's items(), an ItemCollection), item dicts "
            "or a FeatureCollection dict")
    if isinstance(items, pystac.Item):
        return [items]
    if isinstance(items, (str, bytes)) or not isinstance(items, (Iterable, Mapping)):
        raise ConfigurationError(f"{hint}; got {type(items).__name__}")
    if isinstance(items, Mapping):
        if items.get("type") == "FeatureCollection":
            items = items.get("features", [])
        else:
            items = [items]
    out = []
    for i in items:
        if isinstance(i, pystac.Item):
            out.append(i)
            continue
        if not isinstance(i, Mapping):
            raise ConfigurationError(f"{hint}; got a {type(i).__name__} among them")
        try:
            out.append(pystac.Item.from_dict(dict(i)))
        except Exception as err:  # pystac raises several types for a dict that is no Item
            raise ConfigurationError(f"{hint}; this dict is not a STAC Item: {err!r}") from err
    if not out:
        raise ConfigurationError("no items to load: the search returned nothing; widen the "
                                 "bbox, datetime or filter")
    return out


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


def _known_band_names() -> set[str]:
    names = set(RASTER_ASSETS) | set(MASK_ALIASES) | set(TCI_ALIASES)
    names |= {b.common_name for b in GRUS1_BANDS}
    names |= {f"{TCI_ASSET}.{i}" for i in range(1, len(TCI_ALIASES) + 1)}
    return names


def _check_bands(bands: Sequence[str] | None) -> None:
    if bands is None:
        return
    known = _known_band_names()
    unknown = [b for b in bands if b not in known]
    if unknown:
        raise ConfigurationError(
            f"grus-1 has no band {', '.join(map(repr, unknown))}; use asset keys or aliases "
            f"from: {', '.join(sorted(known))}"
        )


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


#: Tiles of one platform whose datetimes follow each other within this many seconds form one
#: capture, for items without ``ag:capture_id`` (the guide's example item has none). A
#: capture's tiles are taken seconds apart; one satellite's captures, hours or days apart.
CAPTURE_WINDOW = 60.0


def _when(item: pystac.Item) -> dt.datetime | None:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _capture_ids(items: Sequence[pystac.Item]) -> dict[str, str]:
    """Item id -> capture: ``ag:capture_id``, else the fallback of :data:`CAPTURE_WINDOW`.

    A capture found by the fallback is named ``"~<platform>@<first datetime>"`` here; an
    item without a datetime stays its own capture. Items without the property that lie
    within the window of an item with it (same platform) join that item's capture.
    """
    out: dict[str, str] = {}
    runs: dict[str, list[tuple[dt.datetime, pystac.Item]]] = {}
    for item in items:
        value = item.properties.get(CAPTURE_ID_PROP)
        when = _when(item)
        if value:
            out[item.id] = str(value)
        elif when is None:
            out[item.id] = f"~item:{item.id}"
        if when is not None:
            platform = str(item.properties.get("platform") or "")
            runs.setdefault(platform, []).append((when, item))
    window = dt.timedelta(seconds=CAPTURE_WINDOW)
    for platform, timed in runs.items():
        timed.sort(key=lambda pair: pair[0])
        run = timed[:1]
        for pair in timed[1:]:
            if pair[0] - run[-1][0] > window:
                _name_run(run, platform, out)
                run = []
            run.append(pair)
        _name_run(run, platform, out)
    return out


def _name_run(run: list[tuple[dt.datetime, pystac.Item]], platform: str,
              out: dict[str, str]) -> None:
    # The items of one run without ag:capture_id take the id of the nearest item with one;
    # a run without any is one capture of its own.
    named = [(when, out[item.id]) for when, item in run if item.id in out]
    for when, item in run:
        if item.id in out:
            continue
        if named:
            out[item.id] = min(named, key=lambda pair: abs(pair[0] - when))[1]
        else:
            out[item.id] = f"~{platform}@{run[0][0].isoformat()}"


def _capture_key(items: Sequence[pystac.Item]) -> Any:
    """A groupby key: one group per capture, ordered by the capture's first tile's time."""
    captures = _capture_ids(items)
    starts: dict[str, dt.datetime] = {}
    for item in items:
        when = _when(item)
        if when is not None:
            cid = captures[item.id]
            starts[cid] = min(starts.get(cid, when), when)

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

    def key(item: pystac.Item, parsed: Any, idx: int) -> tuple[dt.datetime, str]:
        cid = captures.get(item.id) or _capture_ids([item])[item.id]
        return (starts.get(cid, epoch), cid)

    return key


def _shown(capture: str) -> str:
    # The capture_id coordinate: the id, or "" for a capture found by the fallback (an id
    # made up here would look like AxelGlobe's and match nothing in a search).
    return "" if capture.startswith("~") else capture


def _assets_read(items: Sequence[pystac.Item], bands: list[str] | None,
                 parser: Grus1Parser) -> frozenset[str] | None:
    """The asset keys odc-stac reads for ``bands``, as odc-stac resolves them; ``None``: unsure.

    Example:
        >>> parser = Grus1Parser(GRUS1_STAC_CFG)
        >>> sorted(_assets_read(items, ["red", "udm"], parser))  # doctest: +SKIP
        ['band3', 'msi_udm']
    """
    from odc.stac import parse_item

    try:  # odc-stac takes the bands of the first item's collection too
        collection = parse_item(items[0], md_plugin=parser).collection
        return frozenset(collection.band_key(band)[0]
                         for band in collection.normalize_band_query(bands))
    except Exception:  # a band odc-stac does not know: it says so itself, in a moment
        return None


# odc.stac.load arguments that choose the extent or the grid themselves
_EXTENT_ARGS = ("bbox", "lon", "lat", "x", "y", "geopolygon", "intersects", "anchor", "align")


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
        items: pystac Items (or item dicts / a FeatureCollection dict), e.g. a search result.
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
        chunks: dask chunks, e.g. ``{}`` or ``{"x": 2048, "y": 2048}``; ``None`` loads now.
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

    for arg in ("patch_url", "driver"):
        if odc_kwargs.get(arg) is not None:
            raise ConfigurationError(
                f"{arg}= is not supported by pystac_axelglobe.load: it signs asset URLs itself "
                "when each chunk is read; call odc.stac.load directly for a custom "
                f"{arg} (with driver=AxelGlobeDriver(auth) for signing)"
            )
        odc_kwargs.pop(arg, None)
    item_list = _as_items(items)
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
    user_cfg = odc_kwargs.pop("stac_cfg", None)
    if user_cfg is None:
        _check_collection(item_list)
        _check_bands(band_list)

    grid_given = any(odc_kwargs.get(k) is not None for k in ("geobox", "like"))
    if not grid_given:
        if crs is None:
            crs = utm_crs(item_list)
        if resolution is None:
            resolution = default_resolution(band_list)
        if not any(odc_kwargs.get(k) is not None for k in _EXTENT_ARGS):
            # no extent asked for: exactly the tiles' extent on the native grid
            odc_kwargs["geobox"] = native_geobox(item_list, crs, resolution)
            crs = resolution = None

    if auth is None:
        auth = default_auth()  # the last ag.open()'s, else from the environment
    # Credentials are checked now, not on the first chunk read; and the token lands in the
    # shared cache, where dask workers on this machine pick it up.
    auth.provider.token()
    if share_token:
        _share_with_cluster(auth)

    cfg: dict[str, Any] = {**GRUS1_STAC_CFG, **(user_cfg or {})}
    with_properties = odc_kwargs.pop("with_properties", None)
    if with_properties is not None:
        cfg["with_properties"] = list(with_properties)
    min_validity = float(odc_kwargs.pop("min_validity", DEFAULT_MIN_VALIDITY))
    parser = Grus1Parser(cfg)
    driver = AxelGlobeDriver(auth, md_parser=parser, min_validity=min_validity,
                             assets=_assets_read(item_list, band_list, parser))

    captures: list[str] | None = None
    if groupby == "capture":
        key = _capture_key(item_list)
        groupby = key
        captures = [_shown(cid) for _, cid in sorted({key(i, None, 0) for i in item_list})]

    ds = odc.stac.load(
        item_list, band_list, crs=crs, resolution=resolution, groupby=groupby,
        chunks=None if chunks is None else dict(chunks), stac_cfg=cfg, driver=driver,
        **odc_kwargs,
    )
    if captures is not None and ds.sizes.get("time") == len(captures):
        ds = ds.assign_coords(capture_id=("time", captures))
    return ds


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
