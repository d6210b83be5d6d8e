"""Which capture a search's filter names: the items' ``ag:capture_id`` known from the query.

A search for one capture's tiles names it in its filter (``ag:capture_id = 'X'``); the
items the guide shows do not always carry the id, so
:func:`~pystac_axelglobe.extension.carry_capture_id` gives it to them from the query that
:func:`searched_capture_id` reads.

Example:
    >>> searched_capture_id({"filter": "ag:capture_id = '52eZg9k7rPEyYQGX'"})
    '52eZg9k7rPEyYQGX'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._ag_schema import CAPTURE_ID_PROP


def searched_capture_id(params: Mapping[str, Any]) -> str | None:
    """The one capture a search is restricted to by its filter, or None.

    Reads AxelGlobe's parameters as sent (``filter`` in CQL2 text). The filter names one
    capture when every item it can match has that ``ag:capture_id``:
    ``ag:capture_id = 'X'``, ``ag:capture_id IN ('X')``, such a clause ANDed with others,
    or alternatives that all name X. Several ids, a negation or no capture clause: None
    (the items' capture is not known from the query, and none is made up).

    Example:
        >>> searched_capture_id({"filter": "(eo:cloud_cover <= 30) AND "
        ...                                "(ag:capture_id = '52eZg9k7rPEyYQGX')"})
        '52eZg9k7rPEyYQGX'
        >>> searched_capture_id({"filter": "ag:capture_id IN ('a', 'b')"}) is None
        True
    """
    text = params.get("filter")
    if not isinstance(text, str) or CAPTURE_ID_PROP not in text:
        return None  # the common case, without parsing
    import cql2

    try:
        tree = cql2.parse_text(text).to_json()
    except Exception:  # checked before it was sent; a filter cql2 cannot read names none
        return None
    ids = _capture_ids_matched(tree)
    return next(iter(ids)) if ids is not None and len(ids) == 1 else None


def _is_capture_property(node: Any) -> bool:
    return isinstance(node, Mapping) and node.get("property") == CAPTURE_ID_PROP


def _capture_ids_matched(node: Any) -> frozenset[str] | None:
    """The capture ids a CQL2-JSON filter can match, or None when it does not restrict them."""
    if not isinstance(node, Mapping) or not isinstance(node.get("args"), list):
        return None
    op, args = str(node.get("op", "")).lower(), node["args"]
    if op == "=" and len(args) == 2:
        for prop, value in (args, args[::-1]):
            if _is_capture_property(prop) and isinstance(value, str):
                return frozenset([value])
    elif op == "in" and len(args) == 2 and _is_capture_property(args[0]):
        values = args[1]
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            return frozenset(values)
    elif op == "and":
        # Depth is bounded: the filter passed validate_filter (MAX_FILTER_DEPTH) before.
        known = [ids for ids in map(_capture_ids_matched, args) if ids is not None]
        return frozenset.intersection(*known) if known else None
    elif op == "or":
        branches = [_capture_ids_matched(arg) for arg in args]
        if branches and all(ids is not None for ids in branches):
            return frozenset().union(*(ids for ids in branches if ids is not None))
    return None
