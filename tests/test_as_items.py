"""The one ``as_items`` (``_items.py``): the shapes ``download()`` and ``load()`` take.

Without ``dicts`` (``download()``) a dict is refused with the way to make it an item; with
``dicts`` (``load()``) item dicts and a FeatureCollection become items. The words of each
refusal are the ones each caller gave before the two copies became one.
"""

from __future__ import annotations

import re

import pystac
import pytest

import pystac_axelglobe as ag
from pystac_axelglobe._items import as_items
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.errors import ConfigurationError


@pytest.fixture(scope="module")
def items(emulator: Emulator) -> list[pystac.Item]:
    return emulator.items()[:3]


def _ids(found: list[pystac.Item]) -> list[str]:
    return [item.id for item in found]


def test_every_shape_of_items_gives_the_same_list(items: list[pystac.Item]) -> None:
    ids = _ids(items)
    for dicts in (False, True):
        assert _ids(as_items(items[0], caller="f()", dicts=dicts)) == ids[:1]
        assert _ids(as_items(items, caller="f()", dicts=dicts)) == ids
        assert _ids(as_items(iter(items), caller="f()", dicts=dicts)) == ids
        assert _ids(as_items(pystac.ItemCollection(items), caller="f()", dicts=dicts)) == ids
        assert as_items([], caller="f()", dicts=dicts) == []  # "nothing" is the caller's call


def test_a_search_is_paged_through(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs())
    found = as_items(client.search(max_items=3, limit=2), caller="download()")
    assert all(isinstance(item, pystac.Item) for item in found)
    # Two pages of two: the whole search, as its own items() gives it.
    assert _ids(found) == _ids(list(client.search(max_items=3, limit=2).items()))
    assert len(found) == 3


def test_dicts_become_items_only_when_the_caller_converts_them(
    items: list[pystac.Item],
) -> None:
    ids = _ids(items)
    dicts = [item.to_dict() for item in items]
    collection = {"type": "FeatureCollection", "features": dicts}
    assert _ids(as_items(dicts[0], caller="load()", dicts=True)) == ids[:1]
    assert _ids(as_items(dicts, caller="load()", dicts=True)) == ids
    assert _ids(as_items(collection, caller="load()", dicts=True)) == ids
    assert _ids(as_items([items[0], dicts[1]], caller="load()", dicts=True)) == ids[:2]

    with pytest.raises(ConfigurationError) as info:
        as_items(collection, caller="download()")
    assert str(info.value) == (
        "download() takes a pystac.Item, a list of them, an ItemCollection or an ItemSearch, "
        "not dict; for an item dict use pystac.Item.from_dict(d)")
    with pytest.raises(ConfigurationError) as info:
        as_items([items[0], dicts[1]], caller="download()")
    assert str(info.value) == (
        "download() takes pystac.Item objects, got a dict in the list; for item dicts use "
        "pystac.Item.from_dict(d)")


LOAD_TAKES = ("load() takes pystac Items (a search's items(), an ItemCollection), item dicts "
              "or a FeatureCollection dict")


@pytest.mark.parametrize(("given", "message"), [
    ("52eZg9k7rPEyYQGX", f"{LOAD_TAKES}; got str"),
    (42, f"{LOAD_TAKES}; got int"),
    ([42], f"{LOAD_TAKES}; got a int among them"),
    # A FeatureCollection without a features list is refused, not a TypeError.
    ({"type": "FeatureCollection", "features": None}, f"{LOAD_TAKES}; got NoneType"),
])
def test_what_load_refuses_is_named(given: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        as_items(given, caller="load()", dicts=True)
    assert str(info.value) == message


def test_a_dict_that_is_no_item_says_why() -> None:
    with pytest.raises(ConfigurationError,
                       match=re.escape(f"{LOAD_TAKES}; this dict is not a STAC Item: ")):
        as_items([{"type": "Feature"}], caller="load()", dicts=True)


@pytest.mark.parametrize("given", ["S2A_item", b"bytes", 42, None])
def test_what_download_refuses_is_named(given: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        as_items(given, caller="download()")
    assert str(info.value) == (
        "download() takes a pystac.Item, a list of them, an ItemCollection or an ItemSearch, "
        f"not {type(given).__name__}; for an item dict use pystac.Item.from_dict(d)")
