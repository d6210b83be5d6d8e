"""download() and the files it writes: planted links, clashing names, concurrent writers.

Against the emulator: links planted in the output folder are never written through; names
that clash with temporaries are refused before any request; any number of threads and
processes downloading the same items into one folder end with whole files and nothing stray.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import pystac
import pytest

from pystac_axelglobe import _partfile, downloads
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.downloads import download
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import ConfigurationError, DownloadError

KEY = "band1"


def _auth(emu: Emulator) -> AxelGlobeAuth:
    return AxelGlobeAuth(**emu.settings_kwargs())


def _name(item: pystac.Item, key: str = KEY) -> str:
    return item.assets[key].href.rsplit("/", 1)[1]


def _source(emu: Emulator, item: pystac.Item, key: str = KEY) -> bytes:
    assert emu.archive is not None
    return emu.archive.asset_path(item.id, _name(item, key)).read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: file contents, link targets, folders."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            found[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[rel] = "<dir>"
        else:
            found[rel] = path.read_bytes()
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the download directory that a planted link points at."""
    folder = tmp_path / "outside"
    (folder / "victim_dir").mkdir(parents=True)
    (folder / "victim_dir" / "keep.txt").write_bytes(b"keep")
    (folder / "victim").write_bytes(b'{"etag": null, "size": 61753}')
    return folder


# --- planted links ---------------------------------------------------------------------------

PLANTS: dict[str, Callable[[Path, str, Path], None]] = {
    # name -> plant(item folder, file name, link target)
    "part": lambda d, n, t: (d / f"{n}.part").symlink_to(t),
    "part_json": lambda d, n, t: (d / f"{n}.part.json").symlink_to(t),
    "final": lambda d, n, t: (d / n).symlink_to(t),
    "old_json_temporary": lambda d, n, t: (d / f"{n}.part.json.tmp").symlink_to(t),
}


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_links_planted_beside_the_file_are_replaced_never_written_through(
    emulator: Emulator, tmp_path: Path, outside: Path, kind: str, dangling: bool
) -> None:
    item = emulator.items()[10]
    name = _name(item)
    folder = tmp_path / "out" / item.id
    folder.mkdir(parents=True)
    target = outside / ("nowhere" if dangling else "victim")
    PLANTS[kind](folder, name, target)
    before = _snapshot(outside)

    local = download(item, assets=KEY, directory=tmp_path / "out", auth=_auth(emulator),
                     progress=False)

    path = Path(local[0].assets[KEY].href)
    assert path == folder / name and not path.is_symlink() and path.is_file()
    assert _sha(path.read_bytes()) == _sha(_source(emulator, item))
    assert _snapshot(outside) == before  # the target is untouched, nothing created there
    left = sorted(p.name for p in folder.iterdir())
    expected = [name, f"{name}.part.json.tmp"] if kind == "old_json_temporary" else [name]
    assert left == expected


def test_hard_link_fifo_and_planted_record_are_not_trusted(
    emulator: Emulator, tmp_path: Path, outside: Path
) -> None:
    items = emulator.items()[11:14]
    folders = [tmp_path / "out" / i.id for i in items]
    for folder in folders:
        folder.mkdir(parents=True)
    # a hard link to a file outside, as .part: writing to it would change that file
    os.link(outside / "victim", folders[0] / f"{_name(items[0])}.part")
    # a FIFO as .part: opening it for writing would block forever
    os.mkfifo(folders[1] / f"{_name(items[1])}.part")
    # a real half .part, with a planted record (a link) claiming it is the current version
    half = _source(emulator, items[2])[:1000]
    (folders[2] / f"{_name(items[2])}.part").write_bytes(b"x" * len(half))
    (folders[2] / f"{_name(items[2])}.part.json").symlink_to(outside / "victim")
    before = _snapshot(outside)

    local = download(items, assets=KEY, directory=tmp_path / "out", auth=_auth(emulator),
                     progress=False)

    for item, got, folder in zip(items, local, folders, strict=True):
        assert Path(got.assets[KEY].href).read_bytes() == _source(emulator, item)
        assert sorted(p.name for p in folder.iterdir()) == [_name(item)]
    assert _snapshot(outside) == before


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-folder", "dangling"])
def test_item_folder_that_is_a_link_is_refused(
    emulator: Emulator, tmp_path: Path, outside: Path, dangling: bool
) -> None:
    item = emulator.items()[14]
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / item.id
    link.symlink_to(outside / ("nowhere" if dangling else "victim_dir"))
    auth = _auth(emulator)
    auth.provider.token()
    before = emulator.counters.storage_requests
    snapshot = _snapshot(outside)

    with pytest.raises(DownloadError) as info:
        download(item, assets=KEY, directory=tmp_path / "out", auth=auth, progress=False)

    reason = info.value.failures[f"{item.id}/{KEY}"]
    assert f"{link} is a symbolic link or not a folder" in reason
    assert _snapshot(outside) == snapshot
    assert link.is_symlink()  # the user's link is left alone
    assert emulator.counters.storage_requests == before  # refused before the transfer


def test_item_folder_swapped_for_a_link_mid_download_is_not_reported_as_success(
    emulator: Emulator, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = emulator.items()[15]
    out = tmp_path / "out"
    real_claim = _partfile.claim

    def claim_after_a_swap(folder: Any, name: str, **kwargs: Any) -> Any:
        # Between opening the item folder and writing into it, an attacker moves it away
        # and puts a link to a folder of theirs in its place.
        (out / item.id).rename(out / "moved")
        (out / item.id).symlink_to(outside / "victim_dir")
        return real_claim(folder, name, **kwargs)

    monkeypatch.setattr(downloads, "claim", claim_after_a_swap)
    before = _snapshot(outside)
    with pytest.raises(DownloadError, match="was replaced while downloading into it"):
        download(item, assets=KEY, directory=out, auth=_auth(emulator), progress=False)
    assert _snapshot(outside) == before
    # The bytes went where the folder was opened (now "moved"), whole.
    assert (out / "moved" / _name(item)).read_bytes() == _source(emulator, item)


# --- names that clash with temporaries ----------------------------------------------------------

@pytest.mark.parametrize("suffix", [".part", ".part.json"])
def test_asset_named_like_another_assets_temporary_is_refused_before_any_request(
    emulator: Emulator, tmp_path: Path, suffix: str
) -> None:
    item = emulator.items()[16].clone()
    item.add_asset("clash", pystac.Asset(href=item.assets["tci"].href + suffix))
    auth = _auth(emulator)
    auth.provider.token()
    before = emulator.counters.as_dict()
    with pytest.raises(ConfigurationError) as info:
        download(item, assets=["tci", "clash"], directory=tmp_path, auth=auth)
    clash = _name(item, "tci") + suffix
    assert str(info.value).startswith(
        f"{clash} is the name of an asset and of the partial download of {_name(item, 'tci')}")
    assert "separate calls" in str(info.value)
    assert emulator.counters.as_dict() == before
    assert list(tmp_path.iterdir()) == []


# --- concurrent writers -------------------------------------------------------------------------

KEYS = ["tci", "band0", "band1", "msi_udm", "thumbnail"]


def _expected(emu: Emulator, items: list[pystac.Item]) -> dict[str, str]:
    return {f"{i.id}/{_name(i, k)}": _sha(_source(emu, i, k)) for i in items for k in KEYS}


def _assert_whole_and_nothing_stray(out: Path, expected: dict[str, str]) -> None:
    files = {str(p.relative_to(out)): p for p in out.rglob("*") if not p.is_dir()}
    assert sorted(files) == sorted(expected), "stray or missing files"
    for rel, path in files.items():
        assert not path.is_symlink()
        assert _sha(path.read_bytes()) == expected[rel], f"{rel} differs from the archive"


def test_many_threads_download_the_same_files_into_one_folder(tmp_path: Path) -> None:
    with Emulator(storage_fault_rate=0.2, fault_kinds=("drop",), fault_seed=5,
                  storage_delay=0.01) as emu:
        items = emu.items()[:3]
        expected = _expected(emu, items)
        auth = _auth(emu)
        out = tmp_path / "out"
        problems: list[str] = []
        barrier = threading.Barrier(8)

        def work(n: int) -> None:
            barrier.wait()
            try:
                local = download(items, assets=KEYS, directory=out, auth=auth,
                                 progress=False, max_workers=3, overwrite=n % 4 == 0)
                for got in local:  # what is reported as done is whole at that moment
                    for key in KEYS:
                        path = Path(got.assets[key].href)
                        rel = str(path.relative_to(out))
                        if _sha(path.read_bytes()) != expected[rel]:
                            problems.append(f"thread {n}: {rel} differs")
            except Exception as err:  # every outcome is reported
                problems.append(f"thread {n}: {err!r}")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert problems == []
        assert emu.counters.faults > 0
        _assert_whole_and_nothing_stray(out, expected)


CHILD = """
import hashlib, json, sys, threading
from pathlib import Path
import pystac, pystac_axelglobe as ag

items = [pystac.Item.from_dict(d) for d in json.loads(Path(sys.argv[1]).read_text())]
out, expected = Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
keys = json.loads(sys.argv[4])
problems = []

def work(n):
    try:
        local = ag.download(items, assets=keys, directory=out, progress=False,
                            max_workers=3, overwrite=(n == 0))
        for got in local:
            for key in keys:
                path = Path(got.assets[key].href)
                rel = str(path.relative_to(out))
                if hashlib.sha256(path.read_bytes()).hexdigest() != expected[rel]:
                    problems.append(f"{rel} differs")
    except Exception as err:
        problems.append(repr(err))

threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(problems))
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_threads_in_three_processes_download_the_same_files_into_one_folder(
    tmp_path: Path,
) -> None:
    with Emulator(storage_fault_rate=0.2, fault_kinds=("drop",), fault_seed=9,
                  storage_delay=0.02) as emu:
        items = emu.items()[3:6]
        expected = _expected(emu, items)
        (tmp_path / "items.json").write_text(json.dumps([i.to_dict() for i in items]))
        (tmp_path / "expected.json").write_text(json.dumps(expected))
        out = tmp_path / "out"
        env = {**os.environ, **emu.env()}
        procs = [subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "items.json"), str(out),
             str(tmp_path / "expected.json"), json.dumps(KEYS)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
        results = [p.communicate(timeout=150) for p in procs]
        for proc, (stdout, stderr) in zip(procs, results, strict=True):
            assert proc.returncode == 0, stderr
            assert json.loads(stdout.strip().splitlines()[-1]) == [], stdout
        assert emu.counters.faults > 0
        # Each file was written by one process at a time: far fewer transfers than the
        # 3 x 4 x 15 the callers asked for (skips), though some overwrite=True ones repeat.
        assert emu.counters.storage_requests < 3 * 4 * len(expected)
        _assert_whole_and_nothing_stray(out, expected)


def test_a_folder_that_cannot_lock_still_downloads_with_a_warning(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    # Some network filesystems answer ENOLCK to flock: one downloader still gets its files.
    def no_locks(fd: int, blocking: bool = True) -> bool:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(filelock, "lock_descriptor", no_locks)
    monkeypatch.setattr(_partfile, "_warned", set())
    item = emulator.items()[17]
    local = download(item, assets=KEY, directory=tmp_path, auth=_auth(emulator),
                     progress=False)
    assert Path(local[0].assets[KEY].href).read_bytes() == _source(emulator, item)
    assert "cannot be locked (No locks available)" in caplog.text
