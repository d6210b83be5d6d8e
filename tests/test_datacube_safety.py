"""ag.load under hostile conditions: user GDAL credentials, silent storage, bad arguments.

Each test talks to the emulator, and some to a small hostile storage server on 127.0.0.1
that the emulator's API redirects to: one that never answers, one that trickles, one that
answers an HTML page instead of a GeoTIFF.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from rasterio._env import del_gdal_config

import pystac_axelglobe as ag
from pystac_axelglobe import _gdal
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import AssetError, ConfigurationError
from tests.fake_api import Answer, RawServer, silent_socket

JAPAN_CAPTURE = "52eZg9k7rPEyYQGX"  # 2x2 tiles, 2021-05-12 (see emulator/archive.py)
SIGNATURE = re.compile(r"X-Amz-(Signature|Credential)=(?!REDACTED)")
#: Every option that could put a credential on a storage request (what the tests set).
CREDENTIAL_OPTIONS = ("GDAL_HTTP_HEADERS", "GDAL_HTTP_HEADER_FILE", "GDAL_HTTP_USERPWD",
                      "GDAL_HTTP_AUTH", "GDAL_HTTP_BEARER", "GDAL_HTTP_COOKIE",
                      "GDAL_HTTP_COOKIEFILE")


def _capture(emu: Emulator) -> list[pystac.Item]:
    return [i for i in emu.items() if i.properties.get("ag:capture_id") == JAPAN_CAPTURE]


def _auth(emu: Emulator) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                            token_url=emu.token_url, audience=emu.audience)


def _band(emu: Emulator, item: pystac.Item, asset: str = "band3") -> Any:
    assert emu.archive is not None
    with rasterio.open(emu.archive.assets(item.id)[asset]) as src:
        return src.read(1)


@pytest.fixture
def storage_headers() -> Iterator[tuple[Emulator, Callable[[], list[dict[str, str]]]]]:
    """A fresh emulator (URLs GDAL has never cached) and what storage saw of each request."""
    with Emulator() as emu:
        yield emu, lambda: emu.storage_headers


@pytest.fixture
def gdal_config() -> Iterator[None]:
    """Forget credential options a test put into GDAL's process-wide configuration.

    rasterio's outermost Env writes the values it found (os.environ's included) back into
    GDAL's configuration when it exits: they would outlive the test's environment.
    """
    yield
    for name in CREDENTIAL_OPTIONS:
        del_gdal_config(name)


# ---------------------------------------------------------------------------- credentials


def _credential_cases(tmp: Path) -> dict[str, dict[str, str]]:
    header_file = tmp / "headers.txt"
    header_file.write_text("Authorization: Bearer from-a-header-file\nCookie: sid=hf\n")
    cookie_file = tmp / "cookies.txt"
    cookie_file.write_text("127.0.0.2\tFALSE\t/\tFALSE\t0\tsid\tfrom-a-cookie-file\n")
    return {
        "headers": {"GDAL_HTTP_HEADERS": "Authorization: Bearer leaked-token"},
        "header-file": {"GDAL_HTTP_HEADER_FILE": str(header_file)},
        "userpwd": {"GDAL_HTTP_USERPWD": "user:password"},
        "basic-auth": {"GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_USERPWD": "user:password"},
        "bearer": {"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": "leaked-token"},
        "cookie": {"GDAL_HTTP_COOKIE": "sid=leaked"},
        "cookie-file": {"GDAL_HTTP_COOKIEFILE": str(cookie_file)},
    }


_CASES = ["headers", "header-file", "userpwd", "basic-auth", "bearer", "cookie", "cookie-file"]


@pytest.mark.usefixtures("gdal_config")
@pytest.mark.parametrize(("case", "where", "chunks"), [
    # dask: the reads run in dask's threads, each of which sees os.environ and the
    # main thread's rasterio.Env
    *[pytest.param(case, where, {}, id=f"{case}-{where}-dask")
      for case in _CASES for where in ("environ", "rasterio.Env")],
    # without dask: the reads run in the calling thread, inside the caller's rasterio.Env
    *[pytest.param(case, where, None, id=f"{case}-{where}-direct")
      for case in ("headers", "userpwd") for where in ("environ", "rasterio.Env")],
])
def test_user_gdal_credentials_never_reach_storage(
        storage_headers: tuple[Emulator, Callable[[], list[dict[str, str]]]],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, case: str, where: str, chunks: dict[str, int] | None) -> None:
    emu, seen_at_storage = storage_headers
    item = _capture(emu)[0]
    options = _credential_cases(tmp_path)[case]

    if where == "environ":
        for name, value in options.items():
            monkeypatch.setenv(name, value)
        ds = ag.load([item], bands=["red"], chunks=chunks, auth=_auth(emu)).compute()
    else:
        # entered in the main thread, GDAL applies it in every thread: the readers' too
        with rasterio.Env(**options):
            ds = ag.load([item], bands=["red"], chunks=chunks, auth=_auth(emu)).compute()

    np.testing.assert_array_equal(ds.red.isel(time=0).values, _band(emu, item))
    seen = seen_at_storage()
    assert seen, "storage was never asked: the check below would prove nothing"
    for headers in seen:  # names in lower case
        assert "authorization" not in headers, headers
        assert not headers.get("cookie"), headers
    assert emu.counters.storage_requests_with_authorization == 0


@pytest.mark.usefixtures("gdal_config")
def test_credentials_in_an_enclosing_env_stay_out_of_the_dask_graph(emulator: Emulator) -> None:
    secrets = {"GDAL_HTTP_BEARER": "bearer-secret", "GDAL_HTTP_COOKIE": "sid=cookie-secret",
               "GDAL_HTTP_USERPWD": "user:pwd-secret",
               "GDAL_HTTP_HEADERS": "Authorization: Bearer header-secret"}
    with rasterio.Env(GDAL_HTTP_TIMEOUT=30, **secrets):
        ds = ag.load(_capture(emulator)[:1], bands=["red"], chunks={}, auth=_auth(emulator))

    graph = pickle.dumps(dict(ds.red.data.__dask_graph__()))
    for value in secrets.values():
        assert value.encode() not in graph
    # the user's other settings do travel: the workers read with them
    assert b"GDAL_HTTP_TIMEOUT" in graph


def test_reading_env_keeps_bounds_and_drops_credentials() -> None:
    env = _gdal.reading_env({"GDAL_HTTP_HEADERS": "Authorization: Bearer x", "_aws": {},
                             "GDAL_HTTP_TIMEOUT": "5", "GDAL_HTTP_LOW_SPEED_TIME": "0",
                             "GDAL_HTTP_MAX_RETRY": "nan", "CPL_VSIL_CURL_USE_HEAD": "YES",
                             "GDAL_HTTP_PROXY": "http://127.0.0.1:3128"})
    assert "GDAL_HTTP_HEADERS" not in env and "_aws" not in env
    assert env["GDAL_HTTP_TIMEOUT"] == "5"  # the user's, valid
    assert env["GDAL_HTTP_LOW_SPEED_TIME"] == "10"  # 0 would mean "wait forever"
    assert env["GDAL_HTTP_MAX_RETRY"] == "3"
    assert env["CPL_VSIL_CURL_USE_HEAD"] == "NO"  # storage refuses HEAD: not negotiable
    assert env["GDAL_HTTP_PROXY"] == "http://127.0.0.1:3128"


# ------------------------------------------------------------------------- hostile storage


def trickling_file(interval: float) -> Answer:
    """A 1 MB file: its size at once (GDAL's size probe stops after the headers), the bytes
    of any range one per ``interval`` seconds."""
    def answer(server: RawServer, sock: socket.socket, head: str) -> None:
        wanted = re.search(r"Range: bytes=(\d+)-(\d+)", head)
        if wanted is None:
            status = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
        else:
            first, last = int(wanted[1]), min(int(wanted[2]), 999999)
            status = (f"HTTP/1.1 206 Partial Content\r\nContent-Length: {last - first + 1}"
                      f"\r\nContent-Range: bytes {first}-{last}/1000000\r\n\r\n")
        sock.sendall(status.encode())
        while not server.stop.wait(interval):
            sock.sendall(b"\0")
    return answer


def captive_portal(server: RawServer, sock: socket.socket, head: str) -> None:
    """A 200 with an HTML page, whatever was asked (a hotel network's login page)."""
    body = b"<html><body><h1>Welcome to the hotel network</h1></body></html>"
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.fixture
def redirected(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, list[str]]]:
    """An emulator whose API redirects to ``hostile[0]`` (a URL set by the test) instead."""
    target: list[str] = []
    # In this process, so that its API's presigning can be redirected; GDAL reads only the
    # hostile server here, never this emulator's storage (no GIL contention with it).
    with Emulator(in_process=True) as emu:
        state = emu._servers.state  # type: ignore[union-attr]
        presign = state.presign
        monkeypatch.setattr(state, "presign", lambda item_id, name: presign(item_id, name)
                            .replace(emu.storage_url, target[0]))
        yield emu, target


@pytest.mark.timeout(120)  # the claim: within 2 minutes, with the default bounds
def test_silent_storage_fails_with_a_clear_error_within_the_default_bounds(
        redirected: tuple[Emulator, list[str]]) -> None:
    emu, target = redirected
    with RawServer(silent_socket) as storage:
        target.append(storage.url)
        ds = ag.load(_capture(emu)[:1], bands=["red"], chunks={}, auth=_auth(emu))

        with pytest.raises(AssetError) as info:
            ds.compute()

    message = str(info.value)
    assert message.startswith("storage did not answer in time for ")
    assert "under 1024 bytes/s for 10 s, 60 s per request, 10 s to connect" in message
    assert "GDAL_HTTP_TIMEOUT" in message  # says how to give a slow link more time
    assert not SIGNATURE.search(message)
    assert len(storage.heads) == 1  # no retry of a silent server, by GDAL or by us
    assert emu.counters.redirects == 1  # and no fresh URL: it would wait just as long


@pytest.mark.timeout(60)
def test_trickling_storage_is_cut_by_the_low_speed_bound_one_connection_for_all_chunks(
        redirected: tuple[Emulator, list[str]]) -> None:
    emu, target = redirected
    with RawServer(trickling_file(0.2)) as storage:
        target.append(storage.url)
        # 5 bytes/s is under the floor (1024 bytes/s) for the 1 s the user allows
        with rasterio.Env(GDAL_HTTP_LOW_SPEED_TIME=1):
            ds = ag.load(_capture(emu)[:1], bands=["red"], chunks={"x": 128, "y": 128},
                         auth=_auth(emu))

        with pytest.raises(AssetError) as info:
            ds.compute()

    # GDAL reports the stalled range only in its debug log, then finds the data short
    message = str(info.value)
    assert "storage may be too slow; the bounds: under 1024 bytes/s for 1 s" in message
    # Four chunks of one file: per presigned URL one open (a size probe and a range), whose
    # failure the other chunks share instead of each trying again; one fresh URL.
    assert len(storage.heads) <= 4


@pytest.mark.timeout(60)
def test_storage_trickling_above_the_floor_is_cut_by_the_request_timeout(
        redirected: tuple[Emulator, list[str]]) -> None:
    emu, target = redirected
    with RawServer(trickling_file(0.1)) as storage:
        target.append(storage.url)
        with rasterio.Env(GDAL_HTTP_LOW_SPEED_LIMIT=1, GDAL_HTTP_TIMEOUT=1.5,
                          GDAL_HTTP_MAX_RETRY=1, GDAL_HTTP_RETRY_DELAY=0.1):
            with pytest.raises(AssetError) as info:
                ag.load(_capture(emu)[:1], bands=["red"], auth=_auth(emu))

    assert ("storage may be too slow; the bounds: under 1 bytes/s for 10 s, 1.5 s per "
            "request, 10 s to connect, 1 retries") in str(info.value)
    # per presigned URL a size probe and one range, cut after 1.5 s; one fresh URL
    assert len(storage.heads) == 4


def test_html_from_storage_is_an_error_without_the_signature(
        redirected: tuple[Emulator, list[str]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu, target = redirected
    with RawServer(captive_portal) as storage:
        target.append(storage.url)
        with pytest.raises(AssetError) as info:
            ag.load(_capture(emu)[:1], bands=["red"], auth=_auth(emu))

    message = str(info.value)
    assert "not recognized as being in a supported file format" in message  # GDAL names the URL...
    assert "X-Amz-Signature=REDACTED" in message  # ...without its signature
    assert not SIGNATURE.search(message)
    assert not SIGNATURE.search(caplog.text)
    assert emu.counters.redirects == 2  # refused: a fresh URL was tried once


@pytest.mark.usefixtures("gdal_config")
def test_curl_verbose_debug_logs_show_no_working_signature(
        storage_headers: tuple[Emulator, Callable[[], list[dict[str, str]]]],
        caplog: pytest.LogCaptureFixture) -> None:
    emu, _ = storage_headers
    caplog.set_level(logging.DEBUG)
    with rasterio.Env(CPL_DEBUG=True, CPL_CURL_VERBOSE=True):
        ag.load(_capture(emu)[:1], bands=["red"], chunks={}, auth=_auth(emu)).compute()

    # curl's request line, through GDAL's debug messages, is there: masked
    assert "CURL_INFO_HEADER_OUT: GET /" in caplog.text
    assert "X-Amz-Signature=REDACTED" in caplog.text
    assert not SIGNATURE.search(caplog.text)


def test_read_bounds_refuse_values_that_would_not_bound(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    bounds = _gdal.read_bounds({"GDAL_HTTP_TIMEOUT": "0", "GDAL_HTTP_CONNECTTIMEOUT": "inf",
                                "GDAL_HTTP_LOW_SPEED_LIMIT": "fast", "GDAL_HTTP_MAX_RETRY": 99,
                                "GDAL_HTTP_LOW_SPEED_TIME": 2.0})
    assert bounds == {**_gdal.READ_BOUNDS, "GDAL_HTTP_LOW_SPEED_TIME": "2"}
    assert "ignoring GDAL_HTTP_TIMEOUT='0' for storage reads" in caplog.text


# --------------------------------------------------------------------------------- input


def _other_collection(item: pystac.Item) -> pystac.Item:
    other = item.clone()
    other.collection_id = "sentinel-2-l2a"
    return other


def _case_id(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v!r}"[:30] for k, v in value.items())
    return "-"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, "resolution must be a positive number of CRS units"),
        ({"resolution": -5}, "resolution must be a positive number"),
        ({"resolution": math.nan}, "resolution must be a positive number"),
        ({"resolution": math.inf}, "resolution must be a positive number"),
        ({"resolution": "5"}, "resolution must be a positive number .* got '5'"),
        ({"resolution": True}, "resolution must be a positive number"),
        ({"crs": "EPSG:99999"}, "crs='EPSG:99999' is not a coordinate reference system"),
        ({"crs": "UTM please"}, "crs='UTM please' is not a coordinate reference system"),
        ({"crs": "EPSG:4326"}, "crs='EPSG:4326' is in degrees: pass resolution= in degrees"),
        ({"bands": []}, "bands= is empty"),
        ({"bands": ["red", 5]}, "bands must be names"),
        ({"bands": 3}, "bands must be a name or a list of names"),
        ({"bands": ["infrared"]}, "grus-1 has no band 'infrared'"),
        ({"min_validity": -1}, "min_validity must be a number of seconds >= 0"),
        ({"items": []}, "no items to load"),
        ({"items": "52eZg9k7rPEyYQGX"}, "load\\(\\) takes pystac Items .* got str"),
        ({"items": [42]}, "got a int among them"),
        ({"items": [{"type": "Feature"}]}, "this dict is not a STAC Item"),
        ({"items": "other"}, "load\\(\\) reads grus-1 items; 1 of the 2 items are not "
                             "\\(e.g. .*collection 'sentinel-2-l2a'\\)"),
    ],
    ids=_case_id,
)
def test_bad_arguments_fail_before_any_request(emulator: Emulator, kwargs: dict[str, Any],
                                               message: str) -> None:
    tiles = _capture(emulator)
    kwargs = {"items": tiles[:1], "bands": ["red"], **kwargs}
    if kwargs["items"] == "other":
        kwargs["items"] = [tiles[0], _other_collection(tiles[1])]
    before = emulator.counters.as_dict()

    with pytest.raises(ConfigurationError, match=message):
        ag.load(auth=_auth(emulator), **kwargs)

    after = emulator.counters.as_dict()
    for name in ("token_requests", "api_requests", "storage_requests"):
        assert after[name] == before[name], name


def test_other_collections_load_with_their_own_stac_cfg(emulator: Emulator) -> None:
    item = _other_collection(_capture(emulator)[0])
    cfg = {"sentinel-2-l2a": {"assets": {"band3": {"data_type": "uint16", "nodata": 0}}}}

    ds = ag.load([item], bands=["band3"], stac_cfg=cfg, auth=_auth(emulator))

    np.testing.assert_array_equal(ds.band3.isel(time=0).values, _band(emulator, item))
