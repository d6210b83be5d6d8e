"""TokenProvider: fetch, refresh, single flight across threads and processes, restriction."""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import (
    APIRequestError,
    AuthenticationError,
    ConfigurationError,
    RestrictedError,
)
from pystac_axelglobe.settings import Settings
from pystac_axelglobe.tokens import Token, TokenProvider, parse_retry_after

TOKEN_URL = "https://auth.example.test/oauth/token"
API_URL = "https://api.example.test/stac/v1/catalogs/axelglobe"
SECRET = "s3cret-never-shown"


def kwargs_of(emu: Emulator) -> dict[str, Any]:
    # settings_kwargs() is typed dict[str, str], which mypy will not spread over keywords
    # that include `settings: Settings | None`.
    return dict(emu.settings_kwargs())


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_settings(cache_dir: Path, secret: str | None = SECRET, **kw: Any) -> Settings:
    return Settings.from_env(client_id="client-1", client_secret=secret, api_url=API_URL,
                             token_url=TOKEN_URL, cache_dir=cache_dir, **kw)


def token_body(token: str = "tok-1", expires_in: float = 86400) -> dict[str, Any]:
    return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- unit tests: fake clock, mocked token endpoint -------------------------------------------


def test_fetch_sends_client_credentials_json_and_caches_in_memory(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    assert provider.token().access_token == "tok-1"
    assert provider.token().access_token == "tok-1"
    assert len(mocked.calls) == 1
    body = json.loads(mocked.calls[0].request.body or b"")
    assert body == {"grant_type": "client_credentials", "client_id": "client-1",
                    "client_secret": SECRET, "audience": "https://api.axelglobe.com"}
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"


def test_warm_token_needs_no_file_io(tmp_path: Path, mocked: responses.RequestsMock,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    provider.token()

    def no_io(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("file I/O on the fast path")

    monkeypatch.setattr("builtins.open", no_io)
    monkeypatch.setattr(os, "open", no_io)
    monkeypatch.setattr(os, "stat", no_io)
    for _ in range(100):
        assert provider.token().access_token == "tok-1"


def test_cache_file_private_atomic_and_without_secret(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path / "cache"), clock=FakeClock())
    provider.token()
    assert stat.S_IMODE(provider.cache_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(provider.cache_folder.stat().st_mode) == 0o700
    text = provider.cache_path.read_text()
    assert "tok-1" in text and SECRET not in text and "client-1" not in provider.cache_path.name
    # no temp file left behind by the atomic write; the request log beside it is private too
    files = sorted(p for p in provider.cache_folder.iterdir() if not p.name.endswith(".lock"))
    assert [p.suffix for p in files] == [".issued", ".json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert "tok-1" not in files[0].read_text() and SECRET not in files[0].read_text()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"version": 1, "access_token": 5}',
                                     '{"version": 1, "access_token": "t", "expires_at": "x",'
                                     ' "restricted_until": "soon"}'])
def test_corrupt_cache_file_is_replaced(tmp_path: Path, mocked: responses.RequestsMock,
                                        content: str) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    provider.cache_path.write_text(content)
    assert provider.token().access_token == "tok-1"
    assert json.loads(provider.cache_path.read_text())["access_token"] == "tok-1"


def test_cache_file_shared_between_providers(tmp_path: Path,
                                             mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    clock = FakeClock()
    first = TokenProvider(make_settings(tmp_path), clock=clock).token()
    # another provider (as in another process) reads the file instead of fetching
    second = TokenProvider(make_settings(tmp_path), clock=clock).token()
    assert first == second and len(mocked.calls) == 1
    # a different audience is a different credential, so a different file
    other = TokenProvider(make_settings(tmp_path, audience="https://other"), clock=clock)
    assert other.cache_path != TokenProvider(make_settings(tmp_path)).cache_path


def test_proactive_refresh_for_short_tokens(tmp_path: Path, mocked: responses.RequestsMock,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pystac_axelglobe.tokens")
    mocked.post(TOKEN_URL, json=token_body("tok-1", 4))
    mocked.post(TOKEN_URL, json=token_body("tok-2", 4))
    clock = FakeClock(1000.0)
    provider = TokenProvider(make_settings(tmp_path), clock=clock)
    assert provider.token().access_token == "tok-1"
    clock.now = 1002.9  # margin: min(300, 4 / 4) = 1 s
    assert provider.token().access_token == "tok-1"
    clock.now = 1003.1
    assert provider.token().access_token == "tok-2"
    assert len(mocked.calls) == 2
    reasons = [r.getMessage() for r in caplog.records if r.name == "pystac_axelglobe.tokens"]
    assert "(none cached)" in reasons[0] and "(expiring)" in reasons[1]
    assert all("tok-" not in m for m in reasons)


def test_day_long_token_refreshes_five_minutes_early(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body("tok-1"))
    mocked.post(TOKEN_URL, json=token_body("tok-2"))
    clock = FakeClock(0.0 + 1e9)
    provider = TokenProvider(make_settings(tmp_path), clock=clock)
    provider.token()
    clock.now += 86400 - 301
    assert provider.token().access_token == "tok-1"
    clock.now += 2
    assert provider.token().access_token == "tok-2"


def test_failed_proactive_refresh_keeps_the_valid_token(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body("tok-1", 100))
    clock = FakeClock(1000.0)
    provider = TokenProvider(make_settings(tmp_path), clock=clock)
    provider.token()
    mocked.replace(responses.POST, TOKEN_URL, status=503)
    clock.now = 1090.0  # within the margin, still valid
    assert provider.token().access_token == "tok-1"
    calls = len(mocked.calls)
    assert calls == 1 + 5  # one try + 4 retries of the 503
    assert provider.token().access_token == "tok-1"
    assert len(mocked.calls) == calls  # not retried on every request
    clock.now = 1100.5  # expired: now the failure shows
    with pytest.raises(APIRequestError, match="503"):
        provider.token()


def test_refresh_after_401_fetches_only_if_the_failed_token_is_current(
        tmp_path: Path, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pystac_axelglobe.tokens")
    mocked.post(TOKEN_URL, json=token_body("tok-1"))
    mocked.post(TOKEN_URL, json=token_body("tok-2"))
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    provider.token()
    assert provider.refresh("tok-1").access_token == "tok-2"
    assert provider.refresh("tok-1").access_token == "tok-2"  # stale failure: no fetch
    assert len(mocked.calls) == 2
    assert "(rejected by a 401)" in caplog.records[-1].getMessage()


def test_401_in_another_process_adopts_its_refreshed_token(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body("tok-1"))
    mocked.post(TOKEN_URL, json=token_body("tok-2"))
    clock = FakeClock()
    a = TokenProvider(make_settings(tmp_path), clock=clock)
    b = TokenProvider(make_settings(tmp_path), clock=clock)  # own memory, as another process
    assert a.token() == b.token()
    assert a.refresh("tok-1").access_token == "tok-2"
    assert b.refresh("tok-1").access_token == "tok-2"  # read from the file, not fetched
    assert len(mocked.calls) == 2


def test_loose_cache_folder_is_tightened(tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    (tmp_path / "tokens").mkdir(mode=0o755)
    (tmp_path / "tokens").chmod(0o755)
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    provider.token()
    assert stat.S_IMODE(provider.cache_folder.stat().st_mode) == 0o700
    lock = provider.cache_folder / (provider.cache_path.stem + ".lock")
    if lock.exists():
        assert stat.S_IMODE(lock.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("status", [400, 401])
def test_rejected_credentials_are_not_retried(tmp_path: Path, mocked: responses.RequestsMock,
                                              status: int) -> None:
    mocked.post(TOKEN_URL, status=status,
                json={"error": "access_denied", "error_description": f"bad {SECRET}"})
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    with pytest.raises(AuthenticationError) as info:
        provider.token()
    err = info.value
    assert (err.client_id, err.status, err.oauth_error) == ("client-1", status, "access_denied")
    assert "client-1" in str(err) and f"HTTP {status}" in str(err)
    assert "access_denied" in str(err) and "AXELGLOBE_CLIENT_SECRET" in str(err)
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert len(mocked.calls) == 1


def test_503_is_retried(tmp_path: Path) -> None:
    with responses.RequestsMock(registry=responses.registries.OrderedRegistry) as ordered:
        ordered.post(TOKEN_URL, status=503)
        ordered.post(TOKEN_URL, status=502)
        ordered.post(TOKEN_URL, json=token_body())
        provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
        assert provider.token().access_token == "tok-1"
        assert len(ordered.calls) == 3


@pytest.mark.parametrize(
    ("headers", "status", "expected_wait"),
    [({"Retry-After": "120"}, 429, 120.0),
     ({"Retry-After": "Thu, 01 Jan 2027 00:10:00 GMT"}, 429, 600.0),
     ({}, 403, 60.0)],
)
def test_restriction_is_shared_and_blocks_all_token_requests(
        tmp_path: Path, mocked: responses.RequestsMock, headers: dict[str, str], status: int,
        expected_wait: float) -> None:
    start = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    clock = FakeClock(start)
    mocked.post(TOKEN_URL, status=status, headers=headers,
                json={"error": "too_many_requests"})
    provider = TokenProvider(make_settings(tmp_path), clock=clock)
    with pytest.raises(RestrictedError) as info:
        provider.token()
    until = dt.datetime.fromtimestamp(start + expected_wait, dt.timezone.utc)
    assert info.value.until == until
    assert until.isoformat(timespec="seconds") in str(info.value)
    assert "wait until" in str(info.value) and f"HTTP {status}" in str(info.value)
    assert len(mocked.calls) == 1
    # the same provider, a provider in "another process" (own memory): no request at all
    with pytest.raises(RestrictedError):
        provider.token()
    other = TokenProvider(make_settings(tmp_path), clock=clock)
    with pytest.raises(RestrictedError, match="recorded in the token cache"):
        other.token()
    other.clear()  # logout does not lift the restriction
    with pytest.raises(RestrictedError):
        TokenProvider(make_settings(tmp_path), clock=clock).token()
    assert len(mocked.calls) == 1
    clock.now = start + expected_wait + 1
    mocked.replace(responses.POST, TOKEN_URL, json=token_body())
    assert other.token().access_token == "tok-1"
    assert len(mocked.calls) == 2


def test_parse_retry_after_http_date_in_the_past() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=1000.0) == 1000.0
    assert parse_retry_after("soon", now=1000.0) == 1060.0


@pytest.mark.parametrize("expires_in", [0, -5, "nan"])
def test_token_stale_on_arrival_is_refused(tmp_path: Path, mocked: responses.RequestsMock,
                                           expires_in: Any) -> None:
    mocked.post(TOKEN_URL, json=token_body(expires_in=expires_in))
    with pytest.raises(AuthenticationError, match="200 without a usable token.*expires_in"):
        TokenProvider(make_settings(tmp_path), clock=FakeClock()).token()


def test_absurd_retry_after_falls_back_to_the_default() -> None:
    assert parse_retry_after("inf", now=1000.0) == 1060.0
    assert parse_retry_after("1e300", now=1000.0) == 1060.0
    assert parse_retry_after("Fri, 01 Jan 9999 00:00:00 GMT", now=0.0) == 7 * 86400.0


def test_provider_pickles_without_the_secret(tmp_path: Path,
                                             mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider.shared(make_settings(tmp_path))
    provider.token()
    data = pickle.dumps(provider)
    assert SECRET.encode() not in data and b"tok-1" not in data
    assert pickle.loads(data) is provider  # same process: the same shared provider


def test_missing_credentials_raise_configuration_error_before_sending(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_ID"):
        TokenProvider(Settings.from_env(cache_dir=tmp_path))
    provider = TokenProvider(make_settings(tmp_path, secret=None), clock=FakeClock())
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_SECRET"):
        provider.token()
    assert len(mocked.calls) == 0


def test_secret_not_sent_over_plain_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="HTTPS"):
        Settings.from_env(client_id="c", client_secret="s",
                          token_url="http://auth.example.test/oauth/token")


def test_reprs_hide_token_and_secret(tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body("tok-secret-value"))
    provider = TokenProvider(make_settings(tmp_path), clock=FakeClock())
    token = provider.token()
    for text in (repr(token), str(token), repr(provider), repr(provider.settings)):
        assert "tok-secret-value" not in text and SECRET not in text
    assert "client-1" in repr(provider)


def test_shared_returns_one_provider_per_credential(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert TokenProvider.shared(settings) is TokenProvider.shared(make_settings(tmp_path))
    assert TokenProvider.shared(settings) is not TokenProvider.shared(
        make_settings(tmp_path / "elsewhere"))


def test_threads_share_one_fetch(tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path))
    barrier = threading.Barrier(16)
    got: list[str] = []

    def run() -> None:
        barrier.wait()
        got.append(provider.token().access_token)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["tok-1"] * 16 and len(mocked.calls) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_holds_the_lock(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    provider = TokenProvider(make_settings(tmp_path))
    provider.token()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with provider._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a threaded process: that hazard is the test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: the held lock must have been renewed
        signal.alarm(10)
        try:
            provider._flight.current = None  # force the locked path (reads the cache file)
            ok = provider.token().access_token == "tok-1"
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_dropped_connection_is_retried(tmp_path: Path) -> None:
    # A real loopback server that cuts the first connection, then answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    seen: list[int] = []

    def serve() -> None:
        for attempt in range(2):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                seen.append(attempt)
                if attempt == 0:
                    continue  # close without an answer
                body = json.dumps(token_body("tok-after-drop")).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode()
                             + b"\r\nConnection: close\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        settings = Settings.from_env(client_id="c", client_secret="s", cache_dir=tmp_path,
                                     token_url=f"http://127.0.0.1:{port}/oauth/token")
        assert TokenProvider(settings).token().access_token == "tok-after-drop"
        assert seen == [0, 1]
    finally:
        thread.join(5)
        server.close()


# --- against the emulator: real sockets, real processes --------------------------------------


def _spawned_auths(kwargs: dict[str, Any], threads: int, barrier: Any, out: Any) -> None:
    barrier.wait(60)
    statuses: list[int] = []
    ready = threading.Barrier(threads)

    def one() -> None:
        ready.wait(30)
        auth = AxelGlobeAuth(**kwargs)  # each thread its own auth, as users do
        statuses.append(requests.get(kwargs["api_url"], auth=auth, timeout=60).status_code)

    pool = [threading.Thread(target=one) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(statuses)


def test_4_processes_x_8_threads_fetch_one_token() -> None:
    ctx = multiprocessing.get_context("spawn")
    with Emulator(restrict_after=3, restrict_window=60) as emu:
        barrier = ctx.Barrier(5)
        out = ctx.Queue()
        procs = [ctx.Process(target=_spawned_auths, args=(kwargs_of(emu), 8, barrier, out))
                 for _ in range(4)]
        for p in procs:
            p.start()
        barrier.wait(60)  # all four processes are up: start together, cache empty
        statuses = [s for _ in procs for s in out.get(timeout=120)]
        for p in procs:
            p.join(30)
        assert statuses == [200] * 32
        assert emu.counters.token_requests == 1
        assert emu.counters.api_requests == 32


def test_short_tokens_used_continuously_refresh_once_per_lifetime() -> None:
    with Emulator(token_lifetime=4) as emu:
        auth = AxelGlobeAuth(**kwargs_of(emu))
        errors: list[int] = []
        count = [0]
        end = time.monotonic() + 12

        def use() -> None:
            with requests.Session() as session:
                session.auth = auth
                while time.monotonic() < end:
                    r = session.get(emu.api_url, timeout=30)
                    count[0] += 1
                    if r.status_code != 200 or r.history:  # not even a 401 recovered
                        errors.append(r.status_code)

        threads = [threading.Thread(target=use) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert count[0] > 20  # really used continuously
        assert 2 <= emu.counters.token_requests <= 5


def _spawned_token(kwargs: dict[str, Any], out: Any) -> None:
    try:
        TokenProvider(Settings.from_env(**kwargs)).token()
        out.put("no error")
    except RestrictedError as err:
        out.put(f"RestrictedError: {err}")


def test_emulator_restriction_stops_every_process() -> None:
    with Emulator(restrict_after=1, restrict_window=60, restrict_period=60) as emu:
        provider = TokenProvider(Settings.from_env(**kwargs_of(emu)))
        provider.token()
        provider.clear()  # force a second fetch: the emulator restricts it
        with pytest.raises(RestrictedError) as info:
            provider.token()
        assert emu.counters.token_requests == 2
        until = info.value.until
        assert 50 < until.timestamp() - time.time() <= 61
        assert f"until {until.isoformat(timespec='seconds')}" in str(info.value)
        # this process, a new provider, another process: nobody asks again
        with pytest.raises(RestrictedError):
            provider.token()
        with pytest.raises(RestrictedError):
            TokenProvider(Settings.from_env(**kwargs_of(emu))).token()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(target=_spawned_token, args=(kwargs_of(emu), out))
        proc.start()
        message = out.get(timeout=60)
        proc.join(30)
        assert message.startswith("RestrictedError: AxelGlobe restricts client")
        assert emu.counters.token_requests == 2


def test_wrong_secret_against_emulator(emulator: Emulator) -> None:
    before = emulator.counters.token_requests
    kwargs = {**kwargs_of(emulator), "client_secret": "wrong-secret-value"}
    with pytest.raises(AuthenticationError) as info:
        TokenProvider(Settings.from_env(**kwargs)).token()
    text = str(info.value)
    assert emulator.client_id in text and "HTTP 401" in text and "access_denied" in text
    assert "wrong-secret-value" not in text
    assert (info.value.status, info.value.oauth_error) == (401, "access_denied")
    assert emulator.counters.token_requests == before + 1


def test_token_is_json_cached_with_expiry(emulator: Emulator) -> None:
    provider = TokenProvider(Settings.from_env(**kwargs_of(emulator)))
    token = provider.token()
    state = json.loads(provider.cache_path.read_text())
    assert state["access_token"] == token.access_token
    assert state["expires_at"] == token.expires_at
    assert emulator.client_secret not in provider.cache_path.read_text()
    assert isinstance(Token(token.access_token, token.expires_at).expires_within(0), bool)


@pytest.mark.parametrize("damage", [
    {"restricted_until": 1e300},  # beyond what datetime can show: was an OverflowError
    {"restricted_until": time.time() + 365 * 86400},  # longer than any accepted Retry-After
    {"restricted_until": "soon", "access_token": "planted", "expires_at": 1e300},
])
def test_damaged_cache_values_are_ignored(emulator: Emulator, damage: dict[str, Any]) -> None:
    provider = TokenProvider(Settings.from_env(**kwargs_of(emulator)))
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    provider.cache_path.write_text(json.dumps({"version": 1, **damage}))
    before = emulator.counters.token_requests
    token = provider.token()  # neither a crash nor a lock-out, nor a planted eternal token
    assert token.access_token != "planted"
    assert emulator.counters.token_requests == before + 1
    provider.cache_path.write_text(json.dumps({"version": 1, **damage}))
    provider.clear()  # "soon" > now was a TypeError in clear()
    assert provider.cached() == (None, 0.0)  # what `axelglobe auth status` shows


def test_token_endpoint_redirect_is_not_followed(tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    received: list[bytes] = []

    def elsewhere(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", "2")])
        return [b"{}"]

    def redirecting(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("307 Temporary Redirect", [
            ("Location", f"http://127.0.0.1:{target.server_port}/steal"),
            ("Content-Length", "0")])
        return [b""]

    target = make_server("127.0.0.1", 0, elsewhere)
    source = make_server("127.0.0.1", 0, redirecting)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (target, source)]
    for t in threads:
        t.start()
    try:
        settings = Settings.from_env(
            client_id="client-1", client_secret=SECRET, cache_dir=tmp_path,
            api_url="http://127.0.0.1:9/stac",
            token_url=f"http://127.0.0.1:{source.server_port}/oauth/token")
        with pytest.raises(APIRequestError, match=r"redirected \(HTTP 307\)") as info:
            TokenProvider(settings).token()
        assert "AXELGLOBE_TOKEN_URL" in str(info.value) and SECRET not in str(info.value)
        assert received == []  # the secret never reached the redirect target
    finally:
        for s in (target, source):
            s.shutdown()
            s.server_close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a folder to another user needs root")
def test_a_cache_folder_of_another_user_is_never_used(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # e.g. AXELGLOBE_CACHE_DIR on a shared /tmp, where someone else made tokens/ first
    folder = tmp_path / "shared" / "tokens"
    folder.mkdir(parents=True, mode=0o777)
    os.chown(folder, 65534, 65534)  # nobody
    before = emulator.counters.token_requests
    with caplog.at_level(logging.WARNING, logger="pystac_axelglobe.tokens"):
        provider = TokenProvider(Settings.from_env(**kwargs_of(emulator),
                                                   cache_dir=tmp_path / "shared"))
        token = provider.token()
    assert requests.get(emulator.api_url, timeout=30,
                        headers={"Authorization": f"Bearer {token.access_token}"}).ok
    assert emulator.counters.token_requests == before + 1
    assert list(folder.iterdir()) == []  # nothing written where its owner could read it
    assert "belongs to another user" in caplog.text and "memory only" in caplog.text


# --- the token budget ------------------------------------------------------------------------


def test_budget_caps_401_refreshes_and_slides(tmp_path: Path, mocked: responses.RequestsMock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    for n in range(1, 10):
        mocked.post(TOKEN_URL, json=token_body(f"tok-{n}"))
    clock = FakeClock(1000.0)
    provider = TokenProvider(make_settings(tmp_path), clock=clock)
    assert provider.token().access_token == "tok-1"
    assert provider.refresh("tok-1").access_token == "tok-2"
    assert provider.refresh("tok-1").access_token == "tok-2"  # once per token: no fetch
    assert provider.refresh("tok-2").access_token == "tok-3"
    with pytest.raises(AuthenticationError, match="has requested 3 tokens in the last 10 "
                       "minutes") as info:
        provider.refresh("tok-3")
    assert "1970-01-01T00:26:40" in str(info.value)  # when the first one leaves the window
    # another provider (another process) on the same cache: the same budget
    other = TokenProvider(make_settings(tmp_path), clock=clock)
    with pytest.raises(AuthenticationError):
        other.refresh("tok-3")
    assert len(mocked.calls) == 3
    clock.now = 1000.0 + 601  # the first request left the window
    assert provider.refresh("tok-3").access_token == "tok-4"
    assert len(mocked.calls) == 4


def test_refreshes_of_expiring_tokens_do_not_draw_on_the_budget(
        tmp_path: Path, mocked: responses.RequestsMock) -> None:
    for n in range(1, 10):
        mocked.post(TOKEN_URL, json=token_body(f"tok-{n}", 4))
    clock = FakeClock(1000.0)
    provider = TokenProvider(make_settings(tmp_path), clock=clock, max_token_requests=1)
    assert provider.token().access_token == "tok-1"
    for n in range(2, 7):  # 4 s tokens refreshed every 3 s: what their lifetime asks for
        clock.now += 3.1
        assert provider.token().access_token == f"tok-{n}"
    with pytest.raises(AuthenticationError, match="rejected by a 401"):
        provider.refresh("tok-6")  # a 401 refresh is not: the budget of 1 is spent
    assert len(mocked.calls) == 6


def test_logout_loops_do_not_reset_the_budget(tmp_path: Path,
                                              mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json=token_body())
    clock = FakeClock(1000.0)
    outcomes = []
    for _ in range(6):  # `axelglobe auth logout; axelglobe auth login`, in a loop
        provider = TokenProvider(make_settings(tmp_path), clock=clock)
        provider.clear()
        try:
            provider.token()
            outcomes.append("token")
        except AuthenticationError as err:
            outcomes.append(str(err))
        clock.now += 10
    assert outcomes[:3] == ["token"] * 3
    assert all("logging out repeatedly" in o for o in outcomes[3:])
    assert len(mocked.calls) == 3


@pytest.mark.parametrize("kwargs", [
    {"deadline": 0}, {"deadline": float("nan")}, {"timeout": (1, 0)}, {"timeout": (1,)},
    {"max_token_requests": 0}, {"max_token_requests": 2.5}, {"token_request_window": -1},
    {"refresh_margin": -1},
])
def test_bad_limits_are_configuration_errors(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        TokenProvider(make_settings(tmp_path), **kwargs)


def test_pickled_provider_keeps_its_limits(tmp_path: Path) -> None:
    provider = TokenProvider(make_settings(tmp_path), deadline=5, max_token_requests=2)
    back = pickle.loads(pickle.dumps(provider))
    assert (back.deadline, back.max_token_requests) == (5, 2)
    assert back.settings.client_secret is None


# The names pystac_axelglobe.tokens offered before it was split into rooms (tokens.py 812
# lines, issue 13): callers, dask graphs pickled by an earlier run and cluster.py import them.
EARLIER_NAMES = ["DEFAULT_DEADLINE", "DEFAULT_REFRESH_FRACTION", "DEFAULT_REFRESH_MARGIN",
                 "DEFAULT_TIMEOUT", "FAILURE_HOLD", "MAX_TOKEN_LIFETIME", "MAX_TOKEN_REQUESTS",
                 "MAX_TOKEN_RESPONSE", "RESTRICTION_THRESHOLD", "TOKEN_REQUEST_WINDOW", "Token",
                 "TokenProvider", "TokenSource", "credential_key", "default_retry",
                 "parse_retry_after", "set_token_source", "_unpickle_provider"]


@pytest.mark.parametrize("name", EARLIER_NAMES)
def test_names_of_the_earlier_layout_still_import(name: str) -> None:
    from pystac_axelglobe import tokens

    assert getattr(tokens, name) is not None


def test_limits_and_a_source_set_through_tokens_reach_the_provider(tmp_path: Path) -> None:
    from pystac_axelglobe import tokens

    # The defaults keep their values, and a source set through the front door is the one
    # a provider asks (the same registry, not a copy).
    assert (tokens.MAX_TOKEN_REQUESTS, tokens.TOKEN_REQUEST_WINDOW) == (3, 600.0)
    assert (tokens.DEFAULT_TIMEOUT, tokens.DEFAULT_DEADLINE, tokens.FAILURE_HOLD) == (
        (10.0, 30.0), 90.0, 10.0)
    settings = make_settings(tmp_path)
    key = tokens.credential_key(settings)
    given = Token("from-source", expires_at=time.time() + 3600, issued_at=time.time())
    tokens.set_token_source(key, lambda s, failed, fresh: given)
    try:
        assert TokenProvider(settings).token().access_token == "from-source"
    finally:
        tokens.set_token_source(key, None)
    assert key not in tokens._SOURCES
