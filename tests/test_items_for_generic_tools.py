"""Items that generic STAC tools understand (issue 11.3).

Media types and roles that stackstac & co. select assets by; ``item.validate()`` without a
network; item collections that can be saved and re-read without reaching for the API.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pystac
import pytest
from pystac.extensions.eo import EOExtension
from pystac.stac_io import DefaultStacIO
from pystac.validation import RegisteredValidator
from pystac.validation.stac_validator import JsonSchemaSTACValidator

import pystac_axelglobe as ag
from pystac_axelglobe.extension import (
    ASSET_KEYS,
    BAND_ASSET_KEYS,
    SCHEMA_URI,
    AxelGlobeExtension,
    normalize_item,
    register_schemas,
)

if TYPE_CHECKING:
    from pystac_axelglobe.emulator import Emulator

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
RASTER_KEYS = {*BAND_ASSET_KEYS, "tci", "msi_udm"}

# stackstac.stack()'s default `assets=`: the media types it stacks when told nothing.
STACKSTAC_DEFAULT_TYPES = ("image/tiff", "image/x.geotiff", "image/vnd.stac.geotiff",
                           "image/jp2")


def _mimetype(text: str) -> tuple[str, str | None, set[str]]:
    main, *params = (p.strip() for p in text.split(";"))
    kind, _, sub = main.partition("/")
    return kind, sub or None, set(params)


def stackstac_default_asset_ids(items: Iterable[dict[str, Any]]) -> set[str]:
    """The asset keys ``stackstac.stack(items)`` picks by default (its ``prepare_items`` rule).

    An asset key is picked when it has a ``type`` on some item and every type it has matches
    one of the default types (same type, same subtype, the default's parameters a subset).
    Assets without a ``type`` anywhere are dropped: no type at all -> "Zero asset IDs".
    """
    types: dict[str, set[str]] = defaultdict(set)
    for item in items:
        for key, asset in item["assets"].items():
            if asset.get("type"):
                types[key].add(asset["type"])
            else:
                types.setdefault(key, set())
    wanted = [_mimetype(t) for t in STACKSTAC_DEFAULT_TYPES]

    def fits(text: str) -> bool:
        kind, sub, params = _mimetype(text)
        return any(kind == w[0] and (w[1] is None or sub == w[1]) and w[2] <= params
                   for w in wanted)

    return {key for key, ts in types.items() if ts and all(fits(t) for t in ts)}


# --- 1. media types and roles ------------------------------------------------------------


def test_served_items_have_no_media_types_so_generic_tools_pick_nothing(
    emulator: Emulator,
) -> None:
    # The premise (as the guide's example item): no asset carries a type.
    assert emulator.archive is not None
    served = emulator.archive.items(emulator.api_url)
    assert all("type" not in a for d in served for a in d["assets"].values())
    assert stackstac_default_asset_ids(served) == set()


def test_normalised_items_carry_media_types_and_roles_stackstac_selects(
    emulator: Emulator,
) -> None:
    assert emulator.archive is not None
    served = emulator.archive.items(emulator.api_url)
    items: list[dict[str, Any]] = copy.deepcopy(served)
    page = {"type": "FeatureCollection", "features": items}
    normalize_item(page)  # what pystac-client hands the modifier
    for item in items:
        assets = item["assets"]
        assert set(assets) == set(ASSET_KEYS)
        for key in RASTER_KEYS:
            assert assets[key]["type"] == COG, key
            assert assets[key]["roles"] == ["data"], key
        assert assets["thumbnail"]["type"] == "image/jpeg"
        assert assets["thumbnail"]["roles"] == ["thumbnail"]
        assert assets["msi_udm_metadata"]["type"] == "application/json"
        assert assets["msi_udm_metadata"]["roles"] == ["metadata"]
    # stackstac's default picks exactly the GeoTIFFs: the bands, tci and the mask
    assert stackstac_default_asset_ids(items) == RASTER_KEYS
    # ... and the same through pystac objects, as stackstac gets them (item.to_dict())
    objects = [pystac.Item.from_dict(d) for d in served]
    for obj in objects:
        normalize_item(obj)
    assert stackstac_default_asset_ids(i.to_dict(transform_hrefs=False)
                                       for i in objects) == RASTER_KEYS
    assert objects[0].assets["band3"].media_type == pystac.MediaType.COG
    assert [k for k, a in objects[0].assets.items() if a.has_role("data")] == [
        k for k in ASSET_KEYS if k in RASTER_KEYS]


def test_items_through_open_have_media_types(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs())
    item = next(client.search(collections="grus-1", max_items=1).items())
    assert {k for k, a in item.assets.items() if a.media_type == COG} == RASTER_KEYS
    assert item.assets["thumbnail"].media_type == "image/jpeg"


def test_the_archive_serves_what_the_media_types_say(emulator: Emulator) -> None:
    # The types are claims about the files: a COG layout, a JPEG, JSON. Check the bytes.
    rasterio = pytest.importorskip("rasterio")
    assert emulator.archive is not None
    item_id = emulator.archive.item_ids()[0]
    files = {p.name.rsplit("_", 1)[-1]: p
             for p in Path(emulator.archive.root, "files", item_id).iterdir()}
    for name in ("band0.tif", "band5.tif", "tci.tif", "udm.tif"):
        with rasterio.open(files[name]) as ds:
            assert ds.driver == "GTiff"
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", name
            assert ds.profile["tiled"] and ds.overviews(1), name
    assert files["thumbnail.jpg"].read_bytes()[:3] == b"\xff\xd8\xff"
    json.loads(files["metadata.json"].read_text(encoding="utf-8"))


def test_types_and_roles_the_server_gave_are_kept_and_normalising_is_idempotent() -> None:
    d: dict[str, Any] = {
        "type": "Feature", "id": "x", "properties": {}, "links": [],
        "assets": {
            "band0": {"href": "https://example.invalid/a/2021_x_band0.tif",
                      "type": "image/tiff; application=geotiff", "roles": ["overview"]},
            "tci": {"href": "https://example.invalid/a/2021_x_tci.tif", "roles": []},
            "extra": {"href": "https://example.invalid/a/x_extra.TIF?X-Amz-Signature=s"},
            "notes": {"href": "https://example.invalid/a/notes.txt"},
        },
    }
    normalize_item(d)
    assets = d["assets"]
    assert assets["band0"]["type"] == "image/tiff; application=geotiff"  # never overwritten
    assert assets["band0"]["roles"] == ["overview"]
    assert assets["tci"] == {"href": assets["tci"]["href"], "roles": ["data"], "type": COG}
    # an unknown key: typed by its file name (the query of a presigned URL aside)
    assert assets["extra"]["type"] == COG and assets["extra"]["roles"] == ["data"]
    assert "type" not in assets["notes"] and "roles" not in assets["notes"]
    once = copy.deepcopy(d)
    normalize_item(d)
    assert d == once


# --- 2. validate() without a network -----------------------------------------------------


@pytest.fixture
def schema_fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every remote URL pystac's default IO is asked to read (the validator fetches so).

    Such a URL is recorded and refused. Local files and the emulator (loopback) are read as
    usual, so that a request to the API reaches it and shows in its records.
    """
    fetched: list[str] = []
    read = DefaultStacIO.read_text_from_href

    def offline(self: DefaultStacIO, href: str) -> str:
        host = urlsplit(href).hostname or ""
        if not href.startswith(("http://", "https://")) or host.startswith("127."):
            return read(self, href)
        fetched.append(href)
        raise OSError(f"offline test: would fetch {href}")

    monkeypatch.setattr(DefaultStacIO, "read_text_from_href", offline)
    return fetched


def _normalised_items(emulator: Emulator) -> list[pystac.Item]:
    assert emulator.archive is not None
    items = []
    for d in emulator.archive.items(emulator.api_url):
        normalize_item(d)
        items.append(pystac.Item.from_dict(d))
    return items


def test_validate_offline_fetches_no_schema(emulator: Emulator,
                                            schema_fetches: list[str]) -> None:
    items = _normalised_items(emulator)
    for item in items[:5]:
        assert SCHEMA_URI in item.stac_extensions
        checked = item.validate()
        assert SCHEMA_URI in checked
        assert "https://stac-extensions.github.io/eo/v1.1.0/schema.json" in checked
    assert schema_fetches == []
    # The ag schema does its job offline too: a malformed capture id is refused.
    bad = items[0].clone()
    bad.properties["ag:capture_id"] = "not-16-chars"
    with pytest.raises(pystac.STACValidationError, match="ag/v1.0.0"):
        bad.validate()
    assert schema_fetches == []


def test_items_without_capture_id_validate_offline(emulator: Emulator,
                                                   schema_fetches: list[str]) -> None:
    item = _normalised_items(emulator)[0]
    del item.properties["ag:capture_id"]
    item.validate()
    assert schema_fetches == []


def test_register_schemas_fills_a_validator_made_later() -> None:
    fresh = JsonSchemaSTACValidator()
    assert SCHEMA_URI not in fresh.schema_cache
    assert register_schemas(fresh) is True
    assert fresh.schema_cache[SCHEMA_URI]["$id"] == SCHEMA_URI
    for name in ("eo/v1.1.0", "view/v1.0.0", "sat/v1.0.0"):
        assert f"https://stac-extensions.github.io/{name}/schema.json" in fresh.schema_cache
    # a schema someone else put there first is theirs
    mine = {"$id": SCHEMA_URI, "type": "object"}
    other = JsonSchemaSTACValidator()
    other.schema_cache[SCHEMA_URI] = mine
    register_schemas(other)
    assert other.schema_cache[SCHEMA_URI] is mine
    assert register_schemas(object()) is False  # not a schema-cache validator: left alone
    # the process-wide validator already has them (registered when the module loaded)
    assert SCHEMA_URI in RegisteredValidator.get_validator().schema_cache  # type: ignore[attr-defined]


FRESH_VALIDATE = textwrap.dedent(
    """
    import json, sys
    import pystac
    from pystac.stac_io import DefaultStacIO
    fetched = []
    def offline(self, href):
        fetched.append(href)
        raise OSError("offline")
    DefaultStacIO.read_text_from_href = offline
    item = pystac.Item.from_dict(json.load(open(sys.argv[1])))  # no pystac_axelglobe import
    error = None
    try:
        item.validate()
    except Exception as err:
        error = repr(err)[:300]
    print(json.dumps({"fetched": fetched, "error": error,
                      "imported": "pystac_axelglobe.extension" in sys.modules}))
    """
)


def test_validate_in_a_fresh_interpreter_needs_no_import_and_no_network(
    emulator: Emulator, tmp_path: Path
) -> None:
    # A user who only has pystac: the entry point loads the package's hooks when items are
    # parsed, and with them the schemas.
    item = _normalised_items(emulator)[0]
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", FRESH_VALIDATE, str(path)], capture_output=True,
                         text=True, check=True, env=dict(os.environ), timeout=120)
    result = json.loads(out.stdout)
    assert result == {"fetched": [], "error": None, "imported": True}


# --- 3. saved item collections re-read without the API -----------------------------------


def test_saved_item_collection_rereads_without_api_requests(
    emulator: Emulator, tmp_path: Path, schema_fetches: list[str]
) -> None:
    client = ag.open(**emulator.settings_kwargs())
    saved = client.search(collections="grus-1", max_items=3).item_collection()
    path = tmp_path / "items.json"
    saved.save_object(dest_href=str(path))
    # pystac-client made the API client the items' root; saved, it is the API's URL
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert {"root", "collection"} <= {ln["rel"] for ln in on_disk["features"][0]["links"]}

    before = len(emulator.requests)
    again = pystac.ItemCollection.from_file(str(path))
    item = again.items[0]
    assert item.get_root() is None
    assert "root" not in {ln.rel for ln in item.links}
    assert item.collection_id == "grus-1" and item.get_single_link("collection") is not None
    item.to_dict()
    item.validate()
    again.to_dict()
    again.save_object(dest_href=str(tmp_path / "again.json"))
    item.save_object(dest_href=str(tmp_path / "item.json"), include_self_link=False)
    assert AxelGlobeExtension.has_extension(item)
    assert AxelGlobeExtension.ext(item).capture_id == saved.items[0].properties["ag:capture_id"]
    assert item.ext.has("eo") and EOExtension.ext(item).cloud_cover is not None
    assert emulator.requests[before:] == []
    assert schema_fetches == []


def test_navigating_from_a_reread_item_goes_through_an_authenticated_root(
    emulator: Emulator, tmp_path: Path
) -> None:
    # get_collection() asks the API by nature; give the item the client as its root and it
    # asks with the token (the documented recipe) instead of failing unauthenticated.
    client = ag.open(**emulator.settings_kwargs())
    saved = client.search(collections="grus-1", max_items=1).item_collection()
    path = tmp_path / "items.json"
    saved.save_object(dest_href=str(path))
    item = pystac.ItemCollection.from_file(str(path)).items[0]
    item.set_root(client)
    before = emulator.counters.as_dict()
    collection = item.get_collection()
    assert collection is not None and collection.id == "grus-1"
    after = emulator.counters.as_dict()
    assert after["api_requests"] - before["api_requests"] <= 1


def test_normalising_drops_a_root_link_to_the_api_only() -> None:
    api = "https://api.axelglobe.com/stac/v1/catalogs/axelglobe"
    d: dict[str, Any] = {
        "type": "Feature", "id": "x", "properties": {}, "assets": {},
        "links": [
            {"rel": "root", "href": api + "/", "type": "application/json"},
            {"rel": "collection", "href": api + "/collections/grus-1"},
            {"rel": "parent", "href": api + "/collections/grus-1"},
            {"rel": "self", "href": api + "/collections/grus-1/features/x"},
        ],
    }
    normalize_item(d)
    assert [ln["rel"] for ln in d["links"]] == ["collection", "parent", "self"]
    other = {"type": "Feature", "id": "y", "properties": {}, "assets": {},
             "links": [{"rel": "root", "href": "https://example.com/catalog.json"}]}
    normalize_item(other)
    assert other["links"] == [{"rel": "root", "href": "https://example.com/catalog.json"}]
