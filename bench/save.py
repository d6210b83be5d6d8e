"""Memory and time of ``axelglobe search --save`` over 1,000 and 10,000 items, by format.

One emulator serves 10,000 metadata-only items (``extra_items``). Each save runs in a fresh
process (so one run's peak cannot hide another's), which reports its time, its peak RSS
(``VmHWM`` in ``/proc/self/status``) and how much that peak grew over the RSS it had before
the search (imports done, stac-geoparquet included, the client opened). Not
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: on Linux a process started by
``subprocess`` (vfork, then exec) inherits its parent's peak there, so a child would report
the bench's own peak (which grows as it reads the files back) instead of its own.

The baseline is the old way, what ``--save`` did before it streamed: the whole
``ItemCollection``, then ``json.dumps`` of it. With ``--tracemalloc`` each save runs once
more under tracemalloc (Python allocations only, not Arrow's; slower) for its peak.

Flat means: the growth at 10,000 items is about the growth at 1,000; the old way's grows
with the items. The files of every way hold the same ids in the same order (checked).

Run: python bench/save.py [--sizes 1000 10000] [--limit 100] [--chunk-items 500]
     [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pystac_axelglobe.emulator import Emulator

WAYS = {"old": "items.json", "json": "items.json", "ndjson": "items.ndjson",
        "parquet": "items.parquet"}
BULK = "2022-01-01T00:00:00Z/.."  # the bulk items only (the archive ends in 2021)


def _status_mib(key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {key} in /proc/self/status (Linux only)")


def child(way: str, size: int, limit: int, path: str, trace: bool,
          chunk: int) -> dict[str, Any]:
    """One save in this process: the figures as a dict."""
    import tracemalloc

    from pystac_axelglobe import _parquet

    _parquet.PARQUET_CHUNK_ITEMS = chunk
    import pyarrow  # noqa: F401 - imported before the baseline, as by the parquet writer
    import stac_geoparquet.arrow  # noqa: F401

    import pystac_axelglobe as ag
    from pystac_axelglobe.cli import main

    client = ag.open()
    client.search(collections=["grus-1"], limit=1, max_items=1).item_collection()  # warm
    before = _status_mib("VmRSS")
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    if way == "old":
        # what `search --save` did before it streamed
        items = client.search(collections=["grus-1"], datetime=BULK, limit=limit,
                              max_items=size).item_collection()
        Path(path).write_text(json.dumps(items.to_dict(), indent=2) + "\n", encoding="utf-8")
    else:
        try:
            main(["search", "--datetime", BULK, "--limit", str(limit), "--max-items",
                  str(size), "--save", path])
        except SystemExit as end:
            assert not end.code, end.code
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    peak = _status_mib("VmHWM")
    return {"seconds": seconds, "peak": peak, "growth": peak - before, "traced": traced}


def ids(way: str, path: Path) -> list[str]:
    if way == "parquet":
        import pyarrow.parquet as pq

        return [str(i) for i in pq.read_table(path, columns=["id"])["id"].to_pylist()]
    if way == "ndjson":
        return [json.loads(line)["id"] for line in path.read_text().splitlines()]
    return [f["id"] for f in json.loads(path.read_text())["features"]]


def run(way: str, size: int, args: argparse.Namespace, folder: Path, env: dict[str, str],
        trace: bool) -> dict[str, Any]:
    path = folder / f"{way}-{size}-{WAYS[way]}"
    proc = subprocess.run([sys.executable, __file__, "--child", way, str(size), str(args.limit),
                           str(path), str(int(trace)), str(args.chunk_items)], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode:
        raise SystemExit(f"{way} {size} failed:\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    figures["ids"] = ids(way, path)
    figures["bytes"] = path.stat().st_size
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--limit", type=int, default=100, help="page size (emulator max 100)")
    parser.add_argument("--chunk-items", type=int, default=500,
                        help="items converted to Arrow at once (PARQUET_CHUNK_ITEMS)")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, size, limit, path, trace, chunk = args.child
        print(json.dumps(child(way, int(size), int(limit), path, trace == "1", int(chunk))))
        return
    with Emulator(extra_items=max(args.sizes)) as emu, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, **emu.env(), "AXELGLOBE_CACHE_DIR": str(folder / "cache")}
        results: dict[tuple[str, int], dict[str, Any]] = {}
        print(f"{'way':<8}{'items':>7}{'time s':>9}{'peak RSS MiB':>14}{'growth MiB':>12}"
              f"{'tracemalloc MiB':>17}{'file MiB':>10}")
        for size in args.sizes:
            for way in WAYS:
                r = results[way, size] = run(way, size, args, folder, env, False)
                if args.tracemalloc:
                    r["traced"] = run(way, size, args, folder, env, True)["traced"]
                traced = "" if r["traced"] is None else f"{r['traced']:.1f}"
                print(f"{way:<8}{size:>7}{r['seconds']:>9.1f}{r['peak']:>14.1f}"
                      f"{r['growth']:>12.1f}{traced:>17}{r['bytes'] / 2**20:>10.1f}",
                      flush=True)
            same = {way: results[way, size]["ids"] == results["old", size]["ids"]
                    for way in WAYS}
            assert all(same.values()) and len(results["old", size]["ids"]) == size, same
        small, large = min(args.sizes), max(args.sizes)
        print(f"\ngrowth of peak RSS, {large} items / {small} items (flat = about 1):")
        for way in WAYS:
            a, b = results[way, small], results[way, large]
            line = f"  {way:<8}{b['growth'] / max(a['growth'], 1.0):6.2f}"
            if a["traced"] is not None:
                line += f"   tracemalloc {b['traced'] / a['traced']:6.2f}"
            print(line)
        old = results["old", large]
        print(f"\nat {large} items, against the old way (ItemCollection, then write):")
        for way in ("json", "ndjson", "parquet"):
            r = results[way, large]
            print(f"  {way:<8} growth {r['growth'] / old['growth']:.3f}x   "
                  f"time {r['seconds'] / old['seconds']:.2f}x")
        print("same ids in the same order in every file: yes")


if __name__ == "__main__":
    main()
