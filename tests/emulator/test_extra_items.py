"""extra_items=N: metadata-only grus-1 items in bulk, for searches over thousands of items."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import shapely

from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.bulk import bulk_items

JAPAN = "52eZg9k7rPEyYQGX"
GUIDE_SEARCHES: list[dict[str, Any]] = [
    {"bbox": "133,35,137,36", "datetime": "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z",
     "filter": "eo:cloud_cover <= 30"},
    {"bbox": "133,35,137,36", "datetime": "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z",
     "filter": "avg(eo:cloud_cover) <= 30"},
    {"filter": f"ag:capture_id = '{JAPAN}'"},
    {"filter": "S_INTERSECTS(geometry, POINT(-50.38 -21.5))"},
    {"datetime": "2021-01-01T00:00:00Z/2021-12-31T23:59:59Z"},
]
AUSTRALIA = shapely.box(115, -36.1, 151.1, -11.9)


@pytest.fixture(scope="module")
def bulk() -> Iterator[Emulator]:
    with Emulator(extra_items=10_000) as emu:
        yield emu


def get(emu: Emulator, url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=30, allow_redirects=False,
                        headers={"Authorization": f"Bearer {emu.token()}"})


def search(emu: Emulator, **params: Any) -> dict[str, Any]:
    r = get(emu, f"{emu.api_url}/search", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def all_pages(emu: Emulator, **params: Any) -> list[dict[str, Any]]:
    """Every item of a search, following next links with the query re-sent."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        body = search(emu, **params, page=page)
        found += body["features"]
        nexts = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nexts:
            return found
        page = int(parse_qs(urlsplit(nexts[0]).query)["page"][0])


def test_ten_thousand_more_items_are_searched_and_paged(
    bulk: Emulator, emulator: Emulator
) -> None:
    archive = len(emulator.archive.item_ids())  # type: ignore[union-attr]
    total = archive + 10_000
    last_page = -(-total // 100)
    last = search(bulk, limit=100, page=last_page)
    assert len(last["features"]) == total - 100 * (last_page - 1)
    assert "next" not in {link["rel"] for link in last["links"]}
    assert search(bulk, limit=100, page=last_page - 1)["numberReturned"] == 100
    # the bulk items come after the archive's, in datetime order, a capture every 3 hours
    first = search(bulk, limit=100, page=1)["features"]
    assert [f["id"] for f in first[:archive]] == [
        f["id"] for f in search(emulator, limit=100)["features"]]
    assert first[archive]["properties"]["datetime"] == "2022-01-01T00:00:00Z"
    assert last["features"][-1]["properties"]["datetime"] == "2022-11-09T09:00:02Z"


def test_bulk_items_are_valid_stac_like_the_archives(
    bulk: Emulator, emulator: Emulator, item_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    page = search(bulk, limit=100, datetime="2022-01-01T00:00:00Z/..", page=37)["features"]
    assert len(page) == 100
    archive_item = search(emulator, limit=1)["features"][0]
    for item in page:
        assert item_errors(item) == [], item["id"]
        assert set(item) == set(archive_item)
        assert set(item["properties"]) == set(archive_item["properties"])
        assert set(item["assets"]) == set(archive_item["assets"])
        assert item["collection"] == "grus-1"
        assert shapely.box(*item["bbox"]).within(AUSTRALIA)
    one = get(bulk, f"{bulk.api_url}/collections/grus-1/features/{page[0]['id']}").json()
    assert one == page[0]


def test_bulk_items_are_the_same_every_time(bulk: Emulator) -> None:
    after_2021 = "2022-01-01T00:00:00Z/.."
    page = search(bulk, limit=100, datetime=after_2021, page=5)["features"]
    with Emulator(extra_items=10_000) as again:
        other = search(again, limit=100, datetime=after_2021, page=5)["features"]
        moved = json.loads(json.dumps(other).replace(again.api_url, bulk.api_url))
    assert moved == page
    # the 5th page of 100 holds bulk items 400 to 499 (whole captures of 4)
    expected = bulk_items(500, bulk.api_url)[400:]
    assert page == sorted(expected, key=lambda i: (i["properties"]["datetime"], i["id"]))


@pytest.mark.parametrize("params", GUIDE_SEARCHES)
def test_the_guides_searches_find_what_they_find_without_them(
    bulk: Emulator, emulator: Emulator, params: dict[str, Any]
) -> None:
    got = [f["id"] for f in search(bulk, limit=100, **params)["features"]]
    assert got == [f["id"] for f in search(emulator, limit=100, **params)["features"]]


def test_filters_and_areas_search_the_bulk_items(bulk: Emulator) -> None:
    box = (115.0, -12.2, 118.0, -11.9)  # the first row of captures, their west end
    found = all_pages(bulk, limit=100, bbox=",".join(map(str, box)))
    assert found and all(shapely.box(*f["bbox"]).intersects(shapely.box(*box))
                         for f in found)
    clear = all_pages(bulk, limit=100, bbox=",".join(map(str, box)),
                      filter="eo:cloud_cover < 20 AND platform = 'GRUS-1C'")
    assert clear and {f["id"] for f in clear} == {
        f["id"] for f in found
        if f["properties"]["eo:cloud_cover"] < 20 and f["properties"]["platform"] == "GRUS-1C"}
    capture = found[0]["properties"]["ag:capture_id"]
    tiles = all_pages(bulk, limit=100, filter=f"ag:capture_id = '{capture}'")
    assert len(tiles) == 4


def test_bulk_assets_redirect_to_a_missing_file(bulk: Emulator) -> None:
    item = search(bulk, limit=1, datetime="2022-01-01T00:00:00Z/..")["features"][0]
    href = item["assets"]["band1"]["href"]
    r = get(bulk, href)
    assert r.status_code == 302
    missing = requests.get(r.headers["Location"], timeout=10)
    assert missing.status_code == 404 and "<Code>NoSuchKey</Code>" in missing.text
    assert get(bulk, href.replace("band1", "band9")).status_code == 404


def test_extra_items_cost_nothing_until_searched() -> None:
    start = time.perf_counter()
    with Emulator(extra_items=1_000_000) as emu:  # generating them would take a minute
        assert requests.post(emu.token_url, timeout=10, json={
            "grant_type": "client_credentials", "client_id": emu.client_id,
            "client_secret": emu.client_secret, "audience": emu.audience,
        }).status_code == 200
    assert time.perf_counter() - start < 10


def test_extra_items_must_be_a_whole_number() -> None:
    with pytest.raises(ValueError, match="extra_items must be a whole number >= 0, not -1"):
        Emulator(extra_items=-1)
