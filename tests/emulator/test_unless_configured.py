from __future__ import annotations

import os

import pytest

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import unless_configured


def test_without_api_url_an_emulator_is_exported_then_removed() -> None:
    cache_before = os.environ["AXELGLOBE_CACHE_DIR"]
    with unless_configured() as emu:
        assert emu is not None
        assert os.environ["AXELGLOBE_API_URL"] == emu.api_url
        assert os.environ["AXELGLOBE_CACHE_DIR"] != cache_before  # a temporary token cache
        collection = ag.open().get_collection("grus-1")  # configured by the env alone
        assert collection is not None and collection.id == "grus-1"
        assert emu.counters.token_requests == 1
    assert "AXELGLOBE_API_URL" not in os.environ
    assert "AXELGLOBE_CLIENT_SECRET" not in os.environ
    assert os.environ["AXELGLOBE_CACHE_DIR"] == cache_before


def test_with_api_url_the_real_api_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXELGLOBE_API_URL", "https://api.axelglobe.com/stac/v1/catalogs/axelglobe")
    with unless_configured() as emu:
        assert emu is None
        assert "AXELGLOBE_TOKEN_URL" not in os.environ
