"""The servers run in a child process: GDAL readers in the user's process cannot starve them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from pystac_axelglobe.emulator import Emulator

# A user's script: an emulator, then a plain rasterio read of a presigned URL of its storage,
# in the same process. GDAL holds the GIL while it waits for the answer: servers in this
# process's threads could never answer it.
READ_IN_THE_SAME_PROCESS = textwrap.dedent("""
    import hashlib, sys
    import rasterio, requests
    from pystac_axelglobe.emulator import Emulator

    with Emulator() as emu:
        item = emu.items()[0]
        href = item.assets["band1"].href
        r = requests.get(href, headers={"Authorization": f"Bearer {emu.token()}"},
                         allow_redirects=False, timeout=10)
        with rasterio.open(r.headers["Location"]) as src:
            remote = src.read(1)
        with rasterio.open(emu.archive.assets(item.id)["band1"]) as src:
            local = src.read(1)
        print((remote == local).all(), remote.shape, emu.counters.storage_requests > 0)
""")


def test_rasterio_reads_an_emulator_of_the_same_process() -> None:
    done = subprocess.run([sys.executable, "-c", READ_IN_THE_SAME_PROCESS],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "(256,", "256)", "True"]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# The user's process: an emulator, its servers' pid printed, then an end of some kind.
ENDS = {
    "exits": "pass",
    "is interrupted": "import os, signal; os.kill(os.getpid(), signal.SIGINT); time.sleep(30)",
    "is killed": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("end", ENDS)
def test_the_servers_process_ends_with_the_users_process(end: str) -> None:
    script = textwrap.dedent(f"""
        import os, sys, time
        from pystac_axelglobe.emulator import Emulator

        emu = Emulator().start()
        assert emu.server_pid != os.getpid()
        print(emu.server_pid, flush=True)
        {ENDS[end]}
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as user:
        assert user.stdout is not None
        server = int(user.stdout.readline())
        user.wait(timeout=60)
    assert _gone_within(server, 10), f"the servers' process outlived the user's ({end})"


def test_counters_switches_and_commands_cross_to_the_servers_process() -> None:
    with Emulator() as emu:
        assert emu.server_pid not in (None, os.getpid())
        headers = {"Authorization": f"Bearer {emu.token()}"}
        counters = emu.counters  # one object, live
        requests.get(emu.api_url, headers=headers, timeout=10)
        assert counters.api_requests == 1 and emu.requests[0][1].endswith("/axelglobe")
        emu.revoke_tokens()
        assert requests.get(emu.api_url, headers=headers, timeout=10).status_code == 401
        emu.reset_counters()
        assert counters.as_dict() == dict.fromkeys(counters.as_dict(), 0)
    assert emu.server_pid is None
    assert counters.api_requests == 0  # still readable after the stop


# In a process of its own: killing the servers' process would end the session emulator's.
A_SERVERS_PROCESS_DIES = textwrap.dedent("""
    import os, signal, time
    import requests
    from pystac_axelglobe.emulator import Emulator
    from pystac_axelglobe.emulator.host import HostError

    with Emulator() as emu:
        pid = emu.server_pid
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        try:
            emu.token()
        except HostError as err:
            print(err)
    with Emulator() as again:  # the next emulator gets a new one
        print(again.server_pid not in (None, pid), requests.get(again.api_url).status_code)
""")


def test_a_server_process_that_died_says_so() -> None:
    done = subprocess.run([sys.executable, "-c", A_SERVERS_PROCESS_DIES],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "the emulator's server process is gone (exit code -9); its error, if any, is above",
        "True 401",
    ]


def test_in_process_servers_still_serve() -> None:
    with Emulator(in_process=True) as emu:
        assert emu.server_pid == os.getpid()
        r = requests.get(emu.api_url, headers={"Authorization": f"Bearer {emu.token()}"},
                         timeout=10)
        assert r.status_code == 200 and emu.counters.api_requests == 1
