"""Shared fixtures: a clean environment per test and one emulator per session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pystac_client

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
def opened(emulator: Emulator, tmp_path: Path) -> Callable[..., pystac_client.Client]:
    """``opened(server, **kwargs)``: ``ag.open()`` on a fake API at ``server.url``.

    With the session emulator's credentials and token endpoint (fake APIs check no token).
    """
    import pystac_axelglobe as ag

    def make(server: Any, **kwargs: Any) -> pystac_client.Client:
        return ag.open(**{**emulator.settings_kwargs(), "api_url": server.url,
                          "cache_dir": tmp_path, **kwargs})
    return make


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout, or skip (a fresh clone of the project has none)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


ITEM_SCHEMAS = (
    "https://schemas.stacspec.org/v1.0.0/item-spec/json-schema/item.json",
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
)


@pytest.fixture(scope="session")
def item_errors() -> Callable[[dict[str, Any]], list[str]]:
    """What the STAC item schema and the eo, view and sat schemas find wrong in an item.

    Offline: from the copies in ``../shared/schemas`` (skipped without them).
    """
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    schemas = SHARED / "schemas"
    resources = []
    for path in [
        *schemas.glob("stac-spec/v1.0.0/item-spec/json-schema/*.json"),
        *schemas.glob("extensions/*.json"),
    ]:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"].rstrip("#"), Resource.from_contents(contents)))
    # The geojson.org schemas are not in ../shared: a minimal stand-in here (the geometries
    # themselves are checked with shapely where it matters).
    feature = {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {"type": {"const": "Feature"}},
    }
    geometry = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"const": "Polygon"}},
    }
    draft7 = "http://json-schema.org/draft-07/schema#"
    for url, contents in (
        ("https://geojson.org/schema/Feature.json", feature),
        ("https://geojson.org/schema/Geometry.json", geometry),
    ):
        resources.append((url, Resource.from_contents({"$schema": draft7, **contents})))
    registry: Registry[Any] = Registry().with_resources(resources)
    validators = [jsonschema.Draft7Validator({"$ref": url}, registry=registry)
                  for url in ITEM_SCHEMAS]

    def errors(item: dict[str, Any]) -> list[str]:
        return [e.message for v in validators for e in v.iter_errors(item)]

    return errors
