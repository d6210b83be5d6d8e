"""Pages fetched ahead, concurrently: the same items in the same order, and no more requests
than the window allows.

Against the emulator (``limit=2`` gives many pages) and small scripted servers on 127.0.0.1
whose pages are addressable by ``?page=N``, as AxelGlobe's are: one that counts requests in
flight, one that fails on a page, one that drops a page's connections, one that answers 404
past the end, one whose links leave the ``?page=N`` pattern. Counts are taken at the
servers.
"""

from __future__ import annotations

import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pystac_client
import pytest
import shapely.geometry

import pystac_axelglobe as ag
from pystac_axelglobe import _deadline, _paging, _stac_request, demo, filters
from pystac_axelglobe.client import (
    DEFAULT_PREFETCH_PAGES,
    AxelGlobeStacApiIO,
    default_retry,
)
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import APIRequestError, ConfigurationError
from tests.fake_api import FakeAPI, Handler, asked_page, item
from tests.fake_api import page as page_of

if TYPE_CHECKING:
    from pathlib import Path

FAST = default_retry(backoff_factor=0.01)
#: The real policy: a request given up and retried anyway would sit through 7.5 s of backoff.
DEFAULT_RETRY = default_retry()
# The provider guide's search areas, as the demo spells them; the multipolygon as WKT text.
GUIDE_BBOX = list(demo.GUIDE_BBOX)
GUIDE_MULTIPOLYGON = shapely.geometry.shape(demo.GUIDE_MULTIPOLYGON).wkt

# The guide's searches, and an unfiltered one: (name, search keyword arguments).
SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("everything", {}),
    ("item cloud cover in a bbox", {"bbox": GUIDE_BBOX, "datetime": demo.GUIDE_DATETIME,
                                    "collections": ["grus-1"],
                                    "filter": "eo:cloud_cover <= 30"}),
    ("AOI cloud cover in a bbox", {"bbox": GUIDE_BBOX, "datetime": demo.GUIDE_DATETIME,
                                   "filter": filters.aoi_cloud_cover(30)}),
    ("AOI cloud cover in a multipolygon", {
        "datetime": demo.GUIDE_DATETIME,
        "filter": f"avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, {GUIDE_MULTIPOLYGON})"}),
    ("a capture", {"filter": filters.capture_id("52eZg9k7rPEyYQGX")}),
    ("intersects", {"intersects": GUIDE_MULTIPOLYGON}),
]


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("axelglobe-pages")]


def wait_for_no_pool_threads(seconds: float = 10.0) -> None:
    """Every thread that fetched pages ahead has ended (or fail: a leak)."""
    end = time.monotonic() + seconds
    while pool_threads() and time.monotonic() < end:
        time.sleep(0.02)
    assert not pool_threads(), pool_threads()


@pytest.fixture(scope="module")
def clients(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory,
            ) -> tuple[pystac_client.Client, pystac_client.Client]:
    """One client fetching one page after another, one fetching ahead (the default)."""
    cache = tmp_path_factory.mktemp("pages-tokens")
    return (ag.open(**emulator.settings_kwargs(), cache_dir=cache, prefetch_pages=1),
            ag.open(**emulator.settings_kwargs(), cache_dir=cache))


def searched(emulator: Emulator, client: pystac_client.Client,
             **kwargs: Any) -> tuple[list[str], int]:
    """Ids in order, and the /search requests the server received for them."""
    before = emulator.counters.search_requests
    ids = [item.id for item in client.search(**kwargs).items()]
    wait_for_no_pool_threads()
    return ids, emulator.counters.search_requests - before


# --- the emulator: same items, same order; requests counted --------------------------------


@pytest.mark.parametrize(("name", "kwargs"), SCENARIOS, ids=[n for n, _ in SCENARIOS])
def test_same_items_in_the_same_order_as_one_page_at_a_time(
        emulator: Emulator, clients: tuple[pystac_client.Client, pystac_client.Client],
        name: str, kwargs: dict[str, Any]) -> None:
    sequential, ahead = clients
    want, sent_in_sequence = searched(emulator, sequential, limit=2, **kwargs)
    got, sent_ahead = searched(emulator, ahead, limit=2, **kwargs)
    assert got == want and want
    pages = -(-len(want) // 2)
    assert sent_in_sequence == pages
    assert pages <= sent_ahead <= pages + DEFAULT_PREFETCH_PAGES  # a few past the end, no more


def test_a_many_page_search_with_every_window(
        emulator: Emulator, clients: tuple[pystac_client.Client, pystac_client.Client],
        tmp_path: Path) -> None:
    want, pages = searched(emulator, clients[0], limit=2)
    assert pages > 20
    for prefetch in (2, 3, 10):
        client = ag.open(**emulator.settings_kwargs(), cache_dir=tmp_path, prefetch_pages=prefetch)
        got, sent = searched(emulator, client, limit=2)
        assert got == want
        assert pages <= sent <= pages + prefetch


@pytest.mark.parametrize("kwargs", [
    {"limit": 100}, {"bbox": [135, 35, 135.01, 35.01]}, {"limit": 2, "ids": ["x", "y"]},
    {"limit": 5, "filter": filters.capture_id("52eZg9k7rPEyYQGX")}])
def test_a_one_page_result_costs_one_request(
        emulator: Emulator, clients: tuple[pystac_client.Client, pystac_client.Client],
        kwargs: dict[str, Any]) -> None:
    ids, sent = searched(emulator, clients[1], **kwargs)
    assert len(ids) <= kwargs.get("limit", 10)
    assert sent == 1


@pytest.mark.parametrize(("max_items", "limit", "pages"),
                         [(3, 2, 2), (4, 2, 2), (5, 2, 3), (1, 2, 1), (3, None, 1), (7, 3, 3)])
def test_max_items_fetches_no_page_it_does_not_need(
        emulator: Emulator, clients: tuple[pystac_client.Client, pystac_client.Client],
        max_items: int, limit: int | None, pages: int) -> None:
    want, _ = searched(emulator, clients[0], limit=limit, max_items=max_items)
    ids, sent = searched(emulator, clients[1], limit=limit, max_items=max_items)
    assert ids == want and len(ids) == max_items
    assert sent == pages  # the page size says how many pages max_items needs
    collection = clients[1].search(limit=limit, max_items=max_items).item_collection()
    assert [item.id for item in collection] == want


def test_stopping_early_stops_fetching(
        emulator: Emulator, clients: tuple[pystac_client.Client, pystac_client.Client]) -> None:
    before = emulator.counters.search_requests
    pages = clients[1].search(limit=2).pages_as_dicts()
    assert isinstance(pages, Generator)
    assert len(next(pages)["features"]) == 2
    next(pages)
    pages.close()  # what a `break` out of a for loop does, once the iterator is dropped
    wait_for_no_pool_threads()
    # The pages on their way were given up at once: the server may count one sent just
    # before a moment later, but a search still fetching would go past the window.
    time.sleep(0.3)
    assert emulator.counters.search_requests - before <= 2 + DEFAULT_PREFETCH_PAGES

    before = emulator.counters.search_requests
    for n, _item in enumerate(clients[1].search(limit=2).items()):  # break out of the loop
        if n == 2:
            break
    wait_for_no_pool_threads()
    assert emulator.counters.search_requests - before <= 2 + DEFAULT_PREFETCH_PAGES


def test_faults_are_retried_on_every_page_fetched_ahead(tmp_path: Path) -> None:
    with Emulator(api_fault_rate=0.25, fault_seed=11) as emu:
        sequential = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path, prefetch_pages=1,
                             retry=FAST)
        want = [item.id for item in sequential.search(limit=2).items()]
        emu.reset_counters()
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path, retry=FAST)
        assert [item.id for item in client.search(limit=2).items()] == want
        assert emu.counters.faults > 0


def test_one_token_refresh_for_pages_in_flight(tmp_path: Path) -> None:
    with Emulator() as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path)
        want = [item.id for item in client.search(limit=2).items()]
        before = emu.counters.token_requests
        got: list[str] = []
        for page in client.search(limit=2).pages_as_dicts():
            if not got:
                emu.revoke_tokens()  # the pages requested from now on answer 401, once
            got += [f["id"] for f in page["features"]]
        assert got == want
        assert emu.counters.token_requests == before + 1


# --- scripted servers ------------------------------------------------------------------------


class Pages(FakeAPI):
    """``/stac/search?page=N``: items ``N*10 ..``, a next link while N < ``last``.

    ``answer(server, n, handler)`` may answer instead (returns True). Counts requests
    (``asked``: the pages, in order), and the most at once (``most_in_flight``).
    """

    def __init__(self, last: int, answer: Callable[[Pages, int, Any], bool] | None = None,
                 delay: float = 0.0) -> None:
        super().__init__({"search": self._search})
        self.last, self.answer, self.delay = last, answer, delay

    def page(self, n: int, next_href: str | None = "default") -> dict[str, Any]:
        if next_href == "default":
            next_href = f"{self.url}/search?page={n + 1}" if n < self.last else None
        return page_of(self.url, range(n * 10, n * 10 + 2), next_href)

    def _search(self, h: Handler, count: int) -> None:
        time.sleep(self.delay)
        n = asked_page(h)
        if self.answer is None or not self.answer(self, n, h):
            h.json(self.page(n))


@pytest.fixture
def opened(emulator: Emulator, tmp_path: Path) -> Callable[..., pystac_client.Client]:
    """``ag.open()`` on a scripted server, with the emulator's tokens."""
    def make(server: Pages, **kwargs: Any) -> pystac_client.Client:
        return ag.open(**{**emulator.settings_kwargs(), "api_url": server.url,
                          "cache_dir": tmp_path, "retry": FAST, **kwargs})
    return make


def ids_of(pages: Iterator[dict[str, Any]]) -> list[str]:
    return [f["id"] for page in pages for f in page["features"]]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("prefetch", [1, 2, 4, 10])
def test_at_most_prefetch_pages_requests_at_once(
        opened: Callable[..., pystac_client.Client], prefetch: int) -> None:
    with Pages(last=12, delay=0.05) as server:
        ids = [i.id for i in opened(server, prefetch_pages=prefetch).search().items()]
        wait_for_no_pool_threads()
    assert ids == [f"item-{n * 10 + i}" for n in range(1, 13) for i in range(2)]
    assert server.most_in_flight <= prefetch
    if prefetch > 1:
        assert server.most_in_flight > 1  # fetched ahead, at once
    assert sorted(server.asked)[:12] == list(range(1, 13))
    assert len(server.asked) <= 12 + prefetch - 1  # pages past the end: the window, no more


@pytest.mark.timeout(60)
def test_an_end_already_seen_ahead_stops_the_fetching_ahead(
        opened: Callable[..., pystac_client.Client]) -> None:
    answered = {n: threading.Event() for n in range(1, 20)}

    def slow_2(server: Pages, n: int, h: Any) -> bool:
        if n == 2:
            time.sleep(0.3)  # pages 3, 4, 5 are in by the time page 2 is
        h.json(server.page(n))
        answered[n].set()
        return True

    with Pages(last=6, answer=slow_2) as server:
        got: list[str] = []
        for page in opened(server).search().pages_as_dicts():
            got += [f["id"] for f in page["features"]]
            if len(got) == 4:  # page 2 read; page 6 (the last, no next link) was requested
                assert answered[6].wait(10)
            time.sleep(0.2)  # a slow reader: whatever is planned now is sent before the end
        wait_for_no_pool_threads()
    assert got == [f"item-{n * 10 + i}" for n in range(1, 7) for i in range(2)]
    assert sorted(server.asked) == [1, 2, 3, 4, 5, 6]  # nothing past the end it had seen


@pytest.mark.timeout(60)
def test_an_error_comes_at_its_page_after_the_pages_before(
        opened: Callable[..., pystac_client.Client]) -> None:
    def fail_on_3(server: Pages, n: int, h: Any) -> bool:
        if n == 3:
            h.json({"code": "InternalServerError", "description": "page 3 is broken"}, 500)
            return True
        return False

    with Pages(last=8, answer=fail_on_3) as server:
        got: list[str] = []
        with pytest.raises(APIRequestError, match="HTTP 500") as info:
            for page in opened(server, retry=FAST.new(status=2)).search().pages_as_dicts():
                got += [f["id"] for f in page["features"]]
        assert got == ["item-10", "item-11", "item-20", "item-21"]  # pages 1 and 2, whole
        assert info.value.status == 500 and "page=3" in info.value.url
        wait_for_no_pool_threads()
        assert server.asked.count(3) == 1 + 2  # retried, like any page
        assert max(server.asked) <= 3 + DEFAULT_PREFETCH_PAGES


def _half_page(server: Pages, n: int, h: Any) -> None:
    """Page ``n``'s headers and the first half of its body (the rest never comes)."""
    body = json.dumps(server.page(n)).encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body[: len(body) // 2])
    h.wfile.flush()


def _cut(server: Pages, n: int, h: Any) -> None:
    """Page ``n``'s headers and half its body, then the connection closed (a drop)."""
    _half_page(server, n, h)
    h.connection.shutdown(socket.SHUT_RDWR)
    h.close_connection = True


@pytest.mark.timeout(60)
def test_a_page_ahead_that_got_no_answer_is_fetched_again_in_sequence(
        opened: Callable[..., pystac_client.Client]) -> None:
    in_flight_after: list[int] = []

    def drop_3_six_times(server: Pages, n: int, h: Any) -> bool:
        if n == 3 and server.asked.count(3) <= 6:  # the whole budget of one request (FAST)
            _cut(server, 3, h)
            return True
        if server.asked.count(3) > 6:
            in_flight_after.append(server.in_flight)
        return False

    with Pages(last=10, answer=drop_3_six_times, delay=0.02) as server:
        ids = [i.id for i in opened(server).search().items()]
        wait_for_no_pool_threads()
    # Page 3 was requested ahead and its retries were spent on drops: the reader asked for
    # it once more, itself, as paging in sequence would, and the search went on.
    assert ids == [f"item-{n * 10 + i}" for n in range(1, 11) for i in range(2)]
    assert server.asked.count(3) == 6 + 1
    # From then on, one page at a time: none fetched ahead any more.
    assert in_flight_after and max(in_flight_after) == 1
    assert [server.asked.count(n) for n in range(7, 11)] == [1, 1, 1, 1]


@pytest.mark.timeout(60)
def test_a_page_that_gets_no_answer_in_sequence_either_fails_the_search(
        opened: Callable[..., pystac_client.Client]) -> None:
    def always_drop_3(server: Pages, n: int, h: Any) -> bool:
        if n == 3:
            _cut(server, 3, h)
            return True
        return False

    with Pages(last=8, answer=always_drop_3) as server:
        got: list[str] = []
        with pytest.raises(APIRequestError, match="connection kept dropping") as info:
            for item in opened(server).search().items():
                got.append(item.id)
        wait_for_no_pool_threads()
    assert got == ["item-10", "item-11", "item-20", "item-21"]
    assert info.value.status is None
    assert server.asked.count(3) == 2 * 6  # ahead, then once more in sequence: no more


@pytest.mark.timeout(60)
def test_a_bad_next_link_fails_after_its_pages_items(
        opened: Callable[..., pystac_client.Client]) -> None:
    def bad_link_on_2(server: Pages, n: int, h: Any) -> bool:
        if n == 2:
            h.json(server.page(2, "file:///etc/passwd"))
            return True
        return False

    with Pages(last=8, answer=bad_link_on_2) as server:
        got: list[str] = []
        with pytest.raises(APIRequestError, match="not an http"):
            for item in opened(server).search().items():
                got.append(item.id)
        wait_for_no_pool_threads()
    assert got == ["item-10", "item-11", "item-20", "item-21"]


@pytest.mark.timeout(60)
def test_pages_past_the_end_are_harmless_even_as_errors(
        opened: Callable[..., pystac_client.Client]) -> None:
    def not_found_past_5(server: Pages, n: int, h: Any) -> bool:
        if n > 5:
            h.json({"code": "NotFound", "description": "no such page"}, 404)
            return True
        return False

    with Pages(last=5, answer=not_found_past_5) as server:
        ids = [i.id for i in opened(server).search().items()]
        wait_for_no_pool_threads()
    assert ids == [f"item-{n * 10 + i}" for n in range(1, 6) for i in range(2)]
    assert 5 <= len(server.asked) <= 5 + DEFAULT_PREFETCH_PAGES


@pytest.mark.timeout(60)
def test_links_that_leave_the_page_pattern_are_followed_as_they_are(
        opened: Callable[..., pystac_client.Client]) -> None:
    def cursor_after_2(server: Pages, n: int, h: Any) -> bool:
        query = parse_qs(urlsplit(h.path).query)
        if "cursor" in query:
            h.json(server.page(99, None))
            return True
        if n == 2:
            h.json(server.page(2, f"{server.url}/search?cursor=abc"))
            return True
        if n > 2:  # a page the links never name
            h.json(page_of(server.url, [{**item(n), "id": f"wrong-{n}"}]))
            return True
        return False

    with Pages(last=8, answer=cursor_after_2) as server:
        ids = [i.id for i in opened(server).search().items()]
        wait_for_no_pool_threads()
    assert ids == ["item-10", "item-11", "item-20", "item-21", "item-990", "item-991"]
    assert len(server.asked) <= 3 + DEFAULT_PREFETCH_PAGES


@pytest.mark.timeout(60)
def test_no_page_ahead_past_max_pages(opened: Callable[..., pystac_client.Client]) -> None:
    with Pages(last=1000) as server:
        with pytest.raises(APIRequestError, match="stopped after 5 pages"):
            list(opened(server, max_pages=5, prefetch_pages=10).search().items())
        wait_for_no_pool_threads()
    assert sorted(server.asked) == [1, 2, 3, 4, 5]


@pytest.mark.timeout(120)
def test_a_finished_search_does_not_wait_for_pages_never_sent(
        opened: Callable[..., pystac_client.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    # A page planned at the last moment may still wait for a pool thread when the search
    # ends; cancelled, it must not be awaited (concurrent.futures.wait never sees it done).
    monkeypatch.setattr(_paging, "SETTLE_SECONDS", 30.0)
    with Pages(last=12) as server:
        client = opened(server)
        for _ in range(15):
            started = time.monotonic()
            assert len(list(client.search().items())) == 24
            assert time.monotonic() - started < 20, "waited for a page that was never sent"


class Silent(Pages):
    """Page 1 as usual; pages 2 and after are accepted and never answered (or half).

    Each silent handler watches its connection, and notes the page in ``closed`` when the
    client closes it (or resets it); the server's exit releases the handlers. With ``late``,
    those pages begin their answer only once it is set.
    """

    def __init__(self, half: bool = False, late: threading.Event | None = None) -> None:
        super().__init__(last=50, answer=self._hold)
        self.half = half  # headers and half the body, then silence
        self.late = late
        self.closed: set[int] = set()

    def _hold(self, server: Pages, n: int, h: Any) -> bool:
        if n == 1:
            return False
        h.close_connection = True
        if self.late is not None:
            self.late.wait(10)
        if self.half:
            try:
                _half_page(server, n, h)
            except (BrokenPipeError, ConnectionResetError):
                # The client closed it before this thread wrote a byte: the request is
                # counted in `asked` on arrival, and a busy machine may run this thread
                # only after the search was broken off. A close all the same.
                return self._closed(n)
        while not self.stop.is_set():
            readable, _, _ = select.select([h.connection], [], [], 0.05)
            if not readable:
                continue
            try:
                data = h.connection.recv(1)
            except OSError:  # reset
                data = b""
            if not data:
                return self._closed(n)
        return True

    def _closed(self, n: int) -> bool:
        with self.lock:
            self.closed.add(n)
        return True


def _in_flight_ahead(server: Silent) -> None:
    """Pages 2..5 all asked for (page 1 read, the window of 4 full), or fail."""
    end = time.monotonic() + 10
    while sorted(server.asked) != [1, 2, 3, 4, 5] and time.monotonic() < end:
        time.sleep(0.02)
    assert sorted(server.asked) == [1, 2, 3, 4, 5]


def _let_go_of(server: Silent, pages: set[int]) -> None:
    """The search's page threads are gone, and the server saw those pages' connections close.

    The bound (5 s) is below what a request left running costs (a 15 s read timeout, then
    retries), below what one cut off but retried costs (7.5 s of the default policy's
    backoff, every retry failing at once), and below SETTLE_SECONDS as the tests set it.
    """
    wait_for_no_pool_threads(5.0)
    end = time.monotonic() + 5
    while server.closed != pages and time.monotonic() < end:
        time.sleep(0.02)
    assert server.closed == pages


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("half", "late"), [(False, False), (True, False), (True, True)],
                         ids=["silent", "half a body", "half a body after the break"])
def test_a_search_broken_off_lets_go_of_the_pages_in_flight_at_once(
        opened: Callable[..., pystac_client.Client], monkeypatch: pytest.MonkeyPatch,
        half: bool, late: bool) -> None:
    # A finished search waits SETTLE_SECONDS for its pages; one broken off does not.
    monkeypatch.setattr(_paging, "SETTLE_SECONDS", 30.0)
    with Silent(half, threading.Event() if late else None) as server:
        client = opened(server, prefetch_pages=4, retry=DEFAULT_RETRY)
        pages = client.search().pages_as_dicts()
        assert isinstance(pages, Generator)
        assert len(next(pages)["features"]) == 2
        _in_flight_ahead(server)
        pages.close()  # what a `break` does, once the iterator is dropped
        if server.late is not None:
            # The answers begin after the client has let go (as a busy machine may order
            # it): written to closed connections, they must not hide those closes.
            wait_for_no_pool_threads(5.0)
            server.late.set()
        _let_go_of(server, {2, 3, 4, 5})
        time.sleep(0.3)
        assert sorted(server.asked) == [1, 2, 3, 4, 5]  # none retried after it was let go


def _hold_pages_until_given_up(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    """Every page request fetched ahead waits at ``owner.name`` until its watch is cancelled."""
    original = getattr(owner, name)

    def held(self: Any, *args: Any, **kwargs: Any) -> Any:
        watch = _deadline.active()
        # A page's own watch (no deadline); not a token request's, nor the reader's thread.
        if (threading.current_thread().name.startswith("axelglobe-pages")
                and watch is not None and watch.at == math.inf):
            end = time.monotonic() + 10
            while not watch.cancelled and time.monotonic() < end:
                time.sleep(0.01)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, held)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("owner", "name"), [
    # Sent: a pooled connection (page 1's) is only watched from here on.
    (_deadline._WatchedHTTPConnection, "getresponse"),
    # The headers and half the body in, none of it read yet.
    (_stac_request.BoundedRequest, "_read_body"),
], ids=["before the answer is read", "before the body is read"])
def test_a_break_between_the_steps_of_a_page_request_lets_go_of_its_connection(
        opened: Callable[..., pystac_client.Client], monkeypatch: pytest.MonkeyPatch,
        owner: type, name: str) -> None:
    monkeypatch.setattr(_paging, "SETTLE_SECONDS", 30.0)
    _hold_pages_until_given_up(monkeypatch, owner, name)
    with Silent(half=True) as server:
        client = opened(server, prefetch_pages=4, retry=DEFAULT_RETRY)
        pages = client.search().pages_as_dicts()
        assert isinstance(pages, Generator)
        assert len(next(pages)["features"]) == 2
        _in_flight_ahead(server)
        pages.close()  # the cancel lands while every page is held at that step
        _let_go_of(server, {2, 3, 4, 5})
        time.sleep(0.3)
        assert sorted(server.asked) == [1, 2, 3, 4, 5]


@pytest.mark.timeout(60)
def test_an_error_in_the_reader_lets_go_of_the_pages_in_flight_at_once(
        opened: Callable[..., pystac_client.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_paging, "SETTLE_SECONDS", 30.0)
    with Silent() as server:
        client = opened(server, prefetch_pages=4, retry=DEFAULT_RETRY)
        with pytest.raises(ZeroDivisionError):  # the reader's error, not a connection's
            for _page in client.search().pages_as_dicts():
                _in_flight_ahead(server)
                _ = 1 / 0
        _let_go_of(server, {2, 3, 4, 5})
        time.sleep(0.3)
        assert sorted(server.asked) == [1, 2, 3, 4, 5]


def test_a_one_page_result_starts_no_thread(opened: Callable[..., pystac_client.Client]) -> None:
    with Pages(last=1) as server:
        search = opened(server).search().items()
        assert next(search).id == "item-10"
        assert not pool_threads()
        assert [i.id for i in search] == ["item-11"]
    assert server.asked == [1]


@pytest.mark.parametrize(("value", "message"), [
    (0, "prefetch_pages must be a whole number >= 1, got 0"),
    (2.5, "prefetch_pages must be a whole number >= 1"),
    (True, "prefetch_pages must be a whole number >= 1"),
    ("4", "prefetch_pages must be a whole number >= 1"),
    (11, "prefetch_pages must be at most 10"),
])
def test_bad_prefetch_pages_is_refused_before_anything_is_sent(
        emulator: Emulator, value: Any, message: str) -> None:
    before = emulator.counters.as_dict()
    with pytest.raises(ConfigurationError, match=message):
        ag.open(**emulator.settings_kwargs(), prefetch_pages=value)
    with pytest.raises(ConfigurationError, match=message):
        AxelGlobeStacApiIO(prefetch_pages=value)
    assert emulator.counters.as_dict() == before


def test_prefetch_pages_given_to_open_is_used(emulator: Emulator) -> None:
    assert DEFAULT_PREFETCH_PAGES == 4
    for given, used in ((None, 4), (1, 1), (7, 7)):
        io = ag.open(**emulator.settings_kwargs(), prefetch_pages=given)._stac_io
        assert isinstance(io, AxelGlobeStacApiIO) and io.prefetch_pages == used
