"""A many-page search fetched page after page against the same search with pages fetched ahead.

One unfiltered search of the emulator's archive (45 items, ``limit=4``: 12 pages), timed
with ``ag.open(prefetch_pages=1)`` (strictly one page after another) and with the default
(pages fetched ahead), alternating, over loopback and over a simulated wide-area network
where every API answer comes 50 ms late. Ratios are concurrent time / sequential time (below
1: faster); each round checks that both gave the same item ids in the same order.

The latency comes from ``Emulator(api_latency=...)`` when the emulator has that switch, else
from a small proxy in front of the API that sleeps before forwarding each request (and
rewrites the emulator's URLs in the answers to its own, so ``next`` links go through it).
Emulator and proxy run in a process of their own, as a real server would: in the client's
process their threads would compete with it for the GIL.

Run: ``python bench/pages.py [--rounds 5] [--latency 0.05] [--limit 4]``
Goals: <= 0.5x at 50 ms; not worse than ~1.0x on loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pystac_axelglobe as ag

SERVER = r'''
import inspect, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import urllib3
from pystac_axelglobe.emulator import Emulator

latency = float(sys.argv[1])
native = "api_latency" in inspect.signature(Emulator.__init__).parameters
emu = Emulator(api_latency=latency) if native and latency else Emulator()
emu.__enter__()
api = emu.api_url


class Proxy(BaseHTTPRequestHandler):
    """Sleeps, then forwards the request to the emulator; its URLs become the proxy's."""

    protocol_version = "HTTP/1.1"
    pool = urllib3.PoolManager(maxsize=32)

    def do_GET(self):
        time.sleep(latency)
        upstream = api.split("/stac/")[0] + self.path
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        r = self.pool.request("GET", upstream, headers=headers, redirect=False,
                              preload_content=True)
        body = r.data.replace(api.encode(), self.server.url.encode())
        self.send_response(r.status)
        for key, value in r.headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding",
                                   "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


url = api
if latency and not native:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    proxy.daemon_threads = True
    proxy.url = url = f"http://127.0.0.1:{proxy.server_address[1]}" + "/stac/" + \
        api.split("/stac/", 1)[1]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
print(json.dumps({**emu.settings_kwargs(), "api_url": url,
                  "how": "emulator switch" if native else "proxy"}), flush=True)
sys.stdin.read()
'''


def serve(latency: float) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, json.loads(server.stdout.readline())


def timed(search: Callable[[], list[str]]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    ids = search()
    return time.perf_counter() - started, ids


def measure(kwargs: dict[str, Any], rounds: int, searches: int, limit: int,
            cache: str) -> tuple[list[float], float, float, int]:
    """Per round: concurrent / sequential time of ``searches`` searches each, alternating."""
    sequential = ag.open(**kwargs, cache_dir=cache, prefetch_pages=1)
    concurrent = ag.open(**kwargs, cache_dir=cache)

    def run(client: object) -> Callable[[], list[str]]:
        return lambda: [i.id for i in client.search(limit=limit).items()]  # type: ignore[attr-defined]

    truth = run(sequential)()
    assert run(concurrent)() == truth  # warm: token, connections
    ratios, seq_all, con_all = [], [], []
    for r in range(rounds):
        ts = tc = 0.0
        for n in range(searches):
            order = (sequential, concurrent) if (n + r) % 2 else (concurrent, sequential)
            for client in order:
                t, ids = timed(run(client))
                assert ids == truth, "different items or order"
                if client is sequential:
                    ts += t
                else:
                    tc += t
        ratios.append(tc / ts)
        seq_all.append(ts / searches)
        con_all.append(tc / searches)
    return ratios, statistics.median(seq_all), statistics.median(con_all), len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--limit", type=int, default=4)
    args = parser.parse_args()
    print(f"{'network':<34}{'pages':>6}{'sequential s':>14}{'ahead s':>10}"
          f"{'ratio median':>14}{'range':>16}")
    for latency, searches in ((0.0, 20), (args.latency, 3)):
        server, kwargs = serve(latency)
        how = kwargs.pop("how")
        try:
            with tempfile.TemporaryDirectory() as cache:
                ratios, ts, tc, items = measure(kwargs, args.rounds, searches, args.limit,
                                                cache)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=30)
        name = "loopback" if not latency else f"{latency * 1000:g} ms/answer ({how})"
        print(f"{name:<34}{-(-items // args.limit):>6}{ts:>14.3f}{tc:>10.3f}"
              f"{statistics.median(ratios):>13.2f}x{min(ratios):>8.2f}-{max(ratios):.2f}x")
    print("same item ids in the same order in every search; goals: <= 0.5x at 50 ms, "
          "~1.0x or better on loopback")


if __name__ == "__main__":
    main()
