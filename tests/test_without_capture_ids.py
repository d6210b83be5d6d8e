"""Items without ``ag:capture_id`` (the guide's example item has none): what the client keeps.

The emulator serves such items with ``Emulator(capture_ids=False)``; filtering on
``ag:capture_id`` still works there. A search for exactly one capture gives items that carry
the id searched for, through ``ag.open()`` and through the plain pystac-client with the
modifier; any other search invents nothing. Downloads and saved item collections work the
same, and a re-read item's links are followed only when asked (docs/design/saved-items.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pystac
import pystac_client
import pytest
from click.testing import CliRunner

import pystac_axelglobe as ag
from pystac_axelglobe import filters
from pystac_axelglobe.cli import cli
from pystac_axelglobe.client import AxelGlobeClient
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import InvalidQueryError
from pystac_axelglobe.extension import AxelGlobeExtension
from tests.fake_api import FakeAPI, Handler, item, page

CAPTURE = "52eZg9k7rPEyYQGX"  # the guide's: 4 tiles in the emulator's archive
LIMIT = 2  # several pages


@pytest.fixture(scope="module")
def hidden() -> Iterator[Emulator]:
    """The emulator serving items as the guide's example: no ``ag:capture_id``."""
    with Emulator(capture_ids=False) as emu:
        yield emu


@pytest.fixture(scope="module")
def truth(hidden: Emulator) -> dict[str, str]:
    """Item id -> capture id, from the archive behind the emulator (it keeps them)."""
    assert hidden.archive is not None
    return {i["id"]: i["properties"]["ag:capture_id"]
            for i in hidden.archive.items(hidden.api_url)}


@pytest.fixture(scope="module")
def client(hidden: Emulator, tmp_path_factory: pytest.TempPathFactory) -> AxelGlobeClient:
    return ag.open(**hidden.settings_kwargs(), cache_dir=tmp_path_factory.mktemp("open"))


@pytest.fixture(scope="module")
def plain(hidden: Emulator, tmp_path_factory: pytest.TempPathFactory) -> pystac_client.Client:
    """The one-line integration of the docs."""
    auth = ag.AxelGlobeAuth(**hidden.settings_kwargs(),
                            cache_dir=tmp_path_factory.mktemp("plain"))
    return pystac_client.Client.open(hidden.api_url, request_modifier=auth,
                                     modifier=ag.normalize_item)


def capture_of(truth: dict[str, str], capture: str = CAPTURE) -> set[str]:
    return {item_id for item_id, cid in truth.items() if cid == capture}


def carried(items: list[pystac.Item]) -> set[Any]:
    """What each item says its capture is: the property and the typed extension agree."""
    for one in items:
        assert AxelGlobeExtension.ext(one).capture_id == one.properties.get("ag:capture_id")
    return {AxelGlobeExtension.ext(one).capture_id for one in items}


# --- 1. a search for one capture carries its id ------------------------------------------


CAPTURE_SEARCHES: dict[str, dict[str, Any]] = {
    "filter-text": {"filter": f"ag:capture_id = '{CAPTURE}'"},
    "filter-builder": {"filter": filters.capture_id(CAPTURE)},
    "capture_id-argument": {"capture_id": CAPTURE},
    "anded-with-cloud-cover": {"filter": f"eo:cloud_cover <= 100 AND ag:capture_id = '{CAPTURE}'"},
    "literal-first": {"filter": f"'{CAPTURE}' = ag:capture_id"},
    "in-with-one-id": {"filter": f"ag:capture_id IN ('{CAPTURE}')"},
    "cql2-json": {"filter": {"op": "=", "args": [{"property": "ag:capture_id"}, CAPTURE]}},
}


@pytest.mark.parametrize("name", list(CAPTURE_SEARCHES))
def test_ag_open_items_of_one_capture_carry_its_id(
        name: str, client: AxelGlobeClient, hidden: Emulator,
        truth: dict[str, str]) -> None:
    found = list(client.search(limit=LIMIT, **CAPTURE_SEARCHES[name]).items())
    assert {i.id for i in found} == capture_of(truth) and len(found) == 4
    assert carried(found) == {CAPTURE}
    # what the server sent: no ag:capture_id (the client filled it in, not the emulator)
    assert all("ag:capture_id" not in i.properties for i in hidden.items())


@pytest.mark.parametrize("method", [None, "GET", "POST"])
def test_the_plain_client_with_the_modifier_carries_it_too(
        method: str | None, plain: pystac_client.Client, truth: dict[str, str]) -> None:
    kwargs: dict[str, Any] = {"filter": f"ag:capture_id = '{CAPTURE}'", "limit": LIMIT}
    if method is not None:
        kwargs["method"] = method
    by_items = list(plain.search(**kwargs).items())
    by_pages = [i for page in plain.search(**kwargs).pages() for i in page]
    collection = list(plain.search(**kwargs).item_collection())
    capped = list(plain.search(**kwargs, max_items=3).items())
    for found in (by_items, by_pages, collection):
        assert {i.id for i in found} == capture_of(truth)
        assert carried(found) == {CAPTURE}
    assert len(capped) == 3 and carried(capped) == {CAPTURE}


def test_both_clients_give_the_same_items(client: AxelGlobeClient,
                                          plain: pystac_client.Client) -> None:
    query: dict[str, Any] = {"filter": filters.capture_id(CAPTURE), "limit": LIMIT}
    ours = [i.to_dict(transform_hrefs=False) for i in client.search(**query).items()]
    theirs = [i.to_dict(transform_hrefs=False) for i in plain.search(**query).items()]
    assert [i["properties"] for i in ours] == [i["properties"] for i in theirs]


# --- nothing is invented ---------------------------------------------------------------------


def _other_capture(truth: dict[str, str]) -> str:
    return sorted(set(truth.values()) - {CAPTURE})[0]


@pytest.mark.parametrize("which", ["in-two", "or-two", "not", "none", "capture_id-list"])
def test_no_id_is_invented_unless_one_capture_was_searched(
        which: str, client: AxelGlobeClient, plain: pystac_client.Client,
        truth: dict[str, str]) -> None:
    other = _other_capture(truth)
    searches: dict[str, dict[str, Any]] = {
        "in-two": {"filter": f"ag:capture_id IN ('{CAPTURE}', '{other}')"},
        "or-two": {"filter": f"ag:capture_id = '{CAPTURE}' OR ag:capture_id = '{other}'"},
        "not": {"filter": f"NOT (ag:capture_id <> '{CAPTURE}')"},
        "none": {"bbox": [133, 35, 137, 36]},
        "capture_id-list": {"capture_id": [CAPTURE, other]},
    }
    kwargs = searches[which]
    clients = [client] if which == "capture_id-list" else [client, plain]  # ag.open()'s own
    for one in clients:
        found = list(one.search(limit=LIMIT, **kwargs).items())
        assert found
        assert carried(found) == {None}  # the extension says None: the capture is unknown
    if which in ("in-two", "or-two", "capture_id-list"):
        assert {i.id for i in found} == capture_of(truth) | capture_of(truth, other)


def test_an_id_the_server_sent_is_never_replaced(emulator: Emulator, tmp_path: Path) -> None:
    # A server whose answer disagrees with the query: the item's own id stays.
    def search(h: Handler, n: int) -> None:
        sent, missing = item(1), item(2)
        sent["properties"]["ag:capture_id"] = "sentByTheServer1"
        h.json(page(h.server.url, [sent, missing]))

    with FakeAPI({"search": search}) as server:
        settings: dict[str, Any] = {**emulator.settings_kwargs(), "api_url": server.url,
                                    "cache_dir": tmp_path}
        opened = ag.open(**settings)
        auth = ag.AxelGlobeAuth(**settings)
        bare = pystac_client.Client.open(server.url, request_modifier=auth,
                                         modifier=ag.normalize_item)
        for one in (opened, bare):
            found = list(one.search(filter=filters.capture_id(CAPTURE)).items())
            assert [AxelGlobeExtension.ext(i).capture_id for i in found] == [
                "sentByTheServer1", CAPTURE]
        assert server.hits["search"] == 2


# --- the capture_id= argument of ag.open()'s search -------------------------------------


def test_capture_id_argument_is_anded_with_the_filter(client: AxelGlobeClient,
                                                      hidden: Emulator) -> None:
    before = len(hidden.requests)
    found = list(client.search(capture_id=CAPTURE, filter={"op": "<=", "args": [
        {"property": "eo:cloud_cover"}, 100]}).items())
    assert len(found) == 4
    sent = [parse_qs(e[2]) for e in hidden.requests[before:] if e[1].endswith("/search")]
    assert sent[0]["filter"] == [f"(eo:cloud_cover <= 100) AND (ag:capture_id = '{CAPTURE}')"]


@pytest.mark.parametrize(("value", "words"), [
    ("", "capture_id must be a non-empty string"),
    ([], "capture_id is an empty list"),
    (5, "capture_id must be a string or a list of strings"),
    (["ok", 5], "capture_id must be a non-empty string, got 5"),
])
def test_a_bad_capture_id_fails_before_any_request(client: AxelGlobeClient,
                                                   hidden: Emulator, value: Any,
                                                   words: str) -> None:
    before = hidden.counters.api_requests
    with pytest.raises(InvalidQueryError, match=words):
        client.search(capture_id=value)
    assert hidden.counters.api_requests == before


# --- 2. downloads, and the CLI -------------------------------------------------------------


def test_download_of_a_capture_without_ids(client: AxelGlobeClient, hidden: Emulator,
                                           tmp_path: Path) -> None:
    items = list(client.search(capture_id=CAPTURE).items())
    local = ag.download(items, assets=["tci", "msi_udm_metadata"], directory=tmp_path,
                        auth=ag.AxelGlobeAuth(**hidden.settings_kwargs()), progress=False)
    assert hidden.archive is not None
    files = [Path(i.assets[k].href) for i in local for k in ("tci", "msi_udm_metadata")]
    assert len(files) == 8
    for path in files:
        item_id = path.name.split("_")[1]
        assert path.read_bytes() == hidden.archive.asset_path(item_id, path.name).read_bytes()
    assert carried(local) == {CAPTURE}  # the local copies keep what the search gave


def test_cli_table_and_download_without_ids(hidden: Emulator, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            truth: dict[str, str]) -> None:
    for name, value in hidden.env().items():
        if name != "AXELGLOBE_CACHE_DIR":
            monkeypatch.setenv(name, value)
    table = CliRunner().invoke(cli, ["search", "--capture-id", CAPTURE, "--limit", "2",
                                     "--table"])
    assert table.exit_code == 0, table.stderr
    rows = table.stdout.strip().splitlines()[2:-1]
    assert {r.split()[0] for r in rows} == capture_of(truth)
    assert all(r.split()[-1] == CAPTURE for r in rows)  # the capture column is filled
    other = CliRunner().invoke(cli, ["search", "--bbox", "133,35,137,36", "--table"])
    assert other.exit_code == 0, other.stderr
    assert CAPTURE not in other.stdout  # a search for no capture shows none

    got = CliRunner().invoke(cli, ["download", "--capture-id", CAPTURE, "--assets", "tci",
                                   "--dir", str(tmp_path)])
    assert got.exit_code == 0, got.stderr
    assert len(list(tmp_path.rglob("*_tci.tif"))) == 4
    assert "4 file(s)" in got.stderr


# --- 4. saved items, read back ---------------------------------------------------------------


def test_saved_items_keep_the_carried_id_and_follow_no_link_unasked(
        client: AxelGlobeClient, hidden: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    client.search(capture_id=CAPTURE).item_collection().save_object(dest_href=str(path))
    before = hidden.counters.as_dict()

    again = pystac.ItemCollection.from_file(str(path))
    one = again.items[0]
    assert carried(list(again)) == {CAPTURE}
    assert one.get_root() is None and one.collection_id == "grus-1"
    assert one.get_self_href() is not None
    one.validate()
    again.to_dict()
    again.save_object(dest_href=str(tmp_path / "again.json"))
    assert json.loads((tmp_path / "again.json").read_text())["features"][0]["properties"][
        "ag:capture_id"] == CAPTURE
    assert hidden.counters.as_dict() == before  # nothing reached the API


def test_get_collection_of_a_reread_item_asks_only_when_asked(
        client: AxelGlobeClient, hidden: Emulator, tmp_path: Path) -> None:
    # Decided (docs/design/saved-items.md): the collection link stays (STAC requires it
    # beside the "collection" field); following it is the one explicit request. Without an
    # authenticated root it goes out without a token and is refused.
    path = tmp_path / "items.json"
    client.search(capture_id=CAPTURE, max_items=1).item_collection().save_object(
        dest_href=str(path))
    one = pystac.ItemCollection.from_file(str(path)).items[0]
    before = hidden.counters.as_dict()
    with pytest.raises(pystac.STACError, match="does not resolve to a STAC object"):
        one.get_collection()
    after = hidden.counters.as_dict()
    assert after["api_requests"] - before["api_requests"] == 1
    assert after["token_requests"] == before["token_requests"]

    one.set_root(client)  # the documented recipe: through the authenticated client
    collection = one.get_collection()
    assert collection is not None and collection.id == "grus-1"
    assert hidden.counters.api_requests - after["api_requests"] == 1

