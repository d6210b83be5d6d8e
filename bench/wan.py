"""Wide-area benchmark: load, search and download at 50 ms API / 20 ms storage latency.

Every case runs against its baseline in the same run, on an emulator (in its own process)
that waits ``api_latency`` before each API and token answer and ``storage_latency`` before
each storage answer, as a server a continent away would. Each round times every case and its
baseline one after the other (the order alternates from round to round); a ratio is taken
per round, and the median and range (min-max) of the rounds are printed. Results are checked
equal to the baseline's first: pixel sums and arrays, item ids in order, file sha256.

* load: a cold ``ag.load(...).compute()`` of the largest capture (9 tiles, or the most the
  archive has) x 2 bands (``--load-bands`` for others), with presigned URLs resolved at read
  time (every URL and GDAL's HTTP cache forgotten before each round), against the same
  ``ag.load`` of items whose hrefs were presigned beforehand (``resolve_many``, untimed:
  such hrefs are read as they are).
  Goal: <= 1.10x. Also with the prefetch turned off (what the reads did before), and on
  loopback (no latency): against the presigned load and against ``odc.stac.load`` of the
  same COGs as local files (the figure ``bench/load.py`` tracks), prefetch on and off.
  The CPU time of this process per case is printed too (median; the warm-up left out).
  Where the rest goes: the same lazy load with every URL but the first tile's cached (its
  first reads' own round trip to the API, the floor of signing at read time). And an eager
  load (no ``chunks``, read in ``load()``) cold against presigned, goal <= 1.10x too; also
  with ``pool=None``, odc-stac's default of one chunk read after another (what it did before).
* search: a search of 12 pages (``limit`` chosen so) through ``ag.open()``, against the
  same pages fetched strictly one after another: ``ag.open(..., prefetch_pages=1)`` where
  that option exists, and the pages by hand (``requests``, bearer token, ``?page=N``).
  Goal: <= 0.5x.
* download: ``ag.download`` of 18 files (9 items x 2 bands), of 200 small files and of the
  largest file (``scale="large"`` archive), against ONE ``curl --parallel --parallel-max 8
  --location`` process over the same API hrefs with the bearer token (curl does not send a
  custom ``Authorization`` header on to another host, so storage never sees it: checked at
  the emulator). Both resolve every redirect (the presigned URLs are forgotten before each
  ag run). Goal: ag at least as fast (<= 1.0x the time), the large file at least 0.9x
  curl's speed (<= 1.11x the time). Also shown: the same curl with
  ``--parallel-immediate``, which opens its connections at once instead of waiting to see
  whether transfers could share one: much faster on many small files.

The emulator keeps connections alive (as AxelGlobe's load balancers); ``--handshakes 2``
charges each new connection two more round trips (TCP and TLS), so that connection reuse,
ag's and curl's, shows in the times.

Run: ``python bench/wan.py [--rounds 5] [--quick] [--only load|search|download]
[--load-bands red,nir] [--handshakes 2]``
(``--quick``: 2 rounds, 50 small files instead of 200.)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import hashlib
import inspect
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.system
import numpy as np
import odc.stac
import pystac
import rasterio
import requests

import pystac_axelglobe as ag
from pystac_axelglobe import _captures, datacube, presigned
from pystac_axelglobe.emulator import Emulator

API_LATENCY = 0.05
STORAGE_LATENCY = 0.02
BANDS = {"red": "band3", "nir": "band5"}
PAGES = 12
GOALS = {"load": 1.10, "search": 0.5, "download": 1.0, "large": 1 / 0.9}
CURL = "curl --parallel --parallel-max 8"
# curl waits for each new connection to see whether transfers can share it (HTTP/2) before
# it opens the next; --parallel-immediate opens them at once: the faster curl, shown too.
CURL_NOW = CURL + " --parallel-immediate"


# --------------------------------------------------------------------------- timing


class Partly:
    """What a case returns when only part of its call is what is compared."""

    def __init__(self, result: Any, seconds: float) -> None:
        self.result, self.seconds = result, seconds


class Rounds:
    """Wall times of named cases, round by round; ratios per round against a baseline."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.results: dict[str, Any] = {}

    def run(self, cases: dict[str, Callable[[], Any]], rounds: int) -> None:
        """A warm-up (which keeps the results), then ``rounds`` timed rounds."""
        for name, fn in cases.items():
            out = fn()
            self.results[name] = out.result if isinstance(out, Partly) else out
        for r in range(rounds):
            order = list(cases.items())
            for name, fn in order if r % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                out = fn()
                spent = time.perf_counter() - started
                if isinstance(out, Partly):
                    spent = out.seconds
                self.times.setdefault(name, []).append(spent)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratios(self, case: str, base: str) -> list[float]:
        return [a / b for a, b in zip(self.times[case], self.times[base], strict=True)]


ROWS: list[tuple[str, str, str, float, float, list[float], float | None]] = []


def row(section: str, rounds: Rounds, case: str, base: str, goal: float | None) -> None:
    """One line of the final table (and printed at once)."""
    ROWS.append((section, case, base, rounds.median(case), rounds.median(base),
                 rounds.ratios(case, base), goal))
    print_row(ROWS[-1])


def print_header() -> None:
    print(f"{'':<9}{'case':<40}{'baseline':<52}{'case s':>8}{'base s':>8}"
          f"{'ratio (median, range)':>26}  goal")


def print_row(r: tuple[str, str, str, float, float, list[float], float | None]) -> None:
    section, case, base, t_case, t_base, ratios, goal = r
    med = statistics.median(ratios)
    spread = f"{med:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    verdict = ""
    if goal is not None:
        verdict = f"<= {goal:.2f}x {'met' if med <= goal else 'NOT met'}"
    print(f"{section:<9}{case:<40}{base:<52}{t_case:>8.3f}{t_base:>8.3f}{spread:>26}  "
          f"{verdict}")


@functools.cache
def _libgdal() -> ctypes.CDLL:
    rasterio.Env()  # rasterio's extension, and so its libgdal, is loaded
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgdal" in line}
    if len(paths) != 1:
        raise SystemExit(f"cannot tell which libgdal rasterio uses: {sorted(paths)}")
    return ctypes.CDLL(paths.pop())


def forget_urls() -> None:
    """Cold: no presigned URL cached, nothing in GDAL's HTTP cache."""
    presigned._cache.clear()
    _libgdal().VSICurlClearCache()


@contextlib.contextmanager
def prefetch_off() -> Iterator[None]:
    saved = presigned.PREFETCH_CONCURRENCY
    presigned.PREFETCH_CONCURRENCY = 0
    try:
        yield
    finally:
        presigned.PREFETCH_CONCURRENCY = saved


def auth_for(emu: Emulator) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(settings=emu.settings())


# --------------------------------------------------------------------------- load


def largest_capture(emu: Emulator) -> list[pystac.Item]:
    items = emu.items()
    sizes = Counter(i.properties["ag:capture_id"] for i in items)
    nine = [c for c, n in sizes.items() if n == 9]
    chosen = nine[0] if nine else sizes.most_common(1)[0][0]
    return [i for i in items if i.properties["ag:capture_id"] == chosen]


def bench_load(emu: Emulator, rounds: int, bands: dict[str, str]) -> None:
    auth = auth_for(emu)
    items = largest_capture(emu)
    assert emu.archive is not None
    files = {i.id: emu.archive.assets(i.id) for i in items}
    hrefs = [i.assets[k].href for i in items for k in bands.values()]

    cpu: dict[str, list[float]] = {}  # CPU seconds of this process, per case

    def cpu_of(name: str, fn: Callable[[], Any]) -> Any:
        started = time.process_time()
        try:
            return fn()
        finally:
            cpu.setdefault(name, []).append(time.process_time() - started)

    def cold(name: str = "ag.load cold") -> Any:
        forget_urls()
        return cpu_of(name, lambda: ag.load(items, bands=list(bands), chunks={},
                                            auth=auth).compute())

    def cold_before() -> Any:
        with prefetch_off():
            return cold("ag.load cold, prefetch off (before)")

    def presigned_items() -> list[pystac.Item]:
        forget_urls()
        urls = presigned.resolve_many(hrefs, auth=auth)  # beforehand: not what is compared
        signed = []
        for item in items:
            clone = item.clone()
            for key in bands.values():
                clone.assets[key].href = urls[item.assets[key].href].url
            signed.append(clone)
        return signed

    def presigned_load() -> Any:
        signed = presigned_items()
        started = time.perf_counter()
        ds = cpu_of("ag.load, URLs presigned beforehand",
                    lambda: ag.load(signed, bands=list(bands), chunks={}, auth=auth).compute())
        return Partly(ds, time.perf_counter() - started)

    def first_tile_missing() -> Any:
        # Where the rest of a cold load's time goes: every URL but the first tile's is
        # cached, so what is left is the first read's own round trip to the API.
        forget_urls()
        presigned.resolve_many(hrefs[len(bands):], auth=auth)
        started = time.perf_counter()
        ds = ag.load(items, bands=list(bands), chunks={}, auth=auth).compute()
        return Partly(ds, time.perf_counter() - started)

    def eager_cold(name: str = "ag.load eager cold", **kwargs: Any) -> Any:
        forget_urls()
        return cpu_of(name, lambda: ag.load(items, bands=list(bands), auth=auth, **kwargs))

    def eager_one_at_a_time() -> Any:
        return eager_cold("ag.load eager cold, pool=None (before)", pool=None)

    def eager_presigned() -> Any:
        signed = presigned_items()
        started = time.perf_counter()
        ds = ag.load(signed, bands=list(bands), auth=auth)
        return Partly(ds, time.perf_counter() - started)

    local = []
    for item in items:
        clone = item.clone()
        clone.set_self_href(None)  # else pystac resolves the paths against the API URL
        for key in bands.values():
            clone.assets[key].href = str(files[item.id][key])
        local.append(clone)
    crs = datacube.utm_crs(items)

    def odc_local() -> Any:
        return cpu_of("odc.stac.load of local files", lambda: odc.stac.load(
            local, list(bands), groupby=_captures.capture_key(local),
            geobox=datacube.native_geobox(local, crs, 5), chunks={},
            stac_cfg=datacube.GRUS1_STAC_CFG).compute())

    n = len(hrefs)
    for where, api, storage in (("wide", API_LATENCY, STORAGE_LATENCY), ("loopback", 0, 0)):
        emu.api_latency, emu.storage_latency = api, storage
        cases: dict[str, Callable[[], Any]] = {
            "ag.load cold": cold,
            "ag.load cold, prefetch off (before)": cold_before,
            "ag.load, URLs presigned beforehand": presigned_load,
            "ag.load, first tile's URLs cold": first_tile_missing,
            "ag.load eager cold": eager_cold,
            "ag.load eager cold, pool=None (before)": eager_one_at_a_time,
            "ag.load eager, URLs presigned beforehand": eager_presigned,
        }
        if where == "loopback":
            cases["odc.stac.load of local files"] = odc_local
        timed = Rounds()
        cpu.clear()
        timed.run(cases, rounds)
        check_pixels(timed.results, bands)
        print(f"load ({where}: API {api * 1000:.0f} ms, storage {storage * 1000:.0f} ms): "
              f"{len(items)} tiles x {len(bands)} bands = {n} assets, chunks={{}}, "
              f"dask threads: {dask.system.CPU_COUNT}")
        row("load", timed, "ag.load cold", "ag.load, URLs presigned beforehand",
            GOALS["load"] if where == "wide" else None)
        row("load", timed, "ag.load cold, prefetch off (before)",
            "ag.load, URLs presigned beforehand", None)
        row("load", timed, "ag.load, first tile's URLs cold",
            "ag.load, URLs presigned beforehand", None)
        row("load", timed, "ag.load eager cold", "ag.load eager, URLs presigned beforehand",
            GOALS["load"] if where == "wide" else None)
        row("load", timed, "ag.load eager cold, pool=None (before)",
            "ag.load eager, URLs presigned beforehand", None)
        if where == "loopback":
            row("load", timed, "ag.load cold", "odc.stac.load of local files", None)
            row("load", timed, "ag.load cold, prefetch off (before)",
                "odc.stac.load of local files", None)
        # CPU time is what a busy machine disturbs least: the loopback figure's witness
        print(f"load ({where}) CPU s of this process, median of {rounds}: " + ", ".join(
            f"{name} {statistics.median(spent[1:]):.3f}" for name, spent in cpu.items()))
    emu.api_latency, emu.storage_latency = API_LATENCY, STORAGE_LATENCY


def check_pixels(results: dict[str, Any], bands: dict[str, str]) -> None:
    first_name, first = next(iter(results.items()))
    for name, ds in results.items():
        for band in bands:
            a, b = first[band].values, ds[band].values
            assert int(a.sum()) == int(b.sum()) and np.array_equal(a, b), (first_name, name)


# --------------------------------------------------------------------------- search


def bench_search(emu: Emulator, rounds: int, cache_dir: str) -> None:
    total = len(emu.items())
    limit = math.ceil(total / PAGES)
    assert math.ceil(total / limit) == PAGES, (total, limit)
    kwargs: dict[str, Any] = {**emu.settings_kwargs(), "cache_dir": cache_dir}
    default = ag.open(**kwargs)
    auth = auth_for(emu)

    def ids(client: Any) -> list[str]:
        return [i.id for i in client.search(collections="grus-1", limit=limit).items()]

    def by_hand() -> list[str]:
        url = default.search(collections="grus-1", limit=limit).url
        headers = {"Authorization": f"Bearer {auth.provider.token().access_token}"}
        out: list[str] = []
        with requests.Session() as session:
            page = 1
            while True:
                params: dict[str, Any] = {"collections": "grus-1", "limit": limit}
                if page > 1:
                    params["page"] = page
                answer = session.get(url, params=params, headers=headers, timeout=30)
                answer.raise_for_status()
                body = answer.json()
                out += [f["id"] for f in body["features"]]
                if not any(link.get("rel") == "next" for link in body.get("links", [])):
                    return out
                page += 1
                assert page <= PAGES + 1

    cases: dict[str, Callable[[], Any]] = {
        "ag.open() search": lambda: ids(default),
        "pages by hand, one after another": by_hand,
    }
    sequential_name = None
    if "prefetch_pages" in inspect.signature(ag.open).parameters:
        sequential = ag.open(**kwargs, prefetch_pages=1)
        sequential_name = "ag.open(prefetch_pages=1) search"
        cases[sequential_name] = lambda: ids(sequential)
    emu.reset_counters()
    timed = Rounds()
    timed.run(cases, rounds)
    requests_made = emu.counters.search_requests
    for name, got in timed.results.items():
        assert got == timed.results["ag.open() search"], f"{name}: other items or order"
    print(f"search (API {API_LATENCY * 1000:.0f} ms): {total} items, limit={limit}, "
          f"{PAGES} pages, {requests_made / (len(cases) * (rounds + 1)):.1f} search "
          "requests per search")
    if sequential_name is None:
        print("prefetch_pages not available: ag.open() compared with the pages by hand only")
    else:
        row("search", timed, "ag.open() search", sequential_name, GOALS["search"])
    row("search", timed, "ag.open() search", "pages by hand, one after another",
        None if sequential_name else GOALS["search"])


# --------------------------------------------------------------------------- download


def bench_download(emu: Emulator, rounds: int, small_files: int, work: Path) -> None:
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the download baseline")
    auth = auth_for(emu)
    archive = emu.archive
    assert archive is not None
    items = emu.items()

    def size(item: pystac.Item, key: str) -> int:
        return archive.assets(item.id)[key].stat().st_size

    everything = sorted(((size(i, k), i, k) for i in items for k in i.assets),
                        key=lambda t: (t[0], t[1].id, t[2]))
    cases = {
        "18 files": [(size(i, k), i, k) for i in items[:9] for k in BANDS.values()],
        f"{small_files} small files": everything[:small_files],
        "1 large file": everything[-1:],
    }
    config = work / "curl.cfg"  # keeps the token out of curl's argv; readable by us only
    config.touch(mode=0o600)
    try:
        for case, chosen in cases.items():
            bench_one_download(emu, auth, case, chosen, config, rounds, work)
    finally:
        config.unlink()


def bench_one_download(emu: Emulator, auth: ag.AxelGlobeAuth, case: str,
                       chosen: list[tuple[int, pystac.Item, str]], config: Path, rounds: int,
                       work: Path) -> None:
    assert emu.archive is not None
    clones: dict[str, pystac.Item] = {}
    for _, item, key in chosen:  # one download() call: the items with the chosen assets
        if item.id not in clones:
            clones[item.id] = item.clone()
            clones[item.id].assets.clear()
        clones[item.id].add_asset(key, item.assets[key].clone())
    subset = list(clones.values())
    targets = [(item.id, item.assets[key].href) for _, item, key in chosen]
    runs = iter(range(10**6))

    def fresh() -> Path:
        target = work / f"run{next(runs)}"
        target.mkdir()
        return target

    def run_ag() -> Path:
        target = fresh()
        presigned._cache.clear()
        ag.download(subset, directory=target, auth=auth, progress=False)
        return target

    def run_curl(*extra: str) -> Path:
        target = fresh()
        lines = [f'header = "Authorization: Bearer {auth.provider.token().access_token}"']
        for item_id, href in targets:
            lines += [f'url = "{href}"',
                      f'output = "{target / item_id / href.rsplit("/", 1)[1]}"']
        config.write_text("\n".join(lines) + "\n")
        subprocess.run(["curl", "-sS", "--no-progress-meter", "--fail", "--location",
                        "--create-dirs", "--parallel", "--parallel-max", "8", *extra,
                        "-K", str(config)], check=True)
        return target

    emu.reset_counters()
    timed = Rounds()
    timed.run({f"ag.download, {case}": run_ag, CURL: run_curl,
               CURL_NOW: lambda: run_curl("--parallel-immediate")}, rounds)
    assert emu.counters.storage_requests_with_authorization == 0, "curl sent the token on"
    for name, target in timed.results.items():
        for _, item, key in chosen:
            name_on_disk = item.assets[key].href.rsplit("/", 1)[1]
            got = hashlib.sha256((target / item.id / name_on_disk).read_bytes()).hexdigest()
            want = hashlib.sha256(emu.archive.assets(item.id)[key].read_bytes()).hexdigest()
            assert got == want, f"{name}: {item.id}/{key} differs"
    total = sum(s for s, _, _ in chosen)
    print(f"download {case} ({total / 1e6:.2f} MB; API {API_LATENCY * 1000:.0f} ms, "
          f"storage {STORAGE_LATENCY * 1000:.0f} ms; storage requests with Authorization: "
          f"{emu.counters.storage_requests_with_authorization})")
    goal = GOALS["large"] if case == "1 large file" else GOALS["download"]
    row("download", timed, f"ag.download, {case}", CURL, goal)
    row("download", timed, f"ag.download, {case}", CURL_NOW, None)
    for target in work.glob("run*"):
        shutil.rmtree(target)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds, 50 small files instead of 200")
    parser.add_argument("--only", choices=["load", "search", "download"], action="append")
    parser.add_argument("--load-bands", default=",".join(BANDS),
                        help="the bands of the load, by name (default: %(default)s); more "
                        "bands than dask has threads show whether later bands wait again")
    parser.add_argument("--handshakes", type=int, default=0, metavar="N",
                        help="round trips of latency each new connection costs (2: TCP and "
                        "TLS, as over HTTPS); default 0, as the goals were set")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    small_files = 50 if args.quick else 200
    only = set(args.only or ["load", "search", "download"])
    with tempfile.TemporaryDirectory(prefix="ag-wan-") as tmp:
        os.environ["AXELGLOBE_CACHE_DIR"] = str(Path(tmp) / "tokens")
        started = time.perf_counter()
        print(f"{rounds} rounds, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}; {args.handshakes} round trips per new connection; "
              "ratios: case time / baseline time")
        network = {"api_latency": API_LATENCY, "storage_latency": STORAGE_LATENCY,
                   "handshake_round_trips": args.handshakes}
        if only & {"load", "search"}:
            with Emulator(**network) as emu:
                if "load" in only:
                    aliases = datacube.GRUS1_STAC_CFG["grus-1"]["aliases"]
                    bench_load(emu, rounds, {name: aliases[name][0]
                                             for name in args.load_bands.split(",")})
                if "search" in only:
                    bench_search(emu, rounds, str(Path(tmp) / "tokens"))
        if "download" in only:
            with Emulator(**network, scale="large") as emu:
                bench_download(emu, rounds, small_files, Path(tmp))
        print(f"\nsummary ({time.perf_counter() - started:.0f} s, load average now "
              f"{os.getloadavg()[0]:.1f}):")
        print_header()
        for r in ROWS:
            print_row(r)


if __name__ == "__main__":
    main()
