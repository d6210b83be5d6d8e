from __future__ import annotations

from pathlib import Path

import pytest

import pystac_axelglobe as ag
from pystac_axelglobe.settings import DEFAULT_API_URL, Settings


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
