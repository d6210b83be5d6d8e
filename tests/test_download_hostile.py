"""download() and resolve() against hostile servers on loopback: every call ends, bounded.

Each server is a ``RawServer`` (tests/fake_api.py) on 127.0.0.1 whose answer, a few lines,
is what a broken or malicious storage (or API) would send: silent, trickling, ignoring
``Range``, cutting bodies without a length, gzip-encoding the file. Asset hrefs point
straight at it (``resolve()`` returns hrefs off the API origin as they are). The module
constants that bound a download are shortened per test.
"""

from __future__ import annotations

import datetime as dt
import gzip
import socket
import time
from pathlib import Path

import pystac
import pytest
from urllib3.util.retry import Retry

from pystac_axelglobe import downloads, presigned
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.downloads import download
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import AssetError, DownloadError
from pystac_axelglobe.presigned import resolve
from tests.fake_api import RawServer, silent_socket, trickling_head

DATA = bytes(range(256)) * 400  # 100 KiB, every offset recognisable
NAME = "data.bin"


def _range_start(head: str) -> int | None:
    for line in head.split("\r\n"):
        if line.lower().startswith("range:"):
            return int(line.split("=", 1)[1].split("-", 1)[0])
    return None


def _item(url: str) -> pystac.Item:
    item = pystac.Item("hostile-1", None, None, dt.datetime(2021, 5, 12, tzinfo=dt.timezone.utc),
                       {})
    item.add_asset("data", pystac.Asset(href=f"{url}/files/{NAME}"))
    return item


def _auth() -> AxelGlobeAuth:
    # The hrefs are not on this API origin: no token is ever asked for.
    return AxelGlobeAuth("cid", "secret", api_url="http://127.0.0.1:9/stac",
                         token_url="http://127.0.0.1:9/oauth/token")


def _download(server: RawServer, tmp_path: Path) -> list[pystac.Item]:
    return download(_item(server.url), directory=tmp_path, auth=_auth(), progress=False)


def _failure(server: RawServer, tmp_path: Path) -> str:
    with pytest.raises(DownloadError) as info:
        _download(server, tmp_path)
    assert list(info.value.failures) == ["hostile-1/data"]
    assert not (tmp_path / "hostile-1" / NAME).exists(), "a wrong file under the final name"
    return info.value.failures["hostile-1/data"]


@pytest.fixture
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds of seconds, not minutes; quick backoff."""
    monkeypatch.setattr(downloads, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(downloads, "STALL_TIMEOUT", 2.0)
    monkeypatch.setattr(downloads, "LOW_SPEED_TIME", 0.5)
    monkeypatch.setattr(downloads, "DOWNLOAD_RETRY",
                        downloads.DOWNLOAD_RETRY.new(backoff_factor=0.01))


def _headers(status: str, *lines: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *lines, "Connection: close"]) + "\r\n\r\n"
            ).encode()


# --- retry budgets ---------------------------------------------------------------------------

def _ignore_range_drop_half(server: RawServer, sock: socket.socket, head: str) -> None:
    sock.sendall(_headers("200 OK", f"Content-Length: {len(DATA)}") + DATA[: len(DATA) // 2])


@pytest.mark.timeout(60)
def test_range_ignoring_server_dropping_halfway_is_given_up_after_bounded_attempts(
    tmp_path: Path, short_bounds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "STALL_TIMEOUT", 60.0)  # the attempts bound it here
    with RawServer(_ignore_range_drop_half) as server:
        reason = _failure(server, tmp_path)
    # Each attempt writes half the file again, which is no progress: the policy's attempts
    # in a row (8 retries) end it. Before, every attempt counted as progress: forever.
    assert len(server.heads) == 1 + 8, reason  # the first try and the policy's 8 retries
    assert reason.startswith("gave up after 9 attempts:"), reason
    assert server.ranges()[1:] == [f"bytes={len(DATA) // 2}-"] * 8  # resume was asked for


@pytest.mark.timeout(60)
def test_range_ignoring_server_is_given_up_in_time_whatever_the_attempt_budget(
    tmp_path: Path, short_bounds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "DOWNLOAD_RETRY", Retry(total=10**6, backoff_factor=0))
    monkeypatch.setattr(downloads, "MAX_ATTEMPTS", 10**6)
    monkeypatch.setattr(downloads, "STALL_TIMEOUT", 1.5)
    with RawServer(_ignore_range_drop_half) as server:
        started = time.monotonic()
        reason = _failure(server, tmp_path)
    assert "(no progress for 1.5 s)" in reason, reason
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_progress_on_every_attempt_is_still_bounded_in_attempts(
    tmp_path: Path, short_bounds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An honest Range server whose every answer breaks off after 4 KiB: each attempt makes
    # real progress, and would need 25 attempts; at most MAX_ATTEMPTS are made.
    monkeypatch.setattr(downloads, "MAX_ATTEMPTS", 5)

    def four_kib(server: RawServer, sock: socket.socket, head: str) -> None:
        start = _range_start(head) or 0
        status = "206 Partial Content" if start else "200 OK"
        extra = [f"Content-Range: bytes {start}-{len(DATA) - 1}/{len(DATA)}"] if start else []
        sock.sendall(_headers(status, f"Content-Length: {len(DATA) - start}", *extra)
                     + DATA[start:start + 4096])

    with RawServer(four_kib) as server:
        reason = _failure(server, tmp_path)
    assert len(server.heads) == 5
    assert reason.startswith("gave up after 5 failed attempts (at most 5 per file)"), reason
    part = tmp_path / "hostile-1" / f"{NAME}.part"
    assert part.read_bytes() == DATA[: 5 * 4096]  # kept for the next run to resume


# --- timeouts --------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_silent_storage_fails_within_the_stall_timeout(
    tmp_path: Path, short_bounds: None
) -> None:
    with RawServer(silent_socket) as server:
        started = time.monotonic()
        reason = _failure(server, tmp_path)
    assert "(no progress for 2 s)" in reason, reason
    assert "Read timed out" in reason or "no answer within 2 s" in reason, reason
    assert time.monotonic() - started < 30
    assert 2 <= len(server.heads) <= 4  # read timeouts of 1 s, retried until the 2 s bound


@pytest.mark.timeout(60)
def test_storage_trickling_its_headers_is_cut_off(tmp_path: Path, short_bounds: None) -> None:
    # A byte every 0.1 s: no read timeout ever fires, only the deadline does.
    with RawServer(trickling_head()) as server:
        started = time.monotonic()
        reason = _failure(server, tmp_path)
    assert "no answer within 2 s" in reason, reason
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_storage_trickling_its_body_is_cut_off_by_the_low_speed_limit(
    tmp_path: Path, short_bounds: None
) -> None:
    def trickle_body(server: RawServer, sock: socket.socket, head: str) -> None:
        start = _range_start(head) or 0
        status = "206 Partial Content" if start else "200 OK"
        extra = [f"Content-Range: bytes {start}-{len(DATA) - 1}/{len(DATA)}"] if start else []
        sock.sendall(_headers(status, f"Content-Length: {len(DATA) - start}", *extra))
        for byte in DATA[start:]:
            if server.stop.wait(0.05):
                return
            sock.sendall(bytes([byte]))

    with RawServer(trickle_body) as server:
        started = time.monotonic()
        reason = _failure(server, tmp_path)
    # Cut off after 0.5 s at 20 bytes/s each time (the 1 s read timeout never fires), and
    # bytes that slow renew no budget: given up after 2 s.
    assert "(no progress for 2 s)" in reason, reason
    assert len(server.heads) >= 3
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_body_trickling_just_within_the_read_timeout_is_cut_at_the_stall_timeout(
    tmp_path: Path, short_bounds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A byte every 0.8 s: the read timeout (1 s) never fires, the low-speed window (60 s
    # here) never closes; the attempt's deadline still cuts it after 2 s without progress.
    monkeypatch.setattr(downloads, "LOW_SPEED_TIME", 60.0)

    def trickle_body(server: RawServer, sock: socket.socket, head: str) -> None:
        sock.sendall(_headers("200 OK", f"Content-Length: {len(DATA)}"))
        for byte in DATA:
            if server.stop.wait(0.8):
                return
            sock.sendall(bytes([byte]))

    with RawServer(trickle_body) as server:
        started = time.monotonic()
        reason = _failure(server, tmp_path)
    assert "(no progress for 2 s): no useful progress within 2 s" in reason, reason
    assert time.monotonic() - started < 30
    assert len(server.heads) == 1


def test_long_transfer_at_a_useful_speed_outlives_the_stall_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # band0 takes ~1.6 s at ~150 KB/s: longer than the 1 s stall bound, but progressing.
    monkeypatch.setattr(downloads, "STALL_TIMEOUT", 1.0)
    monkeypatch.setattr(downloads, "LOW_SPEED_TIME", 0.2)
    with Emulator(storage_delay=0.4) as emu:
        item = emu.items()[0]
        local = download(item, assets="band0", directory=tmp_path, progress=False,
                         auth=AxelGlobeAuth(**emu.settings_kwargs()))
        assert emu.archive is not None
        source = emu.archive.asset_path(item.id, item.assets["band0"].href.rsplit("/", 1)[1])
        assert Path(local[0].assets["band0"].href).read_bytes() == source.read_bytes()
        assert source.stat().st_size > 3 * 65536
        assert emu.counters.storage_requests == 1


def test_default_bounds_end_a_silent_server_within_two_minutes() -> None:
    # A download gives up after STALL_TIMEOUT without progress (its resolves are capped by
    # it too); a resolve() after RESOLVE_TIMEOUT. docs/downloads.md states these numbers.
    assert downloads.STALL_TIMEOUT <= 120 and presigned.RESOLVE_TIMEOUT <= 120
    assert downloads.READ_TIMEOUT < downloads.STALL_TIMEOUT
    assert (downloads.CONNECT_TIMEOUT, downloads.READ_TIMEOUT) == (10.0, 30.0)
    assert (downloads.LOW_SPEED_LIMIT, downloads.LOW_SPEED_TIME) == (1024, 30.0)


# --- bodies that are not the file ------------------------------------------------------------

def test_body_cut_without_content_length_is_not_saved_as_complete(
    tmp_path: Path, short_bounds: None
) -> None:
    # No length, ends by closing the connection, and ignores Range: a cut cannot be told
    # from the end of the file, so nothing is saved under the final name.
    def close_delimited_half(server: RawServer, sock: socket.socket, head: str) -> None:
        sock.sendall(_headers("200 OK") + DATA[: len(DATA) // 2])

    with RawServer(close_delimited_half) as server:
        reason = _failure(server, tmp_path)
    assert "without a Content-Length and ignores Range" in reason, reason
    assert server.ranges() == [None, f"bytes={len(DATA) // 2}-"]


def test_body_without_length_is_continued_and_its_end_confirmed_with_range(
    tmp_path: Path,
) -> None:
    # First answer: no length, cut at a third. Then storage honours Range: the rest, and a
    # 416 "bytes */size" once asked from the end, which confirms the file is whole.
    def honest_ranges(server: RawServer, sock: socket.socket, head: str) -> None:
        start = _range_start(head)
        if start is None:
            sock.sendall(_headers("200 OK") + DATA[: len(DATA) // 3])
        elif start >= len(DATA):
            sock.sendall(_headers("416 Range Not Satisfiable", f"Content-Range: bytes */"
                                  f"{len(DATA)}", "Content-Length: 0"))
        else:  # the rest, again without a length
            rest = _headers("206 Partial Content", f"Content-Range: bytes {start}-"
                            f"{len(DATA) - 1}/*")
            sock.sendall(rest + DATA[start:])

    with RawServer(honest_ranges) as server:
        local = _download(server, tmp_path)
    assert Path(local[0].assets["data"].href).read_bytes() == DATA
    assert server.ranges() == [None, f"bytes={len(DATA) // 3}-", f"bytes={len(DATA)}-"]
    assert sorted(p.name for p in (tmp_path / "hostile-1").iterdir()) == [NAME]


def test_unterminated_chunked_body_is_retried_not_saved(tmp_path: Path) -> None:
    def chunked(server: RawServer, sock: socket.socket, head: str) -> None:
        half = DATA[: len(DATA) // 2]
        body = f"{len(half):x}\r\n".encode() + half + b"\r\n"
        if len(server.heads) > 1:  # the second answer is whole: a final zero-size chunk
            rest = DATA[len(half):]
            body += f"{len(rest):x}\r\n".encode() + rest + b"\r\n0\r\n\r\n"
        sock.sendall(_headers("200 OK", "Transfer-Encoding: chunked") + body)

    with RawServer(chunked) as server:
        local = _download(server, tmp_path)
    assert Path(local[0].assets["data"].href).read_bytes() == DATA
    assert len(server.heads) == 2


def test_gzip_encoded_body_is_refused_not_saved_compressed(tmp_path: Path) -> None:
    packed = gzip.compress(DATA)

    def gzipped(server: RawServer, sock: socket.socket, head: str) -> None:
        sock.sendall(_headers("200 OK", f"Content-Length: {len(packed)}",
                              "Content-Encoding: gzip") + packed)

    with RawServer(gzipped) as server:
        reason = _failure(server, tmp_path)
    assert "Content-Encoding: gzip" in reason and "refusing" in reason, reason
    assert "accept-encoding: identity" in server.heads[0].lower()
    assert len(server.heads) == 1  # not retried: it would only come back encoded


# --- resolve(): a silent or trickling API -----------------------------------------------------

@pytest.fixture
def api_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presigned, "RESOLVE_TIMEOUT", 2.0)
    monkeypatch.setattr(presigned, "TIMEOUT", (1.0, 0.5))
    monkeypatch.setattr(presigned, "RESOLVE_RETRY",
                        presigned.RESOLVE_RETRY.new(backoff_factor=0.01))


def _api_auth(server: RawServer, emu: Emulator) -> AxelGlobeAuth:
    # The API origin is the hostile server; tokens come from the emulator.
    return AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=f"{server.url}/stac",
                         token_url=emu.token_url, audience=emu.audience)


@pytest.mark.timeout(60)
def test_silent_api_makes_resolve_fail_within_its_timeout(
    emulator: Emulator, api_bounds: None
) -> None:
    with RawServer(silent_socket) as server:
        started = time.monotonic()
        with pytest.raises(AssetError, match=r"no answer within 2 s"):
            resolve(f"{server.url}/stac/x/{NAME}", auth=_api_auth(server, emulator))
        assert time.monotonic() - started < 20
        assert len(server.heads) >= 2  # read timeouts were retried, within the bound


@pytest.mark.timeout(60)
def test_api_trickling_its_redirect_is_cut_off(emulator: Emulator, api_bounds: None) -> None:
    with RawServer(trickling_head("302 Found")) as server:
        started = time.monotonic()
        with pytest.raises(AssetError, match=r"no answer within 2 s \(the API answered too "):
            resolve(f"{server.url}/stac/x/{NAME}", auth=_api_auth(server, emulator))
        assert time.monotonic() - started < 20
        assert len(server.heads) == 1


@pytest.mark.timeout(60)
def test_download_through_a_silent_api_fails_in_time(
    emulator: Emulator, api_bounds: None, tmp_path: Path
) -> None:
    with RawServer(silent_socket) as server:
        item = _item(f"{server.url}/stac/x")  # an href on the (silent) API origin
        with pytest.raises(DownloadError, match=r"no answer within 2 s"):
            download(item, directory=tmp_path, auth=_api_auth(server, emulator),
                     progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
