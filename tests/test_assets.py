"""resolve() / invalidate(): asset hrefs to presigned storage URLs, against the emulator."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from urllib3.util.retry import Retry

from pystac_axelglobe import presigned as assets
from pystac_axelglobe.auth import AxelGlobeAuth
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive
from pystac_axelglobe.errors import AssetError, ConfigurationError, RestrictedError
from pystac_axelglobe.presigned import PresignedURL, invalidate, resolve


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None
    return emu.archive


def _auth(emu: Emulator) -> AxelGlobeAuth:
    return AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                         token_url=emu.token_url, audience=emu.audience)


def test_resolve_returns_the_storage_url_with_its_expiry(emulator: Emulator) -> None:
    auth = _auth(emulator)
    href = emulator.items()[0].assets["tci"].href
    before = emulator.counters.redirects
    started = time.time()

    url = resolve(href, auth=auth)

    assert emulator.counters.redirects == before + 1
    assert url.url.startswith(emulator.storage_url + "/")
    assert "X-Amz-Signature" in url.url
    # presign_lifetime is 900 s; X-Amz-Date has whole seconds, so allow 1 s of rounding.
    assert started + 898 <= url.expires_at <= started + 901
    # The storage host accepts it without any Authorization header.
    got = requests.get(url.url, timeout=10)
    assert got.status_code == 200
    assert got.content == _archive(emulator).asset_path(
        emulator.items()[0].id, href.rsplit("/", 1)[1]
    ).read_bytes()


def test_repr_and_str_never_show_the_signature(emulator: Emulator) -> None:
    url = resolve(emulator.items()[0].assets["band1"].href, auth=_auth(emulator))
    signature = parse_qs(urlsplit(url.url).query)["X-Amz-Signature"][0]
    for text in (repr(url), str(url), f"{url}", repr([url])):
        assert signature not in text
        assert "X-Amz" not in text
    assert repr(url).startswith(f"PresignedURL({emulator.storage_url}/")
    assert re.search(r", expires in (8\d\d|900) s\)$", repr(url))  # presign_lifetime 900 s


def test_cached_until_shortly_before_expiry_then_resolved_again(emulator: Emulator) -> None:
    auth = _auth(emulator)
    href = emulator.items()[1].assets["band2"].href
    before = emulator.counters.redirects
    first = resolve(href, auth=auth)
    assert resolve(href, auth=auth) is first
    assert emulator.counters.redirects == before + 1
    # Asking for more validity than the cached URL has left forces a fresh one. The cap at
    # half the lifetime (450 s) applies, so ask with a margin above it by aging the entry.
    key = assets._cache_key(href, auth)
    aged = assets._Cached(PresignedURL(first.url, time.time() + 20), lifetime=900)
    assets._cache[key] = aged
    assert resolve(href, auth=auth, min_validity=10) is aged.url  # 20 s left > 10 s
    fresh = resolve(href, auth=auth, min_validity=30)  # 20 s left < 30 s: ask again
    assert fresh is not aged.url
    assert emulator.counters.redirects == before + 2


def test_short_lived_urls_are_reused_for_half_their_lifetime() -> None:
    with Emulator(presign_lifetime=2) as emu:
        auth = _auth(emu)
        href = emu.items()[0].assets["band3"].href
        first = resolve(href, auth=auth)
        # min_validity=30 would never reuse a 2 s URL; the half-lifetime cap makes it usable.
        assert resolve(href, auth=auth) is first
        assert emu.counters.redirects == 1
        time.sleep(max(0.0, first.remaining()) + 0.05)  # now expired
        second = resolve(href, auth=auth)
        assert second is not first and second.remaining() > 0
        assert emu.counters.redirects == 2
        assert requests.get(second.url, timeout=10).status_code == 200


def test_single_flight_many_threads_one_request(emulator: Emulator) -> None:
    auth = _auth(emulator)
    auth.provider.token()  # the token is not what this test is about
    href = emulator.items()[2].assets["band4"].href
    before = emulator.counters.redirects
    barrier = threading.Barrier(16)
    results: list[PresignedURL] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        url = resolve(href, auth=auth)
        with lock:
            results.append(url)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    assert len({id(r) for r in results}) == 1
    assert emulator.counters.redirects == before + 1


def test_invalidate_forces_a_new_request(emulator: Emulator) -> None:
    auth = _auth(emulator)
    href = emulator.items()[3].assets["band5"].href
    before = emulator.counters.redirects
    first = resolve(href, auth=auth)
    invalidate(href)
    invalidate(href)  # forgetting twice is harmless
    invalidate("http://elsewhere.invalid/x.tif")  # never cached: a no-op
    second = resolve(href, auth=auth)
    assert second is not first
    assert emulator.counters.redirects == before + 2


def test_default_auth_comes_from_the_environment(emulator_env: Emulator) -> None:
    href = emulator_env.items()[4].assets["msi_udm"].href
    url = resolve(href)
    assert url.url.startswith(emulator_env.storage_url)
    from pystac_axelglobe.auth import default_auth

    assert default_auth() is default_auth()  # one per process


def test_hrefs_off_the_api_are_returned_as_they_are(emulator: Emulator) -> None:
    auth = _auth(emulator)
    before = emulator.counters.api_requests
    signed = resolve(emulator.items()[5].assets["tci"].href, auth=auth)
    again = resolve(signed.url, auth=auth)  # already a presigned storage URL
    assert again.url == signed.url
    assert abs(again.expires_at - signed.expires_at) < 2
    plain = resolve("https://example.com/data/file.tif", auth=auth)
    assert plain.url == "https://example.com/data/file.tif" and math.isinf(plain.expires_at)
    assert "does not expire" in repr(plain)
    assert emulator.counters.api_requests == before + 1
    with pytest.raises(AssetError, match="only http"):
        resolve("/tmp/local.tif", auth=auth)
    with pytest.raises(AssetError, match="only http"):
        resolve("file:///tmp/local.tif", auth=auth)


def test_unknown_asset_is_an_asset_error_with_status_and_hint(emulator: Emulator) -> None:
    item = emulator.items()[0]
    href = item.assets["tci"].href.rsplit("/", 1)[0] + "/no_such_file.tif"
    with pytest.raises(AssetError) as info:
        resolve(href, auth=_auth(emulator))
    message = str(info.value)
    assert "HTTP 404" in message and "no_such_file.tif does not exist" in message
    assert "no such asset" in message


def test_revoked_token_is_refreshed_once() -> None:
    with Emulator() as emu:
        auth = _auth(emu)
        items = emu.items()
        resolve(items[0].assets["tci"].href, auth=auth)
        assert emu.counters.token_requests == 1
        emu.revoke_tokens()
        url = resolve(items[0].assets["band0"].href, auth=auth)
        assert url.url.startswith(emu.storage_url)
        assert emu.counters.token_requests == 2


def test_api_faults_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Quick retries: the policy is what matters here, not the waiting.
    monkeypatch.setattr(assets, "RESOLVE_RETRY", assets.RESOLVE_RETRY.new(backoff_factor=0.01))
    with Emulator(api_fault_rate=0.5, fault_kinds=("503", "502", "drop"), fault_seed=3) as emu:
        auth = _auth(emu)
        auth.provider.token()
        items = emu.items()
        hrefs = [a.href for it in items[:3] for a in it.assets.values()]
        urls = [resolve(h, auth=auth) for h in hrefs]
        assert all(u.url.startswith(emu.storage_url) for u in urls)
        assert emu.counters.faults > 5
        assert emu.counters.redirects == len(hrefs)


def test_api_failing_for_good_gives_up_with_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "RESOLVE_RETRY", Retry(
        total=2, backoff_factor=0, status_forcelist=[503], allowed_methods=["GET"],
        raise_on_status=False, redirect=False))
    with Emulator(api_fault_rate=1.0, fault_kinds=("503",)) as emu:
        auth = _auth(emu)
        auth.provider.token()
        href = emu.items()[0].assets["tci"].href
        with pytest.raises(AssetError, match=r"HTTP 503.*try again later"):
            resolve(href, auth=auth)
        assert emu.counters.api_requests == 3  # the first try and two retries
        assert emu.counters.storage_requests == 0


API = "http://127.0.0.1:9/stac/v1/catalogs/axelglobe"
TOKEN = "http://127.0.0.1:9/oauth/token"


@pytest.fixture
def mocked_auth() -> Iterator[tuple[responses.RequestsMock, AxelGlobeAuth]]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN, json={"access_token": "tok", "expires_in": 3600,
                               "token_type": "Bearer"})
        yield mock, AxelGlobeAuth("cid", "secret", api_url=API, token_url=TOKEN)


def test_redirect_to_another_scheme_is_refused(
    mocked_auth: tuple[responses.RequestsMock, AxelGlobeAuth],
) -> None:
    mock, auth = mocked_auth
    mock.get(f"{API}/x/a.tif", status=302, headers={"Location": "ftp://files.example/a.tif"})
    with pytest.raises(AssetError, match="'ftp' URL; only http"):
        resolve(f"{API}/x/a.tif", auth=auth)


def test_redirect_without_expiry_gets_the_default_lifetime(
    mocked_auth: tuple[responses.RequestsMock, AxelGlobeAuth],
) -> None:
    mock, auth = mocked_auth
    mock.get(f"{API}/x/b.tif", status=307, headers={"Location": "/files/b.tif"})
    started = time.time()
    url = resolve(f"{API}/x/b.tif", auth=auth)
    assert url.url == "http://127.0.0.1:9/files/b.tif"  # relative Location, made absolute
    assert started + assets.DEFAULT_EXPIRY - 1 <= url.expires_at <= time.time() + 60
    assert mock.calls[-1].request.headers["Authorization"] == "Bearer tok"


def test_a_restricted_client_is_told_at_once_and_sends_nothing_more(tmp_path: Path) -> None:
    with Emulator(restrict_after=1, restrict_window=60, restrict_period=60) as emu:
        auth = AxelGlobeAuth(**emu.settings_kwargs(), cache_dir=tmp_path / "a")
        href = emu.items()[0].assets["tci"].href
        resolve(href, auth=auth)
        other = AxelGlobeAuth(**emu.settings_kwargs(), cache_dir=tmp_path / "b")
        with pytest.raises(RestrictedError):  # a second token request trips the restriction
            other.headers()
        invalidate(href)
        before = emu.counters.api_requests
        with pytest.raises(RestrictedError) as info:
            resolve(href, auth=auth)  # the API answers 429, Retry-After ~60 s
        # one request, not retried: urllib3 would sleep Retry-After before each retry
        sent = emu.counters.api_requests
        assert sent == before + 1
        assert info.value.until.timestamp() - time.time() > 30
        with pytest.raises(RestrictedError):
            resolve(href, auth=auth)
        assert emu.counters.api_requests == sent


def test_expired_urls_are_swept_from_a_long_running_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(assets, "_CACHE_SWEEP_SIZE", 2)
    with Emulator(presign_lifetime=2) as emu:
        auth = _auth(emu)
        hrefs = [item.assets["band1"].href for item in emu.items()[:4]]
        for href in hrefs[:3]:
            resolve(href, auth=auth)
        assert len(assets._cache) == 3  # over the size, but nothing has expired yet
        time.sleep(2.5)
        fresh = resolve(hrefs[3], auth=auth)
        assert list(assets._cache.values())[0].url == fresh  # the three expired ones are gone
        assert len(assets._cache) == 1


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_positive_number_is_refused(
    emulator: Emulator, timeout: float
) -> None:
    before = emulator.counters.as_dict()
    with pytest.raises(ConfigurationError, match="timeout must be a positive number"):
        resolve(emulator.items()[0].assets["tci"].href, auth=_auth(emulator), timeout=timeout)
    assert emulator.counters.as_dict() == before
