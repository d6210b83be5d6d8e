"""download(): byte-identical files, resumed transfers, atomic renames, against the emulator."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pystac
import pytest
import urllib3.exceptions
from tqdm import tqdm
from urllib3.util.retry import Retry

from pystac_axelglobe import _ahead, _http, _partfile, downloads, presigned
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.downloads import download
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive
from pystac_axelglobe.errors import AssetError, ConfigurationError, DownloadError
from pystac_axelglobe.presigned import PresignedURL, resolve
from tests.fake_api import LoopbackHTTPServer


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None
    return emu.archive


def _auth(emu: Emulator) -> AxelGlobeAuth:
    return AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                         token_url=emu.token_url, audience=emu.audience)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _archive_file(emu: Emulator, item: pystac.Item, key: str) -> Path:
    return _archive(emu).asset_path(item.id, item.assets[key].href.rsplit("/", 1)[1])


def _assert_identical(emu: Emulator, items: list[pystac.Item], local: list[pystac.Item],
                      keys: list[str] | None = None) -> int:
    """Every downloaded file equals the archive's; returns the bytes compared."""
    total = 0
    for item, got in zip(items, local, strict=True):
        for key in keys or list(item.assets):
            path = Path(got.assets[key].href)
            assert path.is_absolute()
            source = _archive_file(emu, item, key)
            assert _sha(path) == _sha(source), f"{item.id}/{key} differs"
            total += source.stat().st_size
    return total


def _stray(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".part")]


def test_whole_capture_byte_identical_and_no_authorization_at_storage(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ~/.netrc entry for the storage host must not smuggle an Authorization header in.
    netrc = tmp_path / "netrc"
    storage_host = emulator.storage_url.split("//")[1].split(":")[0]
    netrc.write_text(f"machine {storage_host} login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    items = emulator.items()
    capture = items[0].properties["ag:capture_id"]
    capture_items = [i for i in items if i.properties.get("ag:capture_id") == capture]
    n_files = sum(len(i.assets) for i in capture_items)
    auth = _auth(emulator)
    out = tmp_path / "out"
    before = emulator.counters.as_dict()

    local = download(capture_items, directory=out, auth=auth, progress=False)

    after = emulator.counters.as_dict()
    assert [i.id for i in local] == [i.id for i in capture_items]
    _assert_identical(emulator, capture_items, local)
    for item, got in zip(capture_items, local, strict=True):
        for key, asset in item.assets.items():
            name = asset.href.rsplit("/", 1)[1]
            assert got.assets[key].href == str(out.resolve() / item.id / name)
        assert item.assets["tci"].href.startswith("http")  # the originals are untouched
    assert after["storage_requests"] - before["storage_requests"] == n_files
    assert after["storage_requests_with_authorization"] == 0
    assert after["storage_head_requests"] == before["storage_head_requests"]
    assert _stray(out) == []

    # Re-run: complete files are skipped without a single request.
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = download(capture_items, directory=out, auth=auth, progress=False)
    assert emulator.counters.as_dict() == after
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    assert [i.to_dict() for i in again] == [i.to_dict() for i in local]

    # overwrite=True fetches them again.
    download(capture_items[:1], assets="tci", directory=out, auth=auth, overwrite=True,
             progress=False)
    assert emulator.counters.storage_requests == after["storage_requests"] + 1


def test_items_found_with_open_download_with_its_credentials(
    emulator: Emulator, tmp_path: Path
) -> None:
    # No AXELGLOBE_* in the environment: the credentials were given to ag.open() only.
    import pystac_axelglobe as ag

    client = ag.open(**emulator.settings_kwargs())
    items = client.search(filter=ag.filters.capture_id("52eZg9k7rPEyYQGX")).item_collection()
    assert len(items) >= 2
    local = ag.download(items, assets=["thumbnail"], directory=tmp_path, progress=False)
    _assert_identical(emulator, list(items), local, ["thumbnail"])


def test_faults_everywhere_still_byte_identical_and_resumed(tmp_path: Path) -> None:
    with Emulator(storage_fault_rate=0.2, api_fault_rate=0.1, fault_seed=7) as emu:
        items = emu.items()[:4]
        local = download(items, directory=tmp_path, auth=_auth(emu), progress=False)
        total = _assert_identical(emu, items, local)
        assert emu.counters.faults >= 5
        assert _stray(tmp_path) == []
        # Dropped transfers resume with Range: the bytes re-sent stay small.
        assert emu.counters.storage_bytes_sent < 1.5 * total
        assert emu.counters.storage_requests_with_authorization == 0


def test_dropped_connections_resume_from_the_bytes_written(tmp_path: Path) -> None:
    with Emulator(storage_fault_rate=0.5, fault_kinds=("drop",), fault_seed=1) as emu:
        items = emu.items()[:2]
        local = download(items, directory=tmp_path, auth=_auth(emu), progress=False)
        total = _assert_identical(emu, items, local)
        assert emu.counters.faults >= 5  # each cut half-way through a response
        # Starting over would re-send half a file per drop; resuming re-sends nothing.
        assert emu.counters.storage_bytes_sent <= total * 1.02
        assert _stray(tmp_path) == []


def test_expired_presigned_url_is_resolved_again(tmp_path: Path) -> None:
    with Emulator(presign_lifetime=1) as emu:
        auth = _auth(emu)
        item = emu.items()[0]
        href = item.assets["tci"].href
        stale = resolve(href, auth=auth)
        time.sleep(max(0.0, stale.remaining()) + 1.1)  # storage now refuses it (403)
        # Make the cache believe it is still good, as a URL revoked early would be.
        presigned._cache[presigned._cache_key(href, auth)] = presigned._Cached(
            PresignedURL(stale.url, time.time() + 600), lifetime=900)
        local = download(item, assets=["tci"], directory=tmp_path, auth=auth, progress=False)
        _assert_identical(emu, [item], local, ["tci"])
        assert emu.counters.redirects == 2  # the stale one, then a fresh one after the 403
        assert emu.counters.storage_requests == 2


@pytest.mark.slow
def test_two_second_urls_on_slow_storage_are_re_resolved(tmp_path: Path) -> None:
    # The large archive: files of several 64 KiB chunks, so storage_delay slows them down.
    # fault_seed=1: both first transfers are cut half-way (and later ones at random).
    with Emulator(scale="large", presign_lifetime=2, storage_fault_rate=0.5,
                  fault_kinds=("drop",), fault_seed=1) as emu:
        item = emu.items()[0]
        keys = ["band1", "band2"]
        chunks = max(_archive_file(emu, item, k).stat().st_size // 65536 for k in keys)
        assert chunks >= 2, "the large archive's bands should span several 64 KiB chunks"
        emu.storage_delay = 3.0 / chunks  # each file takes ~3 s: longer than a URL lives
        local = download(item, assets=keys, directory=tmp_path, auth=_auth(emu),
                         progress=False)
        _assert_identical(emu, [item], local, keys)
        assert emu.counters.faults >= 2
        # Resumed transfers started after their first URL had expired: fresh ones were used.
        assert emu.counters.redirects > len(keys)
        assert _stray(tmp_path) == []


@pytest.mark.slow
def test_killed_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    with Emulator(scale="large", storage_delay=0.5) as emu:
        item = emu.items()[0]
        item_file = tmp_path / "item.json"
        item_file.write_text(json.dumps(item.to_dict()))
        out = tmp_path / "out"
        script = (
            "import json, signal, sys, pystac, pystac_axelglobe as ag\n"
            # as in a terminal: a child started by a non-interactive shell in the
            # background (some CI runners) inherits SIGINT ignored
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "item = pystac.Item.from_dict(json.load(open(sys.argv[1])))\n"
            "ag.download(item, assets=['tci'], directory=sys.argv[2], progress=False)\n"
        )
        env = {**os.environ, **emu.env()}
        proc = subprocess.Popen([sys.executable, "-c", script, str(item_file), str(out)],
                                env=env)
        name = item.assets["tci"].href.rsplit("/", 1)[1]
        part = out / item.id / f"{name}.part"
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size > 0):
                assert proc.poll() is None, "the download finished or died too early"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        kept = part.stat().st_size
        size = _archive_file(emu, item, "tci").stat().st_size
        assert 0 < kept < size
        assert not (out / item.id / name).exists()  # never a partial file under the name

        emu.storage_delay = 0.0
        emu.reset_counters()
        local = download(item, assets=["tci"], directory=out, auth=_auth(emu),
                         progress=False)
        _assert_identical(emu, [item], local, ["tci"])
        # Only the missing tail was sent (a Range request from the .part's size).
        assert emu.counters.storage_bytes_sent == size - kept
        assert emu.counters.storage_requests == 1
        assert not part.exists()


def test_a_failed_asset_does_not_stop_the_others(emulator: Emulator, tmp_path: Path) -> None:
    item = emulator.items()[6]
    broken = item.clone()
    base = item.assets["tci"].href.rsplit("/", 1)[0]
    broken.add_asset("extra", pystac.Asset(href=f"{base}/missing_extra.tif"))
    with pytest.raises(DownloadError) as info:
        download(broken, assets=["tci", "extra", "band1"], directory=tmp_path,
                 auth=_auth(emulator), progress=False)
    assert list(info.value.failures) == [f"{item.id}/extra"]
    assert "HTTP 404" in info.value.failures[f"{item.id}/extra"]
    assert f"{item.id}/extra" in str(info.value)
    assert not (tmp_path / item.id / "missing_extra.tif").exists()
    assert sorted(p.name for p in (tmp_path / item.id).iterdir()) == sorted(
        item.assets[k].href.rsplit("/", 1)[1] for k in ("tci", "band1"))
    for key in ("tci", "band1"):
        name = item.assets[key].href.rsplit("/", 1)[1]
        assert _sha(tmp_path / item.id / name) == _sha(_archive_file(emulator, item, key))


def test_storage_failing_for_good_names_every_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "DOWNLOAD_RETRY", Retry(
        total=2, backoff_factor=0, status_forcelist=[503], allowed_methods=["GET"]))
    with Emulator(storage_fault_rate=1.0, fault_kinds=("503",)) as emu:
        item = emu.items()[0]
        keys = ["tci", "band0", "thumbnail"]
        with pytest.raises(DownloadError) as info:
            download(item, assets=keys, directory=tmp_path, auth=_auth(emu), progress=False)
        assert list(info.value.failures) == [f"{item.id}/{k}" for k in keys]
        for reason in info.value.failures.values():
            assert reason == "gave up after 3 attempts: HTTP 503"
        assert "X-Amz" not in str(info.value)
        assert emu.counters.storage_requests == 3 * len(keys)
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_bad_input_is_refused_before_any_request(emulator: Emulator, tmp_path: Path) -> None:
    items = emulator.items()[:2]
    auth = _auth(emulator)
    auth.provider.token()
    before = (len(emulator.requests), emulator.counters.storage_requests)

    with pytest.raises(ConfigurationError) as info:
        download(items, assets=["tci", "nir", "rgb"], directory=tmp_path, auth=auth)
    message = str(info.value)
    assert f"item {items[0].id} has no asset(s) 'nir', 'rgb'" in message
    assert "band0, band1" in message and "thumbnail" in message
    for wrong in (items[0].to_dict(), "S2A_item", 42, [items[0], items[1].to_dict()]):
        with pytest.raises(ConfigurationError, match=r"pystac\.Item"):
            download(wrong, directory=tmp_path, auth=auth)
    with pytest.raises(ConfigurationError, match="max_workers"):
        download(items, directory=tmp_path, auth=auth, max_workers=0)
    with pytest.raises(ConfigurationError, match="assets must be"):
        download(items, assets=[], directory=tmp_path, auth=auth)
    local = items[0].clone()
    local.assets["tci"].href = "/data/tci.tif"
    with pytest.raises(ConfigurationError, match="not an http"):
        download(local, assets="tci", directory=tmp_path, auth=auth)

    assert (len(emulator.requests), emulator.counters.storage_requests) == before
    assert list(tmp_path.iterdir()) == []


def test_item_collection_and_one_progress_bar(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = TTY()
    monkeypatch.setattr(sys, "stderr", fake)
    items = pystac.ItemCollection(emulator.items()[7:9])
    local = download(items, assets=["band2", "band3"], directory=tmp_path,
                     auth=_auth(emulator))
    total = _assert_identical(emulator, list(items), local, ["band2", "band3"])
    shown = fake.getvalue()
    # One bar (one final newline), ending at the total of all four files.
    assert shown.count("\n") == 1
    size = tqdm.format_sizeof(total, divisor=1024)
    assert f"100%|##########| {size}/{size}" in shown.rsplit("\r", 1)[-1]


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    download(emulator.items()[9], assets="thumbnail", directory=tmp_path, auth=_auth(emulator))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("change", ["longer", "same_size"])
def test_part_of_an_older_version_is_not_resumed_into_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    # First run: the transfer is cut half-way and not retried: a .part of version 1 stays.
    monkeypatch.setattr(downloads, "DOWNLOAD_RETRY", Retry(total=0, backoff_factor=0))
    with Emulator(data_dir=tmp_path / "archive", storage_fault_rate=1.0,
                  fault_kinds=("drop",)) as emu:
        item = emu.items()[0]
        out = tmp_path / "out"
        with pytest.raises(DownloadError):
            download(item, assets="band3", directory=out, auth=_auth(emu), progress=False)
        name = item.assets["band3"].href.rsplit("/", 1)[1]
        part = out / item.id / f"{name}.part"
        source = _archive_file(emu, item, "band3")
        old = source.read_bytes()
        assert 0 < part.stat().st_size < len(old)
        assert part.read_bytes() == old[:part.stat().st_size]

        # Meanwhile the file changes on the server (version 2).
        new = bytes(255 - b for b in old) + (b"v2" * 4096 if change == "longer" else b"")
        source.write_bytes(new)
        os.utime(source, (time.time() + 10, time.time() + 10))  # a new ETag
        emu.storage_fault_rate = 0.0
        monkeypatch.setattr(downloads, "DOWNLOAD_RETRY", Retry(total=3, backoff_factor=0))
        local = download(item, assets="band3", directory=out, auth=_auth(emu),
                         progress=False)
        # Version 2 whole, not version 1's head glued to version 2's tail.
        assert Path(local[0].assets["band3"].href).read_bytes() == new
        assert sorted(p.name for p in (out / item.id).iterdir()) == [name]


@pytest.mark.slow
def test_ctrl_c_stops_the_transfers_and_keeps_the_parts(tmp_path: Path) -> None:
    with Emulator(scale="large", storage_delay=0.5) as emu:
        item = emu.items()[0]
        item_file = tmp_path / "item.json"
        item_file.write_text(json.dumps(item.to_dict()))
        out = tmp_path / "out"
        script = (
            "import json, signal, sys, pystac, pystac_axelglobe as ag\n"
            # as in a terminal: a child started by a non-interactive shell in the
            # background (some CI runners) inherits SIGINT ignored
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "item = pystac.Item.from_dict(json.load(open(sys.argv[1])))\n"
            "try:\n"
            "    ag.download(item, assets=['tci', 'band1'], directory=sys.argv[2],\n"
            "                progress=False)\n"
            "except KeyboardInterrupt:\n"
            "    sys.exit(42)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script, str(item_file), str(out)],
                                env={**os.environ, **emu.env()})
        names = [item.assets[k].href.rsplit("/", 1)[1] for k in ("tci", "band1")]
        part = out / item.id / f"{names[0]}.part"
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size > 0):
                assert proc.poll() is None, "the download finished or died too early"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == 42
        finally:
            proc.kill()
            proc.wait()
        # Stopped at once (the files take ~10 s each): nothing under a final name, the
        # .part files kept for the next run.
        left = sorted(p.name for p in (out / item.id).iterdir())
        assert not any(n in left for n in names), left
        assert f"{names[0]}.part" in left
        sent = emu.counters.storage_bytes_sent
        assert sent < sum(_archive_file(emu, item, k).stat().st_size for k in ("tci", "band1"))

        emu.storage_delay = 0.0
        local = download(item, assets=["tci", "band1"], directory=out, auth=_auth(emu),
                         progress=False)
        _assert_identical(emu, [item], local, ["tci", "band1"])
        assert sorted(p.name for p in (out / item.id).iterdir()) == sorted(names)


def test_debug_logs_never_show_a_working_signature(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib3 logs each request line at DEBUG, presigned query string included.
    caplog.set_level(logging.DEBUG)
    item = emulator.items()[3]
    download(item, assets="band0", directory=tmp_path, auth=_auth(emulator), progress=False)
    requests_logged = [r for r in caplog.records if "GET /axelglobe-archive/" in r.getMessage()]
    assert requests_logged, "urllib3 should have logged the storage request"
    assert "X-Amz-Signature=REDACTED" in caplog.text
    assert re.search(r"X-Amz-(Signature|Credential)=(?!REDACTED)", caplog.text) is None



@pytest.mark.timeout(60)
def test_ctrl_c_does_not_sit_through_a_retry_backoff() -> None:
    # A transfer between attempts waits out the policy's backoff (here 200 s for the second
    # retry); once the download is cancelled (Ctrl-C) that wait ends at once.
    policy = Retry(total=5, backoff_factor=100)
    cancel = threading.Event()
    dropped = urllib3.exceptions.ProtocolError("dropped")
    policy = _http.count_failure(policy, "a file", dropped, cancel=cancel)  # first: no wait
    cancel.set()
    with pytest.raises(_http.Cancelled):
        _http.count_failure(policy, "a file", dropped, cancel=cancel)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"directory": None}, "directory must be a folder path (str or pathlib.Path), got None"),
    ({"directory": ""}, "directory must be a folder path"),
    ({"directory": "out\0evil"}, "directory must be a folder path"),
    ({"directory": b"out"}, "directory must be a folder path"),
    ({"max_workers": True}, "max_workers must be a positive integer"),
    ({"overwrite": "yes"}, "overwrite must be True or False, got 'yes'"),
    ({"progress": None}, "progress must be True or False"),
])
def test_bad_arguments_are_refused_before_any_request(
    emulator: Emulator, tmp_path: Path, kwargs: dict[str, object], words: str
) -> None:
    auth = _auth(emulator)  # no token fetched yet: a request would show in the counters
    before = emulator.counters.as_dict()
    arguments: dict[str, object] = {"directory": tmp_path / "out", **kwargs}
    with pytest.raises(ConfigurationError) as info:
        download(emulator.items()[0], assets="thumbnail", auth=auth,
                 **arguments)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)
    assert emulator.counters.as_dict() == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("item_id", "file_name", "words"), [
    ("bad\0id", None, "item id 'bad\\x00id' cannot be used as a file or folder name"),
    ("../escape", None, "item id '../escape' cannot be used"),
    ("..", None, "item id '..' cannot be used"),
    ("a\\b", None, "item id 'a\\\\b' cannot be used"),
    ("x" * 300, None, "is too long for a file name"),
    (None, "%2E%2E", "the file name of asset {id}/thumbnail '..' cannot be used"),
    (None, "a%2Fb.jpg", "the file name of asset {id}/thumbnail 'a/b.jpg' cannot be used"),
    (None, "a%00b.jpg", "'a\\x00b.jpg' cannot be used"),
    (None, "a%5Cb.jpg", "'a\\\\b.jpg' cannot be used"),
])
def test_ids_and_file_names_that_escape_or_break_the_folder_are_refused(
    emulator: Emulator, tmp_path: Path, item_id: str | None, file_name: str | None, words: str
) -> None:
    item = emulator.items()[1].clone()
    if item_id is not None:
        item.id = item_id
    if file_name is not None:
        href = item.assets["thumbnail"].href
        item.assets["thumbnail"].href = href.rsplit("/", 1)[0] + "/" + file_name
    auth = _auth(emulator)
    before = emulator.counters.as_dict()
    with pytest.raises(ConfigurationError) as info:
        download(item, assets="thumbnail", directory=tmp_path, auth=auth)
    assert words.format(id=item.id) in str(info.value)
    assert emulator.counters.as_dict() == before
    assert list(tmp_path.iterdir()) == []


def test_directory_that_is_a_file_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigurationError, match="exists and is not a folder"):
        download(emulator.items()[0], assets="thumbnail", directory=tmp_path / "out",
                 auth=_auth(emulator))


def test_failures_keep_their_exceptions_and_never_show_a_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A presigned href to a port where nothing listens: requests' error names the whole URL.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDSECRETCRED%2F20210101"
             "&X-Amz-Date=20210101T000000Z&X-Amz-Expires=900&X-Amz-Signature=deadbeefsig")
    when = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)
    item = pystac.Item("gone", None, None, when, {})
    item.add_asset("tci", pystac.Asset(href=f"http://127.0.0.1:{port}/bucket/f.tif?{query}"))
    monkeypatch.setattr(downloads, "DOWNLOAD_RETRY", Retry(total=1, backoff_factor=0))
    auth = AxelGlobeAuth("cid", "secret", api_url="http://127.0.0.1:9/stac",
                         token_url="http://127.0.0.1:9/oauth/token")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(DownloadError) as info:
        download(item, directory=tmp_path, auth=auth, progress=False)

    err = info.value
    assert list(err.exceptions) == ["gone/tci"]
    cause = err.exceptions["gone/tci"]
    assert isinstance(cause, AssetError)
    assert err.failures["gone/tci"].startswith("gave up after 2 attempts:")
    texts = [str(err), repr(err), repr(err.failures), str(cause), repr(cause),
             "".join(traceback.format_exception(err)),
             "".join(traceback.format_exception(cause)), caplog.text]
    for text in texts:
        assert "AKIDSECRETCRED" not in text and "deadbeefsig" not in text
    again = pickle.loads(pickle.dumps(err))
    assert again.failures == err.failures and str(again) == str(err)


# --- under latency: URLs resolved ahead, network slots, files synced outside them -----------

class _Origins:
    """An API and a storage origin on 127.0.0.1 serving ``files``, counting at the server.

    The API answers each ``/stac/{name}`` (bearer token required) after ``api_delay``
    seconds with a redirect to the storage origin, which refuses ``Authorization``.
    """

    def __init__(self, files: dict[str, bytes], api_delay: float = 0.0,
                 keep_alive: bool = False) -> None:
        self.files, self.api_delay = files, api_delay
        self.protocol = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        self.lock = threading.Lock()
        self.connections: dict[str, set[tuple[str, int]]] = {"api": set(), "storage": set()}
        self.api_paths: list[str] = []
        self.storage_paths: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.api_seen_at_first_storage: int | None = None
        self.authorization_at_storage = 0
        self.api = self._server(self._api)
        self.storage = self._server(self._storage)

    def _server(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> LoopbackHTTPServer:
        outer, kind = self, answer.__name__.lstrip("_")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = self.protocol

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with outer.lock:
                    outer.connections[kind].add(self.client_address)
                answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def url(self, server: LoopbackHTTPServer) -> str:
        return f"http://127.0.0.1:{server.server_address[1]}"

    def _api(self, handler: BaseHTTPRequestHandler) -> None:
        if not handler.headers.get("Authorization", "").startswith("Bearer "):
            handler.send_error(401)
            return
        with self.lock:
            self.api_paths.append(handler.path)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.api_delay)
        with self.lock:
            self.in_flight -= 1
        name = handler.path.rsplit("/", 1)[1]
        handler.send_response(302)
        handler.send_header("Location", f"{self.url(self.storage)}/{name}?X-Amz-Expires=900")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _storage(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.storage_paths.append(handler.path)
            if self.api_seen_at_first_storage is None:
                self.api_seen_at_first_storage = len(self.api_paths)
        if "Authorization" in handler.headers:
            self.authorization_at_storage += 1
            handler.send_error(400)
            return
        body = self.files[handler.path.split("?")[0].lstrip("/")]
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def items(self) -> list[pystac.Item]:
        item = pystac.Item("item-1", None, None,
                           datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc), {})
        for name in self.files:
            item.add_asset(name, pystac.Asset(f"{self.url(self.api)}/stac/{name}"))
        return [item]

    def auth(self, emu: Emulator) -> AxelGlobeAuth:
        # The API is this server; the tokens come from the emulator.
        return AxelGlobeAuth(emu.client_id, emu.client_secret,
                             api_url=f"{self.url(self.api)}/stac", token_url=emu.token_url,
                             audience=emu.audience)

    def close(self) -> None:
        for server in (self.api, self.storage):
            server.shutdown()
            server.server_close()


def _files(n: int) -> dict[str, bytes]:
    return {f"f{i:03d}.bin": f"file {i} ".encode() * (100 + i) for i in range(n)}


@pytest.mark.timeout(60)
def test_urls_are_resolved_ahead_many_at_once_while_files_transfer(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Each redirect takes 0.2 s (a far API); two files on the network at once. The URLs
    # of the next files are resolved meanwhile, many at once, not two by two.
    origins = _Origins(_files(24), api_delay=0.2)
    try:
        items = origins.items()
        local = download(items, directory=tmp_path, auth=origins.auth(emulator),
                         max_workers=2, progress=False)
    finally:
        origins.close()
    assert origins.most_in_flight >= 8, origins.most_in_flight
    assert origins.most_in_flight <= _ahead.RESOLVE_AHEAD + 2
    # Each href resolved once, each file fetched once, no Authorization at storage.
    assert sorted(origins.api_paths) == sorted(f"/stac/{n}" for n in origins.files)
    assert sorted(p.split("?")[0] for p in origins.storage_paths) == sorted(
        f"/{n}" for n in origins.files)
    assert origins.authorization_at_storage == 0
    for name, body in origins.files.items():
        assert Path(local[0].assets[name].href).read_bytes() == body


@pytest.mark.timeout(60)
def test_urls_are_not_resolved_far_ahead_of_their_transfers(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long download must not resolve all its URLs up front: they could expire unused.
    monkeypatch.setattr(_ahead, "WINDOW", 4)
    origins = _Origins(_files(30), api_delay=0.05)
    try:
        download(origins.items(), directory=tmp_path, auth=origins.auth(emulator),
                 max_workers=1, progress=False)
    finally:
        origins.close()
    # When the first file reached storage: at most the window, plus one per transfer begun
    # (two threads for one network slot).
    assert origins.api_seen_at_first_storage is not None
    assert origins.api_seen_at_first_storage <= 4 + 2, origins.api_seen_at_first_storage
    assert len(origins.api_paths) == 30  # and the others later, each once


@pytest.mark.timeout(60)
def test_a_file_being_synced_to_disk_does_not_hold_up_the_next_transfer(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One network slot. While the first file is synced and renamed (held here until the
    # second file's request has reached storage, 10 s at most), the second one transfers.
    item = emulator.items()[2]
    before = emulator.counters.storage_requests
    calls: list[str] = []
    seen: list[bool] = []
    finish = _partfile.PartFile.finish

    def slow_finish(part: _partfile.PartFile) -> None:
        calls.append(part.name)
        if len(calls) == 1:
            until = time.monotonic() + 10
            while emulator.counters.storage_requests < before + 2 and time.monotonic() < until:
                time.sleep(0.01)
            seen.append(emulator.counters.storage_requests >= before + 2)
        finish(part)

    monkeypatch.setattr(_partfile.PartFile, "finish", slow_finish)
    local = download(item, assets=["thumbnail", "msi_udm"], directory=tmp_path,
                     auth=_auth(emulator), max_workers=1, progress=False)
    assert seen == [True] and len(calls) == 2
    _assert_identical(emulator, [item], local, ["thumbnail", "msi_udm"])


@pytest.mark.timeout(60)
def test_waiting_for_a_network_slot_does_not_count_as_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One slot; each file takes ~1.4 s at a useful speed, longer than the 1 s a file may go
    # without progress. The second file waits that long for the slot: not a stall.
    monkeypatch.setattr(downloads, "STALL_TIMEOUT", 1.0)
    monkeypatch.setattr(downloads, "LOW_SPEED_TIME", 0.2)
    with Emulator(storage_delay=0.35) as emu:
        items = emu.items()[:2]
        local = download(items, assets=["band0"], directory=tmp_path, auth=_auth(emu),
                         max_workers=1, progress=False)
        _assert_identical(emu, items, local, ["band0"])
        assert emu.counters.storage_requests == 2  # no attempt was cut off


def test_a_resolve_that_failed_ahead_is_not_retried_again_by_its_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presigned, "RESOLVE_RETRY", Retry(
        total=1, backoff_factor=0, status_forcelist=[503], allowed_methods=["GET"]))
    with Emulator(api_fault_rate=1.0, fault_kinds=("503",)) as emu:
        item = emu.items()[0]
        keys = ["thumbnail", "msi_udm", "msi_udm_metadata"]
        with pytest.raises(DownloadError) as info:
            download(item, assets=keys, directory=tmp_path, auth=_auth(emu), progress=False)
        assert list(info.value.failures) == [f"{item.id}/{k}" for k in keys]
        assert all("HTTP 503" in reason for reason in info.value.failures.values())
        assert len(emu.requests) == 2 * len(keys)  # one retry each, once
        assert emu.counters.storage_requests == 0


def test_connections_are_reused_from_file_to_file(emulator: Emulator, tmp_path: Path) -> None:
    # Servers that keep connections open: no new connection (a TLS handshake, in real life)
    # per file, at storage nor at the API.
    origins = _Origins(_files(20), keep_alive=True)
    try:
        download(origins.items(), directory=tmp_path, auth=origins.auth(emulator),
                 max_workers=2, progress=False)
    finally:
        origins.close()
    assert len(origins.storage_paths) == 20 and len(origins.api_paths) == 20
    assert len(origins.connections["storage"]) <= 2
    assert len(origins.connections["api"]) <= _ahead.RESOLVE_AHEAD + 2


def test_plain_storage_gets_never_carry_authorization(tmp_path: Path) -> None:
    # Credentials in a storage URL are not turned into a Basic Authorization header.
    origins = _Origins({"a.bin": b"abc"})
    try:
        url = f"http://user:secret@127.0.0.1:{origins.storage.server_address[1]}/a.bin"
        with _http.Session().get_plain(url, {"Accept-Encoding": "identity"}, (5, 5)) as r:
            assert r.status_code == 200 and r.raw.read() == b"abc"
    finally:
        origins.close()
    assert origins.authorization_at_storage == 0 and origins.storage_paths == ["/a.bin"]


def test_a_nearer_deadline_set_after_a_farther_one_still_cuts_its_request() -> None:
    far = _http.Watch(time.monotonic() + 60)
    _http._watchdog.add(far)
    time.sleep(0.2)  # the watchdog now sleeps until this one ...
    a, b = socket.socketpair()
    try:
        a.settimeout(20)
        with _http.deadline(time.monotonic() + 0.2) as watch:  # ... and must wake earlier
            watch.add(a)
            assert a.recv(1) == b""  # shut down at the deadline, not after 20 s
        assert watch.fired
    finally:
        far.close()
        a.close()
        b.close()
