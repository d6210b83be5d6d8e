"""Connections: kept alive between answers, as AxelGlobe's load balancers keep them.

werkzeug, under the emulator, closes every connection after one answer; the emulator keeps
a GET's connection open for the client's next request (switch ``keep_alive``), charges a
new connection ``handshake_round_trips`` latencies (the TCP and TLS handshakes), and counts
the connections each server accepted (``token_connections``, ``api_connections``,
``storage_connections``), so that a client's connection reuse can be seen and measured.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator


def _presigned(emu: Emulator, session: requests.Session, token: str) -> str:
    href = emu.items()[0].assets["thumbnail"].href
    r = session.get(href, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False,
                    timeout=10)
    return r.headers["Location"]


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_session_reuses_its_connection_while_the_emulator_keeps_it_alive(
        keep_alive: bool) -> None:
    with Emulator(keep_alive=keep_alive) as emu, requests.Session() as session:
        token = emu.token()
        url = _presigned(emu, session, token)  # one API request
        for _ in range(5):
            api = session.get(emu.api_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=10)
            body = session.get(url, timeout=10).content
            assert api.status_code == 200 and body
        counted = emu.counters
        assert (counted.api_requests, counted.storage_requests) == (6, 5)
        assert counted.api_connections == (1 if keep_alive else 6)
        assert counted.storage_connections == (1 if keep_alive else 5)
        assert ("close" in api.headers.get("Connection", "")) is not keep_alive


def test_a_request_with_a_body_still_closes_its_connection() -> None:
    # http.server cannot drain a body the app left unread: a POST gets one answer.
    with Emulator() as emu, requests.Session() as session:
        body = {"grant_type": "client_credentials", "client_id": emu.client_id,
                "client_secret": emu.client_secret, "audience": emu.audience}
        emu.reset_counters()
        for _ in range(3):
            assert session.post(emu.token_url, json=body, timeout=10).status_code == 200
        assert emu.counters.token_requests == 3
        assert emu.counters.token_connections == 3


def test_requests_sent_back_to_back_on_one_connection_are_all_answered() -> None:
    # werkzeug reads what follows an answer, to drain a body: the next request, if it has
    # already arrived. Both requests go out in one write; both must be answered.
    with Emulator() as emu:
        parts = urlsplit(emu.api_url)
        assert parts.port is not None
        request = (f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: Bearer {emu.token()}\r\n\r\n").encode()
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(request * 2)
            received = b""
            while received.count(b"HTTP/1.1 200 OK") < 2:
                chunk = sock.recv(65536)
                assert chunk, f"the connection closed after {received.count(b'HTTP/1.1')}"
                received += chunk
        assert emu.counters.api_connections == 1


def test_a_new_connection_waits_for_its_handshakes_a_reused_one_does_not() -> None:
    # 0.2 s of latency, 2 round trips of handshake: 0.6 s for a new connection's answer,
    # 0.2 s on a connection kept alive.
    with Emulator(api_latency=0.2, handshake_round_trips=2) as emu:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        with requests.Session() as session:
            times = []
            for _ in range(3):
                started = time.monotonic()
                session.get(emu.api_url, headers=headers, timeout=10)
                times.append(time.monotonic() - started)
        with requests.Session() as another:  # a connection of its own: handshakes again
            started = time.monotonic()
            another.get(emu.api_url, headers=headers, timeout=10)
            times.append(time.monotonic() - started)
        assert emu.counters.api_connections == 2
    assert times[0] >= 0.6 and times[3] >= 0.6, times
    assert sum(times[:3]) < 1.8, times  # one after another on new connections: 1.8 s


def test_a_stopped_emulator_answers_nothing_on_a_connection_kept_open() -> None:
    emu = Emulator(in_process=True)  # in a child process, its exit would close them anyway
    with emu, requests.Session() as session:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        assert session.get(emu.api_url, headers=headers, timeout=10).status_code == 200
        url = emu.api_url
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers=headers, timeout=5)


def test_the_client_opens_new_connections_once_idle_ones_were_closed(tmp_path: Path) -> None:
    # The server closes a connection left unused 0.5 s; the client's pools (requests' and
    # GDAL's) still hold it. Searching, loading and downloading again must just work.
    with Emulator(idle_timeout=0.5) as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path / "tokens")
        auth = ag.AxelGlobeAuth(settings=emu.settings(cache_dir=tmp_path / "tokens"))
        items = emu.items()[:2]

        def every_way(run: int) -> tuple[list[str], int, list[bytes]]:
            ids = [i.id for i in client.search(collections="grus-1", limit=10).items()]
            red = ag.load(items, bands=["red"], auth=auth)["red"].values
            done = ag.download(items, assets=["band3"], directory=tmp_path / str(run),
                               auth=auth, progress=False)
            return ids, int(red.sum()), [Path(i.assets["band3"].href).read_bytes() for i in done]

        first = every_way(1)
        connections = (emu.counters.api_connections, emu.counters.storage_connections)
        time.sleep(1.5)  # every connection kept by the client is closed by now
        assert every_way(2) == first
        assert emu.counters.api_connections > connections[0]
        assert emu.counters.storage_connections > connections[1]
