"""The emulator's S3-like storage origin, reached through the API's asset redirects."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from pystac_axelglobe.emulator import Emulator

INVALID_ARGUMENT = (
    "<Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the "
    "X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization "
    "header should be specified</Message>"
)


def presigned(emu: Emulator, key: str = "band1", index: int = 0) -> tuple[str, bytes]:
    """A presigned URL for one asset, and the archive file's bytes."""
    token = emu.token()
    item = requests.get(
        f"{emu.api_url}/search",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["features"][index]
    href = item["assets"][key]["href"]
    r = requests.get(
        href, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False, timeout=10
    )
    assert r.status_code == 302
    path = emu.archive.asset_path(item["id"], href.rsplit("/", 1)[1])  # type: ignore[union-attr]
    return r.headers["Location"], path.read_bytes()


def test_get_returns_the_file(emulator: Emulator) -> None:
    url, data = presigned(emulator)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "image/tiff"


@pytest.mark.parametrize(
    ("key", "ctype"), [("thumbnail", "image/jpeg"), ("msi_udm_metadata", "application/json")]
)
def test_content_type_by_extension(emulator: Emulator, key: str, ctype: str) -> None:
    url, data = presigned(emulator, key)
    r = requests.get(url, timeout=10)
    assert r.headers["Content-Type"].split(";")[0] == ctype and r.content == data


def test_range_request(emulator: Emulator) -> None:
    url, data = presigned(emulator)
    r = requests.get(url, headers={"Range": "bytes=100-1123"}, timeout=10)
    assert r.status_code == 206
    assert r.content == data[100:1124]
    assert r.headers["Content-Range"] == f"bytes 100-1123/{len(data)}"
    assert r.headers["Content-Length"] == "1024"
    tail = requests.get(url, headers={"Range": "bytes=-16"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-16:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(data) + 10}-"}, timeout=10)
    assert beyond.status_code == 416


def test_range_edge_cases_as_s3(emulator: Emulator) -> None:
    url, data = presigned(emulator)
    n = len(data)

    def get(value: str) -> requests.Response:
        return requests.get(url, headers={"Range": value}, timeout=10)

    # satisfiable: 206 with the bytes asked for (RFC 9110 14.1.2, as S3 answers)
    for value, start in [
        ("bytes=-500", n - 500),  # suffix
        (f"bytes=-{n + 1000}", 0),  # suffix longer than the file: the whole file
        ("bytes=1000-", 1000),  # open end
        (f"bytes={n - 1}-", n - 1),  # the last byte
        (f"bytes={n - 10}-{n + 10000}", n - 10),  # end past the file: clipped
    ]:
        r = get(value)
        assert r.status_code == 206, (value, r.status_code)
        assert r.content == data[start:], value
        assert r.headers["Content-Range"] == f"bytes {start}-{n - 1}/{n}", value
        assert r.headers["Content-Length"] == str(n - start), value
    # malformed or multiple ranges: S3 ignores the header and sends the whole object
    for value in ("bytes=100-50", "bytes=abc", "bytes=0-0,5-9", "items=0-9"):
        r = get(value)
        assert r.status_code == 200 and r.content == data, (value, r.status_code)
        assert "Content-Range" not in r.headers
    # unsatisfiable: 416 InvalidRange, S3's XML, and the size in Content-Range
    for value in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
        r = get(value)
        assert r.status_code == 416, (value, r.status_code)
        assert "<Code>InvalidRange</Code>" in r.text
        assert f"<ActualObjectSize>{n}</ActualObjectSize>" in r.text
        assert r.headers["Content-Range"] == f"bytes */{n}"
    assert emulator.counters.storage_requests > 0


def test_authorization_header_refused() -> None:
    with Emulator() as emu:
        url, _ = presigned(emu)
        r = requests.get(url, headers={"Authorization": f"Bearer {emu.token()}"}, timeout=10)
        assert r.status_code == 400
        assert INVALID_ARGUMENT in r.text
        assert r.headers["Content-Type"].startswith("application/xml")
        assert emu.counters.storage_requests_with_authorization == 1
        assert emu.counters.storage_bytes_sent == 0


def test_head_refused() -> None:
    with Emulator() as emu:
        url, _ = presigned(emu)
        assert requests.head(url, timeout=10).status_code == 403
        assert emu.counters.storage_head_requests == 1
        assert emu.counters.storage_requests == 1


def test_bad_signature(emulator: Emulator) -> None:
    url, _ = presigned(emulator)
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    query["X-Amz-Signature"] = "0" * 64
    r = requests.get(f"{split.scheme}://{split.netloc}{split.path}?{urlencode(query)}", timeout=10)
    assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text
    # the signature of one file does not open another
    other, _ = presigned(emulator, "band2")
    swapped = other.split("?")[0] + "?" + split.query
    assert requests.get(swapped, timeout=10).status_code == 403
    # nor does a longer lifetime
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    query["X-Amz-Expires"] = "999999"
    r = requests.get(f"{split.scheme}://{split.netloc}{split.path}?{urlencode(query)}", timeout=10)
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


def test_unsigned_is_refused(emulator: Emulator) -> None:
    url, _ = presigned(emulator)
    r = requests.get(url.split("?")[0], timeout=10)
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text


def test_expired() -> None:
    with Emulator(presign_lifetime=1) as emu:
        url, _ = presigned(emu)
        assert "X-Amz-Expires=1" in url
        time.sleep(2.1)
        r = requests.get(url, timeout=10)
        assert r.status_code == 403
        assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in r.text


def test_counters() -> None:
    with Emulator() as emu:
        url, data = presigned(emu)
        requests.get(url, timeout=10)
        requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
        c = emu.counters
        assert (c.storage_requests, c.redirects) == (2, 1)
        assert c.storage_bytes_sent == len(data) + 10


def test_storage_delay_still_serves_whole_file() -> None:
    with Emulator(storage_delay=0.01) as emu:
        url, data = presigned(emu, "band0")
        assert requests.get(url, timeout=30).content == data


def test_storage_on_its_own_origin(emulator: Emulator) -> None:
    storage, api = urlsplit(emulator.storage_url), urlsplit(emulator.api_url)
    assert (storage.hostname, storage.port) != (api.hostname, api.port)


def test_rotated_signing_key_refuses_earlier_urls() -> None:
    with Emulator() as emu:
        url, data = presigned(emu)
        emu.rotate_signing_key()
        r = requests.get(url, timeout=10)
        assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text
        fresh, _ = presigned(emu)
        assert requests.get(fresh, timeout=10).content == data


def test_storage_log_names_path_and_range() -> None:
    with Emulator() as emu:
        url, _ = presigned(emu)
        requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
        requests.head(url, timeout=10)
        path = urlsplit(url).path
        assert emu.storage_log == [("GET", path, "bytes=0-9"), ("HEAD", path, "")]
        emu.reset_counters()
        assert emu.storage_log == [] and emu.counters.storage_requests == 0
