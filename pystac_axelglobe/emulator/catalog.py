"""The API's fixed documents: landing page, conformance, queryables, OpenAPI description.

Pure functions of the API's root URL and a switch or two; :mod:`.api` serves them.

Example:
    >>> landing("http://127.0.0.1:9/stac/v1/catalogs/axelglobe")["id"]
    'axelglobe'
"""

from __future__ import annotations

from typing import Any

from .archive import COLLECTION_ID

OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-operators",
]

_QUERYABLES: dict[str, Any] = {
    "id": {"type": "string"},
    "collection": {"type": "string"},
    "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"},
    "datetime": {"type": "string", "format": "date-time"},
    "eo:cloud_cover": {"type": "number", "minimum": 0, "maximum": 100},
    "view:off_nadir": {"type": "number"},
    "sat:orbit_state": {"type": "string"},
    "platform": {"type": "string"},
    "constellation": {"type": "string"},
    "gsd": {"type": "number"},
    "ag:capture_id": {"type": "string"},
}


def link(rel: str, href: str, **extra: str) -> dict[str, str]:
    """A link typed ``application/json`` unless ``extra`` says otherwise.

    Example:
        >>> link("self", "http://x")
        {'rel': 'self', 'href': 'http://x', 'type': 'application/json'}
    """
    return {"rel": rel, "href": href, "type": "application/json", **extra}


def landing(root: str, *, conforms_to: bool = True) -> dict[str, Any]:
    """The landing page (``conformsTo`` in it unless ``conforms_to`` is false)."""
    body: dict[str, Any] = {
        "type": "Catalog",
        "id": "axelglobe",
        "stac_version": "1.0.0",
        "title": "The AxelGlobe STAC catalog",
        "description": "AxelGlobe STAC API (loopback emulator)",
        "links": [
            link("self", root),
            link("root", root),
            link("data", f"{root}/collections"),
            link("conformance", f"{root}/conformance"),
            link("search", f"{root}/search", type="application/geo+json", method="GET"),
            link(QUERYABLES_REL, f"{root}/queryables", type="application/schema+json"),
            link("child", f"{root}/collections/{COLLECTION_ID}", title="GRUS 1"),
            link("service-desc", f"{root}/api", type=OPENAPI_TYPE),
            link("service-doc", f"{root}/api.html", type="text/html"),
        ],
    }
    if conforms_to:
        body["conformsTo"] = CONFORMANCE
    return body


def queryables(root: str) -> dict[str, Any]:
    """The queryables document (JSON Schema) of the API and of its collection."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{root}/queryables",
        "type": "object",
        "title": "Queryables",
        "properties": _QUERYABLES,
    }


def service_desc(root: str) -> dict[str, Any]:
    """A minimal OpenAPI description of the API's GET paths."""
    get = {"get": {"responses": {"200": {"description": "OK"}}}}
    paths = ["", "/conformance", "/queryables", "/collections", "/collections/{collectionId}",
             "/collections/{collectionId}/features",
             "/collections/{collectionId}/features/{featureId}", "/search"]
    return {
        "openapi": "3.0.3",
        "info": {"title": "AxelGlobe STAC API (emulator)", "version": "1.0.0"},
        "servers": [{"url": root}],
        "paths": {path or "/": get for path in paths},
    }


def service_doc(root: str) -> str:
    """The HTML page that points to the OpenAPI description."""
    return (
        "<!doctype html><html><head><title>AxelGlobe STAC API (emulator)</title></head>"
        f'<body><p>The OpenAPI description is at <a href="{root}/api">/api</a>.'
        "</p></body></html>"
    )
