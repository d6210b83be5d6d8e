"""The ``ag`` extension's identity: its schema URI, its field, its JSON Schema (package data).

AxelGlobe items carry ``ag:capture_id`` but declare no extension for it; this package
declares one under its own namespace and ships its JSON Schema, with copies of the
stac-extensions schemas a normalised item declares. :func:`register_schemas` gives them to
pystac's validator, so ``item.validate()`` fetches nothing.

Example:
    >>> CAPTURE_ID_PROP
    'ag:capture_id'
    >>> schema()["$id"] == SCHEMA_URI
    True
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, cast

SCHEMA_URI: str = "https://pystac-axelglobe.github.io/extensions/ag/v1.0.0/schema.json"
PREFIX: str = "ag:"
CAPTURE_ID_PROP: str = PREFIX + "capture_id"

#: Package-data location of :data:`SCHEMA_URI`'s document (``schemas/ag/v1.0.0/schema.json``).
SCHEMA_RESOURCE: tuple[str, ...] = ("schemas", "ag", "v1.0.0", "schema.json")

#: The eo extension's schema as AxelGlobe declares it (pystac migrates it to v1.1.0 on read).
EO_SCHEMA_URI = "https://stac-extensions.github.io/eo/v1.0.0/schema.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of the ``ag`` extension, read from the package data.

    Example:
        >>> schema()["$id"] == SCHEMA_URI
        True
    """
    return _read_schema(SCHEMA_RESOURCE)


def _read_schema(parts: tuple[str, ...]) -> dict[str, Any]:
    path = resources.files("pystac_axelglobe").joinpath(*parts)
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


#: The schemas shipped as package data, by the URI ``validate()`` asks for: ours, and the
#: stac-extensions schemas of what normalised items declare (unmodified Apache-2.0 copies;
#: ``schemas/README.md``). eo is v1.1.0 because pystac migrates the served v1.0.0 on read.
BUNDLED_SCHEMAS: dict[str, tuple[str, ...]] = {
    SCHEMA_URI: SCHEMA_RESOURCE,
    **{
        f"https://stac-extensions.github.io/{name}/{version}/schema.json": (
            "schemas", "stac-extensions", name, version, "schema.json")
        for name, version in (("eo", "v1.1.0"), ("view", "v1.0.0"), ("sat", "v1.0.0"))
    },
}


def register_schemas(validator: Any = None) -> bool:
    """Give pystac's validator the shipped schemas, so ``item.validate()`` fetches none.

    pystac's :class:`~pystac.validation.stac_validator.JsonSchemaSTACValidator` fetches
    every extension schema it has not got in its ``schema_cache`` (keyed by URI) over
    HTTP, unauthenticated, each process anew; ours is not even published. This fills the
    cache with :data:`BUNDLED_SCHEMAS` (the STAC core schemas come with pystac), so
    validating a normalised item needs no network. Entries already there are kept.

    It runs when this module loads (which pystac's entry-point discovery does as soon as it
    parses an item), for the process-wide validator. Call it yourself for a validator you
    make later: ``pystac.validation.set_validator(v); register_schemas(v)``.

    Args:
        validator: the validator to fill; default: pystac's registered one.

    Returns:
        Whether the validator has a schema cache to fill (a custom validator may not).

    Example:
        >>> from pystac.validation import RegisteredValidator
        >>> register_schemas()
        True
        >>> SCHEMA_URI in RegisteredValidator.get_validator().schema_cache
        True
    """
    if validator is None:
        from pystac.validation import RegisteredValidator

        try:
            validator = RegisteredValidator.get_validator()
        except Exception:  # pystac without jsonschema cannot validate at all
            return False
    cache = getattr(validator, "schema_cache", None)
    if not isinstance(cache, dict):
        return False
    for uri, parts in BUNDLED_SCHEMAS.items():
        if uri not in cache:
            cache[uri] = _read_schema(parts)
    return True
