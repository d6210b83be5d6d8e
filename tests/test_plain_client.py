"""The plain ``pystac_client.Client`` with only ``request_modifier=ag.AxelGlobeAuth()``.

Every search is compared with ``ag.open()``'s: the same item ids in the same order, the same
number of ``/search`` requests (one per page), the same query on every page. The guide's
scenarios and their expected item sets come from ``test_search_scenarios.py`` (imported).
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cql2
import pystac_client
import pytest
import requests
import shapely
import shapely.geometry
from pystac_client.exceptions import APIError
from pystac_client.warnings import DoesNotConformTo, PystacClientWarning

import pystac_axelglobe as ag
from pystac_axelglobe import filters
from pystac_axelglobe.emulator import Emulator
from tests.fake_api import FakeAPI, Handler, asked_page, landing
from tests.fake_api import page as page_of
from tests.test_search_scenarios import (
    GUIDE_BBOX,
    GUIDE_BBOX_LITERAL,
    GUIDE_CAPTURE,
    GUIDE_DATETIME,
    GUIDE_GEOMETRIES,
    _through_tiles,
    expected_ids,
    fetch_all_items,
    footprint,
)

LIMIT = 2  # several pages for every non-trivial scenario
Query = dict[str, list[str]]


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_items(emulator: Emulator) -> list[dict[str, Any]]:
    return fetch_all_items(emulator)


@pytest.fixture(scope="module")
def reference(emulator: Emulator,
              tmp_path_factory: pytest.TempPathFactory) -> pystac_client.Client:
    """``ag.open()``: what the plain client must match."""
    # prefetch_pages=1: its requests are compared page for page, in order
    return ag.open(**emulator.settings_kwargs(), cache_dir=tmp_path_factory.mktemp("ref"),
                   prefetch_pages=1)


def open_plain(emu: Emulator, cache_dir: Path | None = None,
               **kwargs: Any) -> pystac_client.Client:
    """The one-line integration, as the docs write it."""
    auth = ag.AxelGlobeAuth(**emu.settings_kwargs(), cache_dir=cache_dir)
    return pystac_client.Client.open(emu.api_url, request_modifier=auth,
                                     modifier=ag.normalize_item, **kwargs)


@pytest.fixture(scope="module")
def plain(emulator: Emulator,
          tmp_path_factory: pytest.TempPathFactory) -> pystac_client.Client:
    return open_plain(emulator, tmp_path_factory.mktemp("plain"))


def search(client: pystac_client.Client, method: str | None, **kwargs: Any) -> Any:
    return client.search(**kwargs) if method is None else client.search(method=method,
                                                                          **kwargs)


def sent_searches(emu: Emulator, before: int) -> list[Query]:
    """The query of every /search request since ``before``; all of them GET."""
    entries = [e for e in emu.requests[before:] if e[1].endswith("/search")]
    assert all(e[0] == "GET" for e in entries), entries  # POST is never sent
    return [parse_qs(e[2], keep_blank_values=True) for e in entries]


def run(client: pystac_client.Client, emu: Emulator, method: str | None = None,
        **kwargs: Any) -> tuple[list[str], list[Query]]:
    """Search; the ids in order and the queries sent."""
    before = len(emu.requests)
    ids = [item.id for item in search(client, method, **kwargs).items()]
    return ids, sent_searches(emu, before)


def pages_for(count: int, limit: int = LIMIT) -> int:
    return max(1, math.ceil(count / limit))


def same_queries(got: list[Query], want: list[Query]) -> None:
    """Page by page the same query; a filter that went through CQL2-JSON may be respelled."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        fa, fb = a.pop("filter", None), b.pop("filter", None)
        assert a == b
        assert (fa is None) == (fb is None)
        if fa is not None and fb is not None:
            assert cql2.parse_text(fa[0]).to_json() == cql2.parse_text(fb[0]).to_json()


# --- the guide's scenarios -------------------------------------------------------------------

Scenario = Callable[[list[dict[str, Any]]], tuple[dict[str, Any], set[str]]]

MULTIPOLYGON = GUIDE_GEOMETRIES["MULTIPOLYGON"]
AOI_TEXT = f"avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, {MULTIPOLYGON})"
AVG_20_JSON = {"op": "<=", "args": [{"op": "avg", "args": [{"property": "eo:cloud_cover"}]},
                                   20]}


def _literal(kind: str) -> Scenario:
    def scenario(items: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
        if kind == "BBOX":
            literal = GUIDE_BBOX_LITERAL
            geometry = shapely.geometry.box(-50.38, -21.5, -50.09, -21.22)
        else:
            literal, geometry = GUIDE_GEOMETRIES[kind], shapely.from_wkt(GUIDE_GEOMETRIES[kind])
        return ({"filter": f"S_INTERSECTS(geometry, {literal})"},
                expected_ids(items, geometry=geometry))
    return scenario


def _tiles(kind: str) -> Scenario:
    def scenario(items: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
        geometry = _through_tiles(kind, items)
        return {"filter": filters.intersects(geometry)}, expected_ids(items, geometry=geometry)
    return scenario


def _intersects(form: str) -> Scenario:
    def scenario(items: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
        geometry = shapely.from_wkt(GUIDE_GEOMETRIES["POLYGON"])
        mapping = shapely.geometry.mapping(geometry)
        value = {"shapely": geometry, "geojson": mapping,
                 "feature": {"type": "Feature", "properties": {}, "geometry": mapping}}[form]
        return {"intersects": value}, expected_ids(items, geometry=geometry)
    return scenario


def _point(items: list[dict[str, Any]], as_filter: bool) -> tuple[dict[str, Any], set[str]]:
    point = footprint(items[7]).representative_point()
    kwargs = {"filter": filters.intersects(point)} if as_filter else {"intersects": point}
    return kwargs, expected_ids(items, geometry=point)


SCENARIOS: dict[str, Scenario] = {
    "item-cloud-cover-in-bbox": lambda items: (
        {"bbox": GUIDE_BBOX, "datetime": GUIDE_DATETIME, "collections": ["grus-1"],
         "filter": "eo:cloud_cover <= 30"},
        expected_ids(items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME, max_cloud=30)),
    "aoi-cloud-cover-in-bbox": lambda items: (
        {"bbox": GUIDE_BBOX, "datetime": GUIDE_DATETIME, "collections": "grus-1",
         "filter": filters.aoi_cloud_cover(30)},
        expected_ids(items, bbox=GUIDE_BBOX, datetime=GUIDE_DATETIME, max_aoi_cloud=30)),
    "aoi-cloud-cover-in-the-multipolygon": lambda items: (
        {"datetime": GUIDE_DATETIME, "collections": ["grus-1"], "filter": AOI_TEXT},
        expected_ids(items, datetime=GUIDE_DATETIME, geometry=shapely.from_wkt(MULTIPOLYGON),
                     max_aoi_cloud=20)),
    "capture-id": lambda items: (
        {"collections": ["grus-1"], "filter": f"ag:capture_id = '{GUIDE_CAPTURE}'"},
        expected_ids(items, capture=GUIDE_CAPTURE)),
    "capture-id-builder": lambda items: (
        {"collections": ["grus-1"], "filter": filters.capture_id(GUIDE_CAPTURE)},
        expected_ids(items, capture=GUIDE_CAPTURE)),
    **{f"literal-{kind.lower()}": _literal(kind) for kind in [*GUIDE_GEOMETRIES, "BBOX"]},
    **{f"through-tiles-{kind.lower()}": _tiles(kind) for kind in GUIDE_GEOMETRIES},
    "point-inside-a-tile-filter": lambda items: _point(items, True),
    "point-inside-a-tile-intersects": lambda items: _point(items, False),
    **{f"intersects-{form}": _intersects(form) for form in ("shapely", "geojson", "feature")},
    "intersects-anded-with-a-cql2-json-filter": lambda items: (
        {"datetime": GUIDE_DATETIME, "intersects": shapely.from_wkt(MULTIPOLYGON),
         "filter": AVG_20_JSON},
        expected_ids(items, datetime=GUIDE_DATETIME, geometry=shapely.from_wkt(MULTIPOLYGON),
                     max_aoi_cloud=20)),
    "combined-bbox-and-cloud": lambda items: (
        {"bbox": [-50.45, -21.55, -50.0, -21.2], "filter": filters.all_of(
            filters.cloud_cover(25))},
        expected_ids(items, bbox=[-50.45, -21.55, -50.0, -21.2], max_cloud=25)),
    "the-whole-collection": lambda items: (
        {"collections": ["grus-1"]}, {item["id"] for item in items}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_guide_scenario_plain_client_equals_ag_open(
        name: str, plain: pystac_client.Client, reference: pystac_client.Client,
        emulator: Emulator, all_items: list[dict[str, Any]]) -> None:
    kwargs, want = SCENARIOS[name](all_items)
    ref_ids, ref_queries = run(reference, emulator, limit=LIMIT, **kwargs)
    ids, queries = run(plain, emulator, limit=LIMIT, **kwargs)  # default method: POST
    assert ids == ref_ids
    assert set(ids) == want and len(ids) == len(want)
    assert len(queries) == pages_for(len(want))  # one request per page, no more
    same_queries(queries, ref_queries)


@pytest.mark.parametrize("name", ["item-cloud-cover-in-bbox",
                                  "aoi-cloud-cover-in-the-multipolygon",
                                  "intersects-anded-with-a-cql2-json-filter"])
def test_guide_scenario_with_get_sends_exactly_what_ag_open_sends(
        name: str, plain: pystac_client.Client, reference: pystac_client.Client,
        emulator: Emulator, all_items: list[dict[str, Any]]) -> None:
    kwargs, want = SCENARIOS[name](all_items)
    assert len(want) >= 3  # with limit=1: page 3 and beyond
    ref_ids, ref_queries = run(reference, emulator, limit=1, **kwargs)
    ids, queries = run(plain, emulator, "GET", limit=1, **kwargs)
    assert ids == ref_ids and set(ids) == want
    assert queries == ref_queries  # the same text, page for page
    assert [q.get("page") for q in queries] == [None] + [[str(n)] for n in
                                                         range(2, len(want) + 1)]


# --- methods, max_items, pages(), item_collection() ------------------------------------------

CLOUDY: dict[str, Any] = {"collections": ["grus-1"], "filter": "eo:cloud_cover <= 30"}


@pytest.mark.parametrize("method", [None, "POST", "GET"])
def test_max_items_stops_paging(method: str | None, plain: pystac_client.Client,
                                reference: pystac_client.Client,
                                emulator: Emulator) -> None:
    ref_ids, ref_queries = run(reference, emulator, limit=LIMIT, max_items=5, **CLOUDY)
    ids, queries = run(plain, emulator, method, limit=LIMIT, max_items=5, **CLOUDY)
    assert ids == ref_ids and len(ids) == 5
    assert len(queries) == 3  # 2 + 2 + 1 of the third page
    same_queries(queries, ref_queries)


@pytest.mark.parametrize("method", [None, "POST", "GET"])
def test_pages_and_item_collection(method: str | None, plain: pystac_client.Client,
                                   reference: pystac_client.Client,
                                   emulator: Emulator) -> None:
    want = [[i.id for i in page] for page in reference.search(limit=LIMIT, **CLOUDY).pages()]
    assert len(want) > 3
    before = emulator.counters.search_requests
    got = [[i.id for i in page] for page in search(plain, method, limit=LIMIT,
                                                     **CLOUDY).pages()]
    assert got == want
    assert emulator.counters.search_requests - before == len(want)
    collection = search(plain, method, limit=LIMIT, **CLOUDY).item_collection()
    assert [i.id for i in collection] == [i for page in want for i in page]
    as_dicts = search(plain, method, limit=LIMIT, **CLOUDY).items_as_dicts()
    assert [d["id"] for d in as_dicts] == [i for page in want for i in page]


def test_items_are_normalised_as_ag_open_gives_them(plain: pystac_client.Client,
                                                    reference: pystac_client.Client) -> None:
    want = [i.to_dict() for i in reference.search(limit=LIMIT, max_items=4, **CLOUDY).items()]
    got = [i.to_dict() for i in plain.search(limit=LIMIT, max_items=4, **CLOUDY).items()]
    assert got == want
    item = next(plain.search(limit=1, max_items=1, **CLOUDY).items())
    assert ag.AxelGlobeExtension.ext(item).capture_id


def test_no_warning_for_the_default_method(plain: pystac_client.Client) -> None:
    # The landing page advertises GET only; the modifier adds POST (which it sends as GET).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        next(plain.search(limit=1, **CLOUDY).items())
    assert not [w for w in caught if issubclass(w.category, PystacClientWarning)]


def test_landing_page_without_conforms_to(tmp_path: Path) -> None:
    with Emulator(conforms_to=False) as emu:
        client = open_plain(emu, tmp_path)  # pystac-client would warn NoConformsTo (an error)
        assert client.conforms_to(pystac_client.ConformanceClasses.ITEM_SEARCH)
        ids, queries = run(client, emu, limit=LIMIT, **CLOUDY)
        assert len(ids) > LIMIT and len(queries) == pages_for(len(ids))


# --- no shared state: interleaved searches ---------------------------------------------------

FIRST: dict[str, Any] = {"collections": ["grus-1"], "filter": "eo:cloud_cover <= 20"}
SECOND: dict[str, Any] = {"bbox": GUIDE_BBOX, "datetime": GUIDE_DATETIME,
                          "filter": filters.aoi_cloud_cover(30)}


def test_two_searches_advanced_alternately(plain: pystac_client.Client,
                                           reference: pystac_client.Client) -> None:
    want = [[i.id for i in reference.search(limit=LIMIT, **kw).items()]
            for kw in (FIRST, SECOND)]
    assert want[0] and want[1] and set(want[0]) != set(want[1])
    for methods in ((None, None), ("GET", None), ("GET", "GET")):
        iterators = [search(plain, m, limit=LIMIT, **kw).items()
                     for m, kw in zip(methods, (FIRST, SECOND), strict=True)]
        got: list[list[str]] = [[], []]
        live = [0, 1]
        while live:
            for n in list(live):  # one item of each in turn: their pages interleave
                item = next(iterators[n], None)
                if item is None:
                    live.remove(n)
                else:
                    got[n].append(item.id)
        assert got == want


def test_pages_of_two_searches_interleaved(plain: pystac_client.Client,
                                           reference: pystac_client.Client) -> None:
    want = [[[i.id for i in p] for p in reference.search(limit=LIMIT, **kw).pages()]
            for kw in (FIRST, SECOND)]
    iterators = [plain.search(limit=LIMIT, **kw).pages() for kw in (FIRST, SECOND)]
    got: list[list[list[str]]] = [[], []]
    live = [0, 1]
    while live:
        for n in list(live):  # a page of each in turn
            page = next(iterators[n], None)
            if page is None:
                live.remove(n)
            else:
                got[n].append([i.id for i in page])
    assert got == want


def test_searches_in_threads(plain: pystac_client.Client,
                             reference: pystac_client.Client) -> None:
    queries: list[dict[str, Any]] = [
        {"collections": ["grus-1"], "filter": f"eo:cloud_cover <= {c}"}
        for c in (10, 20, 30, 50)] + [SECOND]
    want = [[i.id for i in reference.search(limit=LIMIT, **q).items()] for q in queries]
    assert len({tuple(w) for w in want}) == len(want)
    barrier = threading.Barrier(len(queries))
    got: list[list[str] | BaseException] = [[] for _ in queries]

    def worker(n: int) -> None:
        try:
            found = plain.search(method=("GET", "POST")[n % 2], limit=LIMIT, **queries[n])
            barrier.wait(timeout=60)
            got[n] = [i.id for i in found.items()]
        except BaseException as err:
            got[n] = err

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert got == want


# --- bad input: refused before sending, in ag.open()'s words ----------------------------------

BAD: dict[str, dict[str, Any]] = {
    "typo-in-a-property": {"filter": "eo:cloudcover <= 30"},
    "unsupported-operator": {"filter": "S_CROSSES(geometry, POINT(1 2))"},
    "envelope": {"filter": "eo:cloud_cover <= 30 AND S_INTERSECTS(geometry, ENVELOPE(1,2,3,4))"},
    "geometry-collection": {"intersects": {"type": "GeometryCollection", "geometries": []}},
    "reversed-bbox": {"bbox": [137, 35, 133, 36]},
    "bbox-of-three": {"bbox": [1, 2, 3]},
    "latitude-out-of-range": {"bbox": [0, 0, 10, 100]},
    "comma-in-a-collection": {"collections": ["grus-1,x"]},
    "control-character-in-an-id": {"ids": ["a\nb"]},
    "sortby": {"sortby": "datetime"},
    "fields": {"fields": ["id"]},
    "query": {"query": {"eo:cloud_cover": {"lt": 10}}},
}


@pytest.mark.parametrize(("name", "method"), [
    (name, method) for name in BAD for method in (None, "GET")
    # as GET, pystac-client joins collections with commas: ["grus-1,x"] is two of them
    if (name, method) != ("comma-in-a-collection", "GET")])
def test_bad_input_is_refused_before_sending(name: str, method: str | None,
                                             plain: pystac_client.Client,
                                             reference: pystac_client.Client,
                                             emulator: Emulator) -> None:
    kwargs = BAD[name]
    with pytest.raises(ag.InvalidQueryError) as expected:
        search(reference, method, **kwargs)
    before = (emulator.counters.search_requests, emulator.counters.token_requests)
    with warnings.catch_warnings():  # pystac-client's own "does not conform to SORT"...
        warnings.simplefilter("ignore", DoesNotConformTo)
        found = search(plain, method, **kwargs)
    with pytest.raises(APIError) as info:  # pystac-client wraps what the modifier raises
        next(found.items())
    assert isinstance(info.value.__context__, ag.InvalidQueryError)
    assert str(info.value) == str(expected.value)
    assert (emulator.counters.search_requests, emulator.counters.token_requests) == before


def test_a_reversed_datetime_is_refused_with_the_formatted_value(
        plain: pystac_client.Client, emulator: Emulator) -> None:
    # pystac-client formats the datetime before the modifier sees it: the same message,
    # quoting the formatted interval.
    before = emulator.counters.search_requests
    with pytest.raises(APIError, match="'2021-06-30T00:00:00Z/2021-04-10T23:59:59Z': the "
                       "start is after the end; swap them"):
        list(plain.search(datetime="2021-06-30/2021-04-10").items())
    assert emulator.counters.search_requests == before


# --- ag.open() unchanged: one dialect request per page ---------------------------------------


def test_ag_open_sends_one_dialect_request_per_page(
        emulator: Emulator, tmp_path: Path, reference: pystac_client.Client) -> None:
    # ag.open()'s session.auth sees prepared requests, already in the dialect: the token
    # only. With the auth also as request_modifier, the query is not doubled either.
    ids, queries = run(reference, emulator, limit=LIMIT, **CLOUDY)
    assert len(ids) > 2 * LIMIT and len(queries) == pages_for(len(ids))
    assert all(q["filter"] == [CLOUDY["filter"]] and q["collections"] == ["grus-1"]
               and q["limit"] == [str(LIMIT)] for q in queries)
    auth = ag.AxelGlobeAuth(**emulator.settings_kwargs(), cache_dir=tmp_path)
    both = ag.open(auth=auth, request_modifier=auth, prefetch_pages=1)
    ids2, queries2 = run(both, emulator, limit=LIMIT, **CLOUDY)
    assert ids2 == ids and queries2 == queries


# --- the auth's other behaviour is kept ------------------------------------------------------


def test_token_refreshed_mid_search_keeps_the_query(tmp_path: Path) -> None:
    with Emulator() as emu:
        client = open_plain(emu, tmp_path)
        want, _ = run(client, emu, limit=LIMIT, **CLOUDY)
        pages = search(client, None, limit=LIMIT, **CLOUDY).pages()
        got = [i.id for i in next(pages)]
        emu.revoke_tokens()  # page 2 gets a 401, a new token, and is sent again
        before = len(emu.requests)
        got += [i.id for page in pages for i in page]
        assert got == want
        resent = [e for e in emu.requests[before:] if e[1].endswith("/search")]
        assert len(resent) == pages_for(len(want))  # the pages left, and page 2 twice
        assert parse_qs(resent[0][2]) == parse_qs(resent[1][2])
        assert emu.counters.token_requests == 2


def test_requests_elsewhere_are_left_alone(emulator: Emulator) -> None:
    auth = ag.AxelGlobeAuth(**emulator.settings_kwargs())
    other = requests.Request("POST", "http://127.0.0.3:9/stac/search", json={"limit": 2})
    assert auth(other) is other
    assert other.method == "POST" and other.json == {"limit": 2} and not other.hooks["response"]
    # a prepared request (session.auth) is sent as it was prepared: the token only
    prepared = requests.Request("POST", f"{emulator.api_url}/search",
                                json={"bbox": [1, 2, 3, 4]}).prepare()
    body = prepared.body
    auth(prepared)
    assert prepared.method == "POST" and prepared.body == body
    assert prepared.headers["Authorization"].startswith("Bearer ")
    # a plain GET of a collection: the token, no rewriting
    get = requests.Request("GET", f"{emulator.api_url}/collections/grus-1")
    auth(get)
    assert get.url == f"{emulator.api_url}/collections/grus-1" and get.params == {}
    assert len(get.hooks["response"]) == 1  # the 401 / restriction hook alone


# --- next links as other servers may write them -----------------------------------------------


CONFORMS = ["https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
            "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter"]


class _Pages(FakeAPI):
    """Pages of ``item-1``, ``item-2``, ``item-3``, linked by what ``next_link(query)`` writes.

    A POST is answered as a GET; ``searches`` keeps each search's method and query.
    """

    def __init__(self) -> None:
        super().__init__({"": self._landing, "search": self._search}, post=True)
        self.next_link: Callable[[dict[str, str]], dict[str, Any] | None] = lambda q: None
        self.searches: list[tuple[str, dict[str, str]]] = []

    def _landing(self, h: Handler, n: int) -> None:
        h.json({**landing(self.url), "conformsTo": CONFORMS})

    def _search(self, h: Handler, n: int) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        self.searches.append((h.command, query))
        number = asked_page(h)
        link = self.next_link(query) if number < 3 else None
        h.json({**page_of(self.url, [number]), "links": [link] if link else []})


@pytest.fixture
def pages_server() -> Iterator[_Pages]:
    with _Pages() as server:
        yield server


def _open_on(server: _Pages, emu: Emulator, tmp_path: Path) -> pystac_client.Client:
    # the emulator's tokens, this server's API
    settings: dict[str, Any] = {**emu.settings_kwargs(), "api_url": server.url}
    auth = ag.AxelGlobeAuth(**settings, cache_dir=tmp_path)
    return pystac_client.Client.open(server.url, request_modifier=auth)


def test_a_post_next_link_with_a_body_is_merged_into_the_query(
        pages_server: _Pages, emulator: Emulator, tmp_path: Path) -> None:
    # The STAC API way: a POST link with a body to merge. Its parameters win, as in ag.open().
    pages_server.next_link = lambda q: {
        "rel": "next", "href": "search", "method": "POST", "merge": True,  # relative
        "body": {"page": int(q.get("page", 1)) + 1, "limit": 5}}
    client = _open_on(pages_server, emulator, tmp_path)
    ids = [i.id for i in client.search(collections=["grus-1"], limit=2,
                                       filter="eo:cloud_cover <= 30").items()]
    assert ids == ["item-1", "item-2", "item-3"]
    sent = pages_server.searches
    assert [m for m, _ in sent] == ["GET"] * 3
    first = {"collections": "grus-1", "limit": "2", "filter": "eo:cloud_cover <= 30"}
    assert sent[0][1] == first
    assert sent[1][1] == {**first, "limit": "5", "page": "2"}
    assert sent[2][1] == {**first, "limit": "5", "page": "3"}


def test_a_page_linking_to_itself_ends_the_search(
        pages_server: _Pages, emulator: Emulator, tmp_path: Path) -> None:
    # pystac-client alone would request the same page forever.
    pages_server.next_link = lambda q: {
        "rel": "next", "href": f"{pages_server.url}/search?"
        + "&".join(f"{k}={v}" for k, v in q.items())}
    client = _open_on(pages_server, emulator, tmp_path)
    ids = [i.id for i in client.search(method="GET", limit=2).items()]
    assert ids == ["item-1"]
    assert len(pages_server.searches) == 1


def test_a_next_link_to_a_local_file_is_refused(
        pages_server: _Pages, emulator: Emulator, tmp_path: Path) -> None:
    # pystac-client alone would try to open it from disk (it is "not a URL" to it).
    secret = tmp_path / "page.json"
    secret.write_text(json.dumps({"type": "FeatureCollection", "features": [], "links": []}))
    pages_server.next_link = lambda q: {"rel": "next", "href": f"file://{secret}"}
    client = _open_on(pages_server, emulator, tmp_path)
    found = client.search(limit=2).items()
    with pytest.raises(APIError, match="not an http"):
        list(found)


# --- the documented one-liner runs ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = "https://api.axelglobe.com/stac/v1/catalogs/axelglobe"


@pytest.mark.parametrize(("page", "heading"), [
    ("README.md", "## Already using pystac-client?"),
    ("docs/getting-started.md", "## Already using pystac-client?"),
    ("docs/searching.md", "## With the plain pystac-client"),
])
def test_documented_snippet_runs_against_the_emulator(page: str, heading: str,
                                                      emulator_env: Emulator) -> None:
    text = (ROOT / page).read_text()
    block = text[text.index(heading):].split("```python\n", 1)[1].split("```", 1)[0]
    assert "request_modifier=ag.AxelGlobeAuth(), modifier=ag.normalize_item" in block
    namespace: dict[str, Any] = {}
    before = len(emulator_env.requests)
    exec(block.replace(PRODUCTION, emulator_env.api_url), namespace)  # as a reader pastes it
    items = namespace.get("items") or namespace["search"].item_collection()
    assert len(items) >= 1
    assert all(ag.AxelGlobeExtension.ext(item).capture_id for item in items)
    assert sent_searches(emulator_env, before)  # all GET, none refused
