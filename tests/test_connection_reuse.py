"""The client keeps its connections: the next request goes out on one already open.

Over a real network a new connection costs round trips of handshakes (TCP, then TLS)
before its first byte. The emulator keeps connections alive between answers and counts
those it accepts (``api_connections``, ``storage_connections``); these tests count them,
one request at a time so that the counts are exact (requests side by side need one
connection each, as many as were in flight).
"""

from __future__ import annotations

from pathlib import Path

import pystac_axelglobe as ag
from pystac_axelglobe import presigned
from pystac_axelglobe.emulator import Emulator


def test_a_search_and_the_next_one_go_out_on_one_connection(tmp_path: Path) -> None:
    with Emulator() as emu:
        client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path, prefetch_pages=1)
        first = [i.id for i in client.search(collections="grus-1", limit=4).items()]
        again = [i.id for i in client.search(collections="grus-1", limit=4).items()]
        assert again == first and len(first) > 8  # more than two pages each
        assert emu.counters.search_requests > 4
        assert emu.counters.api_connections == 1  # the landing page's, ever since


def test_redirects_resolved_one_after_another_share_one_connection(tmp_path: Path) -> None:
    # A redirect's body is read to its end, so that its connection goes back to the pool.
    with Emulator() as emu:
        auth = ag.AxelGlobeAuth(settings=emu.settings(cache_dir=tmp_path))
        hrefs = [item.assets["band3"].href for item in emu.items()[:6]]
        for _ in range(2):
            urls = presigned.resolve_many(hrefs, auth=auth, max_workers=1)
            assert len(urls) == len(hrefs)
            for href in hrefs:
                presigned.invalidate(href)
        assert emu.counters.redirects == 2 * len(hrefs)
        assert emu.counters.api_connections == 1


def test_files_downloaded_one_after_another_share_one_storage_connection(
        tmp_path: Path) -> None:
    with Emulator() as emu:
        auth = ag.AxelGlobeAuth(settings=emu.settings(cache_dir=tmp_path / "tokens"))
        items = emu.items()[:4]
        done = ag.download(items, assets=["band3", "band5"], directory=tmp_path / "out",
                           auth=auth, max_workers=1, progress=False)
        assert all(Path(i.assets[k].href).stat().st_size > 0 for i in done
                   for k in ("band3", "band5"))
        assert emu.counters.storage_requests == 8
        assert emu.counters.storage_connections == 1
