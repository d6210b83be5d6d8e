"""The example scripts run as a user runs them: a subprocess, with and without a server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pystac_axelglobe.emulator import Emulator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAPTURE = "52eZg9k7rPEyYQGX"


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)


def test_search_example_starts_its_own_emulator(tmp_path: Path, emulator: Emulator) -> None:
    assert "AXELGLOBE_API_URL" not in os.environ
    before = emulator.counters.search_requests
    proc = run_example("search.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "AXELGLOBE_API_URL is not set: using the built-in emulator." in proc.stdout
    assert emulator.counters.search_requests == before  # not the session's emulator
    assert emulator.archive is not None
    capture = [i for i in emulator.archive.items(emulator.api_url)
               if i["properties"]["ag:capture_id"] == CAPTURE]
    found = re.findall(r"^\s*(\d+) item\(s\): (.+)$", proc.stdout, flags=re.M)
    counts = {name: int(n) for n, name in found}
    assert len(counts) == 4
    assert counts[f"capture {CAPTURE}"] == len(capture)


def test_search_example_uses_the_configured_api(tmp_path: Path, emulator_env: Emulator) -> None:
    before = emulator_env.counters.search_requests
    proc = run_example("search.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "built-in emulator" not in proc.stdout
    assert emulator_env.counters.search_requests > before  # it talked to our server
    # The table lists the AOI-cloud-cover items, each with its capture id.
    rows = [line.split() for line in proc.stdout.splitlines()
            if re.match(r"^[0-9a-f-]{36} ", line)]
    assert rows and all(len(row[-1]) == 16 for row in rows)


def test_download_example_writes_the_capture(tmp_path: Path, emulator_env: Emulator) -> None:
    assert emulator_env.archive is not None
    out = tmp_path / "files"
    proc = run_example("download.py", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    capture = [i for i in emulator_env.archive.items(emulator_env.api_url)
               if i["properties"]["ag:capture_id"] == CAPTURE]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == 2 * len(capture)
    for path in files:
        item_id = path.name.split("_")[1]
        original = emulator_env.archive.asset_path(item_id, path.name)
        assert path.read_bytes() == original.read_bytes()
        assert f"{path}  {path.stat().st_size} bytes" in proc.stdout
