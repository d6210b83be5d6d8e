"""The emulator's STAC API: landing page, collections, items endpoint, assets (real HTTP)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from pystac_axelglobe.emulator import Emulator


def get(emu: Emulator, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{emu.api_url}{path}",
        params=params or None,
        timeout=10,
        headers={"Authorization": f"Bearer {emu.token()}"},
        allow_redirects=False,
    )


def rels(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {link["rel"]: link for link in body["links"]}


def test_landing_page(emulator: Emulator) -> None:
    body = get(emulator, "").json()
    assert (body["type"], body["id"], body["stac_version"]) == ("Catalog", "axelglobe", "1.0.0")
    links = rels(body)
    assert links["self"]["href"] == emulator.api_url
    assert links["root"]["href"] == emulator.api_url
    assert links["data"]["href"] == f"{emulator.api_url}/collections"
    assert links["conformance"]["href"] == f"{emulator.api_url}/conformance"
    assert links["search"]["href"] == f"{emulator.api_url}/search"
    assert links["search"]["method"] == "GET"
    assert links["child"]["href"] == f"{emulator.api_url}/collections/grus-1"
    conforms = " ".join(body["conformsTo"])
    for word in (
        "v1.0.0/core",
        "v1.0.0/collections",
        "ogcapi-features",
        "item-search",
        "filter",
        "cql2-text",
        "basic-cql2",
        "spatial-operators",
    ):
        assert word in conforms
    assert get(emulator, "/conformance").json()["conformsTo"] == body["conformsTo"]


def test_landing_page_without_conforms_to() -> None:
    with Emulator(conforms_to=False) as emu:
        body = get(emu, "").json()
        assert "conformsTo" not in body and body["id"] == "axelglobe"


def test_collections(emulator: Emulator) -> None:
    body = get(emulator, "/collections").json()
    assert [c["id"] for c in body["collections"]] == ["grus-1"]
    assert rels(body)["self"]["href"] == f"{emulator.api_url}/collections"
    one = get(emulator, "/collections/grus-1").json()
    assert one == body["collections"][0]
    assert one["type"] == "Collection" and one["license"] == "proprietary"
    assert rels(one)["items"]["href"] == f"{emulator.api_url}/collections/grus-1/features"


def test_unknown_collection_and_item_are_404_json(emulator: Emulator) -> None:
    for path in (
        "/collections/grus-2",
        "/collections/grus-1/features/nope",
        "/collections/grus-2/features",
        "/nowhere",
    ):
        r = get(emulator, path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "NotFound"


def _pages(emu: Emulator, path: str, params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Follow next links as a correct client does: the original query, then the link's own."""
    ids: list[str] = []
    nexts: list[str] = []
    body = get(emu, path, **params).json()
    while True:
        ids += [f["id"] for f in body["features"]]
        assert body["numberReturned"] == len(body["features"])
        assert "numberMatched" not in body
        link = rels(body).get("next")
        if link is None:
            return ids, nexts
        nexts.append(link["href"])
        split = urlsplit(link["href"])
        own = {k: v[0] for k, v in parse_qs(split.query).items()}
        body = get(
            emu, split.path.removeprefix(urlsplit(emu.api_url).path), **{**params, **own}
        ).json()


def test_features_paging(emulator: Emulator) -> None:
    everything = sorted(emulator.archive.item_ids())  # type: ignore[union-attr]
    ids, nexts = _pages(emulator, "/collections/grus-1/features", {"limit": 7})
    assert sorted(ids) == everything and len(ids) == len(set(ids))
    base = f"{emulator.api_url}/collections/grus-1/features"
    assert nexts == [f"{base}?page={n}" for n in range(2, len(nexts) + 2)]
    assert len(nexts) == -(-len(everything) // 7) - 1


def test_features_paging_with_bbox_keeps_the_filter_only_if_resent(emulator: Emulator) -> None:
    params = {"limit": 2, "bbox": "-51,-22,-50,-21"}
    ids, nexts = _pages(emulator, "/collections/grus-1/features", params)
    brazil = {
        i["id"]
        for i in emulator.archive.items(emulator.api_url)  # type: ignore[union-attr]
        if i["bbox"][0] < 0
    }
    assert set(ids) == brazil and len(ids) == len(brazil)
    # the quirk: the link alone (query not re-sent) pages over *everything*
    page2 = requests.get(
        nexts[0], headers={"Authorization": f"Bearer {emulator.token()}"}, timeout=10
    ).json()
    all_sorted = _pages(emulator, "/collections/grus-1/features", {"limit": 10})[0]
    assert [f["id"] for f in page2["features"]] == all_sorted[10:20]


def test_items_alias(emulator: Emulator) -> None:
    a = get(emulator, "/collections/grus-1/items", limit=3).json()
    b = get(emulator, "/collections/grus-1/features", limit=3).json()
    assert [f["id"] for f in a["features"]] == [f["id"] for f in b["features"]]


def test_single_item(emulator: Emulator) -> None:
    first = get(emulator, "/collections/grus-1/features", limit=1).json()["features"][0]
    r = get(emulator, f"/collections/grus-1/features/{first['id']}")
    assert r.status_code == 200 and r.json() == first
    assert r.headers["Content-Type"].startswith("application/geo+json")
    assert rels(first)["self"]["href"] == (
        f"{emulator.api_url}/collections/grus-1/features/{first['id']}"
    )


def test_asset_redirect_to_storage(emulator: Emulator) -> None:
    item = get(emulator, "/collections/grus-1/features", limit=1).json()["features"][0]
    href = item["assets"]["band3"]["href"]
    assert href.startswith(f"{emulator.api_url}/collections/grus-1/features/{item['id']}/")
    r = requests.get(
        href,
        headers={"Authorization": f"Bearer {emulator.token()}"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(f"{emulator.storage_url}/")
    query = parse_qs(urlsplit(location).query)
    assert {"X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires"} <= set(query)
    data = requests.get(location, timeout=10)  # no Authorization to storage
    assert data.status_code == 200
    path = emulator.archive.asset_path(item["id"], href.rsplit("/", 1)[1])  # type: ignore[union-attr]
    assert data.content == path.read_bytes()
    assert data.headers["Content-Type"] == "image/tiff"


def test_asset_redirect_needs_token(emulator: Emulator) -> None:
    item = get(emulator, "/collections/grus-1/features", limit=1).json()["features"][0]
    assert (
        requests.get(item["assets"]["tci"]["href"], allow_redirects=False, timeout=10).status_code
        == 401
    )


def test_unknown_asset_is_404(emulator: Emulator) -> None:
    item = get(emulator, "/collections/grus-1/features", limit=1).json()["features"][0]
    r = get(emulator, f"/collections/grus-1/features/{item['id']}/nope.tif")
    assert r.status_code == 404 and r.json()["code"] == "NotFound"


def test_counters_and_request_log() -> None:
    with Emulator() as emu:
        token = emu.token()
        item = get(emu, "/collections/grus-1/features", limit=1).json()["features"][0]
        get(emu, "/search", limit=1)
        requests.get(
            item["assets"]["thumbnail"]["href"],
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )
        c = emu.counters
        assert (c.api_requests, c.search_requests, c.redirects, c.storage_requests) == (3, 1, 1, 1)
        assert c.token_requests == 0
        assert emu.requests[0] == (
            "GET",
            "/stac/v1/catalogs/axelglobe/collections/grus-1/features",
            "limit=1",
        )
        assert [m for m, _, _ in emu.requests] == ["GET"] * 3
        emu.reset_counters()
        assert emu.counters.as_dict() == dict.fromkeys(emu.counters.as_dict(), 0)
        assert emu.requests == []


def test_env_and_settings_kwargs(emulator: Emulator) -> None:
    env = emulator.env()
    assert env["AXELGLOBE_API_URL"] == emulator.api_url
    assert env["AXELGLOBE_TOKEN_URL"] == emulator.token_url
    assert env["AXELGLOBE_CLIENT_SECRET"] == emulator.client_secret
    kwargs = emulator.settings_kwargs()
    assert {f"AXELGLOBE_{k.upper()}": v for k, v in kwargs.items()} == env


def test_many_concurrent_connections(emulator: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: get(emulator, "/collections").status_code, range(80)))
    assert statuses == [200] * 80


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_write_methods_refused(emulator: Emulator, method: str) -> None:
    r = requests.request(
        method,
        f"{emulator.api_url}/collections",
        timeout=10,
        headers={"Authorization": f"Bearer {emulator.token()}"},
    )
    assert r.status_code == 405


def test_python_m_emulator_serves_and_prints_exports() -> None:
    import shlex
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "pystac_axelglobe.emulator", "--token-lifetime", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        env = {}
        for _ in range(5):
            name, _, value = proc.stdout.readline().removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        token = requests.post(
            env["AXELGLOBE_TOKEN_URL"],
            timeout=10,
            json={
                "grant_type": "client_credentials",
                "client_id": env["AXELGLOBE_CLIENT_ID"],
                "client_secret": env["AXELGLOBE_CLIENT_SECRET"],
                "audience": env["AXELGLOBE_AUDIENCE"],
            },
        ).json()
        assert token["expires_in"] == 120
        r = requests.get(
            env["AXELGLOBE_API_URL"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        assert r.json()["id"] == "axelglobe"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
