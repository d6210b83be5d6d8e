"""``ag.open()`` and its StacApiIO against the emulator: dialect, validation, paging, retries,
errors, logs; and what plain pystac-client can and cannot do with only our auth."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np
import pystac
import pystac_client
import pytest
import requests
import shapely
import shapely.geometry
from pystac.extensions.eo import EOExtension
from pystac_client.exceptions import APIError

import pystac_axelglobe as ag
from pystac_axelglobe.client import (
    DEFAULT_PREFETCH_PAGES,
    AxelGlobeStacApiIO,
    check_bbox,
    check_datetime,
    default_retry,
)
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidQueryError,
    RestrictedError,
)
from tests.fake_api import LoopbackHTTPServer

if TYPE_CHECKING:
    from pathlib import Path


def all_ids(emu: Emulator) -> list[str]:
    """Every item id, from /features with plain requests (independent of the code tested)."""
    headers = {"Authorization": f"Bearer {emu.token()}"}
    ids: list[str] = []
    page = 1
    while True:
        body = requests.get(f"{emu.api_url}/collections/grus-1/features",
                            params={"limit": 100, "page": page}, headers=headers,
                            timeout=30).json()
        ids += [feature["id"] for feature in body["features"]]
        if not any(link["rel"] == "next" for link in body["links"]):
            return ids
        page += 1


def cloudy_ids(emu: Emulator, max_cloud: float) -> set[str]:
    headers = {"Authorization": f"Bearer {emu.token()}"}
    body = requests.get(f"{emu.api_url}/collections/grus-1/features", params={"limit": 100},
                        headers=headers, timeout=30).json()
    assert not any(link["rel"] == "next" for link in body["links"])
    return {f["id"] for f in body["features"]
            if f["properties"]["eo:cloud_cover"] <= max_cloud}


# --- opening --------------------------------------------------------------------------------


def test_open_reads_the_environment_and_returns_a_pystac_client(emulator_env: Emulator) -> None:
    client = ag.open()
    assert isinstance(client, pystac_client.Client)
    assert client.get_self_href() == emulator_env.api_url
    assert [c.id for c in client.get_collections()] == ["grus-1"]


def test_arguments_win_over_the_environment(emulator_env: Emulator) -> None:
    before = emulator_env.counters.token_requests
    with pytest.raises(AuthenticationError) as info:
        ag.open(client_secret="wrong-secret")
    # the auth error comes through as itself, not as pystac-client's APIError(str(err))
    assert info.value.status == 401 and info.value.client_id == emulator_env.client_id
    assert "wrong-secret" not in str(info.value)
    assert emulator_env.counters.token_requests == before + 1  # a 401 is never retried


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_ID"):
        ag.open("http://127.0.0.1:9/stac/v1/catalogs/axelglobe")
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        ag.open("http://example.com/stac", client_id="a", client_secret="b")
    with pytest.raises(ConfigurationError, match="stac_io="):
        ag.open("http://127.0.0.1:9/x", client_id="a", client_secret="b",
                stac_io=pystac_client.stac_api_io.StacApiIO())


def test_landing_page_without_conforms_to(tmp_path: Path) -> None:
    with Emulator(conforms_to=False) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path)
        assert client.conforms_to(pystac_client.ConformanceClasses.ITEM_SEARCH)
        assert client.conforms_to(pystac_client.ConformanceClasses.FILTER)
        ids = [i.id for i in client.search(filter=ag.filters.cloud_cover(20), limit=4).items()]
        assert sorted(ids) == sorted(cloudy_ids(emu, 20))
        assert [c.id for c in client.get_collections()] == ["grus-1"]
        collection = client.get_collection("grus-1")
        assert isinstance(collection, pystac_client.CollectionClient)
        assert len(list(collection.get_items())) == len(all_ids(emu))
        # the plain pystac-client with our auth as request_modifier: completed the same way
        # (test_plain_client.py), so it neither warns (warnings are errors) nor refuses
        raw = pystac_client.Client.open(emu.api_url,
                                        request_modifier=ag.AxelGlobeAuth(
                                            **emu.settings_kwargs(), cache_dir=tmp_path))
        found = raw.search(filter=ag.filters.cloud_cover(20), limit=4).items()
        assert sorted(i.id for i in found) == sorted(ids)


# --- the dialect: whatever the method, GET; bad input refused before sending ------------------


@pytest.mark.parametrize("method", [None, "GET", "POST"])
def test_every_method_is_sent_as_get_with_the_query_on_every_page(
        emulator: Emulator, method: str | None) -> None:
    client = ag.open(**emulator.settings_kwargs())
    before = len(emulator.requests)
    kwargs: dict[str, Any] = {} if method is None else {"method": method}
    search = client.search(collections=["grus-1"], limit=4, **kwargs,
                           filter={"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]})
    ids = [item.id for item in search.items()]
    assert sorted(ids) == sorted(cloudy_ids(emulator, 20)) and len(ids) == len(set(ids))
    sent = [r for r in emulator.requests[before:] if r[1].endswith("/search")]
    # pages requested ahead arrive in any order, and a few past the end are wasted
    sent.sort(key=lambda r: int(parse_qs(r[2]).get("page", ["1"])[0]))
    pages = -(-len(ids) // 4)
    assert pages <= len(sent) <= pages + DEFAULT_PREFETCH_PAGES
    assert {r[0] for r in sent} == {"GET"}
    for number, (_, _, query) in enumerate(sent, start=1):
        q = parse_qs(query)
        assert q["filter"] == ["eo:cloud_cover <= 20"] and q["collections"] == ["grus-1"]
        assert q["limit"] == ["4"]
        assert q.get("page", ["1"]) == [str(number)]
        assert "filter-lang" not in q


def test_next_links_params_win_over_the_original(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs())
    io = client._stac_io
    assert isinstance(io, AxelGlobeStacApiIO)
    # an original "page=1" must not shadow the next link's page=N (or it would loop)
    pages = list(io.get_pages(f"{emulator.api_url}/search", "POST",
                              {"collections": ["grus-1"], "limit": 10, "page": 1}))
    ids = [f["id"] for page in pages for f in page["features"]]
    assert sorted(ids) == sorted(all_ids(emulator)) and len(ids) == len(set(ids))


BAD_SEARCHES: list[tuple[dict[str, Any], str]] = [
    ({"bbox": [1, 2, 3]}, "bbox must have 4 or 6 numbers, got 3"),
    ({"bbox": [137, 35, 133, 36]}, r"bbox minX/maxX are reversed: 137.0 > 133.0"),
    ({"bbox": [133, -95, 137, 36]}, "latitudes must be within -90..90"),
    ({"bbox": [133, 35, 190, 36]}, "longitudes must be within -180..180"),
    ({"bbox": "a,b,c,d"}, "bbox must contain numbers, got 'a'"),
    ({"datetime": "yesterday"}, "datetime 'yesterday' is not valid"),
    ({"datetime": "2021-13-45T00:00:00Z"}, "is not a date-time"),
    ({"datetime": "2021-06-30/2021-04-10"}, "the start is after the end"),
    ({"datetime": [None, None]}, "double open-ended"),
    ({"datetime": "2021/2022/2023"}, "too many datetime components"),
    ({"filter": "eo:cloud_cover <<= 30"}, "not valid CQL2"),
    ({"filter": "S_INTERSECTS(geometry, GEOMETRYCOLLECTION(POINT(1 2)))"}, "GEOMETRYCOLLECTION"),
    ({"filter": "S_INTERSECTS(geometry, ENVELOPE(-50.38, -21.5, -50.09, -21.22))"}, "ENVELOPE"),
    ({"filter": "median(eo:cloud_cover) < 3"}, "does not support median"),
    ({"intersects": {"type": "GeometryCollection", "geometries": []}}, "GEOMETRYCOLLECTION"),
    ({"intersects": {"type": "Polygon", "coordinates": "nope"}}, "cannot read"),
    ({"sortby": "-datetime"}, "sortby= is not supported by AxelGlobe"),
    ({"fields": ["id"]}, "fields= is not supported"),
    ({"query": {"eo:cloud_cover": {"lt": 3}}}, "use filter= with CQL2"),
    ({"method": "PUT"}, "method must be 'GET' or 'POST'"),
    # pystac-client itself raises a bare Exception for these; ours says what to do
    ({"limit": 0}, "limit must be between 1 and 10000, got 0"),
    ({"limit": 20000}, "limit must be between 1 and 10000"),
    ({"limit": "ten"}, "limit must be an integer, got 'ten'"),
    ({"filter": "eo:cloud_cover <= 20", "filter_lang": "cql2-json"},
     "filter_lang='cql2-json' but the filter is not CQL2-JSON"),
    # an empty filter would search everything; pystac-client drops it silently
    ({"filter": ""}, "the filter is empty"),
    ({"filter_lang": "sql"}, "filter-lang 'sql' is not supported"),
    # pystac-client takes max_items=0 as "no limit", and fails on text mid-search
    ({"max_items": 0}, "max_items must be at least 1, got 0"),
    ({"max_items": -1}, "max_items must be at least 1, got -1"),
    ({"max_items": "10"}, "max_items must be a whole number, got '10'"),
    ({"max_items": 2.5}, "max_items must be a whole number"),
    ({"max_items": True}, "max_items must be a whole number"),
    ({"collections": 123}, "collections must be a list of strings, got 123"),
    ({"collections": [123]}, "collections must contain strings, got 123"),
    ({"collections": ["grus-1\x00"]}, "control character"),
    ({"collections": []}, "collections is empty; pystac-client would drop it"),
    ({"collections": "grus-1,"}, "collections contains an empty id"),
    ({"ids": ["a\x00b"]}, "ids contains .*, with a control character"),
    ({"ids": "a\nb"}, "control character"),
    ({"ids": [1, 2]}, "ids must contain strings, got 1"),
    ({"ids": [None]}, "ids must contain strings, got None"),
    ({"ids": 5}, "ids must be a list of strings, got 5"),
    ({"ids": []}, "ids is empty; pystac-client would drop it and search everything"),
    ({"ids": ["a,b"]}, "with a comma"),
    ({"bbox": [float("nan"), 0, 1, 1]}, "bbox contains NaN or infinity"),
    ({"bbox": [0, 0, float("inf"), 1]}, "bbox contains NaN or infinity"),
    ({"bbox": ["1e999", 0, 1, 1]}, "bbox contains NaN or infinity"),
    ({"limit": 2.5}, "limit must be an integer, got 2.5"),
    ({"limit": True}, "limit must be an integer, got True"),
    ({"limit": -5}, "limit must be between 1 and 10000, got -5"),
    ({"limit": float("nan")}, "limit must be an integer, got nan"),
    ({"datetime": 123}, "datetime 123 is not valid"),
    ({"datetime": "2021-02-30"}, "datetime '2021-02-30' is not valid"),
    ({"datetime": "2021\x00"}, "is not valid"),
    # deeper than the limit, not yet deep enough to crash cql2 (test_filters.py runs those)
    ({"filter": "NOT (" * 40 + "a = 1" + ")" * 40}, "nests 80 levels deep"),
]


@pytest.mark.parametrize(("kwargs", "words"), BAD_SEARCHES)
def test_bad_input_is_refused_before_anything_is_sent(
        emulator: Emulator, kwargs: dict[str, Any], words: str) -> None:
    client = ag.open(**emulator.settings_kwargs())
    searches, sent = emulator.counters.search_requests, len(emulator.requests)
    with pytest.raises(InvalidQueryError, match=words):
        # pystac-client searches lazily: consuming is where an unchecked value is sent
        list(client.search(**{"collections": "grus-1", **kwargs}).items())
    assert emulator.counters.search_requests == searches
    assert len(emulator.requests) == sent


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"timeout": -1}, "timeout must be seconds > 0"),
    ({"timeout": "10"}, "timeout must be seconds > 0"),
    ({"timeout": (5, None)}, "a \\(connect, read\\) pair"),
    ({"timeout": float("inf")}, "timeout must be"),
    ({"timeout": 0}, "timeout must be"),
    ({"deadline": 0}, "deadline must be seconds > 0, got 0"),
    ({"deadline": float("nan")}, "deadline must be seconds > 0"),
    ({"max_pages": 0}, "max_pages must be a whole number >= 1, got 0"),
    ({"max_pages": 2.5}, "max_pages must be a whole number >= 1"),
    ({"max_pages": True}, "max_pages must be a whole number >= 1"),
])
def test_bad_open_arguments_are_refused_before_anything_is_sent(
        emulator: Emulator, kwargs: dict[str, Any], words: str) -> None:
    tokens, sent = emulator.counters.token_requests, len(emulator.requests)
    with pytest.raises(ConfigurationError, match=words):
        ag.open(**emulator.settings_kwargs(), **kwargs)
    assert emulator.counters.token_requests == tokens
    assert len(emulator.requests) == sent


def test_ids_and_collections_in_every_form_pystac_client_takes(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs())
    collection = client.get_collection("grus-1")
    wanted = all_ids(emulator)[:3]
    forms: list[dict[str, Any]] = [
        {"collections": collection, "ids": wanted},
        {"collections": [collection], "ids": ",".join(wanted)},
        {"collections": iter(["grus-1"]), "ids": (i for i in wanted)},
        {"collections": np.array(["grus-1"]), "ids": tuple(wanted)},
    ]
    for kwargs in forms:
        assert sorted(i.id for i in client.search(**kwargs).items()) == sorted(wanted)


def test_timeouts_and_bounds_given_to_open_are_used(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs(), timeout=(3, 40), deadline=90, max_pages=12)
    io = client._stac_io
    assert isinstance(io, AxelGlobeStacApiIO)
    assert (io.timeout, io.deadline, io.max_pages) == ((3, 40), 90.0, 12)
    assert len(list(client.search(collections="grus-1", limit=50).items())) > 0


def all_features(emu: Emulator) -> list[dict[str, Any]]:
    """Every item as served by /features, with plain requests."""
    headers = {"Authorization": f"Bearer {emu.token()}"}
    body = requests.get(f"{emu.api_url}/collections/grus-1/features", params={"limit": 100},
                        headers=headers, timeout=30).json()
    assert not any(link["rel"] == "next" for link in body["links"])
    features: list[dict[str, Any]] = body["features"]
    return features


def _footprint(feature: dict[str, Any]) -> Any:
    return shapely.geometry.shape({k: v for k, v in feature["geometry"].items() if k != "crs"})


def _ids_in(features: list[dict[str, Any]], bbox: list[float]) -> set[str]:
    box = shapely.geometry.box(*bbox)
    return {f["id"] for f in features if _footprint(f).intersects(box)}


def _sent_bbox(emu: Emulator, before: int) -> list[str]:
    return [parse_qs(query)["bbox"][0] for _, path, query in emu.requests[before:]
            if path.endswith("/search")]


def test_bbox_is_sent_at_full_precision(emulator: Emulator) -> None:
    # A thin box just east of a tile's easternmost corner, where rounding to 6 significant
    # digits (up to ~50 m at 135°E) changes which tiles it touches.
    features = all_features(emulator)
    for feature in features:
        x, y = max(_footprint(feature).exterior.coords)
        bbox = [x + 4e-5, y - 1e-5, x + 9e-5, y + 1e-5]
        truth = _ids_in(features, bbox)
        if truth != _ids_in(features, [float(f"{n:g}") for n in bbox]):
            break
    else:
        pytest.fail("no tile corner where rounding the bbox changes the result")
    client = ag.open(**emulator.settings_kwargs())
    before = len(emulator.requests)
    assert {i.id for i in client.search(bbox=bbox).items()} == truth
    assert {sent for sent in _sent_bbox(emulator, before)} == {",".join(map(repr, bbox))}


def test_bbox_as_numpy_array_or_iterator_like_pystac_client(emulator: Emulator) -> None:
    # pystac-client takes any iterable of numbers (geopandas' total_bounds is a numpy array)
    features = all_features(emulator)
    bbox = [135.49, 35.49, 135.52, 35.52]
    truth = _ids_in(features, bbox)
    assert truth
    client = ag.open(**emulator.settings_kwargs())
    forms: list[Any] = [np.array(bbox), iter(bbox), (n for n in bbox)]
    for form in forms:
        before = len(emulator.requests)
        assert {i.id for i in client.search(bbox=form).items()} == truth
        assert set(_sent_bbox(emulator, before)) == {"135.49,35.49,135.52,35.52"}


def test_a_3d_bbox_is_sent_as_the_documented_four_numbers(emulator: Emulator) -> None:
    features = all_features(emulator)
    bbox = [135.49, 35.49, 135.52, 35.52]
    truth = _ids_in(features, bbox)
    client = ag.open(**emulator.settings_kwargs())
    before = len(emulator.requests)
    got = client.search(bbox=[135.49, 35.49, -100, 135.52, 35.52, 4000]).items()
    assert {i.id for i in got} == truth
    assert set(_sent_bbox(emulator, before)) == {"135.49,35.49,135.52,35.52"}


def test_a_3d_intersects_geometry_is_sent_as_2d(emulator: Emulator) -> None:
    features = all_features(emulator)
    x, y = _footprint(features[0]).centroid.coords[0]
    truth = {f["id"] for f in features if _footprint(f).intersects(shapely.Point(x, y))}
    client = ag.open(**emulator.settings_kwargs())
    before = len(emulator.requests)
    got = client.search(intersects={"type": "Point", "coordinates": [x, y, 120.0]}).items()
    assert {i.id for i in got} == truth
    sent = [parse_qs(q)["filter"][0] for _, path, q in emulator.requests[before:]
            if path.endswith("/search")]
    assert set(sent) == {f"S_INTERSECTS(geometry, POINT ({x!r} {y!r}))"}


def test_check_helpers_accept_what_pystac_client_accepts() -> None:
    assert check_bbox([133, 35, 137, 36]) == [133, 35, 137, 36]
    assert check_bbox("133,35,0,137,36,10") == [133, 35, 0, 137, 36, 10]
    assert check_datetime("2021") == "2021-01-01T00:00:00Z/2021-12-31T23:59:59Z"
    assert check_datetime("2021-04-10T00:00:00Z/..") == "2021-04-10T00:00:00Z/.."
    assert check_datetime(["2021-04-10", None]) == "2021-04-10T00:00:00Z/.."


# --- errors, retries, threads ----------------------------------------------------------------


def test_faulty_api_still_gives_complete_results(tmp_path: Path) -> None:
    with Emulator(api_fault_rate=0.1, fault_seed=3) as emu:
        truth = sorted(all_ids(emu))
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path)
        for _ in range(4):
            ids = [item.id for item in client.search(collections="grus-1", limit=3).items()]
            assert len(ids) == len(set(ids)) and sorted(ids) == truth
        assert emu.counters.faults > 0


@pytest.mark.parametrize("prefetch_pages", [1, DEFAULT_PREFETCH_PAGES])
def test_connections_dropped_mid_body_are_retried(tmp_path: Path, prefetch_pages: int) -> None:
    with Emulator(api_fault_rate=0.3, fault_kinds=("drop",), fault_seed=5) as emu:
        truth = sorted(all_ids(emu))
        # Pages fetched ahead, side by side, draw the seeded faults in a varying order: now
        # and then one page draws six drops in a row, its retries spent. The search must
        # still complete, as it does one page at a time.
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path,
                         prefetch_pages=prefetch_pages, retry=default_retry(backoff_factor=0.01))
        emu.reset_counters()
        ids = [item.id for item in client.search(collections="grus-1", limit=3).items()]
        assert len(ids) == len(set(ids)) and sorted(ids) == truth
        assert emu.counters.faults > 0


def test_every_request_dropped_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    with Emulator(api_fault_rate=0.0, fault_kinds=("drop",)) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path,
                         retry=default_retry(backoff_factor=0.01))
        emu.api_fault_rate = 1.0
        with pytest.raises(APIError, match="connection kept dropping"):
            list(client.search(collections="grus-1").items())
        assert emu.counters.search_requests == 6  # the first try and 5 read retries


class _Cut401(BaseHTTPRequestHandler):
    """The first answer: 401 with a body cut halfway (the connection closed); then JSON."""

    protocol_version = "HTTP/1.1"
    answered: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.answered.append(self.headers.get("Authorization", "")[:7])
        if len(self.answered) == 1:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"code": "Unauth')
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        body = json.dumps({"type": "Catalog", "id": "cut"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def test_a_401_whose_body_is_cut_is_retried(emulator: Emulator, tmp_path: Path) -> None:
    # The auth's 401 hook reads the refused answer's body before sending again: a connection
    # dropped there broke out of the request as a bare requests error, never retried.
    class Handler(_Cut401):
        answered: list[str] = []  # a class per test: nothing shared between tests

    handler = Handler
    with LoopbackHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/stac"
        settings = emulator.settings_kwargs()
        settings["api_url"] = url
        auth = ag.AxelGlobeAuth(**settings, cache_dir=tmp_path)
        before = emulator.counters.token_requests
        io = AxelGlobeStacApiIO(auth, retry=default_retry(backoff_factor=0.01))
        try:
            assert io.read_json(f"{url}/collections") == {"type": "Catalog", "id": "cut"}
        finally:
            server.shutdown()
    assert handler.answered == ["Bearer ", "Bearer "]  # refused once, then sent again
    assert emulator.counters.token_requests == before + 2  # a token, then a fresh one


def test_restriction_comes_through_as_restricted_error(tmp_path: Path) -> None:
    with Emulator(restrict_after=1, restrict_window=60, restrict_period=60) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path / "a")
        # a second token request for the same client (another machine, say) trips it
        second = ag.AxelGlobeAuth(**emu.settings_kwargs(), cache_dir=tmp_path / "b")
        with pytest.raises(RestrictedError):
            second.provider.clear()
            second.headers()
        with pytest.raises(RestrictedError, match="until") as info:
            list(client.search(collections="grus-1").items())
        assert info.value.until is not None
        # The API's 429 is remembered in the shared token cache: until it ends, nothing
        # more is sent, by this client, a new one, or another process on that cache.
        sent = emu.counters.api_requests
        with pytest.raises(RestrictedError, match="Nothing is sent to AxelGlobe"):
            list(client.search(collections="grus-1").items())
        with pytest.raises(RestrictedError):
            ag.open(**emu.settings_kwargs(), cache_dir=tmp_path / "a").get_collection("grus-1")
        script = ("import pystac_axelglobe as ag\n"
                  "try:\n    ag.open().get_collection('grus-1')\n"
                  "except ag.RestrictedError as err:\n    print('restricted until', err.until)\n")
        env = {**os.environ, **emu.env(), "AXELGLOBE_CACHE_DIR": str(tmp_path / "a")}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=120, check=True)
        assert "restricted until" in done.stdout, done.stderr
        assert emu.counters.api_requests == sent


def test_debug_logs_never_show_the_token(emulator: Emulator,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = ag.AxelGlobeAuth(**emulator.settings_kwargs())
    client = ag.open(auth=auth)
    list(client.search(collections="grus-1", limit=20).items())
    client.get_collection("grus-1")
    token = auth.provider.token().access_token
    assert len(token) > 8
    assert token not in caplog.text
    assert "Authorization': '<redacted>'" in caplog.text  # the request line is still logged


FRESH = textwrap.dedent(
    """
    import json, threading
    import pystac_axelglobe as ag
    client = ag.open()
    barrier = threading.Barrier(16)
    results, errors = {}, []
    def work(n):
        barrier.wait()
        try:
            search = client.search(collections="grus-1", limit=3 + n % 4,
                                   filter=ag.filters.cloud_cover(20 + 10 * (n % 3)))
            results[n] = [item.id for item in search.items()]
        except Exception as err:
            errors.append(repr(err))
    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"results": results, "errors": errors}))
    """
)


def test_sixteen_threads_searching_at_once_in_a_fresh_interpreter(
        emulator: Emulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXELGLOBE_")}
    env.update(emulator.env())
    env["AXELGLOBE_CACHE_DIR"] = str(tmp_path)
    before = emulator.counters.token_requests
    out = subprocess.run([sys.executable, "-W", "error", "-c", FRESH], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["errors"] == []
    assert len(report["results"]) == 16
    for n, ids in report["results"].items():
        assert len(ids) == len(set(ids)), "duplicates"
        assert set(ids) == cloudy_ids(emulator, 20 + 10 * (int(n) % 3))
    assert emulator.counters.token_requests == before + 1  # one token for 16 threads


# --- plain pystac-client with only our auth as request_modifier ------------------------------


def test_plain_pystac_client_with_our_auth(emulator: Emulator) -> None:
    auth = ag.AxelGlobeAuth(**emulator.settings_kwargs())
    client = pystac_client.Client.open(emulator.api_url, request_modifier=auth)
    collection = client.get_collection("grus-1")
    assert isinstance(collection, pystac_client.CollectionClient)
    assert collection.id == "grus-1"
    # items of a collection come through /features, next links and all
    items = list(collection.get_items())
    assert sorted(i.id for i in items) == sorted(all_ids(emulator))
    one = collection.get_item(items[0].id)
    assert isinstance(one, pystac.Item) and one.id == items[0].id
    # ... but the quirks stay: the eo extension cannot read the wavelengths
    bands = EOExtension.ext(one).bands
    assert bands is not None and bands[0].center_wavelength is None
    # searches work by either method, across pages (tests/test_plain_client.py: all of it)
    for method in ("POST", "GET"):
        got = [i.id for i in client.search(method=method, collections="grus-1", limit=3,
                                           filter="eo:cloud_cover <= 20").items()]
        assert sorted(got) == sorted(cloudy_ids(emulator, 20))


@pytest.mark.parametrize("fraction", [".0", ".0123", ".0123456", ".012345678"])
def test_datetimes_with_any_number_of_fraction_digits(emulator: Emulator, fraction: str) -> None:
    # STAC clients send these (stac-api-validator does); Python 3.10's fromisoformat reads
    # only 3 or 6 digits, so both the client's check and the emulator parse them themselves.
    client = ag.open(**emulator.settings_kwargs())
    start = f"2021-05-12T00:00:00{fraction}Z"
    found = client.search(collections="grus-1", datetime=f"{start}/2021-05-12T23:59:59Z")
    ids = {item.id for item in found.items()}
    expected = {i["id"] for i in emulator.archive.items(emulator.api_url)  # type: ignore[union-attr]
                if i["properties"]["datetime"].startswith("2021-05-12")}
    assert ids == expected and ids
