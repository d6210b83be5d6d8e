"""Bounds set on a front-door module take effect, wherever the code that uses them lives.

``presigned.py`` and ``_stac_io.py`` keep their bounds as module constants that tests,
benchmarks and users set (``presigned.PREFETCH_CONCURRENCY = 0`` in ``bench/wan.py``), while
the requests are sent from their rooms (``_redirect.py``, ``_resolve_threads.py``,
``_stac_request.py``). A constant copied into a room would make setting it silently do
nothing. Here: the bounds no other test sets (``PREFETCH_CONCURRENCY``, ``RESOLVE_RETRY``,
``_CACHE_SWEEP_SIZE`` and ``_stac_io.DEFAULT_*`` are set in ``test_prefetch.py``,
``test_assets.py`` and ``test_client_hostile.py``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from urllib3.util.retry import Retry

import pystac_axelglobe as ag
from pystac_axelglobe import _stac_io, presigned
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import APIRequestError, AssetError
from tests.fake_api import LoopbackHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _API

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.server.lock:
            self.server.hits[self.path] += 1
        if self.path.endswith("/silent.tif"):
            self.server.release.wait(30)  # read the request, never answer
            return
        # A redirect whose target says nothing of its expiry.
        self.send_response(307)
        self.send_header("Location", "/files/b.tif")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _API(LoopbackHTTPServer):
    """An asset API on 127.0.0.1 that redirects without an expiry, or stays silent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/stac"


@pytest.fixture
def api() -> Iterator[_API]:
    server = _API()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def auth(emulator: Emulator, api: _API, tmp_path: Path) -> AxelGlobeAuth:
    """The emulator's tokens, for the scripted API."""
    kwargs: dict[str, Any] = {**emulator.settings_kwargs(), "api_url": api.url}
    return AxelGlobeAuth(**kwargs, cache_dir=tmp_path)


def test_presigned_default_expiry_set_on_the_module_is_used(
        api: _API, auth: AxelGlobeAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presigned, "DEFAULT_EXPIRY", 5.0)
    started = time.time()
    url = presigned.resolve(f"{api.url}/x/b.tif", auth=auth)
    assert url.url.endswith("/files/b.tif")
    assert started + 4 <= url.expires_at <= time.time() + 5  # not the 60 s default


@pytest.mark.timeout(60)
def test_presigned_timeout_set_on_the_module_bounds_each_request(
        api: _API, auth: AxelGlobeAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 0.3 s read timeout and one retry: two requests, each cut off by its read timeout.
    # Were TIMEOUT (30 s read) not used, the first request would wait out the whole call.
    monkeypatch.setattr(presigned, "TIMEOUT", (2.0, 0.3))
    monkeypatch.setattr(presigned, "RESOLVE_RETRY", Retry(
        total=1, backoff_factor=0, allowed_methods=["GET"], raise_on_status=False,
        redirect=False))
    with pytest.raises(AssetError, match="the API could not be reached"):
        presigned.resolve(f"{api.url}/x/silent.tif", auth=auth, timeout=20)
    assert api.hits["/stac/x/silent.tif"] == 2


def test_stac_io_max_response_bytes_set_on_the_module_is_used(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_stac_io, "MAX_RESPONSE_BYTES", 100)
    with pytest.raises(APIRequestError, match="too big: more than 100 bytes"):
        ag.open(**emulator.settings_kwargs(), cache_dir=tmp_path)
