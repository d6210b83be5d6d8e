"""Benchmark: ag.load over HTTP (emulator) vs odc.stac.load of local files vs plain rasterio.

The same COGs (one 2x2-tile capture, four bands) are read three ways, side by side, in
interleaved rounds, at both archive scales unless ``--scale`` picks one ("small": 256 px
tiles of ~60 KB per band; "large": 768 px, ~570 KB; real GRUS-1 tiles are far larger):

* ``ag.load``: items as the API serves them; every asset href is resolved to a presigned
  URL at read time and read from the emulator's storage over loopback HTTP. "cold" forgets
  the presigned URLs before each round (one API redirect per asset); "warm" keeps them.
  Both clear GDAL's in-process HTTP cache first, so every byte crosses the wire each round.
  "repeat" clears nothing: a second load of the same assets in one process (as dask chunks
  of one asset are), served from GDAL's cache.
* ``odc.stac.load`` of the same items with hrefs pointing at the archive's files on disk
  (same grid, same grus-1 config, same grouping): the baseline.
* plain rasterio: open each file, read the band, paste it into the mosaic.

Printed: median wall time, ratio to the baseline, API requests, storage requests and
storage KiB sent per asset read, the extra wall time per asset over the baseline (the fixed
cost of HTTP, spread over ``--threads``), and peak Python-tracked memory (tracemalloc, in
a separate run; numpy buffers included). The emulator runs in a child process (as a remote
server would); with ``--in-process`` it serves from this very process (one GIL, the same
CPUs), so the HTTP cases also pay for the server: a pessimistic bound.

    python bench/load.py [--scale small] [--rounds 5] [--threads 4] [--in-process]
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import multiprocessing
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import odc.stac
import pystac
import rasterio

import pystac_axelglobe as ag
from pystac_axelglobe import _captures, datacube
from pystac_axelglobe import presigned as ag_assets
from pystac_axelglobe.emulator import Emulator

CAPTURE = "52eZg9k7rPEyYQGX"
BANDS = {"red": "band3", "nir": "band5", "green": "band2", "blue": "band1"}


@functools.cache
def _libgdal() -> ctypes.CDLL:
    # rasterio does not expose VSICurlClearCache; call it in the libgdal rasterio loaded
    rasterio.Env()  # make sure rasterio's extension, and so libgdal, is loaded
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgdal" in line}
    if not paths:
        raise SystemExit("cannot find libgdal in this process (Linux only)")
    return ctypes.CDLL(paths.pop())


def clear_gdal_http_cache() -> None:
    """Forget every file size and byte range GDAL cached from HTTP in this process."""
    _libgdal().VSICurlClearCache()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_memory(fn: Callable[[], Any]) -> int:
    # a separate run: tracing slows every allocation, the in-process emulator's included
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class RemoteEmulator:
    """An Emulator in a child process: settings, items and counters over a pipe."""

    def __init__(self, scale: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, scale), daemon=True)
        self._proc.start()
        info = self._conn.recv()
        self.api_url: str = info["api_url"]
        self.kwargs: dict[str, str] = info["kwargs"]
        self.items: list[dict[str, Any]] = info["items"]
        self.files: dict[str, dict[str, str]] = info["files"]

    def reset_counters(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def counters(self) -> dict[str, int]:
        self._conn.send("counters")
        result: dict[str, int] = self._conn.recv()
        return result

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)


def _serve(conn: Any, scale: str) -> None:
    with Emulator(scale=scale) as emu:
        assert emu.archive is not None
        archive = emu.archive
        items = archive.items(emu.api_url)
        conn.send({"api_url": emu.api_url, "kwargs": emu.settings_kwargs(), "items": items,
                   "files": {i["id"]: {k: str(p) for k, p in archive.assets(i["id"]).items()}
                             for i in items}})
        while (msg := conn.recv()) != "stop":
            if msg == "reset":
                emu.reset_counters()
                conn.send(None)
            else:
                conn.send(emu.counters.as_dict())


class LocalEmulator:
    """The same interface over an Emulator in this process."""

    def __init__(self, scale: str) -> None:
        self._emu = Emulator(scale=scale).start()
        assert self._emu.archive is not None
        archive = self._emu.archive
        self.api_url = self._emu.api_url
        self.kwargs = self._emu.settings_kwargs()
        self.items = archive.items(self.api_url)
        self.files = {i["id"]: {k: str(p) for k, p in archive.assets(i["id"]).items()}
                      for i in self.items}

    def reset_counters(self) -> None:
        self._emu.reset_counters()

    def counters(self) -> dict[str, int]:
        return self._emu.counters.as_dict()

    def close(self) -> None:
        self._emu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=["small", "large"], action="append",
                        help="archive scale (repeatable); default: small, then large")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="odc-stac pool= for both loads")
    parser.add_argument("--in-process", action="store_true",
                        help="run the emulator in this process (pessimistic)")
    args = parser.parse_args()
    os.environ.setdefault("AXELGLOBE_CACHE_DIR", tempfile.mkdtemp(prefix="ag-bench-"))
    for scale in args.scale or ["small", "large"]:
        run(scale, args.rounds, args.threads, args.in_process)


def run(scale: str, rounds: int, threads: int, in_process: bool) -> None:
    """One table: every case at one archive scale."""
    emu = LocalEmulator(scale) if in_process else RemoteEmulator(scale)
    try:
        auth = ag.AxelGlobeAuth(settings=ag.Settings.from_env(**emu.kwargs))  # type: ignore[arg-type]
        items = [pystac.Item.from_dict(d) for d in emu.items
                 if d["properties"].get("ag:capture_id") == CAPTURE]
        files = emu.files
        local = []
        for item in items:
            clone = item.clone()
            clone.set_self_href(None)  # else pystac resolves the paths against the API URL
            for key, path in files[item.id].items():
                if key in clone.assets:
                    clone.assets[key].href = str(path)
            local.append(clone)
        crs = datacube.utm_crs(items)
        n_assets = len(items) * len(BANDS)
        hrefs = [i.assets[k].href for i in items for k in BANDS.values()]

        def http() -> Any:
            return ag.load(items, bands=list(BANDS), auth=auth, pool=threads)

        def http_warm() -> Any:
            clear_gdal_http_cache()
            return http()

        def http_cold() -> Any:
            for href in hrefs:
                ag_assets.invalidate(href)
            return http_warm()

        def odc_local() -> Any:
            key = _captures.capture_key(local)
            return odc.stac.load(local, list(BANDS), groupby=key, pool=threads,
                                 geobox=datacube.native_geobox(local, crs, 5),
                                 stac_cfg=datacube.GRUS1_STAC_CFG)

        def plain() -> dict[str, np.ndarray[Any, Any]]:
            out = {}
            with rasterio.open(files[items[0].id]["band3"]) as src:
                res = src.res[0]
            lefts, tops, rights, bottoms = [], [], [], []
            for item in items:
                with rasterio.open(files[item.id]["band3"]) as src:
                    b = src.bounds
                    lefts.append(b.left)
                    tops.append(b.top)
                    rights.append(b.right)
                    bottoms.append(b.bottom)
            left, top = min(lefts), max(tops)
            shape = (round((top - min(bottoms)) / res), round((max(rights) - left) / res))
            for name, key in BANDS.items():
                mosaic = np.zeros(shape, dtype=np.uint16)
                for item in items:
                    with rasterio.open(files[item.id][key]) as src:
                        r = round((top - src.bounds.top) / res)
                        c = round((src.bounds.left - left) / res)
                        mosaic[r:r + src.height, c:c + src.width] = src.read(1)
                out[name] = mosaic
            return out

        cases: dict[str, Callable[[], Any]] = {
            "ag.load HTTP cold": http_cold,
            "ag.load HTTP warm": http_warm,
            "ag.load HTTP repeat": http,
            "odc.stac.load local": odc_local,
            "rasterio local": plain,
        }
        # warm-up: token, imports, GDAL init; and a correctness check of all three ways
        ref = plain()
        for name, fn in cases.items():
            out = fn()
            for band in BANDS:
                got = out[band] if isinstance(out, dict) else out[band].isel(time=0).values
                assert np.array_equal(got, ref[band]), (name, band)
        walls: dict[str, list[float]] = {n: [] for n in cases}
        peaks: dict[str, int] = dict.fromkeys(cases, 0)
        calls: dict[str, tuple[int, int, int]] = {}
        for _ in range(rounds):
            for name, fn in cases.items():
                emu.reset_counters()
                walls[name].append(timed(fn))
                c = emu.counters()
                calls[name] = (c["api_requests"], c["storage_requests"],
                               c["storage_bytes_sent"])
        for name, fn in cases.items():
            peaks[name] = peak_memory(fn)

        size = ref["red"].shape
        print(f"scale={scale}: {len(items)} tiles x {len(BANDS)} bands = {n_assets} "
              f"assets, mosaic {size[0]}x{size[1]} px per band, {rounds} rounds, "
              f"pool={threads}, {os.cpu_count()} CPUs")
        base = statistics.median(walls["odc.stac.load local"])
        print(f"{'case':<22} {'median s':>9} {'vs local odc':>13} {'API/asset':>10} "
              f"{'storage/asset':>14} {'KiB/asset':>10} {'+ms/asset':>10} {'peak MiB':>9}")
        for name in cases:
            med = statistics.median(walls[name])
            api, storage, sent = calls[name]
            print(f"{name:<22} {med:>9.3f} {med / base:>12.2f}x {api / n_assets:>10.2f} "
                  f"{storage / n_assets:>14.2f} {sent / n_assets / 1024:>10.1f} "
                  f"{(med - base) / n_assets * 1000:>10.2f} {peaks[name] / 2**20:>9.1f}")
        ratio = statistics.median(walls["ag.load HTTP cold"]) / base
        print(f"goal: ag.load within 1.3x of local-file odc-stac -> cold {ratio:.2f}x "
              f"({'met' if ratio <= 1.3 else 'NOT met'}) at scale={scale}; emulator "
              f"{'in this process' if in_process else 'in a child process'}\n")
    finally:
        emu.close()


if __name__ == "__main__":
    main()
