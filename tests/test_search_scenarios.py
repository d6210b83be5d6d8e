"""Every search scenario of the provider's guide, through ``ag.open()``, against the emulator.

The expected item sets are computed here from all items (fetched from the ``/features``
endpoint with plain requests) with shapely and the AOI-average rule of AXELGLOBE_API.md;
nothing is copied from the emulator's code. The guide's four scenarios also run on an
emulator that serves items without ``ag:capture_id``, as the guide's example item.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np
import pystac_client
import pytest
import requests
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

import pystac_axelglobe as ag
from pystac_axelglobe import filters
from pystac_axelglobe.emulator import Emulator

if TYPE_CHECKING:
    from pystac_axelglobe.client import AxelGlobeClient

GUIDE_BBOX = [133.0, 35.0, 137.0, 36.0]
GUIDE_DATETIME = "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z"
GUIDE_CAPTURE = "52eZg9k7rPEyYQGX"

# The guide's geometry literals, verbatim (S_INTERSECTS table).
GUIDE_GEOMETRIES = {
    "POINT": "POINT(-50.38 -21.5)",
    "LINESTRING": "LINESTRING(-50.38 -21.5, -50.09 -21.22)",
    "MULTIPOINT": "MULTIPOINT(-50.38 -21.5, -50.21 -21.35, -50.09 -21.22)",
    "MULTILINESTRING": "MULTILINESTRING((-50.38 -21.5, -50.09 -21.22), "
                       "(-50.40 -21.5, -50.20 -21.22))",
    "POLYGON": "POLYGON ((-50.20505723737355 -21.232224612155605, -50.241064225176046 "
               "-21.313183636346878, -50.46497592428804 -21.236341502437398, -50.393497166332 "
               "-21.3760852767586, -50.44812052553934 -21.413061245887874, -50.39418449523467 "
               "-21.46133360699264, -50.28895655861953 -21.377395489410375, -50.3429761155798 "
               "-21.48154901026048, -50.246261937136524 -21.504062285999552, "
               "-50.24589922810463 -21.42714150367614, -50.10308176515423 "
               "-21.461298512790606, -50.06293125593601 -21.332805004588934, "
               "-50.20505723737355 -21.232224612155605))",
    "MULTIPOLYGON": "MULTIPOLYGON (((-50.377998355519196 -21.25571182037737, "
                    "-50.39389773429008 -21.306903229767897, -50.33831203728997 "
                    "-21.326928577662557, -50.30119747112292 -21.30514840932203, "
                    "-50.30233752991262 -21.265344869483116, -50.377998355519196 "
                    "-21.25571182037737)), ((-50.30307167289692 -21.33556537511332, "
                    "-50.29675481118801 -21.352508108156158, -50.320483483126424 "
                    "-21.37151690592809, -50.33829784306903 -21.37531838541942, "
                    "-50.32083308423938 -21.415381832666043, -50.27781101074311 "
                    "-21.39743120280255, -50.26742062143981 -21.40399484490206, "
                    "-50.24515788837763 -21.3798116216757, -50.20469383948901 "
                    "-21.389847864440497, -50.19355419558164 -21.371524192627504, "
                    "-50.249239808424704 -21.337647270055186, -50.30307167289692 "
                    "-21.33556537511332)))",
}
GUIDE_BBOX_LITERAL = "BBOX(-50.38, -21.5, -50.09, -21.22)"

METHODS = [None, "GET", "POST"]
LIMIT = 3  # smaller than every non-trivial result, so that several pages are followed


# --- truth, computed from all items ------------------------------------------------------


def fetch_all_items(emu: Emulator) -> list[dict[str, Any]]:
    """All items, from the /features endpoint, with plain requests and a server token."""
    headers = {"Authorization": f"Bearer {emu.token()}"}
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        r = requests.get(f"{emu.api_url}/collections/grus-1/features",
                         params={"limit": 100, "page": page}, headers=headers, timeout=30)
        r.raise_for_status()
        body = r.json()
        items += body["features"]
        if not any(link["rel"] == "next" for link in body["links"]):
            return items
        page += 1


def footprint(item: dict[str, Any]) -> BaseGeometry:
    geometry = {k: v for k, v in item["geometry"].items() if k != "crs"}
    return shapely.geometry.shape(geometry)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_ids(
    items: list[dict[str, Any]],
    *,
    bbox: list[float] | None = None,
    datetime: str | None = None,
    geometry: BaseGeometry | None = None,
    max_cloud: float | None = None,
    max_aoi_cloud: float | None = None,
    capture: str | None = None,
) -> set[str]:
    """The item ids a search should return, by the rules of AXELGLOBE_API.md."""
    box = shapely.geometry.box(*bbox) if bbox else None
    aoi: BaseGeometry | None = box
    if geometry is not None:
        aoi = geometry if aoi is None else aoi.intersection(geometry)
    # AOI-level cloud cover: per capture, the mean over its tiles that touch the AOI.
    groups: dict[str, list[float]] = defaultdict(list)
    for item in items:
        if aoi is None or footprint(item).intersects(aoi):
            groups[item["properties"]["ag:capture_id"]].append(
                item["properties"]["eo:cloud_cover"])
    start, end = (_instant(p) for p in datetime.split("/")) if datetime else (None, None)
    kept = set()
    for item in items:
        props, shape = item["properties"], footprint(item)
        if box is not None and not shape.intersects(box):
            continue
        if geometry is not None and not shape.intersects(geometry):
            continue
        if start and end and not start <= _instant(props["datetime"]) <= end:
            continue
        if max_cloud is not None and not props["eo:cloud_cover"] <= max_cloud:
            continue
        if capture is not None and props["ag:capture_id"] != capture:
            continue
        if max_aoi_cloud is not None:
            if aoi is not None and not shape.intersects(aoi):
                continue
            group = groups[props["ag:capture_id"]]
            if not sum(group) / len(group) <= max_aoi_cloud:
                continue
        kept.add(item["id"])
    return kept


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_items(emulator: Emulator) -> list[dict[str, Any]]:
    items = fetch_all_items(emulator)
    assert emulator.archive is not None
    assert len(items) == len(emulator.archive.item_ids())
    return items


@pytest.fixture(scope="module")
def client(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> AxelGlobeClient:
    return ag.open(**emulator.settings_kwargs(),
                   cache_dir=tmp_path_factory.mktemp("scenario-tokens"))


def run(client: pystac_client.Client, emu: Emulator, method: str | None,
        **kwargs: Any) -> tuple[list[str], list[dict[str, list[str]]]]:
    """Search, return the ids in order and the query of every /search request it made."""
    before = len(emu.requests)
    if method is None:
        search = client.search(limit=LIMIT, **kwargs)
    else:
        search = client.search(method=method, limit=LIMIT, **kwargs)
    ids = [item.id for item in search.items()]
    sent = [entry for entry in emu.requests[before:] if entry[1].endswith("/search")]
    assert all(entry[0] == "GET" for entry in sent), sent  # POST is never sent
    return ids, [parse_qs(entry[2]) for entry in sent]


def check(ids: list[str], queries: list[dict[str, list[str]]], want: set[str],
          sent_filter: str | None = None) -> None:
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) == want
    assert len(queries) >= -(-len(want) // LIMIT)  # one request per page at least
    if len(want) > LIMIT:
        assert len(queries) > 1
        assert any(q.get("page") for q in queries[1:])
    for query in queries:  # every page re-sent the whole query
        assert query["limit"] == [str(LIMIT)]
        if sent_filter is not None:
            assert query["filter"] == [sent_filter]


def nontrivial(want: set[str], wider: set[str]) -> None:
    """The scenario selects something, and not everything its wider search finds."""
    assert want and want < wider, (len(want), len(wider))


# --- the guide's scenarios -----------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_item_cloud_cover_in_bbox(client: pystac_client.Client, emulator: Emulator,
                                  all_items: list[dict[str, Any]], method: str | None) -> None:
    want = expected_ids(all_items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME, max_cloud=30)
    nontrivial(want, expected_ids(all_items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME))
    ids, queries = run(client, emulator, method, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME,
                       collections=["grus-1"], filter="eo:cloud_cover <= 30")
    check(ids, queries, want, "eo:cloud_cover <= 30")
    assert all(q["bbox"] == ["133,35,137,36"] and q["collections"] == ["grus-1"]
               and q["datetime"] == [GUIDE_DATETIME] for q in queries)


@pytest.mark.parametrize("method", METHODS)
def test_aoi_cloud_cover_in_bbox(client: pystac_client.Client, emulator: Emulator,
                                 all_items: list[dict[str, Any]], method: str | None) -> None:
    want = expected_ids(all_items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME, max_aoi_cloud=30)
    nontrivial(want, expected_ids(all_items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME))
    # the AOI rule differs from the item rule here, or the scenario would prove nothing
    assert want != expected_ids(all_items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME,
                                max_cloud=30)
    ids, queries = run(client, emulator, method, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME,
                       collections="grus-1", filter=filters.aoi_cloud_cover(30))
    check(ids, queries, want, "avg(eo:cloud_cover) <= 30")


@pytest.mark.parametrize("method", METHODS)
def test_aoi_cloud_cover_in_the_guides_multipolygon(
        client: pystac_client.Client, emulator: Emulator, all_items: list[dict[str, Any]],
        method: str | None) -> None:
    aoi = shapely.from_wkt(GUIDE_GEOMETRIES["MULTIPOLYGON"])
    want = expected_ids(all_items, datetime=GUIDE_DATETIME, geometry=aoi, max_aoi_cloud=20)
    nontrivial(want, expected_ids(all_items, datetime=GUIDE_DATETIME, geometry=aoi))
    text = "avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, " \
        + GUIDE_GEOMETRIES["MULTIPOLYGON"] + ")"
    ids, queries = run(client, emulator, method, datetime=GUIDE_DATETIME,
                       collections=["grus-1"], filter=text)
    check(ids, queries, want, text)


@pytest.mark.parametrize("method", METHODS)
def test_capture_id(client: pystac_client.Client, emulator: Emulator,
                    all_items: list[dict[str, Any]], method: str | None) -> None:
    want = expected_ids(all_items, capture=GUIDE_CAPTURE)
    nontrivial(want, {item["id"] for item in all_items})
    ids, queries = run(client, emulator, method, collections=["grus-1"],
                       filter=f"ag:capture_id = '{GUIDE_CAPTURE}'")
    check(ids, queries, want, f"ag:capture_id = '{GUIDE_CAPTURE}'")
    ids2, _ = run(client, emulator, method, collections=["grus-1"],
                  filter=filters.capture_id(GUIDE_CAPTURE))
    assert ids2 == ids


@pytest.mark.parametrize("kind", [*GUIDE_GEOMETRIES, "BBOX"])
@pytest.mark.parametrize("method", METHODS)
def test_each_supported_geometry_type_as_filter(
        client: pystac_client.Client, emulator: Emulator, all_items: list[dict[str, Any]],
        kind: str, method: str | None) -> None:
    if kind == "BBOX":
        literal, geometry = GUIDE_BBOX_LITERAL, shapely.geometry.box(-50.38, -21.5, -50.09,
                                                                      -21.22)
    else:
        literal = GUIDE_GEOMETRIES[kind]
        geometry = shapely.from_wkt(literal)
    # Some of the guide's literals miss the synthetic archive (an empty result still checks
    # that the server agrees); the tile-based test below makes every type select something.
    want = expected_ids(all_items, geometry=geometry)
    text = f"S_INTERSECTS(geometry, {literal})"
    ids, queries = run(client, emulator, method, filter=text)
    check(ids, queries, want, text)


def _through_tiles(kind: str, items: list[dict[str, Any]]) -> BaseGeometry:
    """A geometry of ``kind`` that touches a few tiles (points inside them)."""
    p = [footprint(item).representative_point() for item in items[::9]]
    xy = [(q.x, q.y) for q in p]
    shapes: dict[str, BaseGeometry] = {
        "POINT": p[0],
        "LINESTRING": shapely.geometry.LineString(xy[:2]),
        "MULTIPOINT": shapely.geometry.MultiPoint(xy[:3]),
        "MULTILINESTRING": shapely.geometry.MultiLineString([xy[:2], xy[2:4]]),
        "POLYGON": p[1].buffer(0.01),
        "MULTIPOLYGON": shapely.geometry.MultiPolygon([p[0].buffer(0.01), p[2].buffer(0.01)]),
    }
    return shapes[kind]


@pytest.mark.parametrize("kind", list(GUIDE_GEOMETRIES))
@pytest.mark.parametrize("method", METHODS)
def test_each_geometry_type_through_tiles(
        client: pystac_client.Client, emulator: Emulator, all_items: list[dict[str, Any]],
        kind: str, method: str | None) -> None:
    geometry = _through_tiles(kind, all_items)
    assert geometry.geom_type.upper() == kind
    want = expected_ids(all_items, geometry=geometry)
    nontrivial(want, {item["id"] for item in all_items})
    text = filters.intersects(geometry)
    assert text.startswith(f"S_INTERSECTS(geometry, {kind} ")
    ids, queries = run(client, emulator, method, filter=text)
    check(ids, queries, want, text)


@pytest.mark.parametrize("method", METHODS)
def test_point_inside_a_tile(client: pystac_client.Client, emulator: Emulator,
                             all_items: list[dict[str, Any]], method: str | None) -> None:
    point = footprint(all_items[7]).representative_point()
    want = expected_ids(all_items, geometry=point)
    assert all_items[7]["id"] in want
    ids, queries = run(client, emulator, method, filter=filters.intersects(point))
    check(ids, queries, want)
    ids2, _ = run(client, emulator, method, intersects=point)
    assert sorted(ids2) == sorted(ids)


@pytest.mark.parametrize("kind", list(GUIDE_GEOMETRIES))
def test_intersects_argument_in_every_form(
        client: pystac_client.Client, emulator: Emulator, all_items: list[dict[str, Any]],
        kind: str) -> None:
    geometry = shapely.from_wkt(GUIDE_GEOMETRIES[kind])
    want = expected_ids(all_items, geometry=geometry)
    forms = [geometry, shapely.geometry.mapping(geometry),
             {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(geometry)},
             GUIDE_GEOMETRIES[kind]]  # WKT text too
    for method, form in zip([*METHODS, None], forms, strict=True):
        ids, queries = run(client, emulator, method, intersects=form)
        check(ids, queries, want)
        sent = shapely.from_wkt(queries[0]["filter"][0][len("S_INTERSECTS(geometry, "):-1])
        assert sent.equals_exact(geometry, 1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_intersects_is_anded_with_the_filter_and_is_the_aoi(
        client: pystac_client.Client, emulator: Emulator, all_items: list[dict[str, Any]],
        method: str | None) -> None:
    aoi = shapely.from_wkt(GUIDE_GEOMETRIES["MULTIPOLYGON"])
    want = expected_ids(all_items, datetime=GUIDE_DATETIME, geometry=aoi, max_aoi_cloud=20)
    ids, queries = run(client, emulator, method, datetime=GUIDE_DATETIME, intersects=aoi,
                       filter={"op": "<=", "args": [{"op": "avg", "args": [
                           {"property": "eo:cloud_cover"}]}, 20]})
    check(ids, queries, want)
    assert queries[0]["filter"][0].startswith("(avg(eo:cloud_cover) <= 20) AND (S_INTERSECTS(")


@pytest.mark.parametrize("method", METHODS)
def test_combined_filters_bbox_and_cloud(client: pystac_client.Client, emulator: Emulator,
                                         all_items: list[dict[str, Any]],
                                         method: str | None) -> None:
    box = [-50.45, -21.55, -50.0, -21.2]
    want = expected_ids(all_items, bbox=box, max_cloud=25)
    nontrivial(want, expected_ids(all_items, bbox=box))
    ids, queries = run(client, emulator, method, bbox=box,
                       filter=filters.all_of(filters.cloud_cover(25)))
    check(ids, queries, want)


def _ids(items: Iterator[Any]) -> list[str]:
    return [item.id for item in items]


def test_collection_items_and_single_items(client: pystac_client.Client,
                                           all_items: list[dict[str, Any]]) -> None:
    collection = client.get_collection("grus-1")
    assert isinstance(collection, pystac_client.CollectionClient)
    ids = _ids(collection.get_items())
    assert sorted(ids) == sorted(item["id"] for item in all_items)
    one = collection.get_item(all_items[5]["id"])
    assert one is not None and one.id == all_items[5]["id"]
    assert collection.get_item("no-such-item") is None


# --- the guide's scenarios on items without ag:capture_id ----------------------------------

Guide = tuple[dict[str, Any], Callable[[list[dict[str, Any]]], set[str]]]
GUIDE_SCENARIOS: dict[str, Guide] = {
    "item-cloud-cover": (
        {"bbox": GUIDE_BBOX, "datetime": GUIDE_DATETIME, "collections": ["grus-1"],
         "filter": filters.cloud_cover(30)},
        lambda items: expected_ids(items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME,
                                   max_cloud=30)),
    "aoi-cloud-cover": (
        {"bbox": GUIDE_BBOX, "datetime": GUIDE_DATETIME, "collections": ["grus-1"],
         "filter": filters.aoi_cloud_cover(30)},
        lambda items: expected_ids(items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME,
                                   max_aoi_cloud=30)),
    "multipolygon-aoi-cloud-cover": (
        {"datetime": GUIDE_DATETIME, "collections": ["grus-1"],
         "filter": "avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, "
                   + GUIDE_GEOMETRIES["MULTIPOLYGON"] + ")"},
        lambda items: expected_ids(items, datetime=GUIDE_DATETIME, max_aoi_cloud=20,
                                   geometry=shapely.from_wkt(GUIDE_GEOMETRIES["MULTIPOLYGON"]))),
    "capture-id": (
        {"collections": ["grus-1"], "filter": filters.capture_id(GUIDE_CAPTURE)},
        lambda items: expected_ids(items, capture=GUIDE_CAPTURE)),
}


@pytest.fixture(scope="module")
def hidden() -> Iterator[Emulator]:
    """The same archive, served as the guide's example item: no ``ag:capture_id``."""
    with Emulator(capture_ids=False) as emu:
        yield emu


@pytest.fixture(scope="module")
def hidden_client(hidden: Emulator,
                  tmp_path_factory: pytest.TempPathFactory) -> AxelGlobeClient:
    return ag.open(**hidden.settings_kwargs(), cache_dir=tmp_path_factory.mktemp("hidden"))


# odc-geo (not ours) still calls shapely.ops.transform and multiplies Affines with `*`.
@pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
@pytest.mark.parametrize("name", list(GUIDE_SCENARIOS))
def test_guide_scenario_without_capture_ids(
        name: str, client: AxelGlobeClient, hidden_client: AxelGlobeClient,
        emulator: Emulator, hidden: Emulator, all_items: list[dict[str, Any]]) -> None:
    kwargs, want = GUIDE_SCENARIOS[name]
    shown = list(client.search(limit=LIMIT, **kwargs).items())
    found = list(hidden_client.search(limit=LIMIT, **kwargs).items())
    auth = ag.AxelGlobeAuth(**hidden.settings_kwargs())
    plain = pystac_client.Client.open(hidden.api_url, request_modifier=auth,
                                      modifier=ag.normalize_item)
    by_plain = list(plain.search(limit=LIMIT, **kwargs).items())

    ids = [i.id for i in shown]
    assert set(ids) == want(all_items) and ids
    assert [i.id for i in found] == [i.id for i in by_plain] == ids
    captures = {i.properties["ag:capture_id"] for i in shown}
    # a capture search carries the id searched for; the other searches have none to give
    carried = {GUIDE_CAPTURE} if name == "capture-id" else {None}
    assert {i.properties.get("ag:capture_id") for i in found} == carried
    assert {i.properties.get("ag:capture_id") for i in by_plain} == carried

    # one time slice per capture, with or without the ids, and the same pixels
    with_ids = ag.load(shown, bands=["red"], auth=ag.AxelGlobeAuth(**emulator.settings_kwargs()))
    without = ag.load(found, bands=["red"], auth=auth)
    assert without.sizes["time"] == with_ids.sizes["time"] == len(captures)
    np.testing.assert_array_equal(without.time.values, with_ids.time.values)
    np.testing.assert_array_equal(without.red.values, with_ids.red.values)
    assert list(without.capture_id.values) == (
        [GUIDE_CAPTURE] if name == "capture-id" else [""] * len(captures))
