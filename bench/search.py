"""Items per second through ``ag.open()`` against raw pystac-client with a static header.

Both run the same unfiltered search (all items, limit 10 so a few pages) against one
emulator, side by side in the same process, alternating, repeated a few times. The raw
client uses GET (AxelGlobe refuses POST) and a static ``Authorization`` header; it follows
the ``?page=N`` next links as they are, which for an unfiltered search loses nothing.

Run: python bench/search.py [--rounds 5] [--searches 20]
Goal: ag.open() within 10% of raw pystac-client (ratio >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator

import pystac_client

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator


def timed(search: Callable[[], Iterator[object]], expected: int) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in search())
    assert n == expected, (n, expected)
    return time.perf_counter() - start


def side_by_side(a: Callable[[], Iterator[object]], b: Callable[[], Iterator[object]],
                 searches: int, expected: int) -> tuple[float, float]:
    """Items/s of a and b, alternating search by search so load changes hit both alike."""
    ta = tb = 0.0
    for i in range(searches):
        if i % 2:
            ta += timed(a, expected)
            tb += timed(b, expected)
        else:
            tb += timed(b, expected)
            ta += timed(a, expected)
    return searches * expected / ta, searches * expected / tb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with Emulator() as emu, tempfile.TemporaryDirectory() as cache:
        ours = ag.open(**emu.settings_kwargs(), cache_dir=cache)
        raw = pystac_client.Client.open(
            emu.api_url, headers={"Authorization": f"Bearer {emu.token()}"})
        expected = len(emu.archive.item_ids())

        def run_ours() -> Iterator[object]:
            return ours.search(collections="grus-1", limit=args.limit).items()

        def run_raw() -> Iterator[object]:
            return raw.search(method="GET", collections="grus-1", limit=args.limit).items()

        pages = -(-expected // args.limit)
        print(f"{expected} items, {pages} pages per search, {args.searches} searches per "
              f"round, {args.rounds} rounds")
        side_by_side(run_ours, run_raw, 2, expected)  # warm up both (token, connections)
        ratios = []
        for r in range(args.rounds):
            a, b = side_by_side(run_ours, run_raw, args.searches, expected)
            ratios.append(a / b)
            print(f"round {r + 1}: ag.open() {a:8.0f} items/s   raw pystac-client {b:8.0f} "
                  f"items/s   ratio {a / b:.3f}")
        print(f"median ratio ag.open()/raw: {statistics.median(ratios):.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
