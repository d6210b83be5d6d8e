"""The emulator's API origin: the STAC API under ``/stac/v1/catalogs/axelglobe``.

Bearer tokens from :mod:`.token`; search in :mod:`.search`; asset hrefs answered with a 302
to a presigned storage URL (:mod:`.storage`). The AxelGlobe quirks are kept on purpose:
``next`` links that carry only ``?page=N``, no ``numberMatched``, ``POST /search`` refused,
no ``rel=root`` link (unless ``root_links``).

Example:
    >>> ApiApp.routes.bind("127.0.0.1").match(f"{API_PATH}/search")
    ('search', {})
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import catalog
from . import search as search_mod
from .archive import COLLECTION_ID
from .catalog import link
from .items import as_served
from .responses import api_error, fault_response, guard, json_response
from .state import API_PATH, State
from .token import Grants, restricted_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .items import ItemStore

_PUBLIC = (f"{API_PATH}/api", f"{API_PATH}/api.html")


def _rules() -> Map:
    features = f"{API_PATH}/collections/<cid>"
    rules = [
        Rule(API_PATH, endpoint="landing"),
        Rule(f"{API_PATH}/", endpoint="landing"),
        Rule(f"{API_PATH}/conformance", endpoint="conformance"),
        Rule(f"{API_PATH}/queryables", endpoint="queryables"),
        Rule(f"{API_PATH}/collections", endpoint="collections"),
        Rule(features, endpoint="collection"),
        Rule(f"{features}/queryables", endpoint="queryables"),
        Rule(f"{API_PATH}/search", endpoint="search"),
        Rule(f"{API_PATH}/api", endpoint="service_desc"),
        Rule(f"{API_PATH}/api.html", endpoint="service_doc"),
    ]
    for alias in ("features", "items"):  # the guide says features; STAC says items
        rules += [
            Rule(f"{features}/{alias}", endpoint="items"),
            Rule(f"{features}/{alias}/<item_id>", endpoint="item"),
            Rule(f"{features}/{alias}/<item_id>/<filename>", endpoint="asset"),
        ]
    return Map(rules, strict_slashes=False, merge_slashes=False)


def _unauthorized(description: str, error: str | None = None) -> Response:
    challenge = 'Bearer realm="axelglobe"' + (f', error="{error}"' if error else "")
    return json_response({"code": "Unauthorized", "description": description}, 401,
                         {"WWW-Authenticate": challenge})


class ApiApp:
    """WSGI app of the API origin.

    Args:
        state: The emulator's shared state (``state.api_url`` is the API root).
        grants: The tokens the token origin issued.
        items: The items served.
    """

    routes = _rules()

    def __init__(self, state: State, grants: Grants, items: ItemStore) -> None:
        self.state = state
        self.grants = grants
        self.items = items

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        """The WSGI entry point."""
        self.state.sleep(self.state.switches.api_latency)  # in this request's thread only
        return guard(self.answer, environ, start_response)

    @property
    def root(self) -> str:
        """The API root URL."""
        return self.state.api_url

    def answer(self, request: Request) -> Response | WSGIApplication:
        """The answer to one request: authorise, route, maybe fault, then handle."""
        self.state.counters.add("api_requests")
        self.state.log_api(request.method, request.path, request.query_string.decode("latin-1"))
        if request.path in _PUBLIC:
            # The API description is public, as OpenAPI documents usually are.
            if request.path.endswith(".html"):
                return self._service_doc(request)
            return self._service_desc(request)
        refused = self._authorize(request)
        if refused is not None:
            return refused
        try:
            endpoint, values = self.routes.bind_to_environ(request.environ).match()
        except NotFound:
            return api_error(404, "NotFound", f"No such resource: {request.path}")
        except MethodNotAllowed:
            return api_error(405, "MethodNotAllowed", "Method not allowed")
        except HTTPException as err:  # e.g. redirects for slashes
            return err
        if endpoint == "search":
            self.state.counters.add("search_requests")
        fault = self.state.pick_fault(self.state.switches.api_fault_rate)
        if fault is not None:
            return fault_response(fault)
        refused = self._check_method(request, endpoint)
        if refused is not None:
            return refused
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
        return handler(request, **values)

    def _authorize(self, request: Request) -> Response | None:
        """The 401 or 429 to answer instead, or ``None`` if the bearer token is good."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("Missing bearer token")
        grant = self.grants.check(token.strip())
        if grant is None:
            return _unauthorized("The access token is invalid or expired", "invalid_token")
        left = self.grants.restricted_for(grant.client_id)
        return restricted_response(grant.client_id, left) if left > 0 else None

    def _check_method(self, request: Request, endpoint: str) -> Response | None:
        post_search = endpoint == "search" and self.state.switches.allow_post_search
        if request.method in ("GET", "HEAD") or (post_search and request.method == "POST"):
            return None
        return api_error(405, "MethodNotAllowed", f"{request.method} is not allowed here",
                         Allow="GET, POST" if post_search else "GET")

    # --- documents -------------------------------------------------------------------------

    def _rooted(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` with a rel=root link when ``root_links`` is on (AxelGlobe sends none)."""
        if not self.state.switches.root_links:
            return obj
        return {**obj, "links": [*obj.get("links", []), link("root", self.root)]}

    def _served(self, item: dict[str, Any]) -> dict[str, Any]:
        return self._rooted(as_served(item, capture_ids=self.state.switches.capture_ids))

    def _landing(self, request: Request) -> Response:
        return json_response(
            catalog.landing(self.root, conforms_to=self.state.switches.conforms_to))

    def _conformance(self, request: Request) -> Response:
        return json_response({"conformsTo": catalog.CONFORMANCE})

    def _queryables(self, request: Request, cid: str | None = None) -> Response:
        return Response(json.dumps(catalog.queryables(self.root)),
                        content_type="application/schema+json")

    def _service_desc(self, request: Request) -> Response:
        return Response(json.dumps(catalog.service_desc(self.root)),
                        content_type=catalog.OPENAPI_TYPE)

    def _service_doc(self, request: Request) -> Response:
        return Response(catalog.service_doc(self.root), content_type="text/html")

    def _collection_body(self) -> dict[str, Any]:
        return self._rooted(self.items.archive.collection(self.root))

    def _collections(self, request: Request) -> Response:
        links = [link("self", f"{self.root}/collections"), link("root", self.root)]
        return json_response({"collections": [self._collection_body()], "links": links})

    def _collection(self, request: Request, cid: str) -> Response:
        if cid != COLLECTION_ID:
            return api_error(404, "NotFound", f"Collection {cid} does not exist")
        return json_response(self._collection_body())

    # --- items -------------------------------------------------------------------------------

    def _page(self, request: Request, base: str, collection: str | None) -> Response:
        try:
            params = search_mod.parse_params(request.args)
        except search_mod.SearchError as err:
            return api_error(400, "InvalidParameterValue", str(err))
        if collection is not None:
            params = dataclasses.replace(params, collections=(collection,))
        matches = self.items.search(params)
        start = (params.page - 1) * params.limit
        features = [self._served(self.items.whole(f))
                    for f in matches[start : start + params.limit]]
        # As in the guide's search response: next (only when there is more) and self, both
        # typed application/json. The AxelGlobe quirk: next carries only ?page=N.
        links = []
        if start + params.limit < len(matches):
            links.append(link("next", f"{base}?page={params.page + 1}"))
        links.append(link("self", base))
        # numberMatched is deliberately absent, as in the real API.
        return json_response(self._rooted({
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "timestamp": page_timestamp(self.state.clock()),
            "numberReturned": len(features),
        }))

    def _items(self, request: Request, cid: str) -> Response:
        if cid != COLLECTION_ID:
            return api_error(404, "NotFound", f"Collection {cid} does not exist")
        return self._page(request, f"{self.root}/collections/{cid}/features", cid)

    def _search(self, request: Request) -> Response:
        if request.method == "POST":
            query = _post_as_query(request)
            if isinstance(query, Response):
                return query
            request = Request.from_values(query_string=query)
        return self._page(request, f"{self.root}/search", None)

    def _item(self, request: Request, cid: str, item_id: str) -> Response:
        item = self.items.get(item_id)
        if cid != COLLECTION_ID or item is None:
            return api_error(404, "NotFound", f"Item {item_id} does not exist in {cid}")
        return json_response(self._served(item))

    def _asset(self, request: Request, cid: str, item_id: str, filename: str) -> Response:
        if cid != COLLECTION_ID or self.items.get(item_id) is None:
            return api_error(404, "NotFound", f"Item {item_id} does not exist in {cid}")
        if not self.items.has_file(item_id, filename):
            return api_error(404, "NotFound", f"Asset {filename} does not exist")
        self.state.counters.add("redirects")
        return Response(
            status=302,
            headers={"Location": self.state.presign(item_id, filename),
                     "Cache-Control": "no-store"},
        )


def page_timestamp(seconds: float) -> str:
    """A page's ``timestamp``: the guide's naive UTC, six fraction digits even on a second.

    Example:
        >>> page_timestamp(1661929746.0)
        '2022-08-31T07:09:06.000000'
    """
    now = datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    return now.isoformat(timespec="microseconds")


def _post_as_query(request: Request) -> str | Response:
    """A ``POST /search`` body as the GET query it stands for, or the 400 to answer.

    Lists are comma-joined, objects (the ``intersects`` geometry) JSON text, as
    :func:`.search.parse_params` reads them; ``filter`` must be CQL2 text.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "InvalidParameterValue", "Body must be a JSON object")
    if "filter" in body and not isinstance(body["filter"], str):
        return api_error(400, "InvalidParameterValue", "filter must be CQL2 text (cql2-text)")
    args = {
        k: ",".join(map(str, v)) if isinstance(v, list)
        else json.dumps(v) if isinstance(v, dict)
        else str(v)
        for k, v in body.items()
    }
    return urlencode(args)
