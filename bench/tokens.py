"""Benchmark of tokens and auth: token requests under load, and the per-request overhead.

Run: ``python bench/tokens.py [-P 4] [-T 8] [-N 100000] [-E 500]``

1. P spawned processes x T threads, each thread with its own ``AxelGlobeAuth`` making an API
   request against the emulator, all starting together with an empty token cache: how many
   token requests reached the emulator.
2. Cost of ``auth(prepared_request)`` with a warm token vs setting a static header on the
   same prepared requests (same process, side by side, best of 5 rounds).
3. End to end: GET of the landing page against the emulator with the auth vs a static
   header (alternating blocks, best of 5 rounds).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from typing import Any

import requests

from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator


def kwargs_of(emu: Emulator) -> dict[str, Any]:
    # settings_kwargs() is typed dict[str, str], which mypy will not spread over keywords
    # that include `settings: Settings | None`.
    return dict(emu.settings_kwargs())


def _worker(kwargs: dict[str, Any], threads: int, barrier: Any, out: Any) -> None:
    barrier.wait(120)
    statuses: list[int] = []

    def one() -> None:
        auth = AxelGlobeAuth(**kwargs)
        statuses.append(requests.get(kwargs["api_url"], auth=auth, timeout=60).status_code)

    pool = [threading.Thread(target=one) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(statuses)


def token_requests(processes: int, threads: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    with Emulator(restrict_after=3) as emu, tempfile.TemporaryDirectory() as cache:
        kwargs = {**kwargs_of(emu), "cache_dir": cache}
        barrier = ctx.Barrier(processes + 1)
        out = ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(kwargs, threads, barrier, out))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        barrier.wait(120)
        statuses = [s for _ in procs for s in out.get(timeout=300)]
        for p in procs:
            p.join()
        ok = sum(s == 200 for s in statuses)
        print(f"token requests: {emu.counters.token_requests} for {processes * threads} auths "
              f"({processes} processes x {threads} threads; {ok} requests answered 200)")


def _best(fn: Any, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def call_overhead(n: int) -> None:
    with Emulator() as emu, tempfile.TemporaryDirectory() as cache:
        auth = AxelGlobeAuth(**kwargs_of(emu), cache_dir=cache)
        static = auth.headers()["Authorization"]  # also warms the token
        reqs = [requests.Request("GET", f"{emu.api_url}/collections").prepare()
                for _ in range(n)]

        def with_auth() -> None:
            for r in reqs:
                auth(r)

        def with_static() -> None:
            for r in reqs:
                r.headers["Authorization"] = static

        t_auth = _best(with_auth)
        t_static = _best(with_static)
        print(f"auth(prepared) warm: {t_auth / n * 1e6:.3f} us/call; static header: "
              f"{t_static / n * 1e6:.3f} us/call; ratio {t_auth / t_static:.2f}x "
              f"(N={n}, best of 5)")
        print(f"  absolute overhead of the auth: {(t_auth - t_static) / n * 1e6:.3f} us/request")


def end_to_end(n: int) -> None:
    with Emulator() as emu, tempfile.TemporaryDirectory() as cache:
        auth = AxelGlobeAuth(**kwargs_of(emu), cache_dir=cache)
        headers = auth.headers()
        with requests.Session() as s_auth, requests.Session() as s_static:
            s_auth.auth = auth
            s_static.headers.update(headers)
            s_auth.get(emu.api_url, timeout=30)  # warm connections
            s_static.get(emu.api_url, timeout=30)

            def run(session: requests.Session) -> None:
                for _ in range(n):
                    session.get(emu.api_url, timeout=30).raise_for_status()

            t_auth = t_static = float("inf")
            for _ in range(5):  # alternate so machine load hits both alike
                t_auth = min(t_auth, _best(lambda: run(s_auth), 1))
                t_static = min(t_static, _best(lambda: run(s_static), 1))
        print(f"GET landing page: with auth {t_auth / n * 1e3:.3f} ms/request; static header "
              f"{t_static / n * 1e3:.3f} ms/request; ratio {t_auth / t_static:.3f}x "
              f"(N={n}, best of 5)")
        print(f"  token requests during the end-to-end runs: {emu.counters.token_requests}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-P", "--processes", type=int, default=4)
    parser.add_argument("-T", "--threads", type=int, default=8)
    parser.add_argument("-N", "--calls", type=int, default=100_000)
    parser.add_argument("-E", "--gets", type=int, default=500)
    args = parser.parse_args()
    token_requests(args.processes, args.threads)
    call_overhead(args.calls)
    end_to_end(args.gets)


if __name__ == "__main__":
    main()
