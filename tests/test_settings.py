from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest
import responses

import pystac_axelglobe as ag
from pystac_axelglobe.settings import DEFAULT_API_URL, Settings
from pystac_axelglobe.tokens import TokenProvider


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AXELGLOBE_CLIENT_ID", "from-env")
    monkeypatch.setenv("AXELGLOBE_API_URL", "http://127.0.0.1:1/stac")
    s = Settings.from_env(client_id="from-arg", cache_dir=tmp_path)
    assert s.client_id == "from-arg"
    assert s.api_url == "http://127.0.0.1:1/stac"
    assert s.cache_dir == tmp_path


def test_defaults_are_production() -> None:
    assert Settings.from_env().api_url == DEFAULT_API_URL


def test_secret_never_in_repr() -> None:
    s = Settings.from_env(client_id="cid", client_secret="very-secret-value")
    assert "very-secret-value" not in repr(s)
    assert "very-secret-value" not in str(s)
    assert "cid" in repr(s)


def test_missing_credentials_name_the_variables() -> None:
    both = "AXELGLOBE_CLIENT_ID and AXELGLOBE_CLIENT_SECRET"
    with pytest.raises(ag.ConfigurationError, match=both):
        Settings.from_env().require_credentials()
    with pytest.raises(ValueError, match="AXELGLOBE_CLIENT_SECRET"):
        Settings.from_env(client_id="x").require_credentials()


@pytest.mark.parametrize("url", ["http://api.example.com/stac", "ftp://127.0.0.1/x", "nonsense"])
def test_insecure_or_bad_urls_refused(url: str) -> None:
    with pytest.raises(ag.ConfigurationError, match="api_url"):
        Settings.from_env(api_url=url)


def test_errors_subclass_builtins() -> None:
    assert issubclass(ag.ConfigurationError, ValueError)
    assert issubclass(ag.AuthenticationError, PermissionError)
    assert issubclass(ag.DownloadError, OSError)
    err = ag.DownloadError({"item/tci": "HTTP 503"})
    assert "item/tci: HTTP 503" in str(err) and "again" in str(err)


def test_all_is_sorted_and_complete() -> None:
    assert ag.__all__ == sorted(ag.__all__)
    # complete: every public name resolves, and nothing public is missing from __all__
    from pystac_axelglobe import _LAZY

    assert set(ag.__all__) == set(_LAZY)
    for name in ag.__all__:
        assert getattr(ag, name) is not None


@pytest.mark.parametrize("url", [
    "http://127.evil.example/oauth/token",  # a name anyone can own, not a loopback address
    "http://127.0.0.1.evil.example/oauth/token",
    "http://localhost.evil.example/oauth/token",
    "http://evil.example\\@127.0.0.1:8000/oauth/token",  # requests connects to evil.example
])
@pytest.mark.parametrize("name", ["api_url", "token_url"])
def test_plain_http_to_a_non_loopback_host_is_refused(name: str, url: str) -> None:
    with pytest.raises(ag.ConfigurationError, match=f"{name} .* plain HTTP"):
        Settings.from_env(client_id="c", client_secret="s",
                          **{name: url})  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/x", "http://127.0.0.2/x",
                                 "http://[::1]:8000/x", "http://localhost:8000/x",
                                 "http://LOCALHOST./x"])
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert Settings.from_env(token_url=url).token_url == url


def test_secret_never_sent_to_127_evil_example(tmp_path: Path) -> None:
    # Settings built directly skip from_env's check: the token request checks again.
    settings = Settings(client_id="c", client_secret="very-secret-value",
                        token_url="http://127.evil.example/oauth/token", cache_dir=tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post("http://127.evil.example/oauth/token", json={"access_token": "t"})
        with pytest.raises(ag.ConfigurationError, match="plain HTTP") as info:
            TokenProvider(settings).token()
        assert len(mocked.calls) == 0
    assert "very-secret-value" not in str(info.value)


def test_pickled_settings_carry_no_secret(tmp_path: Path) -> None:
    s = Settings.from_env(client_id="cid", client_secret="very-secret-value",
                          api_url="http://127.0.0.1:1/stac", cache_dir=tmp_path)
    data = pickle.dumps(s)
    assert b"very-secret-value" not in data
    back = pickle.loads(data)
    assert back.client_secret is None
    assert dataclasses.replace(back, client_secret="very-secret-value") == s
    # in-process copies are the same immutable value, secret included
    assert copy.deepcopy(s) is s and copy.copy(s) is s
    assert copy.deepcopy({"settings": s})["settings"].client_secret == "very-secret-value"
    assert "very-secret-value" not in repr(s) + str(s) + repr(back)
