"""A retry's wait between attempts ends when its request is given up, or its deadline passes.

urllib3 sleeps between attempts: a backoff, or a server's ``Retry-After`` (up to 30 s). A
search broken off gives up the pages it fetches ahead (``_paging``), and a deadline bounds
a request, retries included (``_deadline``): either must end that sleep at once, with no
further attempt, instead of leaving a thread to wait it out. Against a small server on
127.0.0.1 that answers 503 with ``Retry-After`` and counts what it is asked.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pystac_client
import pytest
import requests
from urllib3.util.retry import Retry

from pystac_axelglobe import _deadline, _paging, _retry
from pystac_axelglobe.errors import APIRequestError
from pystac_axelglobe.settings import Settings
from pystac_axelglobe.tokens import TokenProvider
from tests.fake_api import LoopbackHTTPServer

#: The package's policies for GETs; each honours a 503's Retry-After (20 s here).
GET_POLICIES: list[tuple[str, Callable[[], Retry]]] = [
    ("search", _retry.search_retry), ("resolve", _retry.resolve_retry),
    ("download", _retry.download_retry)]


class Busy(LoopbackHTTPServer):
    """``/stac/search?page=N`` and ``/oauth/token``, each busy its first ``busy`` times.

    Busy: a 503 with ``Retry-After``. Otherwise page N has two items and a ``next`` link
    while N < ``last`` (an empty page past it), and the token endpoint gives a token.
    ``asked`` holds what was asked (``"page 2"``, ``"token"``) and when (monotonic).
    """

    def __init__(self, busy: float = math.inf, retry_after: str = "20", last: int = 50) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.busy, self.retry_after, self.last = busy, retry_after, last
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.url = f"{self.origin}/stac"
        self.lock = threading.Lock()
        self.asked: list[tuple[str, float]] = []

    def ask(self, what: str) -> bool:
        """Count one request for ``what``; whether it is answered busy."""
        with self.lock:
            self.asked.append((what, time.monotonic()))
            return self.count(what) <= self.busy

    def count(self, what: str) -> int:
        return sum(w == what for w, _ in self.asked)

    def times(self, what: str) -> list[float]:
        return [t for w, t in self.asked if w == what]

    def wait_for(self, what: str) -> None:
        """``what`` was asked for (and answered), or fail."""
        end = time.monotonic() + 10
        while not self.count(what) and time.monotonic() < end:
            time.sleep(0.02)
        assert self.count(what), self.asked
        time.sleep(0.2)  # its 503 on its way back: the client is in (or at) its backoff

    def __enter__(self) -> Busy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive: a retry may come on the same connection
    server: Busy

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if not parts.path.endswith("/search"):
            return self.json(_landing(self.server.url))
        n = int(parse_qs(parts.query).get("page", ["1"])[0])
        if self.server.ask(f"page {n}"):
            return self.busy()
        features = [_item(f"item-{n * 10 + i}") for i in range(2)] if n <= self.server.last \
            else []
        links = [{"rel": "next", "href": f"{self.server.url}/search?page={n + 1}"}] \
            if n < self.server.last else []
        return self.json({"type": "FeatureCollection", "features": features, "links": links})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.ask("token"):
            return self.busy()
        return self.json({"access_token": "t", "token_type": "Bearer", "expires_in": 3600})

    def busy(self) -> None:
        self.json({"error": "busy"}, 503, {"Retry-After": self.server.retry_after})

    def json(self, value: Any, status: int = 200, headers: dict[str, str] | None = None,
             ) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        for name, header in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, header)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _item(item_id: str) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "grus-1",
            "geometry": {"type": "Point", "coordinates": [135, 35]},
            "bbox": [135, 35, 135, 35], "properties": {"datetime": "2021-05-01T00:00:00Z"},
            "links": [], "assets": {}}


def _landing(url: str) -> dict[str, Any]:
    return {"type": "Catalog", "id": "busy", "stac_version": "1.0.0", "description": "busy",
            "links": [{"rel": "self", "href": url}, {"rel": "root", "href": url},
                      {"rel": "search", "href": f"{url}/search", "method": "GET",
                       "type": "application/geo+json"}]}


def _session(policy: Retry) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _deadline.WatchedAdapter(max_retries=policy))
    return session


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("axelglobe-pages")]


@pytest.fixture
def busy() -> Iterator[Busy]:
    with Busy() as server:
        yield server


# --- a cancel ends the wait -------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("users", [False, True], ids=["the package's policy", "a user's Retry"])
def test_a_search_broken_off_during_a_retry_after_lets_go_of_its_pages_at_once(
        opened: Callable[..., pystac_client.Client], monkeypatch: pytest.MonkeyPatch,
        users: bool) -> None:
    # ag.open(retry=Retry(...)): a plain urllib3 Retry is used as a watched copy too
    policy = {"retry": Retry(total=3, status_forcelist=[503],
                             respect_retry_after_header=True)} if users else {}
    monkeypatch.setattr(_paging, "SETTLE_SECONDS", 30.0)  # a broken-off search never waits
    with Busy() as server:
        server.busy = 0  # page 1 answers; the pages fetched ahead are told to come back in 20 s
        pages = opened(server, prefetch_pages=3, **policy).search().pages_as_dicts()
        assert isinstance(pages, Generator)
        assert len(next(pages)["features"]) == 2
        server.busy = math.inf
        server.wait_for("page 2")
        pages.close()  # what a `break` out of the loop does (and Ctrl-C, through it)
        end = time.monotonic() + 2
        while _pool_threads() and time.monotonic() < end:
            time.sleep(0.02)
        assert not _pool_threads(), "a page thread sat out its Retry-After"
        time.sleep(0.3)
        ahead = {w for w, _ in server.asked} - {"page 1"}
        assert ahead and all(server.count(w) == 1 for w in ahead), server.asked  # no retry


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "policy"), GET_POLICIES, ids=[n for n, _ in GET_POLICIES])
def test_a_cancel_during_a_backoff_ends_the_request_with_request_cancelled(
        busy: Busy, name: str, policy: Callable[[], Retry]) -> None:
    watch = _deadline.Watch()
    outcome: list[BaseException] = []

    def get() -> None:
        with _deadline.watching(watch):
            try:
                _session(policy()).get(f"{busy.url}/search", timeout=(5, 5))
            except BaseException as err:  # noqa: BLE001 - handed to the test's thread
                outcome.append(err)

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    busy.wait_for("page 1")
    watch.cancel()
    thread.join(2)
    assert not thread.is_alive(), f"the {name} policy sat out its Retry-After"
    assert len(outcome) == 1 and isinstance(outcome[0], _deadline.RequestCancelled), outcome
    time.sleep(0.3)
    assert busy.count("page 1") == 1  # not tried again


# --- a deadline ends the wait -----------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "policy"), GET_POLICIES, ids=[n for n, _ in GET_POLICIES])
def test_a_deadline_that_passes_during_a_backoff_fails_the_request_then(
        busy: Busy, name: str, policy: Callable[[], Retry]) -> None:
    session = _session(policy())
    started = time.monotonic()
    with _deadline.deadline(started + 1) as watch, \
            pytest.raises(requests.ConnectionError, match="deadline passed"):
        session.get(f"{busy.url}/search", timeout=(5, 5))
    assert time.monotonic() - started < 10, f"the {name} policy sat out its Retry-After"
    assert watch.fired  # what callers read to call it their timeout
    assert busy.count("page 1") == 1


@pytest.mark.timeout(60)
def test_a_token_request_whose_deadline_passes_during_a_backoff_fails_at_the_deadline(
        busy: Busy, tmp_path: Path) -> None:
    settings = Settings.from_env(client_id="client-1", client_secret="s3cret",
                                 token_url=f"{busy.origin}/oauth/token",
                                 api_url=f"{busy.url}", cache_dir=tmp_path)
    provider = TokenProvider(settings, timeout=(5, 5), deadline=1.5)
    started = time.monotonic()
    with pytest.raises(APIRequestError, match="did not answer client 'client-1' within 1.5 s"):
        provider.token()
    assert time.monotonic() - started < 10  # not the 20 s the endpoint asked for
    time.sleep(0.3)
    assert busy.count("token") == 1  # no attempt at (or past) the deadline


# --- and otherwise, the wait is waited --------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_busy_page_is_still_retried_after_its_retry_after(
        opened: Callable[..., pystac_client.Client]) -> None:
    with Busy(busy=1, retry_after="1", last=2) as server:
        ids = [item.id for item in opened(server).search().items()]
    assert ids == ["item-10", "item-11", "item-20", "item-21"]
    # Page 1 read in sequence (no watch), page 2 fetched ahead (under its watch): each
    # asked twice, the second time once the Retry-After had passed.
    for page in ("page 1", "page 2"):
        first, second = server.times(page)
        assert second - first >= 0.9, server.asked


@pytest.mark.timeout(60)
def test_a_watched_request_still_retries_a_busy_answer(busy: Busy) -> None:
    busy.busy, busy.retry_after = 1, "1"
    with _deadline.deadline(time.monotonic() + 30) as watch:
        response = _session(_retry.search_retry()).get(f"{busy.url}/search", timeout=(5, 5))
    assert response.status_code == 200 and len(response.json()["features"]) == 2
    assert busy.count("page 1") == 2 and not watch.fired
