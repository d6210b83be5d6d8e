"""GET /search on the emulator: parameters and CQL2 filters. Truth comes from the items
themselves (shapely over their geometries), never from the emulator's own code."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from statistics import mean
from typing import Any

import pytest
import requests
import shapely
from shapely.geometry import shape

from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.api import page_timestamp

GUIDE_BBOX = (133, 35, 137, 36)
GUIDE_DATETIME = "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z"
GUIDE_MULTIPOLYGON = (
    "MULTIPOLYGON (((-50.377998355519196 -21.25571182037737, -50.39389773429008 "
    "-21.306903229767897, -50.33831203728997 -21.326928577662557, -50.30119747112292 "
    "-21.30514840932203, -50.30233752991262 -21.265344869483116, -50.377998355519196 "
    "-21.25571182037737)), ((-50.30307167289692 -21.33556537511332, -50.29675481118801 "
    "-21.352508108156158, -50.320483483126424 -21.37151690592809, -50.33829784306903 "
    "-21.37531838541942, -50.32083308423938 -21.415381832666043, -50.27781101074311 "
    "-21.39743120280255, -50.26742062143981 -21.40399484490206, -50.24515788837763 "
    "-21.3798116216757, -50.20469383948901 -21.389847864440497, -50.19355419558164 "
    "-21.371524192627504, -50.249239808424704 -21.337647270055186, -50.30307167289692 "
    "-21.33556537511332)))"
)


def search(emu: Emulator, **params: Any) -> requests.Response:
    return requests.get(
        f"{emu.api_url}/search",
        params=params,
        timeout=10,
        headers={"Authorization": f"Bearer {emu.token()}"},
    )


def ids(emu: Emulator, **params: Any) -> list[str]:
    r = search(emu, limit=100, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "next" not in {link["rel"] for link in body["links"]}
    return [f["id"] for f in body["features"]]


@pytest.fixture(scope="module")
def items(emulator: Emulator) -> list[dict[str, Any]]:
    r = search(emulator, limit=100)
    features: list[dict[str, Any]] = r.json()["features"]
    assert len(features) == len(emulator.archive.item_ids())  # type: ignore[union-attr]
    return features


def geom(item: dict[str, Any]) -> Any:
    return shape({k: v for k, v in item["geometry"].items() if k != "crs"})


def when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def order(chosen: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in sorted(chosen, key=lambda i: (when(i), i["id"]))]


def test_results_sorted_by_datetime_then_id(
    emulator: Emulator, items: list[dict[str, Any]]
) -> None:
    assert [i["id"] for i in items] == order(items)


def test_bbox(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    box = shapely.box(*GUIDE_BBOX)
    expected = order([i for i in items if geom(i).intersects(box)])
    assert 0 < len(expected) < len(items)
    assert ids(emulator, bbox="133,35,137,36") == expected
    assert ids(emulator, bbox="133,35,0,137,36,100") == expected  # 3-D bbox


def test_bbox_across_the_antimeridian(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    # STAC API and CQL2: a west edge greater than the east edge crosses the antimeridian.
    def across(west: float, south: float, east: float, north: float) -> list[str]:
        halves = shapely.union_all([shapely.box(west, south, 180, north),
                                    shapely.box(-180, south, east, north)])
        return order([i for i in items if geom(i).intersects(halves)])

    # the naive box from -170 to 170 would take the Japanese tiles (135 E)
    assert [i for i in items if geom(i).intersects(shapely.box(-170, 30, 170, 40))]
    assert across(170, 30, -170, 40) == []
    assert ids(emulator, bbox="170,30,-170,40") == []
    assert ids(emulator, filter="S_INTERSECTS(geometry, BBOX(170, 30, -170, 40))") == []
    japan = across(130, 30, -170, 40)
    assert 0 < len(japan) < len(items)
    assert ids(emulator, bbox="130,30,-170,40") == japan
    assert ids(emulator, filter="S_INTERSECTS(geometry, BBOX(130, 30, -170, 40))") == japan


@pytest.mark.parametrize("bbox", ["133,35,137", "a,b,c,d", "133,35,137,36,1", "133,36,137,35"])
def test_bad_bbox(emulator: Emulator, bbox: str) -> None:
    r = search(emulator, bbox=bbox)
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue" and "bbox" in r.json()["description"]


def test_datetime(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    lo, hi = (
        datetime.fromisoformat("2021-04-10T00:00:00+00:00"),
        datetime.fromisoformat("2021-06-30T23:59:59+00:00"),
    )
    expected = order([i for i in items if lo <= when(i) <= hi])
    assert 0 < len(expected) < len(items)
    assert ids(emulator, datetime=GUIDE_DATETIME) == expected
    assert ids(emulator, datetime="2021-04-10T00:00:00Z/..") == order(
        [i for i in items if when(i) >= lo]
    )
    assert ids(emulator, datetime="../2021-06-30T23:59:59Z") == order(
        [i for i in items if when(i) <= hi]
    )
    one = items[0]
    assert one["id"] in ids(emulator, datetime=one["properties"]["datetime"])


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2021-13-01T00:00:00Z",
        "../..",
        "2021-06-01/2021-05-01",
        "2021-01-01T00:00:00Z/2021-02-01T00:00:00Z/x",
    ],
)
def test_bad_datetime(emulator: Emulator, value: str) -> None:
    r = search(emulator, datetime=value)
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"


def test_collections_and_ids(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    assert ids(emulator, collections="grus-1") == [i["id"] for i in items]
    assert ids(emulator, collections="sentinel-2") == []
    picked = [items[3]["id"], items[0]["id"]]
    assert ids(emulator, ids=",".join(picked)) == [items[0]["id"], items[3]["id"]]


def test_limit_and_page(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    r = search(emulator, limit=5, page=2).json()
    assert [f["id"] for f in r["features"]] == [i["id"] for i in items[5:10]]
    assert r["numberReturned"] == 5 and "numberMatched" not in r and "timestamp" in r
    links = {link["rel"]: link["href"] for link in r["links"]}
    assert links["next"] == f"{emulator.api_url}/search?page=3"  # the quirk: nothing else
    assert links["self"] == f"{emulator.api_url}/search"
    assert len(search(emulator).json()["features"]) == 10  # default limit
    assert len(search(emulator, limit=1000).json()["features"]) == len(items)  # max 100
    assert search(emulator, limit=5, page=100).json()["features"] == []
    for bad in ({"limit": 0}, {"limit": "x"}, {"page": 0}):
        assert search(emulator, **bad).status_code == 400


def test_page_links_and_timestamp_as_in_the_guide(emulator: Emulator) -> None:
    # The guide's search response: links are exactly next (only when more) and self, both
    # typed application/json; no root link.
    first = search(emulator, limit=5).json()
    assert first["links"] == [
        {"rel": "next", "href": f"{emulator.api_url}/search?page=2", "type": "application/json"},
        {"rel": "self", "href": f"{emulator.api_url}/search", "type": "application/json"},
    ]
    assert list(first) == ["type", "features", "links", "timestamp", "numberReturned"]
    last = search(emulator, limit=100).json()
    assert last["links"] == [
        {"rel": "self", "href": f"{emulator.api_url}/search", "type": "application/json"}
    ]
    features = requests.get(
        f"{emulator.api_url}/collections/grus-1/features",
        params={"limit": 5},
        headers={"Authorization": f"Bearer {emulator.token()}"},
        timeout=10,
    ).json()
    base = f"{emulator.api_url}/collections/grus-1/features"
    assert features["links"] == [
        {"rel": "next", "href": f"{base}?page=2", "type": "application/json"},
        {"rel": "self", "href": base, "type": "application/json"},
    ]


def test_timestamp_always_has_microseconds(emulator: Emulator) -> None:
    # "2022-08-31T07:09:06.235450" in the guide: naive, six fraction digits, even when the
    # clock's microseconds happen to be 0 (isoformat() would drop them then).
    assert page_timestamp(1661929746.0) == "2022-08-31T07:09:06.000000"
    stamp = search(emulator, limit=1).json()["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", stamp), stamp


def test_next_link_followed_with_original_query(
    emulator: Emulator, items: list[dict[str, Any]]
) -> None:
    params = {"filter": "eo:cloud_cover <= 30", "limit": 3}
    expected = [i["id"] for i in items if i["properties"]["eo:cloud_cover"] <= 30]
    got: list[str] = []
    page = 1
    while True:
        body = search(emulator, **params, page=page).json()
        got += [f["id"] for f in body["features"]]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            break
        page = int(nxt[0].rsplit("=", 1)[1])
    assert got == expected


@pytest.mark.parametrize(
    ("text", "keep"),
    [
        ("eo:cloud_cover <= 30", lambda p: p["eo:cloud_cover"] <= 30),
        ("eo:cloud_cover < 30", lambda p: p["eo:cloud_cover"] < 30),
        ("eo:cloud_cover > 30", lambda p: p["eo:cloud_cover"] > 30),
        ("eo:cloud_cover >= 30", lambda p: p["eo:cloud_cover"] >= 30),
        ("eo:cloud_cover = 5", lambda p: p["eo:cloud_cover"] == 5),
        ("eo:cloud_cover <> 5", lambda p: p["eo:cloud_cover"] != 5),
        ("platform = 'GRUS-1A'", lambda p: p["platform"] == "GRUS-1A"),
        ("view:off_nadir < 5", lambda p: p["view:off_nadir"] < 5),
        (
            "eo:cloud_cover <= 10 AND platform = 'GRUS-1B'",
            lambda p: p["eo:cloud_cover"] <= 10 and p["platform"] == "GRUS-1B",
        ),
        (
            "platform = 'GRUS-1A' OR platform = 'GRUS-1E'",
            lambda p: p["platform"] in ("GRUS-1A", "GRUS-1E"),
        ),
        ("NOT (eo:cloud_cover <= 10)", lambda p: not p["eo:cloud_cover"] <= 10),
        (
            "datetime >= TIMESTAMP('2021-06-01T00:00:00Z')",
            lambda p: p["datetime"] >= "2021-06-01T00:00:00Z",
        ),
        ("datetime < '2021-06-01T00:00:00Z'", lambda p: p["datetime"] < "2021-06-01T00:00:00Z"),
    ],
)
def test_property_filters(
    emulator: Emulator, items: list[dict[str, Any]], text: str, keep: Any
) -> None:
    expected = [i["id"] for i in items if keep(i["properties"])]
    assert 0 < len(expected) < len(items), "the archive should split on this filter"
    assert ids(emulator, filter=text, **{"filter-lang": "cql2-text"}) == expected


def test_capture_id(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    expected = [
        i["id"] for i in items if i["properties"].get("ag:capture_id") == "52eZg9k7rPEyYQGX"
    ]
    assert len(expected) == 4
    assert ids(emulator, filter="ag:capture_id = '52eZg9k7rPEyYQGX'") == expected


def aoi_truth(
    items: list[dict[str, Any]], aoi: Any, limit: float, keep: Any = lambda i: True
) -> list[str]:
    """The guide's rule: tiles of one capture touching the AOI, kept iff their mean passes."""
    covers: dict[str, list[float]] = defaultdict(list)
    for i in items:
        if geom(i).intersects(aoi):
            covers[i["properties"]["ag:capture_id"]].append(i["properties"]["eo:cloud_cover"])
    return [
        i["id"]
        for i in items
        if geom(i).intersects(aoi)
        and keep(i)
        and mean(covers[i["properties"]["ag:capture_id"]]) <= limit
    ]


def test_avg_with_bbox(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    lo, hi = "2021-04-10T00:00:00Z", "2021-06-30T23:59:59Z"
    expected = aoi_truth(
        items, shapely.box(*GUIDE_BBOX), 30, lambda i: lo <= i["properties"]["datetime"] <= hi
    )
    item_level = ids(
        emulator, bbox="133,35,137,36", datetime=GUIDE_DATETIME, filter="eo:cloud_cover <= 30"
    )
    got = ids(
        emulator, bbox="133,35,137,36", datetime=GUIDE_DATETIME, filter="avg(eo:cloud_cover) <= 30"
    )
    assert got == expected and got
    assert set(got) != set(item_level)  # AOI-level differs from item-level here


def test_avg_with_small_bbox_changes_the_group(
    emulator: Emulator, items: list[dict[str, Any]]
) -> None:
    # A bbox around one tile of a capture: that tile alone forms the group.
    target = next(
        i
        for i in items
        if i["properties"]["ag:capture_id"] == "52eZg9k7rPEyYQGX"
        and i["properties"]["eo:cloud_cover"] == 10
    )
    c = geom(target).centroid
    box = (c.x - 0.001, c.y - 0.001, c.x + 0.001, c.y + 0.001)
    expected = aoi_truth(items, shapely.box(*box), 30)
    assert target["id"] in expected
    assert (
        ids(emulator, bbox=",".join(map(str, box)), filter="avg(eo:cloud_cover) <= 30") == expected
    )


@pytest.mark.parametrize(
    ("limit", "dates"), [(18, set()), (20, {"2021-04-22"}), (30, {"2021-04-22", "2021-05-30"})]
)
def test_avg_with_the_guides_multipolygon(
    emulator: Emulator, items: list[dict[str, Any]], limit: float, dates: set[str]
) -> None:
    aoi = shapely.from_wkt(GUIDE_MULTIPOLYGON)
    lo, hi = GUIDE_DATETIME.split("/")
    expected = aoi_truth(items, aoi, limit, lambda i: lo <= i["properties"]["datetime"] <= hi)
    text = f"avg(eo:cloud_cover) <= {limit} AND S_INTERSECTS(geometry, {GUIDE_MULTIPOLYGON})"
    got = ids(emulator, datetime=GUIDE_DATETIME, collections="grus-1", filter=text)
    assert got == expected
    assert {i["properties"]["datetime"][:10] for i in items if i["id"] in got} == dates


def test_avg_group_is_not_the_whole_capture(
    emulator: Emulator, items: list[dict[str, Any]]
) -> None:
    # The 2021-05-30 capture averages <= 20 over all its tiles but 30 over the AOI's tiles.
    capture = [i for i in items if i["properties"]["datetime"].startswith("2021-05-30")]
    assert mean(i["properties"]["eo:cloud_cover"] for i in capture) <= 20
    text = f"avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, {GUIDE_MULTIPOLYGON})"
    assert not {i["id"] for i in capture} & set(ids(emulator, filter=text))


def test_avg_aoi_is_bbox_intersected_with_geometry(
    emulator: Emulator, items: list[dict[str, Any]]
) -> None:
    brazil = [i for i in items if i["bbox"][0] < 0]
    union = shapely.union_all([geom(i) for i in brazil])
    minx, miny, maxx, maxy = union.bounds
    poly = shapely.box(minx, miny, (minx + maxx) / 2, maxy)  # west half
    box = (minx - 1, (miny + maxy) / 2, maxx + 1, maxy + 1)  # north half
    expected = aoi_truth(items, poly.intersection(shapely.box(*box)), 40)
    got = ids(
        emulator,
        bbox=",".join(map(str, box)),
        filter=f"avg(eo:cloud_cover) <= 40 AND S_INTERSECTS(geometry, {poly.wkt})",
    )
    assert got == expected


def _brazil_shapes(items: list[dict[str, Any]]) -> dict[str, str]:
    # Shapes placed at fractions of the biggest Brazilian capture's block (a rectangle, unlike
    # the union of all Brazilian tiles, which has a strip of tiles sticking out south).
    captures: dict[str, list[Any]] = defaultdict(list)
    for i in items:
        if i["bbox"][0] < 0:
            captures[i["properties"]["ag:capture_id"]].append(geom(i))
    tiles = max(captures.values(), key=len)
    minx, miny, maxx, maxy = shapely.union_all(tiles).bounds
    w, h = maxx - minx, maxy - miny

    def x(f: float) -> float:
        return float(minx + f * w)

    def y(f: float) -> float:
        return float(miny + f * h)

    return {
        "POINT": f"POINT({x(0.1)} {y(0.2)})",
        "LINESTRING": f"LINESTRING({x(0.1)} {y(0.9)}, {x(0.5)} {y(0.9)})",
        "MULTIPOINT": f"MULTIPOINT(({x(0.1)} {y(0.1)}), ({x(0.9)} {y(0.9)}))",
        "MULTILINESTRING": f"MULTILINESTRING(({x(0.05)} {y(0.1)}, {x(0.1)} {y(0.3)}), "
        f"({x(0.95)} {y(0.7)}, {x(0.9)} {y(0.9)}))",
        "POLYGON": f"POLYGON(({x(0.05)} {y(0.05)}, {x(0.4)} {y(0.05)}, {x(0.4)} {y(0.4)}, "
        f"{x(0.05)} {y(0.05)}))",
        "MULTIPOLYGON": f"MULTIPOLYGON((({x(0.05)} {y(0.05)}, {x(0.2)} {y(0.05)}, {x(0.2)} "
        f"{y(0.2)}, {x(0.05)} {y(0.05)})), (({x(0.8)} {y(0.8)}, {x(0.95)} "
        f"{y(0.8)}, {x(0.95)} {y(0.95)}, {x(0.8)} {y(0.8)})))",
    }


@pytest.mark.parametrize(
    "kind", ["POINT", "LINESTRING", "MULTIPOINT", "MULTILINESTRING", "POLYGON", "MULTIPOLYGON"]
)
def test_s_intersects(emulator: Emulator, items: list[dict[str, Any]], kind: str) -> None:
    wkt = _brazil_shapes(items)[kind]
    literal = shapely.from_wkt(wkt)
    expected = [i["id"] for i in items if geom(i).intersects(literal)]
    assert 0 < len(expected) < len([i for i in items if i["bbox"][0] < 0])
    assert ids(emulator, filter=f"S_INTERSECTS(geometry, {wkt})") == expected


def test_s_intersects_bbox(emulator: Emulator, items: list[dict[str, Any]]) -> None:
    box = (135.50, 35.49, 135.51, 35.50)
    expected = [i["id"] for i in items if geom(i).intersects(shapely.box(*box))]
    assert expected
    text = "S_INTERSECTS(geometry, BBOX({}, {}, {}, {}))".format(*box)
    assert ids(emulator, filter=text) == expected
    assert ids(emulator, bbox=",".join(map(str, box))) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "S_INTERSECTS(geometry, GEOMETRYCOLLECTION(POINT(1 2), POINT(3 4)))",
            "GEOMETRYCOLLECTION is not supported",
        ),
        (
            "S_INTERSECTS(geometry, ENVELOPE(-50.38, -21.5, -50.09, -21.22))",
            "ENVELOPE is not supported",
        ),
        ("eo:cloud_cover <=", "cannot parse filter"),
        ("eo:cloud_cover <= 30 AND", "cannot parse filter"),
        ("S_CONTAINS(geometry, POINT(1 2))", "not supported"),
    ],
)
def test_filter_errors(emulator: Emulator, text: str, words: str) -> None:
    r = search(emulator, filter=text)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and words in body["description"]


def test_filter_lang_other_than_text(emulator: Emulator) -> None:
    r = search(emulator, filter='{"op": "=", "args": [1, 1]}', **{"filter-lang": "cql2-json"})
    assert r.status_code == 400 and "cql2-text" in r.json()["description"]


def test_post_search_refused(emulator: Emulator) -> None:
    r = requests.post(
        f"{emulator.api_url}/search",
        json={"limit": 1},
        timeout=10,
        headers={"Authorization": f"Bearer {emulator.token()}"},
    )
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


def test_post_search_allowed() -> None:
    with Emulator(allow_post_search=True) as emu:
        r = requests.post(
            f"{emu.api_url}/search",
            timeout=10,
            json={"limit": 2, "collections": ["grus-1"], "filter": "eo:cloud_cover <= 30"},
            headers={"Authorization": f"Bearer {emu.token()}"},
        )
        assert r.status_code == 200
        assert all(f["properties"]["eo:cloud_cover"] <= 30 for f in r.json()["features"])
        assert len(r.json()["features"]) == 2


def test_post_search_intersects(items: list[dict[str, Any]]) -> None:
    # pystac-client POSTs "intersects" as a GeoJSON object (when POST is allowed at all)
    poly = shapely.Polygon([(133, 35), (137, 35), (137, 36), (133, 35)])
    expected = order([i for i in items if geom(i).intersects(poly)])
    assert 0 < len(expected) < len(items)
    with Emulator(allow_post_search=True) as emu:
        r = requests.post(
            f"{emu.api_url}/search",
            timeout=10,
            json={"limit": 100, "intersects": shapely.geometry.mapping(poly)},
            headers={"Authorization": f"Bearer {emu.token()}"},
        )
        assert r.status_code == 200, r.text
        assert [f["id"] for f in r.json()["features"]] == expected


# The guide's table of S_INTERSECTS geometry types, verbatim.
GUIDE_GEOMETRIES = {
    "POINT(-50.38 -21.5)": shapely.Point(-50.38, -21.5),
    "LINESTRING(-50.38 -21.5, -50.09 -21.22)": shapely.LineString(
        [(-50.38, -21.5), (-50.09, -21.22)]
    ),
    "MULTIPOINT(-50.38 -21.5, -50.21 -21.35, -50.09 -21.22)": shapely.MultiPoint(
        [(-50.38, -21.5), (-50.21, -21.35), (-50.09, -21.22)]
    ),
    "MULTILINESTRING((-50.38 -21.5, -50.09 -21.22), (-50.40 -21.5, -50.20 -21.22))": (
        shapely.MultiLineString(
            [[(-50.38, -21.5), (-50.09, -21.22)], [(-50.40, -21.5), (-50.20, -21.22)]]
        )
    ),
    "POLYGON ((-50.20505723737355 -21.232224612155605, -50.241064225176046 "
    "-21.313183636346878, -50.46497592428804 -21.236341502437398, -50.393497166332 "
    "-21.3760852767586, -50.44812052553934 -21.413061245887874, -50.39418449523467 "
    "-21.46133360699264, -50.28895655861953 -21.377395489410375, -50.3429761155798 "
    "-21.48154901026048, -50.246261937136524 -21.504062285999552, -50.24589922810463 "
    "-21.42714150367614, -50.10308176515423 -21.461298512790606, -50.06293125593601 "
    "-21.332805004588934, -50.20505723737355 -21.232224612155605))": None,
    GUIDE_MULTIPOLYGON: None,
    "BBOX(-50.38, -21.5, -50.09, -21.22)": shapely.box(-50.38, -21.5, -50.09, -21.22),
}


@pytest.mark.parametrize("text", list(GUIDE_GEOMETRIES))
def test_s_intersects_with_the_guides_examples(
    emulator: Emulator, items: list[dict[str, Any]], text: str
) -> None:
    literal = GUIDE_GEOMETRIES[text] or shapely.from_wkt(text)
    expected = order([i for i in items if geom(i).intersects(literal)])
    assert ids(emulator, filter=f"S_INTERSECTS(geometry, {text})") == expected


def test_guides_geometrycollection_is_refused(emulator: Emulator) -> None:
    parts = GUIDE_MULTIPOLYGON.removeprefix("MULTIPOLYGON (((").removesuffix(")))")
    first, second = parts.split(")), ((")
    text = f"GEOMETRYCOLLECTION(POLYGON (({first})),POLYGON (({second})))"
    r = search(emulator, filter=f"S_INTERSECTS(geometry, {text})")
    assert r.status_code == 400
    assert "GEOMETRYCOLLECTION is not supported" in r.json()["description"]


@pytest.fixture(scope="module")
def all_features(emulator: Emulator) -> list[dict[str, Any]]:
    """Every item, read page by page from /collections/grus-1/features (not /search)."""
    features: list[dict[str, Any]] = []
    for page in range(1, 100):
        r = requests.get(
            f"{emulator.api_url}/collections/grus-1/features",
            params={"limit": 10, "page": page},
            timeout=10,
            headers={"Authorization": f"Bearer {emulator.token()}"},
        )
        assert r.status_code == 200, r.text
        if not r.json()["features"]:
            break
        features += r.json()["features"]
    assert len({f["id"] for f in features}) == len(features)
    assert len(features) == len(emulator.archive.item_ids())  # type: ignore[union-attr]
    return features


@pytest.mark.parametrize("text", list(GUIDE_GEOMETRIES))
def test_each_of_the_guides_examples_finds_the_tiles_it_touches(
    emulator: Emulator, all_features: list[dict[str, Any]], text: str
) -> None:
    # What a user copying the guide's example gets: some tiles, and exactly those touched.
    literal = GUIDE_GEOMETRIES[text] or shapely.from_wkt(text)
    expected = {f["id"] for f in all_features if geom(f).intersects(literal)}
    assert expected and len(expected) < len(all_features)
    found = ids(emulator, filter=f"S_INTERSECTS(geometry, {text})")
    assert len(found) == len(set(found)) and set(found) == expected
