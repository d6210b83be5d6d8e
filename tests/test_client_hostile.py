"""``ag.open()`` against hostile servers on loopback: silent, trickling, HTML, broken JSON,
endless paging, a 429 from a ``next`` link on another host. Each ends, each with a clear
``APIRequestError`` (also pystac-client's ``APIError``) naming the URL and status.

Tokens come from the session emulator's token endpoint; the API is a ``FakeAPI``
(tests/fake_api.py), a scripted ``http.server`` that counts what it receives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import pytest
from pystac_client.exceptions import APIError
from urllib3.exceptions import ReadTimeoutError

import pystac_axelglobe as ag
from pystac_axelglobe import _stac_io
from pystac_axelglobe.client import DEFAULT_PREFETCH_PAGES, DEFAULT_TIMEOUT, default_retry
from pystac_axelglobe.errors import APIRequestError, AxelGlobeError
from tests.fake_api import FakeAPI, Handler, Route, asked_page, page, silent, trickle

if TYPE_CHECKING:
    from pathlib import Path

    from pystac_axelglobe.emulator import Emulator

FAST = default_retry(backoff_factor=0.01)
FAST_READS: int = FAST.read or 0  # an int: the read retries of FAST


@pytest.fixture
def settings(emulator: Emulator, tmp_path: Path) -> Callable[[FakeAPI], dict[str, Any]]:
    """ag.open() keyword arguments: the emulator's tokens, the hostile server's API."""
    def make(server: FakeAPI) -> dict[str, Any]:
        return {**emulator.settings_kwargs(), "api_url": server.url, "cache_dir": tmp_path}
    return make


# --- no hang -------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_silent_api_fails_with_a_clear_error(settings: Any) -> None:
    with FakeAPI({"": silent}) as server:
        with pytest.raises(APIRequestError, match="no answer in time") as info:
            ag.open(**settings(server), timeout=(2, 0.3), retry=FAST)
        assert isinstance(info.value, APIError) and isinstance(info.value, AxelGlobeError)
        assert server.url in str(info.value)
        assert server.hits[""] == 1 + FAST_READS  # the first try and the read retries


@pytest.mark.timeout(60)
def test_open_has_a_timeout_by_default(settings: Any, monkeypatch: pytest.MonkeyPatch,
                                        emulator: Emulator) -> None:
    # The default, made short: without one a silent server blocks forever (timeout=None).
    monkeypatch.setattr(_stac_io, "DEFAULT_TIMEOUT", (2.0, 0.3), raising=False)
    with FakeAPI({"": silent}) as server:
        with pytest.raises(APIRequestError, match="read timeout"):
            ag.open(**settings(server), retry=FAST)
        assert server.hits[""] == 1 + FAST_READS
    monkeypatch.undo()
    # pystac-client's Client.open(timeout=None) does not take it away
    stac_io = ag.open(**emulator.settings_kwargs())._stac_io
    assert stac_io is not None and stac_io.timeout == DEFAULT_TIMEOUT


def test_the_default_budget_for_a_silent_api_is_under_two_minutes() -> None:
    # A silent API: each try waits the read timeout, then the policy backs off and retries
    # until its read budget is spent.
    retry, slept = default_retry(), 0.0
    for _ in range(retry.read or 0):
        error = ReadTimeoutError(None, "/", "silent")  # type: ignore[arg-type]
        retry = retry.increment("GET", "/search", error=error)
        slept += retry.get_backoff_time()
    connect, read = DEFAULT_TIMEOUT
    assert connect > 0 and read > 0
    assert (1 + (default_retry().read or 0)) * read + slept < 120


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["", "search"])
@pytest.mark.parametrize("how", ["default", "argument"])
def test_a_trickling_api_is_cut_off_at_the_deadline(
        settings: Any, monkeypatch: pytest.MonkeyPatch, where: str, how: str) -> None:
    if how == "default":  # the default, made short
        monkeypatch.setattr(_stac_io, "DEFAULT_DEADLINE", 1.0, raising=False)
    deadline: dict[str, Any] = {"deadline": 1.0} if how == "argument" else {}
    with FakeAPI({}) as server:
        server.routes[where] = trickle
        with pytest.raises(APIRequestError, match=r"came too slowly.*ag.open\(deadline=") as info:
            client = ag.open(**settings(server), timeout=(2, 2), **deadline)
            list(client.search(limit=5).items())
        assert info.value.status == 200 and "bytes in 1 s" in str(info.value)
        assert server.hits[where] == 1  # not retried: a trickle would only trickle again


# --- HTML, broken JSON ---------------------------------------------------------------------------


NOT_JSON = [
    ("text/html", b"<!doctype html><html><head><title>Sign in</title></head></html>",
     "an HTML page"),
    ("application/json", b'{"type": "Catalog", "id": "x", "links": [', "not a JSON object"),
    ("application/json", b"[1, 2, 3]", "JSON list"),
    ("application/json", b"null", "JSON NoneType"),
    ("application/json", b'"a string"', "JSON str"),
    ("application/json", b"\xff\xfe{}", "not a JSON object"),
    ("application/json", b"[" * 100_000 + b"]" * 100_000, "not a JSON object"),
    ("application/json", b"", "an empty body"),
]


@pytest.mark.parametrize(("content_type", "body", "words"), NOT_JSON)
@pytest.mark.parametrize("where", ["", "search"])
def test_html_or_broken_json_is_an_api_error_naming_url_and_status(
        settings: Any, content_type: str, body: bytes, words: str, where: str) -> None:
    with FakeAPI({}) as server:
        server.routes[where] = lambda h, n: h.answer(200, body, content_type)
        with pytest.raises(APIRequestError, match=words) as info:
            client = ag.open(**settings(server), retry=FAST)
            list(client.search(limit=5).items())
        err = info.value
        assert isinstance(err, APIError)
        assert err.status == err.status_code == 200 and "HTTP 200" in str(err)
        assert err.url.startswith(server.url + ("/search" if where else ""))
        assert err.url in str(err)


def test_an_error_status_with_an_html_body(settings: Any) -> None:
    page_ = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with FakeAPI({"search": lambda h, n: h.answer(502, page_, "text/html")}) as server:
        client = ag.open(**settings(server), retry=FAST.new(status=2))
        with pytest.raises(APIError) as info:
            list(client.search(limit=5).items())
        err = info.value
        assert isinstance(err, APIRequestError) and err.status_code == 502
        assert "HTTP 502 from GET" in str(err) and "502 Bad Gateway" in str(err)
        assert server.hits["search"] == 1 + 2  # retried, then given up


# --- paging --------------------------------------------------------------------------------------


def endless(h: Handler, n: int) -> None:
    """Fresh items on every page, and always a next page (pages addressable by number)."""
    p = asked_page(h)
    h.json(page(h.server.url, range(3 * p, 3 * p + 3), p + 1))


@pytest.mark.timeout(60)
def test_endless_next_links_stop_at_max_pages(settings: Any) -> None:
    with FakeAPI({"search": endless}) as server:
        client = ag.open(**settings(server), max_pages=5)
        with pytest.raises(APIRequestError, match=r"stopped after 5 pages.*max_pages="):
            list(client.search(limit=3).items())
        assert server.hits["search"] == 5
        # max_items stops it earlier, without an error, as in pystac-client
        assert len(list(client.search(limit=3, max_items=7).items())) == 7
        assert server.hits["search"] == 5 + 3


@pytest.mark.timeout(60)
def test_endless_next_links_stop_at_the_default_bound(settings: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert _stac_io.DEFAULT_MAX_PAGES == 1000
    monkeypatch.setattr(_stac_io, "DEFAULT_MAX_PAGES", 7, raising=False)
    with FakeAPI({"search": endless}) as server:
        with pytest.raises(APIRequestError, match="stopped after 7 pages"):
            list(ag.open(**settings(server)).search(limit=3).items())
        assert server.hits["search"] == 7


def same_items(h: Handler, n: int) -> None:
    h.json(page(h.server.url, range(3), n + 1))  # advancing next links, the same items


def empty_then_more(h: Handler, n: int) -> None:
    h.json(page(h.server.url, range(3) if n == 1 else range(0), n + 1))


def self_link(h: Handler, n: int) -> None:
    h.json(page(h.server.url, range(3 * n, 3 * n + 3), 1))  # "next" is page 1 again


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("route", "requests_made"),
                         [(same_items, 2), (empty_then_more, 2), (self_link, 2)])
def test_a_page_without_new_items_ends_the_iteration(settings: Any, route: Route,
                                                      requests_made: int) -> None:
    for prefetch in (1, DEFAULT_PREFETCH_PAGES):
        with FakeAPI({"search": route}) as server:
            client = ag.open(**settings(server), prefetch_pages=prefetch)
            ids = [i.id for i in client.search(limit=3).items()]
            assert len(ids) == len(set(ids)) and len(ids) in (3, 6)
            # pages requested ahead (the links say ?page=2, 3, ...) are wasted, no more
            assert requests_made <= server.hits["search"] <= requests_made + prefetch - 1


@pytest.mark.parametrize("href", ["file:///etc/passwd", "/etc/passwd", "gopher://x/1"])
def test_a_next_link_to_anything_but_http_is_refused(settings: Any, href: str) -> None:
    def route(h: Handler, n: int) -> None:
        body = page(h.server.url, range(3), None)
        body["links"] = [{"rel": "next", "href": href}]
        h.json(body)

    with FakeAPI({"search": route}) as server:
        client = ag.open(**settings(server))
        if href.startswith("/"):  # relative: resolved on the API's host, where it is a 404
            with pytest.raises(APIRequestError, match="HTTP 404") as info:
                list(client.search(limit=3).items())
            assert info.value.url == server.url.replace("/stac", "/etc/passwd") + "?limit=3"
        else:
            with pytest.raises(APIRequestError, match="not an http"):
                list(client.search(limit=3).items())


def test_a_relative_next_link_keeps_the_query(settings: Any) -> None:
    def route(h: Handler, n: int) -> None:
        p = asked_page(h)
        body = page(h.server.url, range(3 * p, 3 * p + 3), None)
        body["links"] = [{"rel": "next", "href": f"?page={p + 1}"}] if p < 3 else []
        h.json(body)

    with FakeAPI({"search": route}) as server:
        client = ag.open(**settings(server))
        assert len(list(client.search(limit=3, filter="eo:cloud_cover <= 5").items())) == 9
        queries = [q for name, q, _ in server.seen if name == "search"]
        # pages requested ahead arrive in any order; a few past the end are wasted
        numbers = sorted(int(q.get("page", ["1"])[0]) for q in queries)
        assert numbers[:3] == [1, 2, 3] and len(numbers) <= 3 + DEFAULT_PREFETCH_PAGES
        assert all(q["filter"] == ["eo:cloud_cover <= 5"] for q in queries)


# --- a 429 from another host ---------------------------------------------------------------------


def test_a_429_from_a_next_link_on_another_host_is_not_a_restriction(settings: Any) -> None:
    def elsewhere(h: Handler, n: int) -> None:
        h.answer(429, b'{"code": "TooManyRequests"}', headers={"Retry-After": "3600"})

    with FakeAPI({"search": elsewhere}) as other:
        def first_page(h: Handler, n: int) -> None:
            body = page(h.server.url, range(3), None)
            if n == 1:
                body["links"] = [{"rel": "next", "href": f"{other.url}/search?page=2"}]
            h.json(body)

        with FakeAPI({"search": first_page}) as api:
            auth = ag.AxelGlobeAuth(**settings(api))
            client = ag.open(auth=auth)
            with pytest.raises(APIRequestError, match="HTTP 429") as info:
                list(client.search(limit=3).items())
            assert isinstance(info.value, APIError) and info.value.status_code == 429
            assert info.value.url.startswith(other.url)
            assert other.hits["search"] == 1  # a long Retry-After is not waited out
            assert all("Authorization" not in headers for _, _, headers in other.seen)
            # nothing recorded: the API is still used, by this client and a new one
            assert len(list(client.search(limit=3).items())) == 3
            assert len(list(ag.open(**settings(api)).search(limit=3).items())) == 3
            assert api.hits["search"] == 3


# --- one error family ----------------------------------------------------------------------------

# From 0.9, Client.get_collection answers None when the API answers 404 (it reads
# APIError.status_code); before, the error reaches the caller.
PYSTAC_CLIENT_READS_404 = tuple(
    int(p) for p in version("pystac-client").split(".")[:2]) >= (0, 9)


def test_api_errors_are_one_family_and_pystac_clients(emulator: Emulator,
                                                      tmp_path: Path) -> None:
    assert issubclass(APIRequestError, APIError) and issubclass(APIRequestError, AxelGlobeError)
    assert issubclass(APIRequestError, OSError)
    client = ag.open(**emulator.settings_kwargs())
    if PYSTAC_CLIENT_READS_404:
        assert client.get_collection("no-such-collection") is None  # it reads the 404
    else:  # pystac-client < 0.9 raises its APIError on a 404, as it does on its own
        with pytest.raises(APIError) as raised:
            client.get_collection("no-such-collection")
        assert isinstance(raised.value, APIRequestError) and raised.value.status_code == 404
    from pystac_axelglobe.emulator import Emulator as Emu

    with Emu(api_fault_rate=0.0, fault_kinds=("503",)) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path, retry=FAST.new(status=1))
        emu.api_fault_rate = 1.0
        try:
            list(client.search(collections="grus-1").items())
        except APIError as err:  # what pystac-client users already catch
            assert isinstance(err, ag.APIRequestError) and isinstance(err, ag.AxelGlobeError)
            assert err.status_code == err.status == 503
            assert err.url.startswith(f"{emu.api_url}/search")
            assert "HTTP 503 from GET" in str(err) and "try again later" in str(err)
        else:
            pytest.fail("no error")


def test_iterating_pages_lazily_sends_nothing_more_after_the_error(settings: Any) -> None:
    with FakeAPI({"search": endless}) as server:
        pages: Iterator[Any] = ag.open(**settings(server), max_pages=2).search(
            limit=3).pages_as_dicts()
        assert next(pages)["features"][0]["id"] == "item-3"
        next(pages)
        with pytest.raises(APIRequestError):
            next(pages)
        time.sleep(0.05)
        assert server.hits["search"] == 2
