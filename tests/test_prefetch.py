"""Signing off the critical path: a load resolves its hrefs side by side, ahead of the reads.

Each asset href of a load answers one redirect from the API; over a wide-area link that is a
round trip of waiting in front of the asset's first read. The first read of an asset in a
process starts a background resolution of the same asset of every tile of the load (bounded,
single-flight with the reads), so the redirects overlap. The tests put :class:`CountingProxy`
in front of the emulator's API (the items' hrefs and the auth's ``api_url`` point at it) and
count what reaches it: how many redirect requests were in flight at once, and for which hrefs.
"""

from __future__ import annotations

import http.client
import http.server
import pickle
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dask
import dask.system
import numpy as np
import odc.stac
import pystac
import pytest
import rasterio

import pystac_axelglobe as ag
from pystac_axelglobe import presigned
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import AssetError, ConfigurationError
from tests.fake_api import LoopbackHTTPServer

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]

BIG_CAPTURE = "oj4TNU2QPeNoH3fz"  # 8 tiles (see emulator/archive.py)
BANDS = {"red": "band3", "nir": "band5"}
DASK_THREADS = 2


class CountingProxy:
    """An HTTP server on 127.0.0.1 that forwards each GET to ``upstream`` and counts them.

    ``peak``: the most requests it was answering at once; ``paths``: every path asked for.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the API

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner._forward(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = self.origin + parts.path

    def _forward(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.paths.append(handler.path)
        try:
            upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            upstream.request("GET", handler.path, headers=headers)
            answer = upstream.getresponse()
            body = answer.read()
            upstream.close()
        finally:
            with self._lock:
                self.in_flight -= 1
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def reset(self) -> None:
        with self._lock:
            self.peak = 0
            self.paths.clear()

    def __enter__(self) -> CountingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _capture(emu: Emulator, capture_id: str = BIG_CAPTURE) -> list[pystac.Item]:
    found = [i for i in emu.items() if i.properties.get("ag:capture_id") == capture_id]
    assert len(found) > 1
    return found


def _through(proxy: CountingProxy, emu: Emulator, items: list[pystac.Item]) -> list[pystac.Item]:
    """Clones of ``items`` whose hrefs go through the proxy."""
    api_origin = emu.api_url[: emu.api_url.index("/", len("http://"))]
    out = []
    for item in items:
        clone = item.clone()
        clone.set_self_href(None)
        for asset in clone.assets.values():
            asset.href = asset.href.replace(api_origin, proxy.origin, 1)
        out.append(clone)
    return out


def _auth(emu: Emulator, api_url: str | None = None) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=api_url or emu.api_url,
                            token_url=emu.token_url, audience=emu.audience)


def _expected(emu: Emulator, items: list[pystac.Item], asset: str, var: Any) -> Any:
    """The source COGs of ``items`` pasted onto the grid of ``var`` (one time slice)."""
    assert emu.archive is not None
    gbox = var.odc.geobox
    out = np.zeros(gbox.shape, dtype=var.dtype)
    for item in items:
        with rasterio.open(emu.archive.assets(item.id)[asset]) as src:
            r = round((gbox.transform.f - src.transform.f) / src.res[1])
            c = round((src.transform.c - gbox.transform.c) / src.res[0])
            out[r:r + src.height, c:c + src.width] = src.read(1)
    return out


def _redirect_paths(proxy: CountingProxy) -> Counter[str]:
    return Counter(p for p in proxy.paths if p.endswith(".tif"))


def _wait_for_prefetch_threads(seconds: float = 30) -> None:
    """Until the background resolutions are done (they end when their queue is empty)."""
    deadline = time.monotonic() + seconds
    while any(t.name == "ag-prefetch" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "prefetch threads still running"
        time.sleep(0.05)


@pytest.fixture
def slow_api() -> Iterator[tuple[Emulator, CountingProxy]]:
    """An emulator whose API answers after 0.2 s, behind a counting proxy."""
    with Emulator(api_latency=0.2) as emu, CountingProxy(emu.api_url) as proxy:
        yield emu, proxy
        _wait_for_prefetch_threads()  # none left asking a proxy that is gone


@pytest.fixture(autouse=True)
def two_dask_threads() -> Iterator[None]:
    """Fewer dask threads than assets: without prefetching, as many redirects at once."""
    with dask.config.set(scheduler="threads", num_workers=DASK_THREADS):
        yield


def test_cold_load_resolves_its_hrefs_side_by_side_once_each(
    slow_api: tuple[Emulator, CountingProxy],
) -> None:
    emu, proxy = slow_api
    tiles = _capture(emu)
    items = _through(proxy, emu, tiles)
    n_assets = len(items) * len(BANDS)
    assert n_assets > 4 * DASK_THREADS
    ds = ag.load(items, bands=list(BANDS), chunks={}, auth=_auth(emu, proxy.url))
    emu.reset_counters()
    proxy.reset()

    ds = ds.compute()

    # every href asked once (no prefetch racing a read for the same href), many at a time
    redirects = _redirect_paths(proxy)
    assert len(redirects) == n_assets and set(redirects.values()) == {1}
    assert emu.counters.redirects == n_assets
    assert proxy.peak >= 4, f"at most {proxy.peak} redirect requests in flight at once"
    for name, asset in BANDS.items():
        np.testing.assert_array_equal(ds[name].isel(time=0).values,
                                      _expected(emu, tiles, asset, ds[name]))


def test_the_first_read_resolves_every_band_of_the_load_at_once() -> None:
    # One dask thread: the tasks of the two bands run one after the other. The first read
    # resolves the hrefs of both, side by side, not those of its own band only. (The API
    # answers after 1 s, so that all of them are in flight together even on a busy machine.)
    with Emulator(api_latency=1.0) as emu, CountingProxy(emu.api_url) as proxy:
        items = _through(proxy, emu, _capture(emu))
        ds = ag.load(items, bands=list(BANDS), chunks={}, auth=_auth(emu, proxy.url))
        proxy.reset()

        with dask.config.set(num_workers=1):
            ds.compute()

        redirects = _redirect_paths(proxy)
        assert len(redirects) == len(items) * len(BANDS) and set(redirects.values()) == {1}
        assert proxy.peak > len(items), f"at most {proxy.peak} redirect requests at once"
        _wait_for_prefetch_threads()


def test_a_read_asks_for_its_own_href_and_its_tiles_other_bands_first(
    slow_api: tuple[Emulator, CountingProxy], monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    ds = ag.load(items, bands=list(BANDS), chunks={}, auth=_auth(emu, proxy.url))
    proxy.reset()
    monkeypatch.setattr(presigned, "PREFETCH_CONCURRENCY", 1)  # the queue's order, visible

    with dask.config.set(num_workers=1):
        ds.compute()

    # the read's own href (not a sibling queued before it), and the other band of its
    # tile, which the next task reads first
    first_two = {p.rsplit("/", 1)[1] for p in proxy.paths[:2]}
    tile = {name.rsplit("_", 1)[0] for name in first_two}
    assert len(tile) == 1 and {n.rsplit("_", 1)[1] for n in first_two} == {
        f"{asset}.tif" for asset in BANDS.values()}, proxy.paths[:3]
    assert set(_redirect_paths(proxy).values()) == {1}


def test_only_the_bands_asked_for_are_resolved(
    slow_api: tuple[Emulator, CountingProxy],
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    ds = ag.load(items, bands=["red", "udm", "tci_green"], chunks={},
                 auth=_auth(emu, proxy.url))
    proxy.reset()

    ds.compute()
    _wait_for_prefetch_threads()

    # aliases resolved as odc-stac resolves them: red -> band3, udm -> msi_udm, tci_* -> tci
    suffixes = Counter(p.rsplit("_", 1)[1] for p in _redirect_paths(proxy))
    assert suffixes == {"band3.tif": len(items), "udm.tif": len(items),
                        "tci.tif": len(items)}


def test_pixels_equal_a_load_without_prefetch(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiles = _capture(emulator)
    auth = _auth(emulator)
    with_prefetch = ag.load(tiles, bands=list(BANDS), chunks={"x": 256, "y": 256},
                            auth=auth).compute()
    presigned._cache.clear()
    monkeypatch.setattr(presigned, "PREFETCH_CONCURRENCY", 0)  # off: each read resolves
    before = emulator.counters.redirects

    without = ag.load(tiles, bands=list(BANDS), chunks={"x": 256, "y": 256},
                      auth=auth).compute()

    assert emulator.counters.redirects - before == len(tiles) * len(BANDS)
    for name in BANDS:
        np.testing.assert_array_equal(with_prefetch[name].values, without[name].values)


def test_expired_urls_are_resolved_again_side_by_side() -> None:
    # URLs live 6 s, so are stale 3 s after they were resolved (half their life)
    with Emulator(api_latency=0.2, presign_lifetime=6) as emu, \
            CountingProxy(emu.api_url) as proxy:
        tiles = _capture(emu)
        items = _through(proxy, emu, tiles)
        n_assets = len(items) * len(BANDS)
        ds = ag.load(items, bands=list(BANDS), chunks={}, auth=_auth(emu, proxy.url))
        first = ds.compute()
        proxy.reset()
        time.sleep(3.2)

        later = ds.compute()

        redirects = _redirect_paths(proxy)
        assert len(redirects) == n_assets and set(redirects.values()) == {1}
        assert proxy.peak >= 4
        for name in BANDS:
            np.testing.assert_array_equal(first[name].values, later[name].values)
        assert emu.counters.storage_requests_with_authorization == 0


def test_graph_carries_hrefs_never_presigned_urls_or_tokens(
    slow_api: tuple[Emulator, CountingProxy],
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    auth = _auth(emu, proxy.url)
    ds = ag.load(items, bands=list(BANDS), chunks={}, auth=auth)
    ds.compute()  # every URL resolved and cached in this process
    token = auth.provider.token().access_token

    blob = pickle.dumps(ds)

    assert items[0].assets["band3"].href.encode() in blob
    for secret in (token, emu.client_secret, "X-Amz-Signature", "X-Amz-Credential",
                   urlsplit(emu.storage_url).netloc):
        assert secret.encode() not in blob, secret

    # a worker: another process with the graph and no URL yet resolves them side by side
    presigned._cache.clear()
    proxy.reset()
    clone = pickle.loads(blob)
    out = clone.compute()
    assert proxy.peak >= 4
    assert len(_redirect_paths(proxy)) == len(items) * len(BANDS)
    np.testing.assert_array_equal(out.red.values, ds.red.compute().values)


def test_an_href_the_api_does_not_have_fails_only_its_read(
    slow_api: tuple[Emulator, CountingProxy], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu, proxy = slow_api
    tiles = _capture(emu)
    items = _through(proxy, emu, tiles)
    gone = items[3].assets["band3"]
    gone.href = gone.href.replace("_band3.tif", "_removed.tif")  # the API answers 404
    auth = _auth(emu, proxy.url)

    with pytest.raises(AssetError) as prefetched:
        ag.load(items, bands=list(BANDS), chunks={}, auth=auth).compute()
    presigned._cache.clear()
    monkeypatch.setattr(presigned, "PREFETCH_CONCURRENCY", 0)
    with pytest.raises(AssetError) as unprefetched:
        ag.load(items, bands=list(BANDS), chunks={}, auth=auth).compute()
    monkeypatch.undo()

    # the same error as without prefetching: the read that needs the href reports it
    assert str(prefetched.value) == str(unprefetched.value)
    assert "HTTP 404" in str(prefetched.value) and "_removed.tif" in str(prefetched.value)

    # and the other reads go on: with fail_on_error=False only that tile is missing
    presigned._cache.clear()
    proxy.reset()
    ds = ag.load(items, bands=list(BANDS), chunks={}, auth=auth, fail_on_error=False).compute()
    others = tiles[:3] + tiles[4:]
    np.testing.assert_array_equal(ds.red.isel(time=0).values,
                                  _expected(emu, others, "band3", ds.red))
    np.testing.assert_array_equal(ds.nir.isel(time=0).values,
                                  _expected(emu, tiles, "band5", ds.nir))
    redirects = _redirect_paths(proxy)
    assert redirects[urlsplit(gone.href).path] <= 2  # by the prefetch, and by its read
    assert all(n == 1 for path, n in redirects.items() if "_removed" not in path)
    assert "skipping unreadable asset" in caplog.text


def test_a_load_of_part_of_the_tiles_resolves_only_theirs(emulator: Emulator) -> None:
    tiles = _capture(emulator)
    inside = tiles[0]
    assert inside.bbox is not None
    west, south, east, north = inside.bbox
    # a small box in the middle of one tile: odc-stac reads that tile only
    box = [west + (east - west) * 0.4, south + (north - south) * 0.4,
           west + (east - west) * 0.6, south + (north - south) * 0.6]
    ds = ag.load(tiles, bands=list(BANDS), bbox=box, chunks={}, auth=_auth(emulator))
    before = emulator.counters.redirects

    ds.compute()
    _wait_for_prefetch_threads()

    assert emulator.counters.redirects - before == len(BANDS)  # not one per tile


def test_an_eager_load_starts_its_redirects_before_odc_stac_reads(
    slow_api: tuple[Emulator, CountingProxy], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An eager load reads in this process right away: its redirects go out while odc-stac
    # parses the items, not in front of the first read. Here odc-stac starts only once the
    # API has been asked for every href (or after 10 s, when the test fails).
    emu, proxy = slow_api
    tiles = _capture(emu)
    items = _through(proxy, emu, tiles)
    n_assets = len(items) * len(BANDS)
    real_load = odc.stac.load
    asked_before_odc_stac: list[int] = []

    def load_when_asked(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 10
        while len(_redirect_paths(proxy)) < n_assets and time.monotonic() < deadline:
            time.sleep(0.01)
        asked_before_odc_stac.append(len(_redirect_paths(proxy)))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(odc.stac, "load", load_when_asked)
    ds = ag.load(items, bands=list(BANDS), auth=_auth(emu, proxy.url))

    assert asked_before_odc_stac == [n_assets]
    assert set(_redirect_paths(proxy).values()) == {1}  # the reads waited for those
    for name, asset in BANDS.items():
        np.testing.assert_array_equal(ds[name].isel(time=0).values,
                                      _expected(emu, tiles, asset, ds[name]))


def test_an_eager_load_of_part_of_the_tiles_resolves_only_theirs(emulator: Emulator) -> None:
    tiles = _capture(emulator)
    west, south, east, north = tiles[0].bbox or [0.0] * 4
    box = [west + (east - west) * 0.4, south + (north - south) * 0.4,
           west + (east - west) * 0.6, south + (north - south) * 0.6]
    before = emulator.counters.redirects

    ag.load(tiles, bands=list(BANDS), bbox=box, auth=_auth(emulator))
    _wait_for_prefetch_threads()

    assert emulator.counters.redirects - before == len(BANDS)  # not one per tile


def test_an_eager_load_reads_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    # odc-stac reads an eager load's chunks one after another unless given a pool; load()
    # gives it one (dask's thread count), and pool=None still means one at a time.
    monkeypatch.setattr(dask.system, "CPU_COUNT", 4)
    with Emulator(storage_latency=0.2) as emu:
        tiles = _capture(emu)
        for pool, most in ((None, 1), ("default", 2)):
            presigned._cache.clear()
            emu.reset_counters()
            kwargs: dict[str, Any] = {} if pool == "default" else {"pool": pool}

            ds = ag.load(tiles, bands=list(BANDS), auth=_auth(emu), **kwargs)

            seen = emu.counters.storage_in_flight_most
            assert seen == most if pool is None else seen >= most, (pool, seen)
            for name, asset in BANDS.items():
                np.testing.assert_array_equal(ds[name].isel(time=0).values,
                                              _expected(emu, tiles, asset, ds[name]))
        _wait_for_prefetch_threads()


def test_resolve_many_is_bounded_single_flight_and_in_order(
    slow_api: tuple[Emulator, CountingProxy],
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    hrefs = [i.assets["band3"].href for i in items]
    auth = _auth(emu, proxy.url)
    auth.provider.token()
    presigned.resolve(hrefs[0], auth=auth)  # cached: not asked again
    proxy.reset()

    urls = presigned.resolve_many(hrefs + hrefs[:3], auth=auth, max_workers=4)

    assert list(urls) == hrefs
    assert all(u.url.startswith(emu.storage_url) for u in urls.values())
    assert sorted(_redirect_paths(proxy)) == sorted(urlsplit(h).path for h in hrefs[1:])
    assert 2 <= proxy.peak <= 4
    # and the same URLs are what resolve() now answers, without a request
    proxy.reset()
    assert presigned.resolve(hrefs[5], auth=auth) == urls[hrefs[5]]
    assert proxy.paths == []


def test_resolve_many_raises_the_first_failure_in_order(
    slow_api: tuple[Emulator, CountingProxy],
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    hrefs = [i.assets[k].href for i in items for k in BANDS.values()]
    hrefs[1] = hrefs[1].replace("_band5.tif", "_removed.tif")

    with pytest.raises(AssetError, match=r"HTTP 404.*no such asset") as info:
        presigned.resolve_many(hrefs, auth=_auth(emu, proxy.url), max_workers=2)

    assert "_removed.tif" in str(info.value)
    # the hrefs after the failure that were not sent yet are not sent at all
    assert len(_redirect_paths(proxy)) < len(hrefs)


@pytest.mark.parametrize(("hrefs", "kwargs", "words"), [
    (["file:///tmp/x.tif"], {}, "only http(s) asset hrefs"),
    ("http://127.0.0.1:9/x.tif", {}, "not one string"),
    (["http://127.0.0.1:9/x.tif"], {"max_workers": 0}, "max_workers must be a positive"),
    (["http://127.0.0.1:9/x.tif"], {"timeout": -1}, "timeout must be a positive"),
])
def test_resolve_many_refuses_bad_input_before_sending(
    emulator: Emulator, hrefs: Any, kwargs: dict[str, Any], words: str
) -> None:
    before = emulator.counters.as_dict()
    good = _capture(emulator)[0].assets["band3"].href
    many = hrefs if isinstance(hrefs, str) else [good, *hrefs]

    with pytest.raises((AssetError, ConfigurationError), match=words.replace("(", r"\(")
                       .replace(")", r"\)")):
        presigned.resolve_many(many, auth=_auth(emulator), **kwargs)

    assert emulator.counters.as_dict() == before


def test_prefetch_is_bounded_and_its_threads_end(
    slow_api: tuple[Emulator, CountingProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    hrefs = [i.assets[k].href for i in items for k in BANDS.values()]
    hrefs.append(hrefs[0].replace("_band3.tif", "_removed.tif"))
    auth = _auth(emu, proxy.url)
    auth.provider.token()
    monkeypatch.setattr(presigned, "PREFETCH_CONCURRENCY", 3)

    queued = presigned.prefetch(hrefs, auth=auth)
    again = presigned.prefetch(hrefs, auth=auth)  # queued already: not twice

    assert (queued, again) == (len(hrefs), 0)
    _wait_for_prefetch_threads()  # they end by themselves once the queue is empty
    assert proxy.peak == 3
    assert len(proxy.paths) == len(hrefs)
    # resolved ones are cached; the failed one is not (its reader asks again, and reports)
    assert all(presigned._cached_url(h, auth, 30) is not None for h in hrefs[:-1])
    assert presigned._cached_url(hrefs[-1], auth, 30) is None


def test_prefetch_does_not_wait_for_an_href_another_thread_is_resolving(
    slow_api: tuple[Emulator, CountingProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, proxy = slow_api
    items = _through(proxy, emu, _capture(emu))
    first, second = (i.assets["band3"].href for i in items[:2])
    auth = _auth(emu, proxy.url)
    auth.provider.token()
    monkeypatch.setattr(presigned, "PREFETCH_CONCURRENCY", 1)
    reader = threading.Thread(target=presigned.resolve, args=(first,), kwargs={"auth": auth})
    reader.start()
    deadline = time.monotonic() + 10
    while not proxy.paths:  # the read's request is at the API (which answers after 0.2 s)
        assert time.monotonic() < deadline
        time.sleep(0.01)

    presigned.prefetch([first, second], auth=auth)
    reader.join(10)
    _wait_for_prefetch_threads()

    # the one prefetch thread went on to the second href instead of waiting for the first
    assert proxy.peak == 2
    assert sorted(_redirect_paths(proxy)) == sorted(urlsplit(h).path for h in (first, second))


class _SlowAndGone:
    """An API origin: ``/gone/...`` answers 404 at once, ``/slow/...`` redirects after 2 s,
    the rest after 0.3 s; it notes each path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.paths.append(self.path)
                if self.path.startswith("/gone/"):
                    self.send_response(404)
                else:
                    time.sleep(2.0 if self.path.startswith("/slow/") else 0.3)
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.2:9{self.path}"
                                                 "?X-Amz-Expires=900&X-Amz-Signature=abc")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> _SlowAndGone:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_resolve_many_sends_nothing_more_once_one_href_failed(emulator: Emulator) -> None:
    # The failure comes second in the order, but first in time: resolve_many does not wait
    # for the slow first href before it stops sending (ag.sign relies on this).
    with _SlowAndGone() as api:
        auth = _auth(emulator, api_url=api.origin + "/")
        hrefs = [f"{api.origin}/slow/a.tif", f"{api.origin}/gone/b.tif",
                 *(f"{api.origin}/fine/{i}.tif" for i in range(10))]

        with pytest.raises(AssetError, match=r"gone/b\.tif: HTTP 404"):
            presigned.resolve_many(hrefs, auth=auth, max_workers=2)

        fine = [p for p in api.paths if p.startswith("/fine/")]
        assert len(fine) <= 1, fine  # at most one taken up before the failure was seen
        assert not [t for t in threading.enumerate() if t.name.startswith("ag-resolve")]
