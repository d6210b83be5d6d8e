"""Throughput of ``ag.download`` against ``curl --location``, on the emulator, side by side.

Two cases on ``Emulator(scale="large")``:

- one large file (the largest asset of the archive), fetched alone;
- 50 small files (the smallest assets across items).

The baseline is curl fetching the same hrefs one file after another with the bearer token
(curl drops ``Authorization`` on the cross-host redirect, as storage requires): once as one
curl process per file (what a shell loop does) and once as a single curl process for all
URLs (connection reuse, no process start-up). Each measurement is the median of several
runs; the resolve cache is emptied before each ag run so both sides pay for the redirects.
Ratios are curl time / ag time (above 1: ag is faster). Goals: >= 0.9x on the large file,
>= 2x on the small files.

Run: ``python bench/download.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pystac

from pystac_axelglobe import presigned as assets
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.downloads import download
from pystac_axelglobe.emulator.archive import build_archive

# The emulator runs in its own process, as a real server would: in this process its Python
# threads would compete with the client's for the GIL, and curl would not pay that price.
SERVER = """
import json, sys
from pystac_axelglobe.emulator import Emulator
with Emulator(scale="large") as emu:
    print(json.dumps({"env": emu.env(), "storage": emu.storage_url}), flush=True)
    sys.stdin.read()
    print(json.dumps(emu.counters.as_dict()), flush=True)
"""


def _median_time(run: Callable[[Path], None], repeat: int, work: Path) -> float:
    times = []
    for i in range(repeat):
        target = work / f"run{i}"
        target.mkdir()
        started = time.perf_counter()
        run(target)
        times.append(time.perf_counter() - started)
        shutil.rmtree(target)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the baseline")

    archive = build_archive(scale="large")
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    info = json.loads(server.stdout.readline())
    env = info["env"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        auth = AxelGlobeAuth(env["AXELGLOBE_CLIENT_ID"], env["AXELGLOBE_CLIENT_SECRET"],
                             api_url=env["AXELGLOBE_API_URL"],
                             token_url=env["AXELGLOBE_TOKEN_URL"],
                             audience=env["AXELGLOBE_AUDIENCE"], cache_dir=work / "tokens")
        items = [pystac.Item.from_dict(d) for d in archive.items(env["AXELGLOBE_API_URL"])]
        header_file = work / "auth-header"  # keeps the token out of curl's argv
        header_file.touch(mode=0o600)
        header_file.write_text(f"Authorization: Bearer {auth.provider.token().access_token}\n")

        def size(item: pystac.Item, key: str) -> int:
            name = item.assets[key].href.rsplit("/", 1)[1]
            return archive.asset_path(item.id, name).stat().st_size

        pairs = sorted(((size(i, k), i, k) for i in items for k in i.assets),
                       key=lambda t: t[0])
        cases = {
            "1 large file": [pairs[-1]],
            "50 small files": pairs[:50],
        }
        print(f"emulator (own process): storage {info['storage']} (scale=large), "
              f"repeat={args.repeat}, median times")
        print(f"{'case':<16}{'bytes':>10}{'ag s':>9}{'curl/file s':>13}{'curl/1proc s':>14}"
              f"{'ratio/file':>12}{'ratio/1proc':>13}{'ag MB/s':>9}")
        for case, chosen in cases.items():
            total = sum(s for s, _, _ in chosen)
            hrefs = [(i.id, i.assets[k].href) for _, i, k in chosen]
            # One download() call per case: clones of the items holding only the chosen assets.
            clones: dict[str, pystac.Item] = {}
            for _, item, key in chosen:
                if item.id not in clones:
                    clones[item.id] = item.clone()
                    clones[item.id].assets.clear()
                clones[item.id].add_asset(key, item.assets[key].clone())
            subset = list(clones.values())

            def run_ag(target: Path, subset: list[pystac.Item] = subset) -> None:
                assets._cache.clear()
                download(subset, directory=target, auth=auth, progress=False)

            def run_curl_each(target: Path, hrefs: list[tuple[str, str]] = hrefs) -> None:
                for item_id, href in hrefs:
                    out = target / item_id / href.rsplit("/", 1)[1]
                    subprocess.run(
                        ["curl", "-sS", "--fail", "--location", "-H", f"@{header_file}",
                         "--create-dirs", "-o", str(out), href],
                        check=True,
                    )

            def run_curl_once(target: Path, hrefs: list[tuple[str, str]] = hrefs) -> None:
                cmd = ["curl", "-sS", "--fail", "--location", "-H", f"@{header_file}",
                       "--create-dirs"]
                for item_id, href in hrefs:
                    cmd += ["-o", str(target / item_id / href.rsplit("/", 1)[1]), href]
                subprocess.run(cmd, check=True)

            # Warm-up and correctness: ag's files equal the archive's.
            check = work / "check"
            check.mkdir()
            run_ag(check)
            for _, item, key in chosen:
                name = item.assets[key].href.rsplit("/", 1)[1]
                got = hashlib.sha256((check / item.id / name).read_bytes()).hexdigest()
                want = hashlib.sha256(archive.asset_path(item.id, name).read_bytes())
                assert got == want.hexdigest(), f"{item.id}/{key} differs"
            shutil.rmtree(check)

            t_ag = _median_time(run_ag, args.repeat, work)
            t_each = _median_time(run_curl_each, args.repeat, work)
            t_once = _median_time(run_curl_once, args.repeat, work)
            print(f"{case:<16}{total:>10}{t_ag:>9.3f}{t_each:>13.3f}{t_once:>14.3f}"
                  f"{t_each / t_ag:>11.2f}x{t_once / t_ag:>12.2f}x{total / t_ag / 1e6:>9.1f}")
    server.stdin.close()
    counters = json.loads(server.stdout.readline())
    server.wait()
    print(f"storage requests with Authorization: "
          f"{counters['storage_requests_with_authorization']}")


if __name__ == "__main__":
    main()
