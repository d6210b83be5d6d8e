"""Injected faults: 503, 502, 429 with Retry-After, and connections dropped mid-body."""

from __future__ import annotations

import pytest
import requests

from pystac_axelglobe.emulator import Emulator


def api_get(emu: Emulator, path: str = "/collections") -> requests.Response:
    return requests.get(
        f"{emu.api_url}{path}", headers={"Authorization": f"Bearer {emu.token()}"}, timeout=10
    )


def asset_url(emu: Emulator) -> str:
    """A presigned storage URL, fetched while API faults are off."""
    rate, emu.api_fault_rate = emu.api_fault_rate, 0.0
    try:
        item = api_get(emu, "/search?limit=1").json()["features"][0]
        r = requests.get(
            item["assets"]["band0"]["href"],
            headers={"Authorization": f"Bearer {emu.token()}"},
            allow_redirects=False,
            timeout=10,
        )
        return r.headers["Location"]
    finally:
        emu.api_fault_rate = rate


@pytest.mark.parametrize("kind", ["503", "502"])
def test_api_5xx(kind: str) -> None:
    with Emulator(api_fault_rate=1.0, fault_kinds=(kind,)) as emu:
        r = api_get(emu)
        assert r.status_code == int(kind)
        assert emu.counters.faults == 1


def test_api_429_has_retry_after() -> None:
    with Emulator(api_fault_rate=1.0, fault_kinds=("429",)) as emu:
        r = api_get(emu)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"


def test_api_drop_is_an_incomplete_read() -> None:
    with Emulator(api_fault_rate=1.0, fault_kinds=("drop",)) as emu:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            api_get(emu)
        assert emu.counters.faults == 1


def test_token_endpoint_is_not_faulted() -> None:
    with Emulator(api_fault_rate=1.0) as emu:
        r = requests.post(
            emu.token_url,
            timeout=10,
            json={
                "grant_type": "client_credentials",
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
                "audience": emu.audience,
            },
        )
        assert r.status_code == 200 and emu.counters.faults == 0


def test_unauthenticated_requests_are_401_not_faults() -> None:
    with Emulator(api_fault_rate=1.0) as emu:
        assert requests.get(emu.api_url, timeout=10).status_code == 401


@pytest.mark.parametrize(("kind", "status"), [("503", 503), ("502", 502), ("429", 429)])
def test_storage_errors(kind: str, status: int) -> None:
    with Emulator(storage_fault_rate=1.0, fault_kinds=(kind,)) as emu:
        r = requests.get(asset_url(emu), timeout=10)
        assert r.status_code == status
        assert emu.counters.faults == 1
        if kind == "429":
            assert r.headers["Retry-After"] == "1"


def test_storage_404_only_when_asked_for() -> None:
    with Emulator(storage_fault_rate=1.0, fault_kinds=("404",)) as emu:
        r = requests.get(asset_url(emu), timeout=10)
        assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text
        assert emu.counters.faults == 1
    assert "404" not in Emulator().fault_kinds


@pytest.mark.parametrize("range_header", [None, "bytes=1000-50000"])
def test_storage_drop(range_header: str | None) -> None:
    with Emulator(storage_fault_rate=1.0, fault_kinds=("drop",)) as emu:
        url = asset_url(emu)
        headers = {"Range": range_header} if range_header else {}
        with requests.get(url, headers=headers, stream=True, timeout=10) as r:
            assert r.status_code == (206 if range_header else 200)
            length = int(r.headers["Content-Length"])
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                r.content  # noqa: B018
        assert 0 < emu.counters.storage_bytes_sent < length
        emu.storage_fault_rate = 0.0
        assert len(requests.get(url, headers=headers, timeout=10).content) == length


def test_fault_sequence_is_seeded() -> None:
    def statuses(seed: int) -> list[int]:
        with Emulator(api_fault_rate=0.5, fault_kinds=("503", "502"), fault_seed=seed) as emu:
            return [api_get(emu).status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 502, 503} <= set(first)


def test_fault_kinds_validated() -> None:
    with pytest.raises(ValueError, match="fault_kinds"):
        Emulator(fault_kinds=("500",))
