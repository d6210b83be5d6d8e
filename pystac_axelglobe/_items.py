"""The items a caller passed, as a list of ``pystac.Item``: the one ``as_items``.

``download()`` and ``load()`` take the same shapes: an item, a list or iterator of items, a
``pystac.ItemCollection`` or a pystac-client ``ItemSearch`` (paged through). With
``dicts=True`` (``load()``) item dicts and a FeatureCollection dict are turned into items
too; without, a dict is refused with the way to turn it into one. Anything else is a
:class:`~pystac_axelglobe.errors.ConfigurationError` naming what was passed and what to
pass instead.

Example:
    >>> import datetime
    >>> item = pystac.Item("a", None, None, datetime.datetime(2021, 4, 10), {})
    >>> [i.id for i in as_items(item, caller="download()")]
    ['a']
    >>> [i.id for i in as_items([item.to_dict()], caller="load()", dicts=True)]
    ['a']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pystac

from .errors import ConfigurationError

__all__ = ["as_items"]

# What each kind of caller accepts: download() refuses dicts (False), load() converts them.
_ACCEPTED = {
    False: "a pystac.Item, a list of them, an ItemCollection or an ItemSearch",
    True: "pystac Items (a search's items(), an ItemCollection), item dicts or a "
          "FeatureCollection dict",
}


def as_items(items: object, *, caller: str, dicts: bool = False) -> list[pystac.Item]:
    """``items`` as a list of ``pystac.Item``, or a ``ConfigurationError`` saying what to pass.

    Args:
        items: an item, an iterable of items, an ``ItemCollection`` or an ``ItemSearch``
            (its ``items()`` are read: the search's pages are requested); with ``dicts``,
            also item dicts and a FeatureCollection dict.
        caller: the function named in errors, e.g. ``"download()"``.
        dicts: turn item dicts into items instead of refusing them.

    Raises:
        ConfigurationError: not one of those shapes, or an element that is no item.

    Example:
        >>> as_items([], caller="download()")
        []
    """
    if isinstance(items, pystac.Item):
        return [items]
    if isinstance(items, pystac.ItemCollection):
        return list(items.items)
    if dicts and isinstance(items, Mapping):
        # One item dict, or a FeatureCollection's features.
        items = items.get("features") if items.get("type") == "FeatureCollection" else [items]
    search_items = getattr(items, "items", None)
    if callable(search_items) and not isinstance(items, Mapping):
        # pystac_client.ItemSearch: iterating its items() pages through the search.
        items = search_items()
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        kind = type(items).__name__
        if dicts:
            raise ConfigurationError(f"{caller} takes {_ACCEPTED[dicts]}; got {kind}")
        raise ConfigurationError(f"{caller} takes {_ACCEPTED[dicts]}, not {kind}; for an "
                                 "item dict use pystac.Item.from_dict(d)")
    return [_one(obj, caller, dicts) for obj in items]


def _one(obj: object, caller: str, dicts: bool) -> pystac.Item:
    """``obj`` as an item: as it is, or (with ``dicts``) made from its dict."""
    if isinstance(obj, pystac.Item):
        return obj
    kind = type(obj).__name__
    if not dicts:
        raise ConfigurationError(f"{caller} takes pystac.Item objects, got a {kind} in the "
                                 "list; for item dicts use pystac.Item.from_dict(d)")
    if not isinstance(obj, Mapping):
        raise ConfigurationError(f"{caller} takes {_ACCEPTED[dicts]}; got a {kind} among them")
    try:
        return pystac.Item.from_dict(dict(obj))
    except Exception as err:  # pystac raises several types for a dict that is no Item
        raise ConfigurationError(f"{caller} takes {_ACCEPTED[dicts]}; this dict is not a "
                                 f"STAC Item: {err!r}") from err
