"""ag.load on a dask cluster of separate processes that share nothing with the caller.

The scheduler and two workers run as `python -m distributed.cli.dask_*` processes. Each
worker has its own empty AXELGLOBE_CACHE_DIR and no AXELGLOBE_* variable at all (no
secret, no URLs). The caller's token cache is a path relative to the caller's working
directory: on a worker (another working directory) that path does not exist, as on
another machine, so the workers cannot find the caller's cached token either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pystac
import pytest

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator

distributed = pytest.importorskip("distributed")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    # Upstream, not ours (see tests/test_datacube.py).
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
JAPAN_CAPTURE = "52eZg9k7rPEyYQGX"
CALLER_CACHE = "caller-token-cache"  # relative: see the module docstring


class Cluster(NamedTuple):
    scheduler_file: Path
    worker_caches: list[Path]
    worker_dirs: list[Path]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXELGLOBE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def _start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    scheduler_file = base / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                    base, _env(), base / "scheduler.log")]
    caches, dirs = [], []
    try:
        for n in (1, 2):
            home = base / f"worker{n}"
            cache = home / "own-token-cache"
            cache.mkdir(parents=True)
            caches.append(cache)
            dirs.append(home)
            procs.append(_start(
                ["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                 "--nthreads", "2", "--nworkers", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--name", f"worker{n}", "--local-directory", str(home),
                 "--death-timeout", "60"],
                home, _env(AXELGLOBE_CACHE_DIR=str(cache)), base / f"worker{n}.log"))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (base / "scheduler.log").read_text()
            assert procs[0].poll() is None, (base / "scheduler.log").read_text()
            time.sleep(0.1)
        with distributed.Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield Cluster(scheduler_file, caches, dirs)
    finally:
        for proc in reversed(procs):  # workers first, then the scheduler
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The caller's working directory, with its token cache at a relative path."""
    home = tmp_path / "caller"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("AXELGLOBE_CACHE_DIR", CALLER_CACHE)
    return home


def _capture(emu: Emulator) -> list[pystac.Item]:
    return [i for i in emu.items() if i.properties.get("ag:capture_id") == JAPAN_CAPTURE]


def _worker_environ(client: Any) -> dict[str, dict[str, str | None]]:
    def look() -> dict[str, str | None]:
        return {"secret": os.environ.get("AXELGLOBE_CLIENT_SECRET"),
                "cache": os.environ.get("AXELGLOBE_CACHE_DIR"), "cwd": os.getcwd()}

    found: dict[str, dict[str, str | None]] = client.run(look)
    return found


def test_workers_without_secret_or_shared_cache_compute_with_the_callers_one_token(
        cluster: Cluster, caller: Path) -> None:
    with Emulator() as emu:
        auth = ag.AxelGlobeAuth(**emu.settings_kwargs())
        items = _capture(emu)
        local = ag.load(items, bands=["red", "nir"], auth=auth)  # read here, no dask
        assert emu.counters.token_requests == 1
        redirects_here = emu.counters.redirects

        with distributed.Client(scheduler_file=str(cluster.scheduler_file)) as client:
            environ = _worker_environ(client)
            assert len(environ) == 2
            assert all(e["secret"] is None for e in environ.values())
            assert {e["cache"] for e in environ.values()} == {str(c) for c in
                                                              cluster.worker_caches}
            ds = ag.load(items, bands=["red", "nir"], chunks={"x": 256, "y": 256}, auth=auth)
            out = ds.compute()
            # a second load of the same credential: nothing registered twice, no new token
            again = ag.load(items[:1], bands=["red"], chunks={}, auth=auth).compute()

        for var in ("red", "nir"):
            np.testing.assert_array_equal(out[var].values, local[var].values)
        assert again.red.shape[1:] != out.red.shape[1:]  # one tile, not the mosaic
        # the workers resolved the hrefs themselves, with the caller's token
        assert emu.counters.redirects >= redirects_here + 2 * len(items)
        assert emu.counters.token_requests == 1
        assert emu.counters.storage_requests_with_authorization == 0
    # each worker cached the token it was handed in its own folder; none saw the caller's
    for cache, home in zip(cluster.worker_caches, cluster.worker_dirs):
        assert list((cache / "tokens").glob("*.json")), cache
        assert not (home / CALLER_CACHE).exists()


def test_tokens_expiring_during_a_job_are_renewed_once_for_the_whole_cluster(
        cluster: Cluster, caller: Path) -> None:
    lifetime = 4.0
    issued: list[float] = []
    # 4 s tokens, and presigned URLs that the workers resolve again (with a token) every
    # couple of seconds, while the cluster computes for three token lifetimes.
    with Emulator(token_lifetime=lifetime, presign_lifetime=3, storage_delay=0.05) as emu:
        token = emu._token

        def timed(request: Any) -> Any:
            issued.append(time.time())
            return token(request)

        emu._token = timed  # type: ignore[method-assign]
        auth = ag.AxelGlobeAuth(**emu.settings_kwargs())
        items = _capture(emu)
        local = ag.load(items, bands=["red"], auth=auth)
        with distributed.Client(scheduler_file=str(cluster.scheduler_file)) as client:
            ds = ag.load(items, bands=["red"], chunks={"x": 128, "y": 128}, auth=auth,
                         min_validity=1)
            redirects = emu.counters.redirects
            started = time.time()
            rounds = 0
            while time.time() - started < 3 * lifetime:
                out = client.compute(ds).result()
                np.testing.assert_array_equal(out.red.values, local.red.values)
                rounds += 1
            ended = time.time()
        redirects = emu.counters.redirects - redirects
    assert redirects >= rounds * len(items) > 0  # the workers kept resolving, with tokens
    # From the first token to the end of the job, tokens were needed all along: at least
    # one per lifetime. The caller renews a token when a quarter of its lifetime is left
    # (the provider's margin), so one token serves 0.75 * lifetime: the whole cluster needs
    # one per such period, plus the first. One per worker would be twice as many.
    span = ended - issued[0]
    assert span / lifetime <= len(issued) <= span // (0.75 * lifetime) + 1, (issued, span)
    assert (np.diff(issued) >= 0.75 * lifetime - 0.5).all(), np.diff(issued)
    assert emu.counters.token_requests == len(issued)
