"""capture_ids=False: items as the guide's example (no ag:capture_id), searchable as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from pystac_axelglobe.emulator import Emulator

JAPAN = "52eZg9k7rPEyYQGX"
MULTIPOLYGON = (
    "MULTIPOLYGON (((-50.377998355519196 -21.25571182037737, -50.39389773429008 "
    "-21.306903229767897, -50.33831203728997 -21.326928577662557, -50.30119747112292 "
    "-21.30514840932203, -50.30233752991262 -21.265344869483116, -50.377998355519196 "
    "-21.25571182037737)))"
)
SEARCHES: list[dict[str, Any]] = [
    {"filter": f"ag:capture_id = '{JAPAN}'"},
    {"filter": f"ag:capture_id IN ('{JAPAN}', 'nope')", "bbox": "133,35,137,36"},
    {"bbox": "133,35,137,36", "datetime": "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z",
     "filter": "avg(eo:cloud_cover) <= 30"},
    {"filter": f"avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, {MULTIPOLYGON})"},
    {"filter": f"avg(eo:cloud_cover) <= 30 AND S_INTERSECTS(geometry, {MULTIPOLYGON})"},
]


@pytest.fixture(scope="module")
def hidden() -> Iterator[Emulator]:
    with Emulator(capture_ids=False) as emu:
        yield emu


def get(emu: Emulator, path: str, **params: Any) -> dict[str, Any]:
    r = requests.get(f"{emu.api_url}{path}", params=params, timeout=10,
                     headers={"Authorization": f"Bearer {emu.token()}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_items_come_without_capture_id_everywhere(hidden: Emulator) -> None:
    found = get(hidden, "/search", limit=100)["features"]
    page = get(hidden, "/collections/grus-1/features", limit=100)["features"]
    one = get(hidden, f"/collections/grus-1/features/{found[0]['id']}")
    assert found and page == found
    for item in [*found, one]:
        assert "ag:capture_id" not in item["properties"]
        assert {"eo:cloud_cover", "platform", "datetime"} <= set(item["properties"])
    assert all("ag:capture_id" not in i.properties for i in hidden.items())
    truth = hidden.archive.items(hidden.api_url)  # type: ignore[union-attr]
    assert all("ag:capture_id" in i["properties"] for i in truth)


@pytest.mark.parametrize("params", SEARCHES)
def test_searches_find_what_they_find_with_capture_ids(
    hidden: Emulator, emulator: Emulator, params: dict[str, Any]
) -> None:
    got = [f["id"] for f in get(hidden, "/search", limit=100, **params)["features"]]
    shown = [f["id"] for f in get(emulator, "/search", limit=100, **params)["features"]]
    assert got == shown and got


def test_a_capture_id_search_finds_the_capture(hidden: Emulator) -> None:
    truth = hidden.archive.items(hidden.api_url)  # type: ignore[union-attr]
    capture = {i["id"] for i in truth if i["properties"]["ag:capture_id"] == JAPAN}
    found = get(hidden, "/search", limit=100, filter=f"ag:capture_id = '{JAPAN}'")
    assert {f["id"] for f in found["features"]} == capture and len(capture) == 4


def test_capture_ids_can_come_back_while_serving() -> None:
    with Emulator(capture_ids=False) as emu:
        item = get(emu, "/search", limit=1)["features"][0]
        assert "ag:capture_id" not in item["properties"]
        emu.capture_ids = True
        item = get(emu, "/search", limit=1)["features"][0]
        assert "ag:capture_id" in item["properties"]
