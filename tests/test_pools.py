"""Connection pools sized to the threads that share them: no "Connection pool is full".

urllib3 keeps at most ``pool_maxsize`` connections per host; a thread beyond that gets a
connection that is closed after its answer, logged as "Connection pool is full, discarding
connection" (a log record, not a warning: caught with caplog), and the next request pays for
a new one. Here 16 threads or more send at once through one session, against an emulator
whose API and storage answer slowly enough for their requests to overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import pystac
import pytest

import pystac_axelglobe as ag
from pystac_axelglobe import presigned
from pystac_axelglobe.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FULL = "Connection pool is full"


@pytest.fixture(scope="module")
def slow() -> Iterator[Emulator]:
    """An emulator whose every answer takes a moment: requests sent at once overlap."""
    with Emulator(api_latency=0.1, storage_latency=0.05) as emu:
        yield emu


@pytest.fixture
def pool_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="urllib3")
    return caplog


def discarded(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if FULL in r.getMessage()]


def items_of(emu: Emulator, tmp_path: Path) -> list[pystac.Item]:
    client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path)
    return list(client.search(collections="grus-1", limit=50).items())


@pytest.mark.timeout(120)
def test_sixteen_searches_at_once_on_one_client(slow: Emulator, tmp_path: Path,
                                                pool_log: pytest.LogCaptureFixture) -> None:
    client = ag.open(**slow.settings_kwargs(), cache_dir=tmp_path)
    client.get_collection("grus-1")  # the token, once, before the threads start
    barrier = threading.Barrier(16)
    found: dict[int, int] = {}

    def search(n: int) -> None:
        barrier.wait()
        found[n] = len(list(client.search(collections="grus-1", limit=3,
                                          max_items=15).items()))

    threads = [threading.Thread(target=search, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == dict.fromkeys(range(16), 15)  # 16 searches, 5 pages each, fetched ahead
    assert discarded(pool_log) == []


@pytest.mark.timeout(120)
def test_a_sixteen_way_resolve(slow: Emulator, tmp_path: Path,
                               pool_log: pytest.LogCaptureFixture) -> None:
    items = items_of(slow, tmp_path)
    hrefs = [i.assets[k].href for i in items[:16] for k in ("band0", "band1", "band2")]
    auth = ag.AxelGlobeAuth(**slow.settings_kwargs(), cache_dir=tmp_path)
    urls = presigned.resolve_many(hrefs, auth=auth, max_workers=16)
    assert len(urls) == 48
    assert discarded(pool_log) == []


@pytest.mark.timeout(120)
def test_a_resolve_asking_for_more_threads_than_the_pool_keeps(
        slow: Emulator, tmp_path: Path, pool_log: pytest.LogCaptureFixture) -> None:
    items = items_of(slow, tmp_path)
    hrefs = [i.assets[k].href for i in items for k in ("band0", "band1", "band2", "band3")]
    assert len(hrefs) > presigned.API_POOL_SIZE
    auth = ag.AxelGlobeAuth(**slow.settings_kwargs(), cache_dir=tmp_path)
    # a load prefetching in the background on the same session meanwhile
    presigned.prefetch([i.assets["band4"].href for i in items], auth=auth)
    urls = presigned.resolve_many(hrefs, auth=auth, max_workers=len(hrefs))
    assert len(urls) == len(hrefs)
    assert discarded(pool_log) == []


@pytest.mark.timeout(120)
def test_a_sixteen_way_download_beside_a_background_prefetch(
        slow: Emulator, tmp_path: Path, pool_log: pytest.LogCaptureFixture) -> None:
    items = items_of(slow, tmp_path)
    auth = ag.AxelGlobeAuth(**slow.settings_kwargs(), cache_dir=tmp_path)
    # A load's reads resolving URLs in the background (16 threads), while a download
    # resolves its own ahead (16 more) and transfers 16 files at once.
    presigned.prefetch([i.assets["band3"].href for i in items], auth=auth)
    done = ag.download(items[:32], assets=["thumbnail"], directory=tmp_path / "out",
                       max_workers=16, auth=auth, progress=False)
    assert len(done) == 32
    assert len(list((tmp_path / "out").glob("*/*"))) == 32
    end = time.monotonic() + 60
    while any(t.name == "ag-prefetch" for t in threading.enumerate()):  # its queue runs dry
        assert time.monotonic() < end, "prefetch threads still running"
        time.sleep(0.05)
    assert discarded(pool_log) == []
