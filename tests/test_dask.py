"""ag.load on a dask.distributed cluster of worker processes, against the emulator."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pystac
import pytest
import rasterio
from rasterio._env import del_gdal_config

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive

distributed = pytest.importorskip("distributed")

pytestmark = [
    pytest.mark.slow,
    # Upstream, not ours (see tests/test_datacube.py).
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]

JAPAN_CAPTURE = "52eZg9k7rPEyYQGX"
# Any free port: with None the scheduler still binds 8787, and fails (a warning, an error
# here) while another cluster on the machine holds it.
DASHBOARD = "127.0.0.1:0"


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None  # set while the emulator runs
    return emu.archive


@pytest.mark.parametrize("secret_on_workers", [True, False], ids=["secret-in-env", "cache-only"])
def test_local_cluster_workers_share_the_parents_token(
        monkeypatch: pytest.MonkeyPatch, secret_on_workers: bool) -> None:
    with Emulator() as emu:
        # Worker processes inherit os.environ when they start: the documented path for a
        # cluster is credentials in the workers' environment and, on one machine, a shared
        # token cache folder (AXELGLOBE_CACHE_DIR, set per test by conftest).
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        items = [pystac.Item.from_dict(d) for d in _archive(emu).items(emu.api_url)
                 if d["properties"].get("ag:capture_id") == JAPAN_CAPTURE]

        ds = ag.load(items, bands=["red", "nir"], chunks={"x": 256, "y": 256})

        assert emu.counters.token_requests == 1  # the parent's, now in the shared cache
        assert emu.counters.redirects == 0  # nothing signed while building the graph
        graph = pickle.dumps(dict(ds.__dask_graph__()))  # type: ignore[no-untyped-call]
        assert emu.client_secret.encode() not in graph
        assert b"AxelGlobeDriver" in graph

        if not secret_on_workers:
            # workers on this machine need no secret at all: the cached token is enough
            monkeypatch.delenv("AXELGLOBE_CLIENT_SECRET")
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                      host="127.0.0.1", dashboard_address=DASHBOARD) as cluster, \
                distributed.Client(cluster) as client:
            pids = set(client.run(lambda: __import__("os").getpid()).values())
            assert len(pids) == 2
            out = client.compute(ds).result()

        tiles = {}
        for item in items:
            for key in ("band3", "band5"):
                with rasterio.open(_archive(emu).assets(item.id)[key]) as src:
                    tiles[item.id, key] = (src.transform, src.read(1))
        gbox = out.odc.geobox
        for var, key in (("red", "band3"), ("nir", "band5")):
            expect = np.zeros(gbox.shape, dtype=np.uint16)
            for item in items:
                transform, pixels = tiles[item.id, key]
                col = int((transform.c - gbox.transform.c) / 5)
                row = int((gbox.transform.f - transform.f) / 5)
                expect[row:row + pixels.shape[0], col:col + pixels.shape[1]] = pixels
            np.testing.assert_array_equal(out[var].isel(time=0).values, expect)

        # the workers resolved the URLs (the parent never read a pixel) with the cached token
        assert emu.counters.redirects >= len(items) * 2
        assert emu.counters.token_requests == 1
        assert emu.counters.storage_requests_with_authorization == 0
        assert emu.counters.storage_head_requests == 0


def test_workers_with_gdal_credentials_in_their_environment_send_none_to_storage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker machine configured for some other server: GDAL would add these to every
    # request, storage's included (it refuses an Authorization header with 400).
    leaks = {"GDAL_HTTP_HEADERS": "Authorization: Bearer for-another-server",
             "GDAL_HTTP_USERPWD": "user:password", "GDAL_HTTP_COOKIE": "sid=another"}
    with Emulator() as emu:
        for name, value in {**emu.env(), **leaks}.items():
            monkeypatch.setenv(name, value)  # inherited by the worker processes
        item = next(pystac.Item.from_dict(d) for d in _archive(emu).items(emu.api_url)
                    if d["properties"].get("ag:capture_id") == JAPAN_CAPTURE)
        try:
            ds = ag.load([item], bands=["red"], chunks={"x": 128, "y": 128})
            with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=2,
                                          host="127.0.0.1", dashboard_address=DASHBOARD
                                          ) as cluster, \
                    distributed.Client(cluster) as client:
                out = client.compute(ds).result()
        finally:
            for name in leaks:
                del_gdal_config(name)

        with rasterio.open(_archive(emu).assets(item.id)["band3"]) as src:
            np.testing.assert_array_equal(out.red.isel(time=0).values, src.read(1))
        seen = emu.storage_headers  # names in lower case
        assert seen
        assert not any("authorization" in h or h.get("cookie") for h in seen), seen
        assert emu.counters.storage_requests_with_authorization == 0


def test_a_client_created_before_load_renews_the_token_for_workers_without_secret() -> None:
    # The usual laptop set-up: a LocalCluster first, then ag.load(). The workers share the
    # caller's token cache folder (one machine) but have no secret; the token expires during
    # the job, and the caller renews it for them (while they wait, none holds the cache lock
    # the caller needs).
    lifetime = 4.0
    with Emulator(token_lifetime=lifetime, presign_lifetime=3) as emu:
        auth = ag.AxelGlobeAuth(**emu.settings_kwargs())  # the secret is in this process only
        items = [pystac.Item.from_dict(d) for d in _archive(emu).items(emu.api_url)
                 if d["properties"].get("ag:capture_id") == JAPAN_CAPTURE]
        first = time.time()
        local = ag.load(items, bands=["red"], auth=auth)
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=2,
                                      host="127.0.0.1", dashboard_address=DASHBOARD
                                      ) as cluster, distributed.Client(cluster) as client:
            secrets = client.run(lambda: __import__("os").environ.get("AXELGLOBE_CLIENT_SECRET"))
            assert set(secrets.values()) == {None}
            ds = ag.load(items, bands=["red"], chunks={"x": 128, "y": 128}, auth=auth,
                         min_validity=1)
            started = time.time()
            while time.time() - started < 2 * lifetime:
                out = client.compute(ds).result()
                np.testing.assert_array_equal(out.red.values, local.red.values)
            ended = time.time()
    # renewed during the job, and at most one token per 0.75 lifetime for the whole cluster
    # (the provider's refresh margin, see tests/test_cluster.py)
    assert 2 <= emu.counters.token_requests <= (ended - first) // (0.75 * lifetime) + 1
