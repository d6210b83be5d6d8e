"""``ag.sign`` and ``ag.sign_inplace`` against the emulator: each input type, copies and in
place, as pystac-client's ``modifier=``, bounded concurrency, and the bytes behind the URLs.
"""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import http.server
import json
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pystac_client
import pytest
import requests

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive
from pystac_axelglobe.errors import AssetError, ConfigurationError
from pystac_axelglobe.extension import SCHEMA_URI
from tests.fake_api import LoopbackHTTPServer

CAPTURE = "52eZg9k7rPEyYQGX"
COG = pystac.MediaType.COG


# --- helpers -----------------------------------------------------------------------------


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None
    return emu.archive


def auth_for(emu: Emulator, tmp_path: Path) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(**emu.settings_kwargs(), cache_dir=tmp_path / "tokens")


def capture_items(emu: Emulator) -> list[pystac.Item]:
    """The guide's capture as the API serves it (4 tiles, 10 assets each, API hrefs)."""
    return [i for i in emu.items() if i.properties.get("ag:capture_id") == CAPTURE]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_sha(emu: Emulator, item_id: str, href: str) -> str:
    name = href.split("?")[0].rsplit("/", 1)[1]
    return sha(_archive(emu).asset_path(item_id, name).read_bytes())


def on_storage(emu: Emulator, href: str) -> bool:
    return href.startswith(emu.storage_url + "/") and "X-Amz-Signature=" in href


class Counted:
    """Emulator counters since construction."""

    def __init__(self, emu: Emulator) -> None:
        self.emu, self.before = emu, emu.counters.as_dict()

    def __getitem__(self, name: str) -> int:
        return self.emu.counters.as_dict()[name] - self.before[name]


def as_json(obj: Any) -> str:
    return json.dumps(obj.to_dict() if hasattr(obj, "to_dict") else obj, sort_keys=True)


# --- each input type -----------------------------------------------------------------------


def test_an_href_gives_its_presigned_url_whose_bytes_are_the_archive_file(
        emulator: Emulator, tmp_path: Path) -> None:
    item = capture_items(emulator)[0]
    href = item.assets["tci"].href
    counted = Counted(emulator)

    url = ag.sign(href, auth=auth_for(emulator, tmp_path))

    assert isinstance(url, str) and on_storage(emulator, url)
    assert counted["redirects"] == 1 and counted["token_requests"] == 1
    got = requests.get(url, timeout=30)  # a plain GET: no token, no redirect
    assert got.status_code == 200
    assert sha(got.content) == archive_sha(emulator, item.id, href)


def test_hrefs_off_the_api_cost_nothing_and_need_no_credentials(
        emulator: Emulator, tmp_path: Path) -> None:
    # No AXELGLOBE_* variable is set (conftest): nothing here needs an auth.
    counted = Counted(emulator)
    local = pystac.Item.from_dict(capture_items(emulator)[0].to_dict())
    for asset in local.assets.values():
        asset.href = str(tmp_path / asset.href.rsplit("/", 1)[1])
    assert ag.sign("/data/x_tci.tif") == "/data/x_tci.tif"
    assert ag.sign("file:///data/x_tci.tif") == "file:///data/x_tci.tif"
    assert as_json(ag.sign(local)) == as_json(local)
    # A URL on another host (or already signed) is left as it is.
    auth = auth_for(emulator, tmp_path)
    signed = ag.sign(capture_items(emulator)[0].assets["tci"].href, auth=auth)
    assert ag.sign(signed, auth=auth) == signed
    assert ag.sign("https://example.com/x.tif", auth=auth) == "https://example.com/x.tif"
    assert counted["redirects"] == 1  # the one signed above


def test_an_asset(emulator: Emulator, tmp_path: Path) -> None:
    item = capture_items(emulator)[0]
    asset = item.assets["band3"]
    before = as_json(asset)

    signed = ag.sign(asset, auth=auth_for(emulator, tmp_path))

    assert isinstance(signed, pystac.Asset) and signed is not asset
    assert on_storage(emulator, signed.href)
    assert signed.title == asset.title and signed.roles == asset.roles
    assert as_json(asset) == before  # untouched


def test_an_item_every_asset_signed_and_normalised_the_input_untouched(
        emulator: Emulator, tmp_path: Path) -> None:
    item = capture_items(emulator)[0]
    before = as_json(item)
    counted = Counted(emulator)

    signed = ag.sign(item, auth=auth_for(emulator, tmp_path))

    assert isinstance(signed, pystac.Item) and signed is not item
    assert as_json(item) == before  # untouched: hrefs, types, bands, extensions
    assert set(signed.assets) == set(item.assets) and len(signed.assets) == 10
    for key, asset in signed.assets.items():
        assert on_storage(emulator, asset.href), key
        got = requests.get(asset.href, timeout=30)
        assert sha(got.content) == archive_sha(emulator, item.id, item.assets[key].href), key
    # thumbnail and metadata too, each once
    assert counted["redirects"] == 10 and counted["token_requests"] == 1
    assert signed.assets["band3"].media_type == COG  # normalised, as ag.normalize_item does
    assert signed.assets["thumbnail"].media_type == pystac.MediaType.JPEG
    assert SCHEMA_URI in signed.stac_extensions
    assert ag.AxelGlobeExtension.ext(signed).capture_id == CAPTURE
    assert "center_wavelength" in signed.properties["eo:bands"][0]
    assert signed.properties["datetime"] == item.properties["datetime"]


def test_an_item_collection(emulator: Emulator, tmp_path: Path) -> None:
    items = pystac.ItemCollection(capture_items(emulator))
    before = as_json(items)

    signed = ag.sign(items, auth=auth_for(emulator, tmp_path))

    assert isinstance(signed, pystac.ItemCollection)
    assert [i.id for i in signed] == [i.id for i in items]
    assert all(on_storage(emulator, a.href) for i in signed for a in i.assets.values())
    assert as_json(items) == before


def test_dicts_a_page_a_list_and_a_mapping_of_assets(
        emulator: Emulator, tmp_path: Path) -> None:
    auth = auth_for(emulator, tmp_path)
    items = capture_items(emulator)
    item_dict = items[0].to_dict()
    page: dict[str, Any] = {"type": "FeatureCollection",
                            "features": [i.to_dict() for i in items], "links": []}
    frozen = copy.deepcopy((item_dict, page))

    signed_dict = ag.sign(item_dict, auth=auth)
    signed_page = ag.sign(page, auth=auth)
    signed_list = ag.sign(items, auth=auth)
    signed_assets = ag.sign(items[1].assets, auth=auth)
    signed_hrefs = ag.sign({"red": items[2].assets["band3"].href}, auth=auth)
    asset_dict = ag.sign(items[3].assets["tci"].to_dict(), auth=auth)

    assert (item_dict, page) == frozen  # untouched
    assert all(on_storage(emulator, a["href"]) for a in signed_dict["assets"].values())
    assert signed_dict["assets"]["band3"]["type"] == COG  # normalised, as dicts
    assert SCHEMA_URI in signed_dict["stac_extensions"]
    assert all(on_storage(emulator, a["href"])
               for f in signed_page["features"] for a in f["assets"].values())
    assert [i.id for i in signed_list] == [i.id for i in items]
    assert all(on_storage(emulator, a.href) for i in signed_list for a in i.assets.values())
    assert all(i.assets["tci"].href.startswith(emulator.api_url) for i in items)
    assert set(signed_assets) == set(items[1].assets)
    assert all(on_storage(emulator, a.href) for a in signed_assets.values())
    assert on_storage(emulator, signed_hrefs["red"])
    assert on_storage(emulator, asset_dict["href"])
    # the links stay where they were: only assets are signed
    assert signed_dict["links"] == item_dict["links"]


def test_a_collection_with_assets(emulator: Emulator, tmp_path: Path) -> None:
    item = capture_items(emulator)[0]
    collection = pystac.Collection(
        "grus-1", "GRUS-1", pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc),
                                    None]])))
    collection.add_asset("preview", item.assets["thumbnail"].clone())

    signed = ag.sign(collection, auth=auth_for(emulator, tmp_path))

    assert on_storage(emulator, signed.assets["preview"].href)
    assert collection.assets["preview"].href.startswith(emulator.api_url)


def test_sign_inplace_changes_and_returns_the_object(emulator: Emulator, tmp_path: Path) -> None:
    auth = auth_for(emulator, tmp_path)
    items = pystac.ItemCollection(capture_items(emulator))
    page: dict[str, Any] = {"type": "FeatureCollection",
                            "features": [i.to_dict() for i in items]}

    assert ag.sign_inplace(items, auth=auth) is items
    assert ag.sign_inplace(page, auth=auth) is page

    assert all(on_storage(emulator, a.href) for i in items for a in i.assets.values())
    assert all(i.assets["band3"].media_type == COG for i in items)
    assert all(on_storage(emulator, a["href"])
               for f in page["features"] for a in f["assets"].values())


def test_assets_selects_what_is_signed(emulator: Emulator, tmp_path: Path) -> None:
    items = capture_items(emulator)
    counted = Counted(emulator)

    signed = ag.sign(items, assets=["tci"], auth=auth_for(emulator, tmp_path))

    assert counted["redirects"] == len(items)
    for item in signed:
        assert on_storage(emulator, item.assets["tci"].href)
        assert item.assets["band3"].href.startswith(emulator.api_url)


def test_signing_twice_costs_nothing_and_duplicates_are_resolved_once(
        emulator: Emulator, tmp_path: Path) -> None:
    auth = auth_for(emulator, tmp_path)
    items = capture_items(emulator)
    counted = Counted(emulator)

    first = ag.sign(items + items, auth=auth)  # each item twice
    again = ag.sign(items, auth=auth)

    assert counted["redirects"] == 10 * len(items)  # once per distinct href
    assert counted["token_requests"] == 1
    assert [i.assets["tci"].href for i in again] == [i.assets["tci"].href for i in first[:4]]


# --- bad input: a clear error before anything is sent ---------------------------------------


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"assets": []}, "assets must be None"),
    ({"assets": ["tci", 3]}, "assets must be None"),
    ({"max_workers": 0}, "max_workers must be a positive integer"),
    ({"max_workers": True}, "max_workers must be a positive integer"),
    ({"assets": ["tcii"]}, "no asset named 'tcii'; the assets are: band0"),
])
def test_bad_arguments(emulator: Emulator, tmp_path: Path, kwargs: dict[str, Any],
                       words: str) -> None:
    counted = Counted(emulator)
    with pytest.raises(ConfigurationError, match=words):
        ag.sign(capture_items(emulator), auth=auth_for(emulator, tmp_path), **kwargs)
    assert counted["api_requests"] == 0 and counted["token_requests"] == 0


def test_assets_makes_no_sense_for_an_href(emulator: Emulator, tmp_path: Path) -> None:
    href = capture_items(emulator)[0].assets["tci"].href
    with pytest.raises(ConfigurationError, match="leave it out to sign one href or one Asset"):
        ag.sign(href, assets=["tci"], auth=auth_for(emulator, tmp_path))


def test_other_types_are_refused_with_a_hint(emulator_env: Emulator) -> None:
    client = ag.open()
    search = client.search(filter=f"ag:capture_id = '{CAPTURE}'")
    with pytest.raises(TypeError, match=r"ItemSearch; for a search, sign its results: "
                                        r"ag.sign\(search.item_collection\(\)\)"):
        ag.sign(search)
    with pytest.raises(TypeError, match="not int"):
        ag.sign(3)


def test_sign_inplace_refuses_a_read_only_mapping(emulator: Emulator, tmp_path: Path) -> None:
    hrefs = types.MappingProxyType({"tci": capture_items(emulator)[0].assets["tci"].href})
    with pytest.raises(TypeError, match="use ag.sign"):
        ag.sign_inplace(hrefs, auth=auth_for(emulator, tmp_path))
    assert on_storage(emulator, ag.sign(hrefs, auth=auth_for(emulator, tmp_path))["tci"])


def test_a_failure_leaves_the_object_unchanged(emulator: Emulator, tmp_path: Path) -> None:
    items = pystac.ItemCollection(capture_items(emulator))
    gone = items[2].assets["band3"]
    gone.href = gone.href.replace("_band3.tif", "_band9.tif")  # the API answers 404
    before = as_json(items)

    counted = Counted(emulator)
    with pytest.raises(AssetError, match="HTTP 404"):
        ag.sign_inplace(items, auth=auth_for(emulator, tmp_path), max_workers=2)
    after_return = counted["api_requests"]

    assert as_json(items) == before  # nothing signed, nothing normalised
    # Nothing is left running: no resolving thread outlives the call, no request comes later.
    assert [t for t in threading.enumerate() if t.name.startswith("ag-resolve")] == []
    assert 0 < after_return <= 40
    assert counted["api_requests"] == after_return


# --- pystac-client's modifier= ----------------------------------------------------------------


def test_as_the_modifier_of_ag_open(emulator: Emulator, tmp_path: Path) -> None:
    # prefetch_pages=1: no page fetched ahead, so the search requests count pages exactly
    client = ag.open(**emulator.settings_kwargs(), cache_dir=tmp_path / "tokens",
                     modifier=ag.sign_inplace, prefetch_pages=1)
    counted = Counted(emulator)

    items = client.search(filter=f"ag:capture_id = '{CAPTURE}'", limit=3).item_collection()
    collection = client.get_collection("grus-1")
    assert collection is not None
    one = collection.get_item(items[0].id)  # modifier(Item)

    assert len(items) == 4
    assert counted["search_requests"] == 2  # pages of 3: each page signed as it arrives
    assert counted["redirects"] == 40  # get_item's hrefs were cached
    assert all(on_storage(emulator, a.href) for i in items for a in i.assets.values())
    assert one is not None and on_storage(emulator, one.assets["tci"].href)
    assert all(ag.AxelGlobeExtension.ext(i).capture_id == CAPTURE for i in items)


def test_as_the_modifier_of_the_plain_client_normalises_too(
        emulator_env: Emulator, tmp_path: Path) -> None:
    # The one-line integration with signing: no ag.open(), no normalize_item.
    counted = Counted(emulator_env)
    plain = pystac_client.Client.open(emulator_env.api_url,
                                      request_modifier=ag.AxelGlobeAuth(),
                                      modifier=ag.sign_inplace)
    reference = ag.open(**emulator_env.settings_kwargs(), cache_dir=tmp_path / "ref")

    signed = plain.search(filter=f"ag:capture_id = '{CAPTURE}'", limit=2).item_collection()
    items_iter = list(plain.search(ids=[signed[0].id]).items())

    expected = reference.search(filter=f"ag:capture_id = '{CAPTURE}'").item_collection()
    assert [i.id for i in signed] == [i.id for i in expected]
    # one for the plain client and its signing (the same credential: one token), one for
    # the reference (another token cache folder)
    assert counted["token_requests"] == 2
    for got, want in zip(signed, expected, strict=True):
        # what normalize_item gives, hrefs apart
        assert got.stac_extensions == want.stac_extensions
        assert got.properties == want.properties
        assert got.geometry == want.geometry
        for key, asset in got.assets.items():
            assert on_storage(emulator_env, asset.href)
            assert asset.media_type == want.assets[key].media_type
            assert asset.roles == want.assets[key].roles
    assert on_storage(emulator_env, items_iter[0].assets["tci"].href)


def test_a_partial_as_modifier_signs_only_some_assets(emulator_env: Emulator) -> None:
    client = ag.open(modifier=functools.partial(ag.sign_inplace, assets=["tci"]))
    counted = Counted(emulator_env)
    items = client.search(filter=f"ag:capture_id = '{CAPTURE}'").item_collection()
    assert counted["redirects"] == len(items) == 4
    assert all(on_storage(emulator_env, i.assets["tci"].href) for i in items)


def test_default_auth_is_that_of_the_last_open(emulator: Emulator, tmp_path: Path) -> None:
    # No AXELGLOBE_* environment: the credentials of ag.open(...) sign its items.
    client = ag.open(**emulator.settings_kwargs(), cache_dir=tmp_path / "tokens")
    items = client.search(filter=f"ag:capture_id = '{CAPTURE}'").item_collection()
    assert on_storage(emulator, ag.sign(items[0].assets["tci"].href))


# --- concurrency -------------------------------------------------------------------------------


class RedirectServer:
    """An API origin that answers every GET with a redirect, and counts.

    The first requests are held until ``hold`` of them are in flight together (or
    ``patience`` seconds pass), and ``linger`` seconds more, so that whatever else a client
    sends at once arrives meanwhile; after that, answers go out at once. A client that
    sends ``hold`` at a time reaches a peak of exactly ``hold``; one that sends more at
    once passes it.
    """

    def __init__(self, hold: int, patience: float = 5.0, linger: float = 0.5) -> None:
        self.hold, self.patience, self.linger = hold, patience, linger
        self.full_at: float | None = None
        self.released = False
        self.in_flight = self.peak = self.count = 0
        self.paths: list[str] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with outer.cond:
                    outer.arrive(self.path)
                    outer.wait_for_release()
                    outer.in_flight -= 1
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:9/bucket{self.path}"
                                             "?X-Amz-Expires=900&X-Amz-Signature=abc")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stac/v1/catalogs/axelglobe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def arrive(self, path: str) -> None:
        self.in_flight += 1
        self.count += 1
        self.paths.append(path)
        self.peak = max(self.peak, self.in_flight)
        if self.full_at is None and self.in_flight >= self.hold:
            self.full_at = time.monotonic()

    def wait_for_release(self) -> None:
        give_up = time.monotonic() + self.patience
        while not self.released and time.monotonic() < give_up:
            if self.full_at is not None and time.monotonic() >= self.full_at + self.linger:
                self.released = True
                self.cond.notify_all()
                break
            self.cond.wait(timeout=0.05)

    def __enter__(self) -> RedirectServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def api_elsewhere(emu: Emulator, api_url: str, tmp_path: Path) -> ag.AxelGlobeAuth:
    """The emulator's credentials and token endpoint, for an API at ``api_url``."""
    kwargs = emu.settings_kwargs()
    kwargs["api_url"] = api_url
    return ag.AxelGlobeAuth(**kwargs, cache_dir=tmp_path / "tokens")


@pytest.fixture
def redirect_server() -> Iterator[RedirectServer]:
    with RedirectServer(hold=4) as server:
        yield server


def test_many_hrefs_resolved_concurrently_at_most_max_workers_at_once(
        emulator: Emulator, redirect_server: RedirectServer, tmp_path: Path) -> None:
    # The API origin is the counting server; tokens come from the emulator.
    auth = api_elsewhere(emulator, redirect_server.url, tmp_path)
    hrefs = {f"a{i}": f"{redirect_server.url}/collections/grus-1/features/x/f_{i}.tif"
             for i in range(12)}

    signed = ag.sign(hrefs, auth=auth, max_workers=4)

    assert redirect_server.count == 12  # one request per href, no duplicate
    assert redirect_server.peak == 4  # concurrent, and never more than max_workers
    assert len(set(redirect_server.paths)) == 12
    assert all(v.startswith("http://127.0.0.2:9/bucket/") for v in signed.values())


def test_the_default_bound_is_16(emulator: Emulator, tmp_path: Path) -> None:
    with RedirectServer(hold=16) as server:
        auth = api_elsewhere(emulator, server.url, tmp_path)
        ag.sign([f"{server.url}/f_{i}.tif" for i in range(40)], auth=auth)
    assert server.count == 40
    assert server.peak == ag.signing.MAX_WORKERS == 16


def test_a_cached_url_with_less_than_two_minutes_left_is_resolved_again(
        emulator: Emulator, tmp_path: Path) -> None:
    # What the docs promise: ag.sign hands out URLs with at least MIN_VALIDITY (120 s) left.
    from pystac_axelglobe import presigned

    auth = auth_for(emulator, tmp_path)
    href = capture_items(emulator)[0].assets["tci"].href
    first = ag.sign(href, auth=auth)
    # Age the cached URL: 60 s left of its 900 (resolve()'s own default margin is 30 s).
    (key,) = [k for k in presigned._cache if k[1] == href]
    presigned._cache[key] = presigned._Cached(presigned.PresignedURL(first, time.time() + 60),
                                              lifetime=900)
    counted = Counted(emulator)

    again = ag.sign(href, auth=auth)

    assert counted["redirects"] == 1
    assert presigned._cache[key].url.remaining() > ag.signing.MIN_VALIDITY
    assert on_storage(emulator, again)
