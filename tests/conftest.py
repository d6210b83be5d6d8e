"""Shared fixtures: a clean environment per test and one emulator per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pystac_axelglobe.emulator import Emulator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No AXELGLOBE_* variable leaks in; the token cache lives in a fresh folder."""
    for name in list(os.environ):
        if name.startswith("AXELGLOBE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AXELGLOBE_CACHE_DIR", str(tmp_path_factory.mktemp("token-cache")))
    # ag.open() makes its auth the process default for download()/load(): not across tests
    monkeypatch.setattr("pystac_axelglobe.auth._opened", None)


@pytest.fixture(autouse=True)
def no_cached_presigned_urls() -> Iterator[None]:
    """Each test starts without the process-wide cache of presigned URLs."""
    from pystac_axelglobe import presigned

    presigned._cache.clear()
    yield
    presigned._cache.clear()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One default emulator for the whole session (read-only use: counters are shared)."""
    from pystac_axelglobe.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture
def emulator_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The session emulator, with its AXELGLOBE_* variables exported for this test."""
    for name, value in emulator.env().items():
        if name != "AXELGLOBE_CACHE_DIR":
            monkeypatch.setenv(name, value)
    return emulator


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout, or skip (a fresh clone of the project has none)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED
