"""Tokens against hostile servers and a hostile cache folder, over real loopback sockets.

Each test plants one misbehaviour (an API answering 401 to everything, a token endpoint
that is silent, trickles, or answers garbage, a FIFO or a link in the cache folder) and
checks what a user would notice: requests counted at the server, bytes on disk, the words
of the error, and that nothing hangs.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import multiprocessing
import os
import socket
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pystac_axelglobe._retry import token_retry
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import (
    APIRequestError,
    AuthenticationError,
    AxelGlobeError,
    RestrictedError,
)
from pystac_axelglobe.settings import Settings
from pystac_axelglobe.tokens import DEFAULT_DEADLINE, MAX_TOKEN_REQUESTS, TokenProvider
from tests.fake_api import LoopbackHTTPServer, RawServer, silent_socket, trickling_head

SECRET = "s3cret-hostile-never-shown"
TOKEN = "tok-hostile-value"

# --- small hostile servers ---------------------------------------------------------------


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


class Server:
    """A loopback HTTP server whose every answer is ``reply(request)``; it keeps what it saw."""

    def __init__(self, reply: Callable[[Seen], Reply], host: str = "127.0.0.1") -> None:
        self.seen: list[Seen] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                outer.seen.append(seen)
                status, headers, body = reply(seen)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = do_POST = handle_one

        self.httpd = LoopbackHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def json_reply(data: Any, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def token_reply(token: str = TOKEN, expires_in: Any = 86400) -> Reply:
    return json_reply({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})


def settings_for(token_url: str, cache_dir: Path, api_url: str = "http://127.0.0.1:9/stac",
                 **kw: Any) -> Settings:
    return Settings.from_env(client_id="client-1", client_secret=SECRET, api_url=api_url,
                             token_url=token_url, cache_dir=cache_dir, **kw)


def no_secret_or_token(err: BaseException) -> None:
    for text in (str(err), repr(err)):
        assert SECRET not in text and TOKEN not in text


# --- an API that answers 401 to everything: a few token requests, then a clear error ------


@pytest.fixture
def api_401() -> Iterator[Server]:
    with Server(lambda seen: json_reply({"code": "Unauthorized"}, 401)) as server:
        yield server


def auth_against(emu: Emulator, api: Server, cache_dir: Path) -> AxelGlobeAuth:
    # The emulator's real token endpoint, and an API that rejects every token it issues (as
    # a wrong AXELGLOBE_API_URL or audience would).
    return AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=api.url("/stac"),
                         token_url=emu.token_url, audience=emu.audience, cache_dir=cache_dir)


def test_api_answering_401_always_costs_a_few_token_requests_not_one_per_call(
        api_401: Server, tmp_path: Path) -> None:
    with Emulator() as emu:
        auth = auth_against(emu, api_401, tmp_path)
        outcomes: list[Any] = []
        for _ in range(12):
            try:
                outcomes.append(requests.get(api_401.url("/stac/x"), auth=auth,
                                             timeout=30).status_code)
            except AuthenticationError as err:
                outcomes.append(err)
        assert emu.counters.token_requests == MAX_TOKEN_REQUESTS == 3
    assert outcomes[:2] == [401, 401]  # each refreshed once and re-sent once
    errors = outcomes[2:]
    assert all(isinstance(e, AuthenticationError) for e in errors)
    text = str(errors[-1])
    assert "has requested 3 tokens in the last 10 minutes" in text
    assert "AXELGLOBE_API_URL" in text and "AXELGLOBE_AUDIENCE" in text
    no_secret_or_token(errors[-1])
    # every call still went out once at most: no storm on the API either
    assert len(api_401.seen) == 2 + 2 + 10


def _calls_against_401(kwargs: dict[str, Any], calls: int, barrier: Any, out: Any) -> None:
    auth = AxelGlobeAuth(**kwargs)
    barrier.wait(60)
    results = []
    for _ in range(calls):
        try:
            results.append(str(requests.get(kwargs["api_url"], auth=auth, timeout=30).status_code))
        except AuthenticationError:
            results.append("AuthenticationError")
    out.put(results)


def test_401_always_from_two_processes_shares_one_budget(api_401: Server,
                                                         tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with Emulator() as emu:
        kwargs = {"client_id": emu.client_id, "client_secret": emu.client_secret,
                  "api_url": api_401.url("/stac"), "token_url": emu.token_url,
                  "audience": emu.audience, "cache_dir": str(tmp_path)}
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_calls_against_401, args=(kwargs, 6, barrier, out))
                 for _ in range(2)]
        for p in procs:
            p.start()
        results = [r for _ in procs for r in out.get(timeout=120)]
        for p in procs:
            p.join(30)
        assert emu.counters.token_requests <= MAX_TOKEN_REQUESTS
    assert len(results) == 12 and results.count("AuthenticationError") >= 12 - 2 * 2


# --- malformed answers of the token endpoint ---------------------------------------------

NESTED = b'{"access_token": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"


@pytest.mark.parametrize(("reply", "words"), [
    (token_reply(expires_in=-5), "expires_in"),
    (token_reply(expires_in=0), "expires_in"),
    (token_reply(expires_in="nan"), "expires_in"),
    (token_reply(expires_in=1e308), "expires_in"),  # was an OverflowError in the log line
    (token_reply(expires_in=True), "expires_in"),
    (token_reply(expires_in=[86400]), "expires_in"),
    ((200, {}, b'{"access_token": "' + TOKEN.encode() + b'", "expires_in": NaN}'), "expires_in"),
    ((200, {}, b'{"access_token": "' + TOKEN.encode() + b'", "expires_in": Infinity}'),
     "expires_in"),
    ((200, {}, b'{"access_token": "' + TOKEN.encode() + b'", "expires_in": 1' + b"0" * 400
      + b"}"), "expires_in"),
    (token_reply(TOKEN + "\r\nX-Injected: yes"), "cannot go into an HTTP header"),
    (token_reply(TOKEN + "\u0442\u043e\u043a\u0435\u043d"), "cannot go into an HTTP header"),
    (token_reply(TOKEN + " x"), "cannot go into an HTTP header"),
    (token_reply(""), "no access_token"),
    (json_reply({"access_token": {"value": TOKEN}}), "no access_token"),
    ((200, {"Content-Type": "text/html"}, b"<html><body>Sign in</body></html>"),
     "not a JSON object"),
    (json_reply([TOKEN]), "not a JSON object"),
    (json_reply(TOKEN), "not a JSON object"),
    ((200, {}, NESTED), "not a JSON object"),  # was a RecursionError
    (json_reply({"access_token": TOKEN, "pad": "x" * 70_000}), "longer than 64 KiB"),
    (json_reply({"access_token": TOKEN, "token_type": "mac"}), "'mac' token"),
    (json_reply({"access_token": TOKEN, "token_type": TOKEN + "\r\n"}), "not a Bearer token"),
])
def test_malformed_token_answers_are_authentication_errors(
        tmp_path: Path, reply: Reply, words: str) -> None:
    with Server(lambda seen: reply) as endpoint:
        provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path))
        with pytest.raises(AuthenticationError) as info:
            provider.token()
    assert "answered HTTP 200 without a usable token" in str(info.value)
    assert words in str(info.value) and info.value.status == 200
    no_secret_or_token(info.value)
    assert len(endpoint.seen) == 1  # a 200 is not retried
    assert provider.cached() == (None, 0.0)  # nothing unusable was cached


def test_numeric_string_expires_in_is_accepted(tmp_path: Path) -> None:
    with Server(lambda seen: token_reply(expires_in="3600")) as endpoint:
        token = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path)).token()
    assert token.access_token == TOKEN and token.lifetime == pytest.approx(3600)


def test_token_with_crlf_never_becomes_a_header(tmp_path: Path) -> None:
    with Server(lambda seen: token_reply(TOKEN + "\r\nX-Injected: yes")) as endpoint, \
            Server(lambda seen: json_reply({})) as api:
        auth = AxelGlobeAuth(settings=settings_for(endpoint.url("/oauth/token"), tmp_path,
                                                   api_url=api.url("/stac")))
        with pytest.raises(AuthenticationError) as info:
            requests.get(api.url("/stac"), auth=auth, timeout=30)
    assert api.seen == []  # nothing reached the API, let alone an injected header
    no_secret_or_token(info.value)


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError),
                                               (400, AuthenticationError),
                                               (502, APIRequestError)])
def test_html_error_pages_are_clear_errors(tmp_path: Path, status: int,
                                           error: type[Exception]) -> None:
    page = b"<html><body>" + SECRET.encode() + b"\r\nBad Gateway</body></html>"
    with Server(lambda seen: (status, {"Content-Type": "text/html"}, page)) as endpoint:
        provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path),
                                 retry=token_retry().new(backoff_factor=0))
        with pytest.raises(error) as info:
            provider.token()
    assert f"HTTP {status}" in str(info.value)
    no_secret_or_token(info.value)


def test_a_secret_echoed_in_the_oauth_error_is_masked(tmp_path: Path) -> None:
    echo = {"error": "invalid_client", "error_description": f"bad secret {SECRET}\r\nX: y"}
    with Server(lambda seen: json_reply(echo, 401)) as endpoint:
        with pytest.raises(AuthenticationError) as info:
            TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path)).token()
    assert "bad secret ***" in str(info.value) and "\r" not in str(info.value)
    no_secret_or_token(info.value)


# --- silent and trickling token endpoints: bounded -----------------------------------------


def test_silent_token_endpoint_fails_within_the_deadline(tmp_path: Path) -> None:
    assert DEFAULT_DEADLINE <= 100  # by default, well within 2 minutes, retries included
    with RawServer(silent_socket, "/oauth/token") as endpoint:
        # A read timeout longer than the deadline: only the deadline can end this early.
        provider = TokenProvider(settings_for(endpoint.url, tmp_path), timeout=(1, 30),
                                 deadline=2)
        start = time.monotonic()
        with pytest.raises(APIRequestError) as info:
            provider.token()
        took = time.monotonic() - start
    assert took < 20  # generous: one 30 s read timeout alone would exceed it
    assert "did not answer client 'client-1' within 2 s" in str(info.value)
    assert "retries included" in str(info.value)


def test_trickling_token_endpoint_is_cut_at_the_deadline(tmp_path: Path) -> None:
    # a header line that grows a byte every 0.2 s: the read timeout (1 s) never trips
    with RawServer(trickling_head(every=0.2), "/oauth/token") as endpoint:
        provider = TokenProvider(settings_for(endpoint.url, tmp_path), timeout=(1, 1),
                                 deadline=2)
        start = time.monotonic()
        with pytest.raises(APIRequestError, match="did not answer .* within 2 s"):
            provider.token()
        took = time.monotonic() - start
    assert took < 20  # without a deadline: a header line of 64 KiB at 5 bytes/s, 3.6 hours


def test_silent_proxy_is_cut_at_the_deadline_too(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with RawServer(silent_socket, "/oauth/token") as proxy:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/oauth/token"))
        provider = TokenProvider(settings_for("http://127.0.0.3:9/oauth/token", tmp_path),
                                 timeout=(1, 30), deadline=2)
        start = time.monotonic()
        with pytest.raises(APIRequestError, match="did not answer .* within 2 s"):
            provider.token()
        assert time.monotonic() - start < 20  # not the 30 s read timeout
        assert len(proxy.heads) >= 1  # it did go through the proxy


def test_threads_waiting_for_a_failing_request_share_its_failure(tmp_path: Path) -> None:
    with RawServer(silent_socket, "/oauth/token") as endpoint:
        provider = TokenProvider(settings_for(endpoint.url, tmp_path), timeout=(1, 30),
                                 deadline=2)
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def call() -> None:
            barrier.wait()
            try:
                provider.token()
            except APIRequestError as err:
                errors.append(err)

        threads = [threading.Thread(target=call) for _ in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        took = time.monotonic() - start
    assert len(errors) == 4 and took < 20  # not 4 deadlines one after the other
    shared = ["failed moments ago" in str(e) for e in errors]
    assert sorted(shared) == [False, True, True, True]


def _token_in_process(kwargs: dict[str, Any], barrier: Any, out: Any) -> None:
    settings = Settings.from_env(**kwargs)
    provider = TokenProvider(settings, timeout=(1, 30), deadline=2)
    barrier.wait(60)
    try:
        provider.token()
        out.put("token")
    except AxelGlobeError as err:
        out.put(f"{type(err).__name__}: {err}")


def test_a_second_process_shares_the_failure_instead_of_waiting_again(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with RawServer(silent_socket, "/oauth/token") as endpoint:
        kwargs = {"client_id": "client-1", "client_secret": SECRET, "token_url": endpoint.url,
                  "api_url": "http://127.0.0.1:9/stac", "cache_dir": str(tmp_path)}
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_token_in_process, args=(kwargs, barrier, out))
                 for _ in range(2)]
        for p in procs:
            p.start()
        messages = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    assert all(m.startswith("APIRequestError") for m in messages)
    assert sorted("failed moments ago" in m for m in messages) == [False, True]
    assert all(SECRET not in m for m in messages)


# --- the secret is in no local a traceback printer would show ------------------------------


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAILURES: dict[str, Callable[[Seen], Reply]] = {
    "401": lambda seen: json_reply({"error": "access_denied"}, 401),
    "500": lambda seen: (500, {}, b"oops"),
    "html 200": lambda seen: (200, {"Content-Type": "text/html"}, b"<html></html>"),
}


def _get_with_auth(token_url: str, cache_dir: Path) -> None:
    # The secret is not a local of the test either: built in here, gone when this raises.
    auth = AxelGlobeAuth(settings=settings_for(token_url, cache_dir))
    auth.provider._flight.retry = auth.provider._flight.retry.new(backoff_factor=0)  # fast 5xx
    requests.get(auth.settings.api_url, auth=auth, timeout=5)


@pytest.mark.parametrize("failure", [*FAILURES, "refused"])
def test_failed_token_request_traceback_locals_hold_no_secret(tmp_path: Path,
                                                              failure: str) -> None:
    info: pytest.ExceptionInfo[AxelGlobeError]
    if failure == "refused":
        with pytest.raises(APIRequestError) as info:
            _get_with_auth(f"http://127.0.0.1:{_refused_port()}/oauth/token", tmp_path)
    else:
        with Server(FAILURES[failure]) as endpoint:
            with pytest.raises(AxelGlobeError) as info:
                _get_with_auth(endpoint.url("/oauth/token"), tmp_path)
    err = info.value
    # What rich, pytest --showlocals or sentry would print: every frame with its locals,
    # and the chained exceptions.
    report = "".join(traceback.TracebackException(type(err), err, err.__traceback__,
                                                  capture_locals=True).format())
    assert "_fetch" in report and "self = TokenProvider(" in report
    assert SECRET not in report
    assert err.__context__ is None and err.__cause__ is None


def test_failed_401_refresh_traceback_shows_neither_secret_nor_token(
        api_401: Server, tmp_path: Path) -> None:
    replies = iter([token_reply(), (500, {}, b"oops")])
    with Server(lambda seen: next(replies)) as endpoint:
        auth = AxelGlobeAuth(settings=settings_for(endpoint.url("/oauth/token"), tmp_path,
                                                   api_url=api_401.url("/stac")))
        auth.provider._flight.retry = token_retry().new(status=0, total=0)  # the 500 at once
        with pytest.raises(APIRequestError, match="HTTP 500") as info:
            requests.get(api_401.url("/stac"), auth=auth, timeout=30)
    err = info.value
    report = "".join(traceback.TracebackException(type(err), err, err.__traceback__,
                                                  capture_locals=True).format())
    assert "handle_401" in report and "obtain" in report and "CacheState(keys=" in report
    assert SECRET not in report and TOKEN not in report


# --- the cache folder: links, FIFOs, garbage ------------------------------------------------


@pytest.fixture
def endpoint() -> Iterator[Server]:
    with Server(lambda seen: token_reply()) as server:
        yield server


def test_symlinked_tokens_folder_is_neither_used_nor_chmodded(
        endpoint: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tokens").symlink_to(elsewhere)
    provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path / "cache"))
    assert provider.token().access_token == TOKEN  # works, from memory only
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755  # no chmod of a folder elsewhere
    assert list(elsewhere.iterdir()) == []  # no token written through the link
    assert "symbolic link" in caplog.text and "memory only" in caplog.text
    provider.clear()
    provider.record_restriction(time.time() + 60)
    assert list(elsewhere.iterdir()) == []


def test_symlinked_cache_file_is_neither_trusted_nor_written_through(
        endpoint: Server, tmp_path: Path) -> None:
    provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path))
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    target = tmp_path / "target.json"
    planted = json.dumps({"version": 1, "access_token": "planted",
                          "expires_at": time.time() + 3600})
    target.write_text(planted)
    provider.cache_path.symlink_to(target)
    assert provider.cached() == (None, 0.0)
    assert provider.token().access_token == TOKEN  # fetched, the planted one ignored
    assert len(endpoint.seen) == 1
    assert target.read_text() == planted  # never written through
    assert not provider.cache_path.is_symlink()  # the link itself was replaced
    assert json.loads(provider.cache_path.read_text())["access_token"] == TOKEN


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", [".json", ".issued"])
def test_fifo_in_the_cache_folder_does_not_hang(endpoint: Server, tmp_path: Path,
                                                suffix: str) -> None:
    provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path))
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    fifo = provider.cache_path.with_suffix(suffix)
    os.mkfifo(fifo)
    assert provider.cached() == (None, 0.0)  # `axelglobe auth status` reads it too
    assert provider.token().access_token == TOKEN  # an open() of it would block forever
    assert len(endpoint.seen) == 1
    assert stat.S_ISREG(fifo.stat().st_mode)  # replaced by the cache file


IN_AN_HOUR = str(int(time.time()) + 3600).encode()


@pytest.mark.parametrize("content", [
    b"[" * 100_000,  # nesting: was a RecursionError while holding the lock
    b'{"version": 1, "access_token": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    # a token that would inject a header, planted (it was sent as is)
    b'{"version": 1, "access_token": "tok\\r\\nX-Injected: 1", "expires_at": ' + IN_AN_HOUR
    + b"}",
    b'{"version": 1, "access_token": "planted", "expires_at": ' + IN_AN_HOUR + b', "pad": "'
    + b"x" * 70_000 + b'"}',  # over 64 KiB: not a cache file
], ids=["nested", "nested-value", "crlf-token", "oversized"])
def test_garbage_cache_file_is_ignored(endpoint: Server, tmp_path: Path,
                                       content: bytes) -> None:
    provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path))
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    provider.cache_path.write_bytes(content)
    assert provider.cached() == (None, 0.0)
    assert provider.token().access_token == TOKEN
    assert len(endpoint.seen) == 1


def test_symlinked_lock_file_is_not_truncated(endpoint: Server, tmp_path: Path) -> None:
    provider = TokenProvider(settings_for(endpoint.url("/oauth/token"), tmp_path))
    provider.cache_folder.mkdir(mode=0o700, parents=True)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (provider.cache_folder / (provider.cache_path.stem + ".lock")).symlink_to(target)
    assert provider.token().access_token == TOKEN
    assert target.read_text() == "keep me"


# --- only the token endpoint and the API origin can restrict the client --------------------


def test_403_from_the_token_endpoint_is_a_shared_restriction(tmp_path: Path) -> None:
    reply = json_reply({"error": "access_denied", "error_description": "restricted"}, 403)
    with Server(lambda seen: reply) as endpoint:
        settings = settings_for(endpoint.url("/oauth/token"), tmp_path)
        with pytest.raises(RestrictedError, match="HTTP 403"):
            TokenProvider(settings).token()
        with pytest.raises(RestrictedError, match="recorded in the token cache"):
            TokenProvider(settings).token()  # another process, say: nothing sent
    assert len(endpoint.seen) == 1


def test_429_from_storage_through_the_auth_hook_restricts_nothing(tmp_path: Path) -> None:
    storage = Server(lambda seen: (429, {"Retry-After": "3600"}, b"SlowDown"),
                     host="127.0.0.2")
    with Emulator() as emu, storage:
        def api_reply(seen: Seen) -> Reply:
            if seen.path.endswith("/asset"):  # an asset href: a redirect to storage
                return 302, {"Location": storage.url("/bucket/a.tif")}, b""
            if seen.path.endswith("/busy"):
                return 429, {"Retry-After": "3600"}, b"{}"
            return json_reply({})

        with Server(api_reply) as api:
            auth = auth_against(emu, api, tmp_path)
            r = requests.get(api.url("/stac/asset"), auth=auth, timeout=30)
            assert r.status_code == 429 and r.url.startswith(storage.url())
            assert auth.provider.cached()[1] == 0.0  # nothing recorded
            assert requests.get(api.url("/stac/x"), auth=auth, timeout=30).status_code == 200
            # the API's own 429 with a long Retry-After is a restriction, shared
            assert requests.get(api.url("/stac/busy"), auth=auth, timeout=30).status_code == 429
            assert auth.provider.cached()[1] > time.time() + 3000
            sent = len(api.seen)
            with pytest.raises(RestrictedError):
                requests.get(api.url("/stac/x"), auth=auth, timeout=30)
            assert len(api.seen) == sent
    assert "Authorization" not in storage.seen[0].headers
