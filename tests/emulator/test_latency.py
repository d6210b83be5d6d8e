"""Latency switches: a wide-area round trip before each answer, without serialising them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests

from pystac_axelglobe.emulator import Emulator


def _elapsed(calls: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - start


def _presigned(emu: Emulator, headers: dict[str, str]) -> str:
    href = emu.items()[0].assets["thumbnail"].href
    r = requests.get(href, headers=headers, allow_redirects=False, timeout=10)
    return r.headers["Location"]


def test_api_and_token_answers_wait_api_latency() -> None:
    # 0.3 s per API answer; storage, which has its own switch, answers in a fraction of that
    # even on a loaded machine (the bound is per request, generous: 0.3 s each).
    with Emulator(api_latency=0.3) as emu, requests.Session() as session:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        api = _elapsed(3, lambda: session.get(emu.api_url, headers=headers, timeout=10))
        body = {"grant_type": "client_credentials", "client_id": emu.client_id,
                "client_secret": emu.client_secret, "audience": emu.audience}
        tokens = _elapsed(3, lambda: session.post(emu.token_url, json=body, timeout=10))
        url = _presigned(emu, headers)
        emu.reset_counters()
        storage = _elapsed(3, lambda: session.get(url, timeout=10).content)
    assert api >= 0.9 and tokens >= 0.9
    assert storage < 0.9
    assert emu.counters.storage_requests == 3


def test_storage_answers_wait_storage_latency() -> None:
    with Emulator(storage_latency=0.05) as emu, requests.Session() as session:
        url = _presigned(emu, {"Authorization": f"Bearer {emu.token()}"})
        storage = _elapsed(10, lambda: session.get(url, timeout=10).content)
        assert storage >= 0.5
        assert emu.counters.storage_requests == 10


def test_latency_can_change_while_serving() -> None:
    with Emulator() as emu, requests.Session() as session:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        emu.api_latency = 0.3
        assert _elapsed(1, lambda: session.get(emu.api_url, headers=headers, timeout=10)) >= 0.3


def test_concurrent_requests_wait_side_by_side() -> None:
    with Emulator(api_latency=0.2) as emu:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        statuses: list[int] = []
        ready = threading.Barrier(8)

        def get() -> None:
            with requests.Session() as session:  # a connection each, as 8 clients would
                ready.wait()
                statuses.append(session.get(emu.api_url, headers=headers, timeout=10)
                                .status_code)

        threads = [threading.Thread(target=get) for _ in range(8)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    assert statuses == [200] * 8
    # one after another they would take 8 x 0.2 = 1.6 s
    assert 0.2 <= elapsed < 1.0, elapsed
