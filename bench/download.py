"""``ag.download`` against one ``curl --parallel --parallel-max 8 --location``, side by side.

Three cases, each on loopback and on a simulated wide-area network (the emulator's
``api_latency``/``storage_latency``, default 50 ms / 20 ms before each answer):

- ``18 files``: the six bands of three tiles of one capture (``scale="small"``);
- ``200 small``: the 200 smallest assets of the archive (thumbnails, masks, their metadata,
  true-colour previews, a few bands; ``scale="small"``);
- ``1 large``: the largest asset of ``scale="large"`` (a 2.2 MB band0), fetched alone.

The bar is what a shell user would run: ONE ``curl --parallel --parallel-max 8 --location``
process for all the files (column ``curl``), given the same API hrefs ``ag.download`` gets
and the bearer token as ``-H @file`` (the token stays out of argv; URLs and output names come
in a ``--config`` file). Each transfer then costs curl what it costs ``ag.download``: the
authorised API request that answers the redirect, then the storage GET. That is the fair
comparison; curl on presigned URLs would skip the API round trip ``ag.download`` must pay.
curl drops a custom ``Authorization`` header when a redirect leads to another host (since
7.58; verbose curl says "Clear auth, redirects to port ..."; here the API is on 127.0.0.1,
storage on 127.0.0.2), as storage requires: storage answers 400 to a request carrying one,
which ``--fail`` would turn into an error, and the emulator's
``storage_requests_with_authorization`` counter, printed at the end, stays 0.

curl 7.88's ``--parallel`` waits, before opening another connection, to see whether the
transfer could share one (HTTP/2), which over HTTP/1.1 costs it dearly under latency; the
column ``curl imm`` adds ``--parallel-immediate`` (8 connections at once), the stronger
baseline. ``imm pre`` is that on URLs presigned beforehand, outside the timing: the same
transfers with no redirect at all, a lower bound for information.

The token is fetched before the timings (neither side pays for it); ``ag``'s cache of
presigned URLs is emptied before each of its runs, so it pays for every redirect. Every run
of every side ends with each file's sha256 checked against the archive. Runs alternate
between the sides (the order turns each round) so that a change in the machine's load hits
all of them alike. Times are the median [min-max] of the rounds; ``x`` is that curl's median
over ag's (above 1: ag is faster). Goals at 50/20 ms: >= 1 on 18 and on 200 files, >= 0.9
on the large file.

Run: ``python bench/download.py [--rounds 5] [--api-latency 0.05] [--storage-latency 0.02]``
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pystac

from pystac_axelglobe import presigned
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.downloads import download
from pystac_axelglobe.emulator import Emulator

BANDS = ("band0", "band1", "band2", "band3", "band4", "band5")
# --no-progress-meter, not --silent: curl 7.88 draws its --parallel meter despite --silent.
CURL = ("curl", "--no-progress-meter", "--fail", "--parallel", "--parallel-max", "8",
        "--location", "--create-dirs")
#: Opens its 8 connections at once instead of waiting to see whether a transfer could share
#: one (HTTP/2 multiplexing, which HTTP/1.1 servers never offer).
IMMEDIATE = ("--parallel-immediate",)


@dataclasses.dataclass
class Case:
    """One set of files: which assets of which items, served by which emulator."""

    name: str
    emu: Emulator
    chosen: list[tuple[pystac.Item, str]]
    expected: dict[Path, str] = dataclasses.field(default_factory=dict)  # relative -> sha256

    def __post_init__(self) -> None:
        assert self.emu.archive is not None
        for item, key in self.chosen:
            name = item.assets[key].href.rsplit("/", 1)[1]
            data = self.emu.archive.asset_path(item.id, name).read_bytes()
            self.expected[Path(item.id) / name] = hashlib.sha256(data).hexdigest()

    @property
    def size(self) -> int:
        assert self.emu.archive is not None
        return sum(self.emu.archive.asset_path(str(p.parent), p.name).stat().st_size
                   for p in self.expected)

    @functools.cached_property
    def items(self) -> list[pystac.Item]:
        """Clones of the items holding only the chosen assets (one download() call)."""
        clones: dict[str, pystac.Item] = {}
        for item, key in self.chosen:
            if item.id not in clones:
                clones[item.id] = item.clone()
                clones[item.id].assets.clear()
            clones[item.id].add_asset(key, item.assets[key].clone())
        return list(clones.values())

    def check(self, target: Path) -> None:
        """Every file in ``target`` is the archive's, and nothing else is there."""
        found = {p.relative_to(target) for p in target.rglob("*") if p.is_file()}
        assert found == set(self.expected), f"{self.name}: {found ^ set(self.expected)} differ"
        for rel, sha in self.expected.items():
            got = hashlib.sha256((target / rel).read_bytes()).hexdigest()
            assert got == sha, f"{self.name}: {rel} differs"


def _items(emu: Emulator) -> list[pystac.Item]:
    assert emu.archive is not None
    return [pystac.Item.from_dict(d) for d in emu.archive.items(emu.api_url)]


def _auth(emu: Emulator, work: Path) -> AxelGlobeAuth:
    return AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                         token_url=emu.token_url, audience=emu.audience,
                         cache_dir=work / f"tokens-{emu.scale}")


def _cases(small: Emulator, large: Emulator) -> list[Case]:
    items = _items(small)
    by_capture: dict[str, list[pystac.Item]] = collections.defaultdict(list)
    for item in items:
        by_capture[item.properties["ag:capture_id"]].append(item)
    largest = max(by_capture, key=lambda capture: len(by_capture[capture]))
    tiles = sorted(by_capture[largest], key=lambda i: i.id)[:3]
    assert small.archive is not None and large.archive is not None

    def size(emu: Emulator, item: pystac.Item, key: str) -> int:
        assert emu.archive is not None
        return emu.archive.asset_path(item.id, item.assets[key].href.rsplit("/", 1)[1]
                                      ).stat().st_size

    smallest = sorted(((i, k) for i in items for k in i.assets),
                      key=lambda p: (size(small, *p), p[0].id, p[1]))[:200]
    big = max(((i, k) for i in _items(large) for k in i.assets), key=lambda p: size(large, *p))
    return [
        Case("18 files", small, [(t, b) for t in tiles for b in BANDS]),
        Case("200 small", small, smallest),
        Case("1 large", large, [big]),
    ]


class Runners:
    """The three ways to fetch a case's files into a folder."""

    def __init__(self, work: Path, auths: dict[str, AxelGlobeAuth]) -> None:
        self.work, self.auths = work, auths
        self.headers: dict[str, Path] = {}
        for scale, auth in auths.items():
            header = work / f"header-{scale}"  # keeps the token out of curl's argv
            header.touch(mode=0o600)
            header.write_text(f"Authorization: Bearer {auth.provider.token().access_token}\n")
            self.headers[scale] = header

    def ag(self, case: Case, target: Path) -> None:
        presigned._cache.clear()  # pay for every redirect, as curl does
        download(case.items, directory=target, auth=self.auths[case.emu.scale],
                 progress=False)

    def curl(self, case: Case, target: Path, extra: tuple[str, ...] = ()) -> None:
        pairs = [(item.assets[key].href, item.id) for item, key in case.chosen]
        self._curl(pairs, target, [*extra, "-H", f"@{self.headers[case.emu.scale]}"])

    def curl_presigned(self, case: Case, target: Path) -> None:
        auth = self.auths[case.emu.scale]
        pairs = [(presigned.resolve(item.assets[key].href, auth=auth).url, item.id)
                 for item, key in case.chosen]
        self._curl(pairs, target, list(IMMEDIATE))

    def _curl(self, pairs: list[tuple[str, str]], target: Path, extra: list[str]) -> None:
        # A config file: 200 URLs would be a long argv, and presigned ones are credentials.
        config = target.with_suffix(".curl")
        lines = []
        for url, item_id in pairs:
            out = target / item_id / url.split("?", 1)[0].rsplit("/", 1)[1]
            lines += [f'url = "{url}"', f'output = "{out}"']
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        try:
            subprocess.run([*CURL, *extra, "--config", str(config)], check=True)
        finally:
            config.unlink()


def _timed(run: Callable[[Case, Path], None], case: Case, work: Path) -> float:
    target = work / "run"
    target.mkdir()
    try:
        started = time.perf_counter()
        run(case, target)
        elapsed = time.perf_counter() - started
        case.check(target)
    finally:
        shutil.rmtree(target)
    return elapsed


def _timed_presigned(runners: Runners, case: Case, work: Path) -> float:
    # Resolved beforehand, outside the timing: only curl's transfers are timed.
    auth = runners.auths[case.emu.scale]
    presigned._cache.clear()
    for item, key in case.chosen:
        presigned.resolve(item.assets[key].href, auth=auth)
    return _timed(runners.curl_presigned, case, work)


def _span(times: list[float]) -> str:
    return f"{statistics.median(times):6.3f} [{min(times):.3f}-{max(times):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--api-latency", type=float, default=0.05)
    parser.add_argument("--storage-latency", type=float, default=0.02)
    parser.add_argument("--cases", default="18 files,200 small,1 large",
                        help="comma list of the cases to run")
    parser.add_argument("--networks", default="loopback,wan", help="loopback, wan or both")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the baseline")
    version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    wan = f"{args.api_latency * 1000:g}/{args.storage_latency * 1000:g} ms"
    networks = {"loopback": (0.0, 0.0), "wan": (args.api_latency, args.storage_latency)}
    chosen_networks = [n.strip() for n in args.networks.split(",")]
    wanted = {c.strip() for c in args.cases.split(",")}

    with Emulator() as small, Emulator(scale="large") as large, \
            tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        auths = {"small": _auth(small, work), "large": _auth(large, work)}
        runners = Runners(work, auths)
        cases = [c for c in _cases(small, large) if c.name in wanted]
        sides: dict[str, Callable[[Case], float]] = {
            "ag": lambda c: _timed(runners.ag, c, work),
            "curl": lambda c: _timed(runners.curl, c, work),
            "curl imm": lambda c: _timed(functools.partial(runners.curl, extra=IMMEDIATE),
                                         c, work),
            "imm pre": lambda c: _timed_presigned(runners, c, work),
        }
        times: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
        for case in cases:  # warm-up: archive files in the page cache, imports, pools
            for run in sides.values():
                run(case)
        for r in range(args.rounds):
            for network in chosen_networks:
                api, storage = networks[network]
                for emu in (small, large):
                    emu.api_latency, emu.storage_latency = api, storage
                for case in cases:
                    order = list(sides)
                    order = order[r % len(order):] + order[:r % len(order)]
                    for side in order:
                        times[network, case.name, side].append(sides[side](case))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

        print(version.splitlines()[0])
        print(f"ag.download() vs ONE `curl {' '.join(CURL[3:7])}` process over the same "
              f"API hrefs; `curl imm`: the same with {IMMEDIATE[0]}; `imm pre`: that on URLs "
              f"presigned beforehand (no redirects: a lower bound, for information). "
              f"{args.rounds} rounds, seconds median [min-max]; x = that curl's median / ag's "
              "(>1: ag faster); every file's sha256 checked after every run")
        print(f"{'network':<10}{'case':<11}{'files':>6}{'MB':>6}  {'ag s':<22}"
              f"{'curl s':<22}{'x':>6}   {'curl imm s':<22}{'x':>6}   {'imm pre s':<22}{'x':>6}")
        for network in chosen_networks:
            label = "loopback" if network == "loopback" else wan
            for case in cases:
                t = {side: times[network, case.name, side] for side in sides}
                ag = statistics.median(t["ag"])
                row = f"{label:<10}{case.name:<11}{len(case.chosen):>6}{case.size / 1e6:>6.1f}  "
                row += f"{_span(t['ag']):<22}"
                for side in ("curl", "curl imm", "imm pre"):
                    row += f"{_span(t[side]):<22}{statistics.median(t[side]) / ag:>5.2f}x   "
                print(row.rstrip())
        leaked = (small.counters.as_dict()["storage_requests_with_authorization"]
                  + large.counters.as_dict()["storage_requests_with_authorization"])
        print(f"storage requests with Authorization (curl or ag): {leaked}")


if __name__ == "__main__":
    main()
