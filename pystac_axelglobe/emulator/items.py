"""The items the emulator's API serves: the archive's, and ``extra_items`` generated ones.

The store keeps every item whole (the bulk ones as search records, :mod:`.bulk`), in the
order the API pages them, and builds the list of what a search finds once per query, not
once per page. :func:`as_served` shapes one item for an answer (without ``ag:capture_id``
when the ``capture_ids`` switch is off, as the guide's example item).

Example:
    >>> store = ItemStore(build_archive(), "http://127.0.0.1:9/x")  # doctest: +SKIP
    >>> store.get("no-such-id") is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import bulk
from . import search as search_mod

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from .archive import Archive

#: The property the guide filters on but its example item does not carry.
CAPTURE_ID = "ag:capture_id"
#: Distinct queries whose results are kept (a client paging through a few searches at once).
CACHED_QUERIES = 16


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

    Built on first use (a thread-safe once), so ``extra_items`` costs nothing at start.

    Args:
        archive: The archive whose items and files are served.
        api_url: The API root the items' hrefs point to.
        extra_items: How many metadata-only items (:mod:`.bulk`) to serve besides.
    """

    def __init__(self, archive: Archive, api_url: str, extra_items: int = 0) -> None:
        self.archive = archive
        self.api_url = api_url
        self.extra_items = extra_items
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] | None = None
        self._by_id: dict[str, dict[str, Any]] = {}
        self._shapes: dict[str, BaseGeometry | None] = {}
        self._found: collections.OrderedDict[str, list[dict[str, Any]]] = (
            collections.OrderedDict())

    def _all(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._items is None:
                items = self.archive.items(self.api_url)
                items += [bulk.record(i) for i in range(self.extra_items)]
                items.sort(key=search_mod.sort_key)
                self._by_id = {item["id"]: item for item in items}
                self._items = items
            return self._items

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The whole item ``item_id``, or ``None``."""
        self._all()
        item = self._by_id.get(item_id)
        return None if item is None else self.whole(item)

    def whole(self, item: dict[str, Any]) -> dict[str, Any]:
        """A found item whole: a bulk item gets its links and assets."""
        return bulk.expand(item, self.api_url)

    def search(self, params: search_mod.SearchParams) -> list[dict[str, Any]]:
        """Every item matching ``params`` (all pages), in the order the API pages them.

        Pass each of them through :meth:`whole` before answering with it.
        """
        items = self._all()
        key = json.dumps(dataclasses.asdict(dataclasses.replace(params, page=1, limit=1)),
                         sort_keys=True, default=str)
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
        found = search_mod.search(items, params, geometry=self._shape, ordered=True)
        with self._lock:
            self._found[key] = found
            while len(self._found) > CACHED_QUERIES:
                self._found.popitem(last=False)
        return found

    def _shape(self, item: Mapping[str, Any]) -> BaseGeometry | None:
        # Each item's geometry is built once for all searches (items never change).
        key = item["id"]
        shape = self._shapes.get(key)
        if shape is None and key not in self._shapes:
            shape = self._shapes[key] = search_mod.item_geometry(item)
        return shape

    def has_file(self, item_id: str, filename: str) -> bool:
        """Whether ``filename`` is the file of one of the item's assets."""
        item = self.get(item_id)
        return item is not None and any(
            asset["href"].rsplit("/", 1)[-1] == filename for asset in item["assets"].values()
        )

    def asset_path(self, item_id: str, filename: str) -> Path:
        """The file of one asset (``KeyError`` if storage has none: bulk items have none)."""
        return self.archive.asset_path(item_id, filename)
