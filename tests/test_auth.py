"""AxelGlobeAuth: the token on API requests only, one refresh on 401, copies and pickles."""

from __future__ import annotations

import copy
import http.server
import logging
import multiprocessing
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac_client
import pytest
import requests

from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import ConfigurationError, RestrictedError
from tests.fake_api import LoopbackHTTPServer

API = "https://api.example.test/stac/v1/catalogs/axelglobe"


def kwargs_of(emu: Emulator) -> dict[str, Any]:
    # settings_kwargs() is typed dict[str, str], which mypy will not spread over keywords
    # that include `settings: Settings | None`.
    return dict(emu.settings_kwargs())


def prepared(url: str) -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


def an_asset_href(emu: Emulator) -> str:
    item = emu.archive.items(emu.api_url)[0]  # type: ignore[union-attr]
    return str(item["assets"]["thumbnail"]["href"])


# --- no network ------------------------------------------------------------------------------


def test_missing_client_id_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_ID"):
        AxelGlobeAuth(client_secret="x")


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXELGLOBE_CLIENT_ID", "env-id")
    monkeypatch.setenv("AXELGLOBE_CLIENT_SECRET", "env-secret")
    auth = AxelGlobeAuth()
    assert auth.settings.client_id == "env-id" and auth.settings.client_secret == "env-secret"
    assert AxelGlobeAuth(client_id="arg-id").settings.client_id == "arg-id"


def test_settings_and_arguments_are_exclusive(tmp_path: Path) -> None:
    from pystac_axelglobe.settings import Settings

    settings = Settings.from_env(client_id="me", client_secret="x", cache_dir=tmp_path)
    assert AxelGlobeAuth(settings=settings).settings is settings
    with pytest.raises(ConfigurationError, match="either settings="):
        AxelGlobeAuth(client_id="other", settings=settings)


def test_storage_and_other_hosts_get_nothing() -> None:
    auth = AxelGlobeAuth(client_id="me", client_secret="never-used", api_url=API)
    # no token is needed (or fetched: no network here) for these
    for url in ("https://storage.example.test/bucket/a.tif?X-Amz-Signature=1",
                "http://api.example.test/stac/v1/catalogs/axelglobe",  # other scheme
                "https://api.example.test:8443/stac/v1/catalogs/axelglobe",  # other port
                "https://evil.example.test/https://api.example.test/",
                "https://api.example.test.evil.test/stac",  # prefix of the host name
                "https://api.example.test@evil.example.test/stac"):  # userinfo trick
        r = auth(prepared(url))
        assert "Authorization" not in r.headers
        assert auth.handle_401 not in r.hooks["response"]
    assert auth.is_api_url("https://API.example.test:443/anything")


@pytest.mark.parametrize(("api", "url", "expected"), [
    (API, "HTTPS://API.EXAMPLE.TEST/x", True),  # scheme and host are case-insensitive
    (API, "https://api.example.test:443/x", True),  # the default port, spelled out
    (API, "http://api.example.test:443/x", False),
    (API, "https://api.example.test:0443/x", True),
    # urlsplit reads these as the API's host; requests connects elsewhere (or refuses)
    (API, "https://evil.example.test\\@api.example.test/stac", False),
    (API, "https://evil.example.test:443\\@api.example.test/stac", False),
    (API, "https://api.example.test:443@evil.example.test/", False),
    (API, "https://api.example.test\\@evil.example.test/", True),  # requests: the API host
    (API, "https://api.example.test%2F@evil.example.test/", False),
    (API, "//api.example.test/stac", False),
    (API, "api.example.test/stac", False),
    # IDNA: the Unicode and the punycode spelling are one host
    ("https://b\u00fccher.example.test/stac", "https://xn--bcher-kva.example.test/x", True),
    ("https://b\u00fccher.example.test/stac", "https://B\u00dcCHER.example.test/x", True),
    ("https://xn--bcher-kva.example.test/stac", "https://b\u00fccher.example.test/x", True),
    ("https://b\u00fccher.example.test/stac", "https://bucher.example.test/x", False),
])
def test_origin_is_read_as_requests_sends_the_url(api: str, url: str, expected: bool) -> None:
    auth = AxelGlobeAuth(client_id="me", client_secret="never-used", api_url=api)
    assert auth.is_api_url(url) is expected
    if not expected:  # nothing is fetched or added for it, prepared or not
        for r in (requests.Request("GET", url), requests.Request("GET", url, params={"a": 1})):
            assert "Authorization" not in auth(r).headers


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 ``{}`` and keeps the headers of every request it gets."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.HTTPServer]:
    _Recorder.seen = []
    server = LoopbackHTTPServer(("127.0.0.3", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_raw_request_gets_the_token_only_where_requests_sends_it(
        emulator: Emulator, recorder: http.server.HTTPServer) -> None:
    # pystac-client calls its request_modifier on the raw requests.Request, before the
    # session prepares it: the origin must be the one requests will connect to.
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    api = urlsplit(emulator.api_url)
    evil = f"127.0.0.3:{recorder.server_address[1]}"
    trick = f"http://{evil}\\@{api.netloc}{api.path}/collections"
    assert urlsplit(trick).netloc.endswith("@" + api.netloc)  # what urlsplit believes
    with requests.Session() as session:
        raw = auth(requests.Request("GET", trick))
        assert "Authorization" not in raw.headers
        assert session.send(session.prepare_request(raw), timeout=30).status_code == 200
        assert len(_Recorder.seen) == 1 and "Authorization" not in _Recorder.seen[0]
        # the API itself, spelled oddly, does get it (and answers)
        for url in (f"HTTP://{api.netloc.upper()}{api.path}/collections",
                    f"{emulator.api_url}/collections"):
            raw = auth(requests.Request("GET", url))
            assert "Authorization" in raw.headers
            assert session.send(session.prepare_request(raw), timeout=30).status_code == 200


def test_repr_shows_client_id_only() -> None:
    auth = AxelGlobeAuth(client_id="me", client_secret="s3cret-value", api_url=API)
    assert repr(auth) == f"AxelGlobeAuth(client_id='me', api_url='{API}')"
    assert "s3cret-value" not in repr(auth.provider)


# --- against the emulator --------------------------------------------------------------------


def test_api_request_gets_the_token_storage_redirect_does_not(emulator: Emulator) -> None:
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    before_auth = emulator.counters.storage_requests_with_authorization
    before_storage = emulator.counters.storage_requests
    with requests.Session() as session:
        session.auth = auth
        r = session.get(an_asset_href(emulator), timeout=30)
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"  # a JPEG
        assert r.history[0].status_code in (302, 307)
        # the re-applied session.auth must not add it to the storage request either
        assert "Authorization" not in r.request.headers
    assert emulator.counters.storage_requests == before_storage + 1
    assert emulator.counters.storage_requests_with_authorization == before_auth


def test_request_modifier_with_pystac_client(emulator: Emulator) -> None:
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    client = pystac_client.Client.open(emulator.api_url, request_modifier=auth)
    assert [c.id for c in client.get_collections()] == ["grus-1"]


def test_revoked_token_one_refresh_via_session_auth() -> None:
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        with requests.Session() as session:
            session.auth = auth
            assert session.get(emu.api_url, timeout=30).status_code == 200
            emu.revoke_tokens()
            r = session.get(emu.api_url, timeout=30)
            assert r.status_code == 200
            assert [h.status_code for h in r.history] == [401]
        assert emu.counters.token_requests == 2


def test_revoked_token_one_refresh_via_request_modifier() -> None:
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        client = pystac_client.Client.open(emu.api_url, request_modifier=auth)
        emu.revoke_tokens()
        collection = client.get_collection("grus-1")
        assert collection is not None and collection.id == "grus-1"
        assert emu.counters.token_requests == 2


def test_session_auth_and_modifier_together_still_refresh_once() -> None:
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        client = pystac_client.Client.open(emu.api_url, request_modifier=auth)
        assert client._stac_io is not None
        client._stac_io.session.auth = auth  # what a StacApiIO subclass may do
        emu.revoke_tokens()
        collection = client.get_collection("grus-1")
        assert collection is not None and collection.id == "grus-1"
        assert emu.counters.token_requests == 2


def test_post_body_is_sent_again_after_a_401() -> None:
    with Emulator(allow_post_search=True) as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        assert requests.get(emu.api_url, auth=auth, timeout=30).status_code == 200
        emu.revoke_tokens()
        r = requests.post(f"{emu.api_url}/search", json={"limit": 2}, auth=auth, timeout=30)
        assert r.status_code == 200 and [h.status_code for h in r.history] == [401]
        assert len(r.json()["features"]) == 2
        assert emu.counters.token_requests == 2


def test_restriction_during_a_401_refresh_reaches_the_caller() -> None:
    with Emulator(restrict_after=1) as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        assert requests.get(emu.api_url, auth=auth, timeout=30).status_code == 200
        emu.revoke_tokens()
        with pytest.raises(RestrictedError, match="restricts client 'emulator-client' until"):
            requests.get(emu.api_url, auth=auth, timeout=30)
        with pytest.raises(RestrictedError):  # and nothing more is asked of the endpoint
            requests.get(emu.api_url, auth=auth, timeout=30)
        assert emu.counters.token_requests == 2


def test_eight_threads_on_a_revoked_token_cause_one_refresh() -> None:
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        assert requests.get(emu.api_url, auth=auth, timeout=30).status_code == 200
        emu.revoke_tokens()
        barrier = threading.Barrier(8)
        statuses: list[int] = []

        def run() -> None:
            own = AxelGlobeAuth(**kwargs_of(emu))
            barrier.wait()
            statuses.append(requests.get(emu.api_url, auth=own, timeout=30).status_code)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 8
        assert emu.counters.token_requests == 2


def test_a_persistent_401_is_retried_once_only() -> None:
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        assert requests.get(emu.api_url, auth=auth, timeout=30).status_code == 200
        emu.reject_tokens = True  # the old token and every new one: 401
        r = requests.get(emu.api_url, auth=auth, timeout=30)
        assert r.status_code == 401 and len(r.history) == 1
        assert emu.counters.token_requests == 2


def test_copies_and_pickles_reuse_the_token(emulator: Emulator) -> None:
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    assert requests.get(emulator.api_url, auth=auth, timeout=30).status_code == 200
    before = emulator.counters.token_requests
    data = pickle.dumps(auth)
    assert emulator.client_secret.encode() not in data
    assert auth.provider.token().access_token.encode() not in data
    for other in (copy.deepcopy(auth), copy.copy(auth), pickle.loads(data)):
        assert requests.get(emulator.api_url, auth=other, timeout=30).status_code == 200
    assert copy.deepcopy(auth).settings.client_secret == emulator.client_secret
    assert emulator.counters.token_requests == before


def test_secretless_auth_uses_this_process_credential(emulator: Emulator) -> None:
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    kwargs = {k: v for k, v in kwargs_of(emulator).items() if k != "client_secret"}
    worker_side = AxelGlobeAuth(**kwargs)  # as datacube's per-worker auth is built
    assert worker_side.provider is auth.provider
    assert worker_side.settings.client_secret is None


def _unpickle_and_get(data: bytes) -> str:
    auth = pickle.loads(data)
    try:
        return str(requests.get(auth.settings.api_url, auth=auth, timeout=30).status_code)
    except ConfigurationError as err:
        return f"ConfigurationError: {err}"


def test_pickled_auth_in_other_processes(tmp_path: Path) -> None:
    with Emulator() as emu:
        warm = AxelGlobeAuth(**kwargs_of(emu))
        assert requests.get(emu.api_url, auth=warm, timeout=30).status_code == 200
        (tmp_path / "empty").mkdir()
        cold = AxelGlobeAuth(**kwargs_of(emu), cache_dir=tmp_path / "empty")
        # another machine's cache folder (absent here): the receiver's AXELGLOBE_CACHE_DIR,
        # which on this machine holds the warm token
        elsewhere = AxelGlobeAuth(**kwargs_of(emu), cache_dir=tmp_path / "not-on-this-host")
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            # same machine, shared token cache: works without the secret, no new token
            assert pool.submit(_unpickle_and_get, pickle.dumps(warm)).result(60) == "200"
            # empty cache and no secret on the worker: a clear error, nothing sent
            message = pool.submit(_unpickle_and_get, pickle.dumps(cold)).result(60)
            assert pool.submit(_unpickle_and_get, pickle.dumps(elsewhere)).result(60) == "200"
        assert message.startswith("ConfigurationError") and "AXELGLOBE_CLIENT_SECRET" in message
        assert emu.counters.token_requests == 1


def test_no_secret_or_token_in_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: urllib3, requests, filelock, pystac_client
    with Emulator() as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        client = pystac_client.Client.open(emu.api_url, request_modifier=auth)
        emu.revoke_tokens()
        client.get_collection("grus-1")
        requests.get(an_asset_href(emu), auth=auth, timeout=30)
        token = auth.provider.token().access_token
        secret = emu.client_secret
        bad = AxelGlobeAuth(**{**kwargs_of(emu), "client_secret": "bad-secret-xyz"},
                            cache_dir=Path(auth.settings.cache_dir) / "other")
        with pytest.raises(PermissionError) as info:
            requests.get(emu.api_url, auth=bad, timeout=30)
    assert emu.counters.token_requests == 3  # sanity: the paths above really ran
    text = caplog.text + str(info.value) + repr(info.value)
    assert "Bearer <redacted>" in caplog.text  # pystac-client logged the headers
    for value in (token, secret, "bad-secret-xyz"):
        assert value not in text


def test_headers_for_other_libraries(emulator: Emulator) -> None:
    auth = AxelGlobeAuth(**kwargs_of(emulator))
    headers: dict[str, Any] = auth.headers()
    r = requests.get(emulator.api_url, headers=headers, timeout=30)
    assert r.status_code == 200
