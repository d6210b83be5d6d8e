"""Time the emulator archive: a first build versus loading the built archive.

Usage::

    python bench/archive_build.py            # scale "small"
    python bench/archive_build.py --large    # also scale "large"

Each scale is built into a fresh temporary folder (the user cache is not touched), then
loaded again (what every later ``Emulator()`` start pays). Prints both times, their ratio
and the archive's size on disk.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pystac_axelglobe.emulator.archive import build_archive


def size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def bench(scale: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="archive-bench-") as tmp:
        root = Path(tmp) / scale
        start = time.perf_counter()
        archive = build_archive(root, scale=scale)
        build = time.perf_counter() - start
        loads = []
        for _ in range(repeats):
            start = time.perf_counter()
            again = build_archive(root, scale=scale)
            loads.append(time.perf_counter() - start)
        assert again.item_ids() == archive.item_ids()
        load = statistics.median(loads)
        print(f"{scale:>5}: {len(archive.item_ids())} items, {size_mb(root):.1f} MB; "
              f"first build {build:.2f} s; load {load * 1000:.2f} ms (median of {repeats}); "
              f"build/load = {build / load:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also time scale 'large'")
    parser.add_argument("--repeats", type=int, default=20, help="loads to time (median)")
    args = parser.parse_args()
    bench("small", args.repeats)
    if args.large:
        bench("large", args.repeats)


if __name__ == "__main__":
    main()
