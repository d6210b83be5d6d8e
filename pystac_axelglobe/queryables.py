"""The properties AxelGlobe items carry, and a check that catches typos in filters.

AxelGlobe answers a filter on a property its items do not carry (``eo:cloudcover``,
``cloud_cover``) with zero items and no error, which looks exactly like "nothing matched".
:func:`check_properties` refuses such a filter before it is sent, naming the closest known
property. The known names are the API's queryables (``{root}/queryables``) plus the item
fields CQL2 can name; :func:`allow_properties` adds more (a property the API gains later),
and :func:`set_property_check` turns the check off.

Example:
    >>> check_properties({"op": "<=", "args": [{"property": "eo:cloudcover"}, 30]})
    Traceback (most recent call last):
    ...
    pystac_axelglobe.errors.InvalidQueryError: the filter names the property 'eo:cloudcover', \
which AxelGlobe items do not carry (a filter on it finds nothing); did you mean \
'eo:cloud_cover'? ...
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator
from typing import Any

from .errors import InvalidQueryError

#: What a filter may name: AxelGlobe's queryables and the item fields CQL2 can address.
KNOWN_PROPERTIES: frozenset[str] = frozenset({
    "id",
    "collection",
    "geometry",
    "datetime",
    "start_datetime",
    "end_datetime",
    "eo:cloud_cover",
    "view:off_nadir",
    "sat:orbit_state",
    "platform",
    "constellation",
    "instruments",
    "gsd",
    "ag:capture_id",
})

_lock = threading.Lock()
_allowed: set[str] = set()
_enabled = True


def allow_properties(*names: str) -> None:
    """Accept ``names`` in filters too, in this process (e.g. a property the API gained).

    Example:
        >>> allow_properties("ag:new_thing")  # doctest: +SKIP
        >>> "ag:new_thing" in known_properties()  # doctest: +SKIP
        True
    """
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidQueryError(f"a property name must be a non-empty string, got {name!r}")
    with _lock:
        _allowed.update(names)


def set_property_check(enabled: bool) -> None:
    """Turn the check of property names on or off, in this process (on by default).

    Example:
        >>> set_property_check(False); set_property_check(True)
    """
    global _enabled
    _enabled = bool(enabled)


def known_properties() -> frozenset[str]:
    """:data:`KNOWN_PROPERTIES` and what :func:`allow_properties` added.

    Example:
        >>> "eo:cloud_cover" in known_properties()
        True
    """
    with _lock:
        return KNOWN_PROPERTIES | _allowed


def properties_in(tree: Any) -> Iterator[str]:
    """The property names a CQL2-JSON tree refers to (walked without recursion).

    Example:
        >>> sorted(properties_in({"op": "and", "args": [
        ...     {"op": "=", "args": [{"property": "platform"}, "GRUS-1A"]},
        ...     {"op": "<", "args": [{"property": "gsd"}, 3]}]}))
        ['gsd', 'platform']
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("property")
            if isinstance(name, str) and len(node) == 1:
                yield name
                continue
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_properties(tree: Any) -> None:
    """Raise :class:`InvalidQueryError` if a CQL2-JSON tree names an unknown property.

    Example:
        >>> check_properties({"op": "=", "args": [{"property": "ag:capture_id"}, "x"]})
    """
    if not _enabled:
        return
    known = known_properties()
    for name in properties_in(tree):
        if name not in known:
            raise InvalidQueryError(_message(name, known))


def _message(name: str, known: frozenset[str]) -> str:
    # Compare without the prefix too, so "cloud_cover" finds "eo:cloud_cover".
    by_bare = {k.split(":", 1)[-1]: k for k in known}
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6) or [
        by_bare[m] for m in difflib.get_close_matches(name.split(":", 1)[-1], sorted(by_bare),
                                                      n=1, cutoff=0.6)
    ]
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"the filter names the property {name!r}, which AxelGlobe items do not carry (a filter "
        f"on it finds nothing); {hint}Known properties: {', '.join(sorted(known))}. If the API "
        "has gained it, call pystac_axelglobe.queryables.allow_properties("
        f"{name!r}) (or set_property_check(False) to skip this check)."
    )


__all__ = [
    "KNOWN_PROPERTIES",
    "allow_properties",
    "check_properties",
    "known_properties",
    "properties_in",
    "set_property_check",
]
