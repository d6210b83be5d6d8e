"""Fixtures of the emulator's tests: STAC schema validators that never touch the network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ITEM_SCHEMAS = (
    "https://schemas.stacspec.org/v1.0.0/item-spec/json-schema/item.json",
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
)


@pytest.fixture(scope="session")
def item_errors(shared_dir_session: Path) -> Callable[[dict[str, Any]], list[str]]:
    """What the STAC item schema and the eo, view and sat schemas find wrong in an item."""
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    schemas = shared_dir_session / "schemas"
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


@pytest.fixture(scope="session")
def shared_dir_session() -> Path:
    """``../shared`` beside the checkout, or skip (a fresh clone of the project has none)."""
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    if not shared.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return shared
