"""The reader driver of :func:`pystac_axelglobe.load`: asset hrefs signed when a chunk is read.

:class:`AxelGlobeDriver` is an odc-loader reader driver: odc-stac hands it each asset band to
read, with the asset's href (on the API host). At :meth:`~AxelGlobeDriver.read` time, in the
thread and process doing the read, it resolves the href to a presigned storage URL
(:func:`pystac_axelglobe.presigned.resolve`: cached per process, single-flight, again when it
expires), opens it once per process before concurrent reads (:func:`_open_once`) and reads
with rasterio as odc-loader's ``RioDriver`` does. A read that fails is resolved again and
retried once (the URL may have expired or been refused); one that storage leaves
unanswered is not (a fresh URL would wait just as long). The first read of a load in a
process resolves the load's other hrefs side by side in the background
(:mod:`pystac_axelglobe._load_hrefs`), its own first.

GDAL never sends storage an ``Authorization`` header or a ``HEAD`` request, and every
storage request is bounded in time (:mod:`pystac_axelglobe._gdal`). The driver travels in
the dask graph: it pickles with the API/token URLs, the client id and the token cache
folder, never with the client secret or a token; a worker builds its own auth from those.

Example:
    >>> import odc.stac  # doctest: +SKIP
    >>> driver = AxelGlobeDriver(ag.AxelGlobeAuth(), assets=["band3"])  # doctest: +SKIP
    >>> ds = odc.stac.load(items, bands=["band3"], driver=driver, stac_cfg=GRUS1_STAC_CFG,
    ...                    crs="EPSG:32653", resolution=5)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import rasterio.errors
from odc.loader import RioDriver, RioReader
from odc.loader._rio import rio_read
from odc.stac._mdtools import StacAuxReader

from . import _gdal
from . import presigned as _assets
from ._load_hrefs import HrefRecorder, Recorded, SigningLoad
from ._redact import redact
from .errors import AssetError
from .settings import receiving_cache_dir

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox
    from odc.loader.types import RasterLoadParams, RasterSource

    from .auth import AxelGlobeAuth

__all__ = ["DEFAULT_MIN_VALIDITY", "PREFETCH_AHEAD", "AxelGlobeDriver", "SigningReader"]

log = logging.getLogger("pystac_axelglobe.datacube")  # the logger users know for loads

#: URLs must stay valid this long after they are handed to GDAL for one chunk read.
DEFAULT_MIN_VALIDITY = 30.0
#: How many of a load's hrefs one read hands to the background resolution at most (its own
#: and those read after it): enough for several concurrent rounds, few enough that the
#: URLs of a large load are not resolved long before their reads (they could expire).
PREFETCH_AHEAD = 64


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
        md_parser: the odc-stac metadata parser (``load()`` gives its ``Grus1Parser``).
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

    _recorded: Recorded | None = None  # hrefs the parser saw since the last new_load()

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

        Runs where ``load()`` runs; the result goes into the dask graph, so it must hold
        no secret (see :func:`pystac_axelglobe._gdal.reading_env`).
        """
        return _gdal.reading_env(super().capture_env())

    @property
    def md_parser(self) -> Any:
        """The metadata parser, noting each raster asset href it parses (for prefetching)."""
        if self._md_parser is None:
            return None
        if self._recorded is None:
            self._recorded = Recorded()
        return HrefRecorder(self._md_parser, self._recorded)

    def new_load(self, geobox: GeoBox, *, chunks: dict[str, int] | None = None) -> Any:
        """The state of one load: the hrefs just parsed that it may read, tile by tile."""
        # odc-stac parses a load's items, then calls this: what was recorded since the last
        # call is this load's (two loads built at once on one driver would mix theirs: at
        # worst a few hrefs resolved ahead for nothing, or not ahead).
        recorded, self._recorded = self._recorded or Recorded(), None
        return SigningLoad(geobox, chunks, recorded.within(geobox, self.assets),
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
        if not isinstance(load, SigningLoad) or not self.auth.is_api_url(href):
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
