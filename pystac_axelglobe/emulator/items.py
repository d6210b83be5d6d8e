"""The items the emulator's API serves: the archive's, with hrefs on the API's origin.

The store keeps every item whole; :func:`as_served` shapes one for an answer (without
``ag:capture_id`` when the ``capture_ids`` switch is off, as the guide's example item).

Example:
    >>> store = ItemStore(build_archive(), "http://127.0.0.1:9/x")  # doctest: +SKIP
    >>> store.get("no-such-id") is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import search as search_mod

if TYPE_CHECKING:
    from .archive import Archive


#: The property the guide filters on but its example item does not carry.
CAPTURE_ID = "ag:capture_id"


def as_served(item: dict[str, Any], *, capture_ids: bool = True) -> dict[str, Any]:
    """``item`` as the API answers it: without ``ag:capture_id`` unless ``capture_ids``.

    Searches still see the property (filters and ``avg()`` groups work on it): only the
    answer leaves it out.

    Example:
        >>> as_served({"id": "a", "properties": {"ag:capture_id": "c", "gsd": 2.5}},
        ...           capture_ids=False)
        {'id': 'a', 'properties': {'gsd': 2.5}}
    """
    properties = item.get("properties") or {}
    if capture_ids or CAPTURE_ID not in properties:
        return item
    return {**item, "properties": {k: v for k, v in properties.items() if k != CAPTURE_ID}}


class ItemStore:
    """Every item the API serves, findable by id and by search.

    Args:
        archive: The archive whose items and files are served.
        api_url: The API root the items' hrefs point to.
    """

    def __init__(self, archive: Archive, api_url: str) -> None:
        self.archive = archive
        self.api_url = api_url
        self._items = archive.items(api_url)
        self._by_id = {item["id"]: item for item in self._items}

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The item ``item_id``, or ``None``."""
        return self._by_id.get(item_id)

    def search(self, params: search_mod.SearchParams) -> list[dict[str, Any]]:
        """Every item matching ``params`` (all pages), in the order the API pages them."""
        return search_mod.search(self._items, params)

    def asset_path(self, item_id: str, filename: str) -> Path:
        """The file of one asset (``KeyError`` if the item has no such file)."""
        return self.archive.asset_path(item_id, filename)
