"""ag.load against the emulator: pixels compared with the archive's COGs read with rasterio."""

from __future__ import annotations

import ctypes
import logging
import pickle
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pystac
import pytest
import rasterio
import xarray as xr

import pystac_axelglobe as ag
from pystac_axelglobe import datacube
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive
from pystac_axelglobe.errors import AssetError, ConfigurationError

# Upstream, not ours: odc-geo calls shapely.ops.transform (deprecated in shapely 2.1) and
# rasterio's from_origin multiplies Affines with `*` (affine 3.x); see the report for the
# pyproject filterwarnings lines that would make these module marks unnecessary.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]

JAPAN_CAPTURE = "52eZg9k7rPEyYQGX"  # 2x2 tiles, 2021-05-12 (see emulator/archive.py)


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None  # set while the emulator runs
    return emu.archive


def _capture(emu: Emulator, capture_id: str) -> list[pystac.Item]:
    found = [i for i in emu.items() if i.properties.get("ag:capture_id") == capture_id]
    assert found
    return found


def _auth(emu: Emulator) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                            token_url=emu.token_url, audience=emu.audience)


def _clear_gdal_http_cache() -> None:
    """Forget the file sizes and byte ranges GDAL cached from HTTP in this process."""
    # rasterio does not expose VSICurlClearCache: call it in the libgdal rasterio loaded
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgdal" in line}
    if len(paths) != 1:
        pytest.skip(f"cannot tell which libgdal rasterio uses: {sorted(paths)}")
    ctypes.CDLL(paths.pop()).VSICurlClearCache()


def _storage_log(emu: Emulator) -> list[tuple[str, str]]:
    """(file name, Range header or "") of every storage request since the last reset."""
    return [(path.rsplit("/", 1)[-1], byte_range) for _, path, byte_range in emu.storage_log]


def expected(emu: Emulator, items: Sequence[pystac.Item], asset: str, var: xr.DataArray,
             band: int = 1, fill: int = 0) -> npt.NDArray[Any]:
    """The source COGs of ``items`` pasted onto the grid of ``var`` (one time slice)."""
    gbox = var.odc.geobox
    out = np.full(gbox.shape, fill, dtype=var.dtype)
    for item in items:
        with rasterio.open(_archive(emu).assets(item.id)[asset]) as src:
            assert src.crs.to_epsg() == gbox.crs.epsg
            assert src.res == (abs(gbox.resolution.x), abs(gbox.resolution.y))
            col = (src.transform.c - gbox.transform.c) / src.res[0]
            row = (gbox.transform.f - src.transform.f) / src.res[1]
            assert col == int(col) and row == int(row), "not on the native grid"
            r, c = int(row), int(col)
            out[r:r + src.height, c:c + src.width] = src.read(band)
    return out


def test_single_tile_is_pixel_exact_on_native_grid(emulator: Emulator) -> None:
    item = _capture(emulator, JAPAN_CAPTURE)[0]
    before = emulator.counters.as_dict()

    ds = ag.load([item], bands=["red", "nir", "udm", "band1"], auth=_auth(emulator))

    assert ds.odc.geobox.crs.epsg == 32653
    with rasterio.open(_archive(emulator).assets(item.id)["band3"]) as src:
        # the output grid is the file's grid, not merely aligned to it
        assert ds.odc.geobox.transform == src.transform
        assert ds.red.shape == (1, src.height, src.width)
        red = src.read(1)
    np.testing.assert_array_equal(ds.red.isel(time=0).values, red)
    for var, asset in (("nir", "band5"), ("udm", "msi_udm"), ("band1", "band1")):
        np.testing.assert_array_equal(ds[var].isel(time=0).values,
                                      expected(emulator, [item], asset, ds[var]))
    assert ds.red.dtype == np.uint16 and ds.red.attrs["nodata"] == 0
    assert ds.udm.dtype == np.uint8
    assert 0 < int(ds.udm.sum()) < ds.udm.size  # the mask has both classes: a real check

    after = emulator.counters.as_dict()
    assert after["storage_requests"] > before["storage_requests"]
    assert after["storage_requests_with_authorization"] == before[
        "storage_requests_with_authorization"]
    assert after["storage_head_requests"] == before["storage_head_requests"]


def test_capture_mosaic_is_pixel_exact(emulator: Emulator) -> None:
    tiles = _capture(emulator, JAPAN_CAPTURE)
    assert len(tiles) == 4

    ds = ag.load(tiles, bands=["red", "udm"], auth=_auth(emulator))

    assert ds.sizes["time"] == 1  # four tiles, one capture, one slice
    assert list(ds.capture_id.values) == [JAPAN_CAPTURE]
    assert ds.red.shape[1:] == (512, 512)  # 2x2 tiles of 256 px side by side, nothing more
    np.testing.assert_array_equal(ds.red.isel(time=0).values,
                                  expected(emulator, tiles, "band3", ds.red))
    np.testing.assert_array_equal(ds.udm.isel(time=0).values,
                                  expected(emulator, tiles, "msi_udm", ds.udm, fill=255))


def test_requests_per_asset_one_redirect_one_size_probe_one_range() -> None:
    with Emulator() as emu:  # fresh hrefs: nothing resolved or cached for them yet
        item = _capture(emu, JAPAN_CAPTURE)[0]
        files = _archive(emu).assets(item.id)
        _clear_gdal_http_cache()
        emu.reset_counters()

        # tci at 2.5 m: 512x512 px in four chunks, three bands: twelve reads of one file
        ds = ag.load([item], bands=["red", "nir", "tci_red", "tci_green", "tci_blue"],
                     resolution=2.5, chunks={"x": 256, "y": 256}, auth=_auth(emu)).compute()

        np.testing.assert_array_equal(ds.tci_blue.isel(time=0).values,
                                      expected(emu, [item], "tci", ds.tci_blue, band=3))
        assert emu.counters.redirects == 3  # one per asset, not per chunk or band
        by_file: dict[str, list[str]] = {}
        for name, byte_range in _storage_log(emu):
            by_file.setdefault(name, []).append(byte_range)
        for asset in ("band3", "band5", "tci"):
            size = files[asset].stat().st_size
            got = by_file.pop(files[asset].name)
            # GDAL learns the size from a GET it cuts off after the headers (storage refuses
            # HEAD), once per file however many threads read it, then reads ranges: a small
            # file is one range (the first 64 KiB), not a stat, an open and two ranges as
            # before. Chunks read at once may fetch a block twice, but no read starts over.
            assert got[0] == "" and "" not in got[1:], (asset, got)
            spans = [tuple(map(int, r.removeprefix("bytes=").split("-"))) for r in got[1:]]
            assert spans[0] == (0, min(size, 65536) - 1), (asset, got)
            assert sum(b - a + 1 for a, b in spans) < 1.5 * size, (asset, got)
            if size <= 65536:
                assert got == ["", f"bytes=0-{size - 1}"]
        assert not by_file
        assert emu.counters.storage_head_requests == 0

        # the same assets again in this process: GDAL's cache answers, storage hears nothing
        emu.reset_counters()
        again = ag.load([item], bands=["red"], auth=_auth(emu))
        np.testing.assert_array_equal(again.red.isel(time=0).values, ds.red.values[0, ::2, ::2])
        assert _storage_log(emu) == []


def test_a_search_is_loaded_as_its_items(emulator: Emulator) -> None:
    # load() shares download()'s reading of items (_items.as_items): a search's pages are read
    auth = _auth(emulator)
    search = ag.open(auth=auth).search(capture_id=JAPAN_CAPTURE, limit=2)
    ds = ag.load(search, bands=["red"], auth=auth)
    tiles = _capture(emulator, JAPAN_CAPTURE)
    np.testing.assert_array_equal(ds.red.isel(time=0).values,
                                  expected(emulator, tiles, "band3", ds.red))


def test_pan_and_tci_load_at_2_5_m_pixel_exact(emulator: Emulator) -> None:
    item = _capture(emulator, JAPAN_CAPTURE)[1]

    ds = ag.load([item], bands=["pan", "tci_red", "tci_green", "tci.3"], auth=_auth(emulator))

    assert ds.odc.geobox.resolution.x == 2.5
    np.testing.assert_array_equal(ds.pan.isel(time=0).values,
                                  expected(emulator, [item], "band0", ds.pan))
    for band, name in enumerate(("tci_red", "tci_green", "tci.3"), start=1):
        np.testing.assert_array_equal(ds[name].isel(time=0).values,
                                      expected(emulator, [item], "tci", ds[name], band=band))
    assert ds.tci_red.dtype == np.uint8

    # "tci" alone is the whole true-colour image: its three bands, not just the first
    tci = ag.load([item], bands="tci", auth=_auth(emulator))
    assert list(tci.data_vars) == ["tci_red", "tci_green", "tci_blue"]
    assert tci.odc.geobox.resolution.x == 2.5
    np.testing.assert_array_equal(tci.tci_blue.isel(time=0).values,
                                  expected(emulator, [item], "tci", tci.tci_blue, band=3))


def test_groupby_capture_one_slice_per_capture_in_time_order(emulator: Emulator) -> None:
    japan = [i for i in emulator.items() if str(datacube.utm_crs([i])) == "EPSG:32653"]
    captures = {i.properties["ag:capture_id"] for i in japan}

    ds = ag.load(japan, bands=["red", "udm"], chunks={}, auth=_auth(emulator))

    assert ds.sizes["time"] == len(captures) >= 3
    assert set(ds.capture_id.values) == captures
    times = ds.time.values
    assert (times[1:] > times[:-1]).all()
    # captures cover different ground: outside a capture's tiles the mask reads 255 (not 0,
    # "usable") exactly where the bands read nodata (valid band values are >= 1)
    bounds = []
    for i in japan:
        with rasterio.open(_archive(emulator).assets(i.id)["band3"]) as src:
            bounds.append(src.bounds)
    box = ds.odc.geobox.boundingbox
    assert (box.left, box.bottom, box.right, box.top) == (
        min(b.left for b in bounds), min(b.bottom for b in bounds),
        max(b.right for b in bounds), max(b.top for b in bounds))  # no extra nodata margin
    red, udm = ds.red.values, ds.udm.values
    assert (red == 0).any()
    np.testing.assert_array_equal(udm == datacube.MASK_NODATA, red == 0)


def test_ndvi_example_runs_against_its_own_emulator() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "ndvi_timeseries.py"
    spec = importlib.util.spec_from_file_location("ndvi_timeseries", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    table = example.ndvi_table(example.DEFAULT_BBOX, example.DEFAULT_DATETIME)

    lines = table.splitlines()
    assert lines[0] == "13 tiles, 4 captures, EPSG:32653, 5 m"
    # the 2x2 capture's tiles are 10, 20, 50 and 60 % cloud: 65 % of its pixels are usable
    row = next(line for line in lines if JAPAN_CAPTURE in line)
    assert row.split()[2] == "65%"
    assert -1 <= float(row.split()[3]) <= 1


def test_mask_unusable_blanks_cloud_and_nodata(emulator: Emulator) -> None:
    tiles = _capture(emulator, JAPAN_CAPTURE)
    ds = ag.load(tiles[:2], bands=["red", "nir", "mask"], auth=_auth(emulator))

    clean = ag.mask_unusable(ds)

    assert set(clean.data_vars) == {"red", "nir"}
    assert clean.red.dtype == np.float32
    cloud = ds["mask"].values != 0
    nodata = ds.red.values == 0
    assert cloud.any() and (~cloud).any()
    assert np.isnan(clean.red.values[cloud]).all()
    assert np.isnan(clean.red.values[nodata]).all()
    keep = ~cloud & ~nodata
    np.testing.assert_array_equal(clean.red.values[keep], ds.red.values[keep].astype(np.float32))
    with pytest.raises(ConfigurationError, match="no mask in the dataset"):
        ag.mask_unusable(ds[["red"]])


def test_bad_input_fails_before_any_request(emulator: Emulator) -> None:
    japan = _capture(emulator, JAPAN_CAPTURE)
    brazil = [i for i in emulator.items() if i.bbox and i.bbox[0] < -40]
    auth = _auth(emulator)
    before = emulator.counters.as_dict()

    with pytest.raises(ConfigurationError, match=r"span several UTM zones .*pass crs="):
        ag.load(japan + brazil[:1], bands=["red"], auth=auth)
    with pytest.raises(ConfigurationError, match=r"grus-1 has no band 'thermal'"):
        ag.load(japan, bands=["red", "thermal"], auth=auth)
    with pytest.raises(ConfigurationError, match="no items to load"):
        ag.load([], bands=["red"], auth=auth)
    with pytest.raises(ConfigurationError, match="patch_url= is not supported"):
        ag.load(japan, bands=["red"], auth=auth, patch_url=lambda u: u)
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_ID"):
        ag.load(japan, bands=["red"])  # no auth=, and the environment has no credentials

    after = emulator.counters.as_dict()
    for name in ("token_requests", "api_requests", "storage_requests"):
        assert after[name] == before[name], name


def test_lazy_load_computed_after_presigned_urls_expired() -> None:
    with Emulator(presign_lifetime=3) as emu:
        tiles = _capture(emu, JAPAN_CAPTURE)
        ds = ag.load(tiles, bands=["red", "nir"], chunks={"x": 256, "y": 256}, auth=_auth(emu))
        # lazy: nothing signed, nothing read yet
        assert emu.counters.redirects == 0 and emu.counters.storage_requests == 0

        first = ds.red.compute()  # signs now; these URLs are dead in 3 s
        time.sleep(6)
        later = ds.compute()

        np.testing.assert_array_equal(first.values, later.red.values)
        np.testing.assert_array_equal(later.red.isel(time=0).values,
                                      expected(emu, tiles, "band3", ds.red))
        np.testing.assert_array_equal(later.nir.isel(time=0).values,
                                      expected(emu, tiles, "band5", ds.nir))
        assert emu.counters.token_requests == 1
        assert emu.counters.storage_requests_with_authorization == 0
        assert emu.counters.storage_head_requests == 0


def test_url_refused_by_storage_is_resolved_again(caplog: pytest.LogCaptureFixture) -> None:
    with Emulator() as emu:
        item = _capture(emu, JAPAN_CAPTURE)[0]
        ds = ag.load([item], bands=["red"], chunks={}, auth=_auth(emu))
        ds.red.compute()  # caches a presigned URL valid for 15 minutes
        redirects = emu.counters.redirects
        # Storage stops honouring every URL issued so far (as after a key rotation): the
        # cached URL now gets 403 although it has not expired. GDAL forgets what it read
        # (else its cache answers, as it would in this process, and storage is never asked).
        emu.rotate_signing_key()
        _clear_gdal_http_cache()

        again = ds.red.compute()

        np.testing.assert_array_equal(again.isel(time=0).values,
                                      expected(emu, [item], "band3", ds.red))
        assert emu.counters.redirects == redirects + 1  # one fresh URL, then success
        assert "X-Amz-Signature" not in caplog.text


def test_unreadable_asset_error_names_href_without_signature() -> None:
    with Emulator() as emu:
        item = _capture(emu, JAPAN_CAPTURE)[0]
        ds = ag.load([item], bands=["red"], chunks={}, auth=_auth(emu))
        # storage no longer has the file the API redirects to (404, twice)
        emu.fault_kinds, emu.storage_fault_rate = ("404",), 1.0

        with pytest.raises(AssetError) as info:
            ds.red.compute()

        message = str(info.value)
        assert item.assets["band3"].href in message
        assert "X-Amz-Signature" not in message and "fail_on_error=False" in message
        assert emu.counters.redirects == 2  # resolved, refused, resolved again, refused


def test_driver_pickles_without_secret_or_token(emulator: Emulator) -> None:
    auth = _auth(emulator)
    ds = ag.load(_capture(emulator, JAPAN_CAPTURE), bands=["red"], chunks={}, auth=auth)
    token = auth.provider.token().access_token
    secret = emulator.client_secret

    graph = pickle.dumps(dict(ds.red.data.__dask_graph__()))
    driver = datacube.AxelGlobeDriver(auth)

    for blob in (graph, pickle.dumps(driver)):
        assert secret.encode() not in blob
        assert token.encode() not in blob
    assert b"AxelGlobeDriver" in graph  # the driver is really in there
    clone = pickle.loads(pickle.dumps(driver))
    assert clone.auth.settings.client_id == emulator.client_id
    assert secret not in repr(driver)


def test_default_resolution_and_crs() -> None:
    assert datacube.default_resolution(["pan", "tci"]) == 2.5
    assert datacube.default_resolution(["pan", "red"]) == 5.0
    assert datacube.default_resolution(None) == 5.0
    cfg = datacube.GRUS1_STAC_CFG["grus-1"]
    assert cfg["assets"]["band3"] == {"data_type": "uint16", "nodata": 0, "unit": "1"}
    assert cfg["aliases"]["nir"] == ("band5", 1) and cfg["aliases"]["udm"] == ("msi_udm", 1)


def test_debug_logs_never_show_a_working_signature(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # rasterio logs the name of every dataset it opens (the presigned URL) at DEBUG.
    caplog.set_level(logging.DEBUG)
    item = _capture(emulator, JAPAN_CAPTURE)[1]
    ag.load([item], bands=["blue"], auth=_auth(emulator))
    assert any("is started" in r.getMessage() for r in caplog.records)  # rasterio's line
    assert re.search(r"X-Amz-(Signature|Credential)=(?!REDACTED)", caplog.text) is None


def test_fail_on_error_false_skips_an_asset_the_api_does_not_have(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    tiles = _capture(emulator, JAPAN_CAPTURE)[:2]
    gone = tiles[1].clone()
    href = gone.assets["band3"].href
    gone.assets["band3"].href = href.replace("_band3.tif", "_removed.tif")  # API: 404

    with pytest.raises(AssetError, match="HTTP 404"):
        ag.load([tiles[0], gone], bands=["red"], auth=_auth(emulator))
    ds = ag.load([tiles[0], gone], bands=["red"], auth=_auth(emulator), fail_on_error=False)

    # the readable tile is there, pixel-exact; the missing one is nodata (0), not an error
    got = ds.red.isel(time=0)
    np.testing.assert_array_equal(got.values, expected(emulator, [tiles[0]], "band3", got))
    assert "skipping unreadable asset" in caplog.text and "_removed.tif" in caplog.text
