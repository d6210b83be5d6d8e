"""ag.load on a dask cluster of separate processes that share nothing with the caller.

The scheduler and two workers run as `python -m distributed.cli.dask_*` processes. Each
worker has its own empty AXELGLOBE_CACHE_DIR and no AXELGLOBE_* variable at all (no
secret, no URLs). The caller's token cache is a path relative to the caller's working
directory: on a worker (another working directory) that path does not exist, as on
another machine, so the workers cannot find the caller's cached token either.
"""

from __future__ import annotations

import os
import pickle
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
from pystac_axelglobe import cluster as ag_cluster
from pystac_axelglobe import tokens as tokens_module
from pystac_axelglobe._cluster_channel import Source, channel_names
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import APIRequestError, ConfigurationError
from pystac_axelglobe.settings import Settings
from pystac_axelglobe.tokens import Token, TokenProvider, credential_key, set_token_source

distributed = pytest.importorskip("distributed")

pytestmark = [
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
        with distributed.Client(scheduler_file=str(scheduler_file), timeout=60,
                                set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield Cluster(scheduler_file, caches, dirs)
        # Not the default client: shutdown() would leave dask configured for a client that
        # is gone, and later tests' dask computations would fail.
        with distributed.Client(scheduler_file=str(scheduler_file), timeout=30,
                                set_as_default=False) as client:
            client.shutdown()  # the scheduler closes the workers: quicker than signals
    finally:
        for proc in reversed(procs):  # workers first, then the scheduler
            if proc.poll() is None:
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


def _scheduler_state(dask_scheduler: Any) -> bytes:
    # the registered worker plugins and every distributed.Variable's value
    variables = dask_scheduler.extensions["variables"].variables
    return pickle.dumps((dask_scheduler.worker_plugins, variables))


def _worker_environ(client: Any) -> dict[str, dict[str, str | None]]:
    def look() -> dict[str, str | None]:
        return {"secret": os.environ.get("AXELGLOBE_CLIENT_SECRET"),
                "cache": os.environ.get("AXELGLOBE_CACHE_DIR"), "cwd": os.getcwd()}

    found: dict[str, dict[str, str | None]] = client.run(look)
    return found


@pytest.mark.slow
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
            # the workers resolved the hrefs themselves, with the caller's token
            assert emu.counters.redirects >= redirects_here + 2 * len(items)
            assert emu.counters.token_requests == 1

            # The token is revoked: both workers get 401 for it, ask the caller for another,
            # and the caller fetches one for them all. (A second load of the credential
            # registers nothing again.)
            emu.revoke_tokens()
            blue = ag.load(items, bands=["blue"], chunks={}, auth=auth).compute()
            assert emu.counters.token_requests == 2
            # what crossed the wire: the token, in the scheduler's memory; never the secret
            on_scheduler = client.run_on_scheduler(_scheduler_state)
            assert emu.client_secret.encode() not in on_scheduler
            assert auth.provider.token().access_token.encode() in on_scheduler

        for var in ("red", "nir"):
            np.testing.assert_array_equal(out[var].values, local[var].values)
        local_blue = ag.load(items, bands=["blue"], auth=auth)  # the renewed token, here too
        np.testing.assert_array_equal(blue.blue.values, local_blue.blue.values)
        assert emu.counters.token_requests == 2
        assert emu.counters.storage_requests_with_authorization == 0
    # each worker cached the token it was handed in its own folder; none saw the caller's
    for cache, home in zip(cluster.worker_caches, cluster.worker_dirs, strict=True):
        assert list((cache / "tokens").glob("*.json")), cache
        assert not (home / CALLER_CACHE).exists()


@pytest.mark.slow
def test_tokens_expiring_during_a_job_are_renewed_once_for_the_whole_cluster(
        cluster: Cluster, caller: Path) -> None:
    lifetime = 4.0
    # 4 s tokens, and presigned URLs that the workers resolve again (with a token) every
    # couple of seconds, while the cluster computes for three token lifetimes.
    with Emulator(token_lifetime=lifetime, presign_lifetime=3, storage_delay=0.05) as emu:
        auth = ag.AxelGlobeAuth(**emu.settings_kwargs())
        items = _capture(emu)
        local = ag.load(items, bands=["red"], auth=auth)
        with distributed.Client(scheduler_file=str(cluster.scheduler_file)) as client:
            ds = ag.load(items, bands=["red"], chunks={"x": 128, "y": 128}, auth=auth,
                         min_validity=1)
            client.compute(ds).result()  # warm-up: fresh worker processes import a lot
            redirects = emu.counters.redirects
            started = time.time()
            rounds = 0
            while time.time() - started < 3 * lifetime:
                out = client.compute(ds).result()
                np.testing.assert_array_equal(out.red.values, local.red.values)
                rounds += 1
            ended = time.time()
        redirects = emu.counters.redirects - redirects
        issued = emu.token_times
    # the workers kept resolving the hrefs (3 s URLs), with tokens, round after round
    assert rounds >= 2 and redirects >= 2 * len(items), (rounds, redirects)
    # While the job ran, tokens were needed all along: beyond the one in hand when it
    # started, at least one per lifetime. The caller renews a token when a quarter of its
    # lifetime is left (the provider's margin), so one token serves 0.75 * lifetime: the
    # whole cluster needs at most one per such period, plus the first. One per worker would
    # be twice as many.
    renewed = [t for t in issued if t > started]
    assert len(renewed) >= (ended - started) / lifetime - 1, (issued, started, ended)
    assert len(issued) <= (ended - issued[0]) // (0.75 * lifetime) + 1, (issued, ended)
    assert (np.diff(issued) >= 0.75 * lifetime - 0.5).all(), np.diff(issued)
    assert emu.counters.token_requests == len(issued)


def _workers_by_name(client: Any, expected: set[str]) -> dict[str, str]:
    """The scheduler's live ``{name: address}``, once every expected worker has (re)joined."""
    def names(dask_scheduler: Any) -> dict[str, str]:
        return {str(w.name): a for a, w in dask_scheduler.workers.items()}

    deadline = time.monotonic() + 60  # a restarted worker on a loaded machine takes seconds
    while (found := dict(client.run_on_scheduler(names))).keys() < expected:
        assert time.monotonic() < deadline, f"workers {sorted(found)} never became {expected}"
        time.sleep(0.2)
    return found


@pytest.mark.slow
def test_a_restarted_worker_process_gets_the_token_through_the_plugin_again(
        cluster: Cluster, caller: Path) -> None:
    with Emulator() as emu:
        auth = ag.AxelGlobeAuth(**emu.settings_kwargs())
        items = _capture(emu)[:1]
        local = ag.load(items, bands=["red"], auth=auth)
        with distributed.Client(scheduler_file=str(cluster.scheduler_file)) as client:
            ds = ag.load(items, bands=["red"], chunks={}, auth=auth)  # registers the plugin
            pids = client.run(os.getpid)
            # a new worker process: nothing in memory, nothing installed (the scheduler
            # sends its plugins to it as to any worker that joins)
            client.restart_workers(["worker1"])
            restarted = _workers_by_name(client, expected={"worker0", "worker1"})
            assert client.run(os.getpid)[restarted["worker1"]] not in pids.values()
            out = client.compute(ds, workers=[restarted["worker1"]]).result()
        np.testing.assert_array_equal(out.red.values, local.red.values)
        assert emu.counters.token_requests == 1


# --------------------------------------------------------------------------- the token source
# What a worker does with the hook, without a cluster: a provider without the secret whose
# credential has a token source.


@pytest.fixture
def source_key(emulator: Emulator) -> Iterator[tuple[str, str, str]]:
    key = credential_key(Settings.from_env(**emulator.settings_kwargs()))
    yield key
    set_token_source(key, None)


def _worker_settings(emu: Emulator, cache: Path) -> Settings:
    kwargs: dict[str, Any] = dict(emu.settings_kwargs())
    del kwargs["client_secret"]
    return Settings.from_env(**kwargs, cache_dir=cache)


def test_a_token_source_is_asked_instead_of_the_endpoint_and_its_token_cached(
        emulator: Emulator, source_key: tuple[str, str, str], tmp_path: Path) -> None:
    asked: list[str | None] = []
    handed = Token(emulator.token(), expires_at=time.time() + 3600, issued_at=time.time())

    def source(settings: Settings, failed: str | None, fresh: Any) -> Token:
        asked.append(failed)
        assert settings.client_secret is None and fresh(handed)
        return handed

    set_token_source(source_key, source)
    before = emulator.counters.token_requests
    provider = TokenProvider(_worker_settings(emulator, tmp_path))

    assert provider.token() == handed
    # another process of this machine finds it in the cache file: no second ask
    assert TokenProvider(_worker_settings(emulator, tmp_path)).token() == handed
    assert asked == [None]
    assert emulator.counters.token_requests == before
    # after a 401 the source is told which token failed
    provider.refresh(handed.access_token)
    assert asked == [None, handed.access_token]


def test_a_token_source_is_asked_without_holding_the_token_cache_lock(
        emulator: Emulator, source_key: tuple[str, str, str], tmp_path: Path) -> None:
    # On one machine (a LocalCluster) the dask client and its workers share the token
    # cache; the client renews the token under the cache lock while a worker waits for
    # it. A worker holding the lock meanwhile would wait for itself until the lock timed out.
    client_side = TokenProvider(Settings.from_env(**emulator.settings_kwargs(),
                                                  cache_dir=tmp_path), deadline=1)

    def source(settings: Settings, failed: str | None, fresh: Any) -> Token:
        # the client is another process, where no source is installed
        set_token_source(source_key, None)
        try:
            return client_side.token()
        finally:
            set_token_source(source_key, source)

    set_token_source(source_key, source)
    worker_side = TokenProvider(_worker_settings(emulator, tmp_path), deadline=1)

    started = time.monotonic()
    assert worker_side.token() == client_side.token()
    assert time.monotonic() - started < 10


def test_a_token_already_due_for_refresh_is_used_without_asking_on_every_request(
        emulator: Emulator, source_key: tuple[str, str, str], tmp_path: Path) -> None:
    # A client whose clock is behind the worker's hands over a token the worker would
    # already refresh: it is used for a while, not asked for again before every request.
    now = time.time()
    due = Token(emulator.token(), expires_at=now + 30, issued_at=now - 200)
    asked: list[str | None] = []

    def source(settings: Settings, failed: str | None, fresh: Any) -> Token:
        asked.append(failed)
        assert not fresh(due)
        return due

    set_token_source(source_key, source)
    provider = TokenProvider(_worker_settings(emulator, tmp_path))

    assert [provider.token() for _ in range(20)] == [due] * 20
    assert asked == [None]


def test_without_a_source_a_worker_without_secret_says_what_to_set(
        emulator: Emulator, tmp_path: Path) -> None:
    provider = TokenProvider(_worker_settings(emulator, tmp_path))
    with pytest.raises(ConfigurationError, match="AXELGLOBE_CLIENT_SECRET"):
        provider.token()


def test_share_token_needs_an_active_client_and_a_sane_timeout(emulator_env: Emulator) -> None:
    assert ag_cluster.active_client() is None
    with pytest.raises(ConfigurationError, match="no distributed client is active"):
        ag_cluster.share_token()
    with pytest.raises(ConfigurationError, match="timeout must be positive seconds"):
        ag_cluster.share_token(client=object(), timeout=0)  # type: ignore[arg-type]


def test_a_worker_whose_client_is_gone_fails_with_what_to_do(
        emulator: Emulator, tmp_path: Path) -> None:
    # The source on a worker that cannot reach the client (here: no cluster at all)
    class Unreachable:
        status = "closed"

    source = Source(channel_names(("t", "c", "a")), 0.2, Unreachable())  # type: ignore[arg-type]
    source._client = lambda: (_ for _ in ()).throw(OSError("connection refused"))  # type: ignore[method-assign]
    with pytest.raises(APIRequestError, match="Keep the client that called ag.load"):
        source(_worker_settings(emulator, tmp_path), None, lambda t: True)
    with_secret = Settings.from_env(**emulator.settings_kwargs(), cache_dir=tmp_path)
    assert source(with_secret, None, lambda t: True) is None  # it fetches its own then


def test_an_in_process_cluster_uses_this_processs_provider_and_sharing_can_be_declined(
        emulator: Emulator) -> None:
    auth = ag.AxelGlobeAuth(**emulator.settings_kwargs())
    key = credential_key(auth.settings)
    items = _capture(emulator)[:1]
    plugin = channel_names(key).plugin
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                                  host="127.0.0.1", protocol="tcp",
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        declined = ag.load(items, bands=["red"], chunks={}, auth=auth, share_token=False)
        assert plugin not in client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins))

        shared = ag.load(items, bands=["red"], chunks={}, auth=auth)
        assert plugin in client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins))
        # the worker runs in this process, beside the provider with the secret: it must
        # not ask itself for tokens through the scheduler
        assert key not in tokens_module._SOURCES
        broker = ag_cluster._BROKERS[(client.id, key)]
        np.testing.assert_array_equal(shared.red.values, declined.red.values)
    broker._thread.join(timeout=10)  # it notices that its client closed
    assert not broker._thread.is_alive()
    assert (client.id, key) not in ag_cluster._BROKERS and key not in ag_cluster._HOSTED
