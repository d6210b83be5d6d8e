"""32 threads of mixed searches and downloads under faults, into one shared folder.

The emulator fails 10% of API requests and 20% of storage requests (503, 502, 429 with a
short ``Retry-After``, connections dropped mid-body). Every search must still find exactly
the items a fault-free search finds, and every downloaded file must be byte-identical to the
archive's, with nothing stray (no ``.part``, no temporaries, no lock files) left behind.
"""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pystac
import pytest

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator

THREADS = 32
ASSETS = ["band1", "msi_udm", "msi_udm_metadata", "thumbnail"]
SEARCHES: list[dict[str, Any]] = [
    {"bbox": [133.0, 35.0, 137.0, 36.0], "datetime": "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z",
     "filter": "eo:cloud_cover <= 30"},
    {"bbox": [133.0, 35.0, 137.0, 36.0], "filter": "avg(eo:cloud_cover) <= 30"},
    {"filter": "ag:capture_id = '52eZg9k7rPEyYQGX'"},
    {"filter": "S_INTERSECTS(geometry, POINT(-50.38 -21.5))"},
    {"collections": ["grus-1"], "max_items": 7},
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_32_threads_of_searches_and_downloads_under_faults(tmp_path: Path) -> None:
    with Emulator(fault_seed=7) as emu:
        client = ag.open(**emu.settings_kwargs())
        # limit=2: several pages per search, so faults land between pages too.
        expected = [[i.id for i in client.search(limit=2, **s).items()] for s in SEARCHES]
        assert all(expected), "every scenario finds something"
        emu.api_fault_rate, emu.storage_fault_rate = 0.10, 0.20
        out = tmp_path / "shared"
        rng = random.Random(1)
        plan = [rng.randrange(len(SEARCHES)) for _ in range(THREADS)]

        def work(n: int) -> tuple[int, list[str], list[pystac.Item]]:
            found = list(client.search(limit=2, **SEARCHES[n]).items())
            local = ag.download(found, assets=ASSETS, directory=out)
            return n, [i.id for i in found], local

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(work, plan))
        faults = emu.counters.as_dict()
        emu.api_fault_rate = emu.storage_fault_rate = 0.0

        served = {i.id: i for i in emu.items()}
        assert emu.archive is not None
        checked = 0
        for n, ids, local in results:
            assert ids == expected[n], f"search {SEARCHES[n]} found other items under faults"
            for item in local:
                for key in ASSETS:
                    path = Path(item.assets[key].href)
                    name = served[item.id].assets[key].href.rsplit("/", 1)[1]
                    source = emu.archive.asset_path(item.id, name)
                    assert _sha(path) == _sha(source), f"{path} differs from the archive"
                    checked += 1
    assert checked >= THREADS
    files = [p for p in out.rglob("*") if p.is_file()]
    expected_names = {Path(i.assets[k].href).name
                      for _, _, local in results for i in local for k in ASSETS}
    stray = [p for p in files if p.name not in expected_names]
    assert stray == [], f"left behind: {stray}"
    assert any(v for k, v in faults.items() if "fault" in k), f"no fault was injected: {faults}"
