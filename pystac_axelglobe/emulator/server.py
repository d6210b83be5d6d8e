"""The emulator's three WSGI apps (token, API, storage) and its faults and counters.

:class:`EmulatorState` holds everything the apps share: switches, counters, tokens,
restrictions and the archive. :class:`~pystac_axelglobe.emulator.Emulator` adds the servers.

Example:
    >>> state = EmulatorState()
    >>> state.counters.token_requests
    0
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import mimetypes
import os
import random
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import FileWrapper

from . import search as search_mod

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .archive import Archive

DEFAULT_CLIENT_ID = "emulator-client"
DEFAULT_AUDIENCE = "https://api.axelglobe.com"
API_PATH = "/stac/v1/catalogs/axelglobe"
COLLECTION_ID = "grus-1"
BUCKET = "axelglobe-archive"
FAULT_KINDS = ("503", "502", "429", "drop")
CHUNK = 64 * 1024
OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"
# One byte range, "bytes=first-last" with either end (not both) left out (RFC 9110 14.1.2).
_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)")

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

COUNTER_NAMES = (
    "token_requests",
    "api_requests",
    "search_requests",
    "redirects",
    "storage_requests",
    "storage_requests_with_authorization",
    "storage_head_requests",
    "storage_bytes_sent",
    "faults",
)


class Counters:
    """Live, thread-safe request counters (plain int attributes).

    Example:
        >>> c = Counters()
        >>> c.add("faults", 2); c.faults
        2
    """

    token_requests: int
    api_requests: int
    search_requests: int
    redirects: int
    storage_requests: int
    storage_requests_with_authorization: int
    storage_head_requests: int
    storage_bytes_sent: int
    faults: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` atomically."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            for name in COUNTER_NAMES:
                setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """A consistent snapshot of every counter."""
        with self._lock:
            return {name: getattr(self, name) for name in COUNTER_NAMES}

    def __repr__(self) -> str:
        return f"Counters({self.as_dict()})"


@dataclasses.dataclass
class _Grant:
    client_id: str
    expires_at: float


class _Dropped(ConnectionResetError):
    """Raised from a body iterator after the socket was cut on purpose (a 'drop' fault)."""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"))
    ctype = "application/json"
    if isinstance(data, dict) and data.get("type") in ("Feature", "FeatureCollection"):
        ctype = "application/geo+json"
    return Response(body, status=status, headers=headers, content_type=ctype)


def _api_error(status: int, code: str, description: str, **headers: str) -> Response:
    return _json({"code": code, "description": description}, status, headers or None)


def _s3_error(status: int, code: str, message: str, resource: str = "") -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{secrets.token_hex(8).upper()}</RequestId>"
        "</Error>"
    )
    return Response(body, status=status, content_type="application/xml")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EmulatorState:
    """Switches, counters, tokens and the archive that the three apps share.

    Every switch is a plain attribute and may be changed while the servers run.
    """

    def __init__(
        self,
        *,
        token_lifetime: float = 86400,
        presign_lifetime: float = 900,
        restrict_after: int | None = None,
        restrict_window: float = 60,
        restrict_period: float = 60,
        api_fault_rate: float = 0.0,
        storage_fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        storage_delay: float = 0.0,
        allow_post_search: bool = False,
        conforms_to: bool = True,
        root_links: bool = False,
        fault_seed: int = 0,
        scale: str = "small",
        data_dir: str | os.PathLike[str] | None = None,
        clients: dict[str, str] | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        audience: str = DEFAULT_AUDIENCE,
        host: str = "127.0.0.1",
        storage_host: str = "127.0.0.2",
    ) -> None:
        self.host = host
        self.storage_host = storage_host
        self.token_lifetime = token_lifetime
        self.presign_lifetime = presign_lifetime
        self.restrict_after = restrict_after
        self.restrict_window = restrict_window
        self.restrict_period = restrict_period
        self.api_fault_rate = api_fault_rate
        self.storage_fault_rate = storage_fault_rate
        self.fault_kinds = tuple(fault_kinds)
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown or not self.fault_kinds:
            raise ValueError(f"fault_kinds must be a non-empty subset of {FAULT_KINDS}")
        self.storage_delay = storage_delay
        self.allow_post_search = allow_post_search
        self.conforms_to = conforms_to
        self.root_links = root_links
        self.fault_seed = fault_seed
        self.scale = scale
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24)
        self.audience = audience
        self.clients: dict[str, str] = {client_id: self.client_secret, **(clients or {})}
        self.counters = Counters()
        self.requests: list[tuple[str, str, str]] = []
        self.api_url = ""
        self.token_url = ""
        self.storage_url = ""
        self.archive: Archive | None = None
        self._items: list[dict[str, Any]] = []
        self._items_by_id: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(fault_seed)
        self._tokens: dict[str, _Grant] = {}
        self._token_times: dict[str, deque[float]] = {}
        self._restricted_until: dict[str, float] = {}
        self._signing_key = secrets.token_bytes(32)
        self._access_key = "AKIAEMULATOR" + secrets.token_hex(4).upper()

    # --- state shared by the apps ------------------------------------------------------------

    def load_items(self) -> None:
        """Cache the archive's items with hrefs on this emulator's API origin."""
        assert self.archive is not None
        self._items = self.archive.items(self.api_url)
        self._items_by_id = {item["id"]: item for item in self._items}

    def reset_counters(self) -> None:
        """Zero every counter and forget the recorded API requests."""
        self.counters.reset()
        with self._lock:
            self.requests.clear()

    def issue_token(self, client_id: str) -> str:
        """Record and return a new opaque token for ``client_id`` (no request counted)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Grant(client_id, time.time() + int(self.token_lifetime))
        return token

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 401 from now on."""
        with self._lock:
            self._tokens.clear()

    def _restricted_for(self, client_id: str) -> float:
        """Seconds of restriction left for ``client_id`` (0 when not restricted)."""
        with self._lock:
            until = self._restricted_until.get(client_id, 0.0)
        return max(0.0, until - time.time())

    def _note_token_request(self, client_id: str) -> float:
        """Record a token request; return the restriction left (0 if the request may pass)."""
        now = time.time()
        with self._lock:
            until = self._restricted_until.get(client_id, 0.0)
            if until > now:
                return until - now
            if self.restrict_after is None:
                return 0.0
            times = self._token_times.setdefault(client_id, deque())
            times.append(now)
            while times and times[0] <= now - self.restrict_window:
                times.popleft()
            if len(times) > self.restrict_after:
                times.clear()
                self._restricted_until[client_id] = now + self.restrict_period
                return float(self.restrict_period)
            return 0.0

    def _restricted_response(self, client_id: str, left: float) -> Response:
        seconds = max(1, math.ceil(left))
        return _json(
            {
                "error": "too_many_requests",
                "code": "TooManyRequests",
                "description": f"Client {client_id} is restricted for requesting tokens too "
                f"often; try again in {seconds} s",
            },
            429,
            {"Retry-After": str(seconds)},
        )

    def _pick_fault(self, rate: float) -> str | None:
        if rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            kind = self._rng.choice(self.fault_kinds)
        self.counters.add("faults")
        return kind

    def presign(self, item_id: str, filename: str) -> str:
        """A presigned storage URL for one asset file, valid ``presign_lifetime`` seconds."""
        path = f"/{BUCKET}/{quote(item_id)}/{quote(filename)}"
        now = _utcnow()
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        credential = f"{self._access_key}/{now:%Y%m%d}/us-east-1/s3/aws4_request"
        expires = str(max(1, int(self.presign_lifetime)))
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": credential,
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
        }
        query["X-Amz-Signature"] = self._sign(path, credential, amz_date, expires)
        return f"{self.storage_url}{path}?{urlencode(query)}"

    def _sign(self, path: str, credential: str, amz_date: str, expires: str) -> str:
        message = "\n".join(("GET", path, credential, amz_date, expires)).encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    # --- token endpoint ----------------------------------------------------------------------

    def token_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """WSGI app of the token origin: ``POST /oauth/token``."""
        request = Request(environ)
        return self._guard(self._token, request)(environ, start_response)

    def _token(self, request: Request) -> Response:
        if request.path != "/oauth/token":
            return _json({"error": "not_found", "error_description": "Not found"}, 404)
        if request.method != "POST":
            return _json(
                {"error": "invalid_request", "error_description": "Use POST"},
                405,
                {"Allow": "POST"},
            )
        self.counters.add("token_requests")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _json(
                {
                    "error": "invalid_request",
                    "error_description": "The request body must be a JSON object",
                },
                400,
            )
        if body.get("grant_type") != "client_credentials":
            return _json(
                {
                    "error": "invalid_request",
                    "error_description": "grant_type must be client_credentials",
                },
                400,
            )
        fields = ("client_id", "client_secret", "audience")
        missing = [f for f in fields if not isinstance(body.get(f), str)]
        if missing:
            return _json(
                {
                    "error": "invalid_request",
                    "error_description": f"Missing required parameter: {', '.join(missing)}",
                },
                400,
            )
        client_id, secret = body["client_id"], body["client_secret"]
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return _json({"error": "access_denied", "error_description": "Unauthorized"}, 401)
        left = self._note_token_request(client_id)
        if left > 0:
            return self._restricted_response(client_id, left)
        if body["audience"] != self.audience:
            return _json(
                {
                    "error": "access_denied",
                    "error_description": f"Service not found: {body['audience']}",
                },
                401,
            )
        lifetime = int(self.token_lifetime)
        token = self.issue_token(client_id)
        return _json(
            {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # --- API ---------------------------------------------------------------------------------

    _api_map = Map(
        [
            Rule(f"{API_PATH}", endpoint="landing"),
            Rule(f"{API_PATH}/", endpoint="landing"),
            Rule(f"{API_PATH}/conformance", endpoint="conformance"),
            Rule(f"{API_PATH}/queryables", endpoint="queryables"),
            Rule(f"{API_PATH}/collections", endpoint="collections"),
            Rule(f"{API_PATH}/collections/<cid>", endpoint="collection"),
            Rule(f"{API_PATH}/collections/<cid>/queryables", endpoint="queryables"),
            Rule(f"{API_PATH}/collections/<cid>/features", endpoint="items"),
            Rule(f"{API_PATH}/collections/<cid>/items", endpoint="items"),
            Rule(f"{API_PATH}/collections/<cid>/features/<item_id>", endpoint="item"),
            Rule(f"{API_PATH}/collections/<cid>/items/<item_id>", endpoint="item"),
            Rule(f"{API_PATH}/collections/<cid>/features/<item_id>/<filename>", endpoint="asset"),
            Rule(f"{API_PATH}/collections/<cid>/items/<item_id>/<filename>", endpoint="asset"),
            Rule(f"{API_PATH}/search", endpoint="search"),
            Rule(f"{API_PATH}/api", endpoint="service_desc"),
            Rule(f"{API_PATH}/api.html", endpoint="service_doc"),
        ],
        strict_slashes=False,
        merge_slashes=False,
    )

    def api_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI app of the API origin: the STAC API under ``/stac/v1/catalogs/axelglobe``."""
        request = Request(environ)
        return self._guard(self._api, request)(environ, start_response)

    def _api(self, request: Request) -> Response | WSGIApplication:
        self.counters.add("api_requests")
        with self._lock:
            self.requests.append(
                (request.method, request.path, request.query_string.decode("latin-1"))
            )
        if request.path in (f"{API_PATH}/api", f"{API_PATH}/api.html"):
            # The API description is public, as OpenAPI documents usually are.
            return self._guard_public(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _json(
                {"code": "Unauthorized", "description": "Missing bearer token"},
                401,
                {"WWW-Authenticate": 'Bearer realm="axelglobe"'},
            )
        with self._lock:
            grant = self._tokens.get(token.strip())
        if grant is None or grant.expires_at <= time.time():
            return _json(
                {"code": "Unauthorized", "description": "The access token is invalid or expired"},
                401,
                {"WWW-Authenticate": 'Bearer realm="axelglobe", error="invalid_token"'},
            )
        left = self._restricted_for(grant.client_id)
        if left > 0:
            return self._restricted_response(grant.client_id, left)
        adapter = self._api_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return _api_error(404, "NotFound", f"No such resource: {request.path}")
        except MethodNotAllowed:
            return _api_error(405, "MethodNotAllowed", "Method not allowed")
        except HTTPException as err:  # e.g. redirects for slashes
            return err
        if endpoint == "search":
            self.counters.add("search_requests")
        fault = self._pick_fault(self.api_fault_rate)
        if fault is not None:
            return self._fault_response(fault)
        handler: Callable[..., Response] = getattr(self, f"_api_{endpoint}")
        if request.method not in ("GET", "HEAD") and not (
            endpoint == "search" and request.method == "POST" and self.allow_post_search
        ):
            allow = "GET, POST" if endpoint == "search" and self.allow_post_search else "GET"
            return _api_error(
                405, "MethodNotAllowed", f"{request.method} is not allowed here", Allow=allow
            )
        return handler(request, **values)

    def _guard_public(self, request: Request) -> Response:
        if request.path.endswith(".html"):
            return self._api_service_doc(request)
        return self._api_service_desc(request)

    def _link(self, rel: str, href: str, **extra: str) -> dict[str, str]:
        link = {"rel": rel, "href": href, "type": "application/json"}
        link.update(extra)
        return link

    def _api_landing(self, request: Request) -> Response:
        root = self.api_url
        body: dict[str, Any] = {
            "type": "Catalog",
            "id": "axelglobe",
            "stac_version": "1.0.0",
            "title": "The AxelGlobe STAC catalog",
            "description": "AxelGlobe STAC API (loopback emulator)",
            "links": [
                self._link("self", root),
                self._link("root", root),
                self._link("data", f"{root}/collections"),
                self._link("conformance", f"{root}/conformance"),
                self._link(
                    "search", f"{root}/search", type="application/geo+json", method="GET"
                ),
                self._link(
                    "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                    f"{root}/queryables",
                    type="application/schema+json",
                ),
                self._link("child", f"{root}/collections/{COLLECTION_ID}", title="GRUS 1"),
                self._link("service-desc", f"{root}/api", type=OPENAPI_TYPE),
                self._link("service-doc", f"{root}/api.html", type="text/html"),
            ],
        }
        if self.conforms_to:
            body["conformsTo"] = CONFORMANCE
        return _json(body)

    def _api_service_desc(self, request: Request) -> Response:
        get = {"get": {"responses": {"200": {"description": "OK"}}}}
        paths = ["", "/conformance", "/queryables", "/collections", "/collections/{collectionId}",
                 "/collections/{collectionId}/features",
                 "/collections/{collectionId}/features/{featureId}", "/search"]
        body = {
            "openapi": "3.0.3",
            "info": {"title": "AxelGlobe STAC API (emulator)", "version": "1.0.0"},
            "servers": [{"url": self.api_url}],
            "paths": {path or "/": get for path in paths},
        }
        return Response(json.dumps(body), content_type=OPENAPI_TYPE)

    def _api_service_doc(self, request: Request) -> Response:
        html = (
            "<!doctype html><html><head><title>AxelGlobe STAC API (emulator)</title></head>"
            f'<body><p>The OpenAPI description is at <a href="{self.api_url}/api">/api</a>.'
            "</p></body></html>"
        )
        return Response(html, content_type="text/html")

    def _api_conformance(self, request: Request) -> Response:
        return _json({"conformsTo": CONFORMANCE})

    def _api_queryables(self, request: Request, cid: str | None = None) -> Response:
        props = {
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
        body = {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{self.api_url}/queryables",
            "type": "object",
            "title": "Queryables",
            "properties": props,
        }
        return Response(json.dumps(body), content_type="application/schema+json")

    def _collection(self) -> dict[str, Any]:
        assert self.archive is not None
        return self._rooted(self.archive.collection(self.api_url))

    def _rooted(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` with a rel=root link when ``root_links`` is on (AxelGlobe sends none)."""
        if not self.root_links:
            return obj
        links = [*obj.get("links", []), self._link("root", self.api_url)]
        return {**obj, "links": links}

    def _api_collections(self, request: Request) -> Response:
        return _json(
            {
                "collections": [self._collection()],
                "links": [
                    self._link("self", f"{self.api_url}/collections"),
                    self._link("root", self.api_url),
                ],
            }
        )

    def _api_collection(self, request: Request, cid: str) -> Response:
        if cid != COLLECTION_ID:
            return _api_error(404, "NotFound", f"Collection {cid} does not exist")
        return _json(self._collection())

    def _page(
        self, request: Request, base: str, collection: str | None
    ) -> Response:
        try:
            params = search_mod.parse_params(request.args)
        except search_mod.SearchError as err:
            return _api_error(400, "InvalidParameterValue", str(err))
        if collection is not None:
            params = dataclasses.replace(params, collections=(collection,))
        matches = search_mod.search(self._items, params)
        start = (params.page - 1) * params.limit
        features = [self._rooted(f) for f in matches[start : start + params.limit]]
        # As in the guide's search response: next (only when there is more) and self, both
        # typed application/json, and no root link (unless root_links asks for one).
        links = []
        # The AxelGlobe quirk: the next link carries only ?page=N, not the original query.
        if start + params.limit < len(matches):
            links.append(self._link("next", f"{base}?page={params.page + 1}"))
        links.append(self._link("self", base))
        # numberMatched is deliberately absent, as in the real API. The timestamp is the
        # guide's naive UTC with six fraction digits, even on a whole second.
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        return _json(
            self._rooted(
                {
                    "type": "FeatureCollection",
                    "features": features,
                    "links": links,
                    "timestamp": now.isoformat(timespec="microseconds"),
                    "numberReturned": len(features),
                }
            )
        )

    def _api_items(self, request: Request, cid: str) -> Response:
        if cid != COLLECTION_ID:
            return _api_error(404, "NotFound", f"Collection {cid} does not exist")
        return self._page(request, f"{self.api_url}/collections/{cid}/features", cid)

    def _api_search(self, request: Request) -> Response:
        if request.method == "POST":
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return _api_error(400, "InvalidParameterValue", "Body must be a JSON object")
            # The body as the GET query it stands for: lists comma-joined, objects (the
            # "intersects" geometry) as JSON text, as parse_params reads them.
            args = {
                k: ",".join(map(str, v))
                if isinstance(v, list)
                else json.dumps(v)
                if isinstance(v, dict)
                else str(v)
                for k, v in body.items()
                if k != "filter"
            }
            if "filter" in body:
                if not isinstance(body["filter"], str):
                    return _api_error(
                        400, "InvalidParameterValue", "filter must be CQL2 text (cql2-text)"
                    )
                args["filter"] = body["filter"]
            request = Request.from_values(query_string=urlencode(args))
        return self._page(request, f"{self.api_url}/search", None)

    def _api_item(self, request: Request, cid: str, item_id: str) -> Response:
        item = self._items_by_id.get(item_id)
        if cid != COLLECTION_ID or item is None:
            return _api_error(404, "NotFound", f"Item {item_id} does not exist in {cid}")
        return _json(self._rooted(item))

    def _api_asset(self, request: Request, cid: str, item_id: str, filename: str) -> Response:
        assert self.archive is not None
        if cid != COLLECTION_ID or item_id not in self._items_by_id:
            return _api_error(404, "NotFound", f"Item {item_id} does not exist in {cid}")
        try:
            self.archive.asset_path(item_id, filename)
        except KeyError:
            return _api_error(404, "NotFound", f"Asset {filename} does not exist")
        self.counters.add("redirects")
        return Response(
            status=302,
            headers={"Location": self.presign(item_id, filename), "Cache-Control": "no-store"},
        )

    # --- storage -----------------------------------------------------------------------------

    def storage_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """WSGI app of the storage origin: S3-style presigned GETs of asset files."""
        request = Request(environ)
        return self._guard(self._storage, request)(environ, start_response)

    def _storage(self, request: Request) -> Response | WSGIApplication:
        self.counters.add("storage_requests")
        if "Authorization" in request.headers:
            self.counters.add("storage_requests_with_authorization")
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
                request.path,
            )
        if request.method == "HEAD":
            self.counters.add("storage_head_requests")
            return _s3_error(403, "Forbidden", "", request.path)
        if request.method != "GET":
            return _s3_error(405, "MethodNotAllowed", "The method is not allowed", request.path)
        args = request.args
        needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                  "X-Amz-Signature")
        if any(n not in args for n in needed):
            return _s3_error(403, "AccessDenied", "Access Denied", request.path)
        path = quote(request.path)
        good = self._sign(path, args["X-Amz-Credential"], args["X-Amz-Date"],
                          args["X-Amz-Expires"])
        if args["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or not hmac.compare_digest(
            good, args["X-Amz-Signature"]
        ):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                request.path,
            )
        signed = datetime.strptime(args["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=timezone.utc
        )
        if time.time() > signed.timestamp() + int(args["X-Amz-Expires"]):
            return _s3_error(403, "AccessDenied", "Request has expired", request.path)
        parts = request.path.split("/")
        assert self.archive is not None
        try:
            if len(parts) != 4 or parts[1] != BUCKET:
                raise KeyError(request.path)
            file_path = self.archive.asset_path(parts[2], parts[3])
        except KeyError:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", request.path)
        unsatisfiable = self._normalise_range(request, file_path.stat().st_size)
        if unsatisfiable is not None:
            return unsatisfiable
        fault = self._pick_fault(self.storage_fault_rate)
        if fault is not None and fault != "drop":
            return self._fault_response(fault)
        mimetype = mimetypes.guess_type(file_path.name)[0] or "application/octet-stream"
        if file_path.suffix == ".tif":
            mimetype = "image/tiff"
        response = send_file(file_path, request.environ, mimetype=mimetype, conditional=True,
                             etag=True, max_age=None)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers.pop("Date", None)  # the server adds its own; no duplicate header
        # S3 sends no Cache-Control unless the object was stored with one; werkzeug's
        # "no-cache" would make GDAL re-fetch what it already has (see datacube.GDAL_OPTIONS).
        response.headers.pop("Cache-Control", None)
        response.direct_passthrough = False
        original = cast("Iterable[bytes]", response.response)
        wrapper = getattr(original, "iterable", original)  # under a Range: werkzeug's wrapper
        if isinstance(wrapper, FileWrapper):
            # read the file in 64 KiB blocks, not werkzeug's 8 KiB: an eighth of the Python
            # loop turns per byte, the same bytes on the wire
            wrapper.buffer_size = CHUNK
        length = response.content_length or 0
        response.response = self._stream(
            original, request.environ, drop_after=length // 2 if fault == "drop" else None
        )
        return response

    @staticmethod
    def _normalise_range(request: Request, size: int) -> Response | None:
        """Make the ``Range`` header one werkzeug serves as S3 does; a 416 if unsatisfiable.

        werkzeug answers 416 to a suffix longer than the file (RFC 9110 says: the whole
        file) and to malformed or multiple ranges (S3 ignores those and sends the whole
        object, 200). So: a malformed or multi-range header is dropped, a valid single range
        is rewritten as ``bytes=first-last`` within the file, and a range that starts at or
        past the end (or ``bytes=-0``) gets S3's 416 ``InvalidRange``.
        """
        value = request.environ.get("HTTP_RANGE")
        if value is None:
            return None
        match = _RANGE.fullmatch(value.strip())
        first, last = (match.group(1), match.group(2)) if match else ("", "")
        if not (first or last) or (first and last and int(last) < int(first)):
            del request.environ["HTTP_RANGE"]  # malformed or several ranges: ignored
            return None
        if not first:  # a suffix: the last N bytes, or the whole file if it is shorter
            start, end = max(0, size - int(last)), size - 1
            satisfiable = int(last) > 0 and size > 0
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            satisfiable = start < size
        if not satisfiable:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                "<Error><Code>InvalidRange</Code>"
                "<Message>The requested range is not satisfiable</Message>"
                f"<RangeRequested>{escape(value)}</RangeRequested>"
                f"<ActualObjectSize>{size}</ActualObjectSize>"
                f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
            )
            return Response(
                body,
                status=416,
                content_type="application/xml",
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
        request.environ["HTTP_RANGE"] = f"bytes={start}-{end}"
        return None

    def _stream(
        self, body: Iterable[bytes], environ: WSGIEnvironment, drop_after: int | None
    ) -> Iterator[bytes]:
        """Yield the body, counting bytes, sleeping per 64 KiB, maybe cutting it short."""
        sent = 0
        paused_upto = 0  # one pause for every 64 KiB block begun, so small files are slow too
        try:
            for chunk in body:
                while self.storage_delay > 0 and sent + len(chunk) > paused_upto:
                    time.sleep(self.storage_delay)
                    paused_upto += CHUNK
                if drop_after is not None and sent + len(chunk) > drop_after:
                    part = chunk[: max(0, drop_after - sent)]
                    if part:
                        self.counters.add("storage_bytes_sent", len(part))
                        yield part
                    self._drop(environ)
                sent += len(chunk)
                self.counters.add("storage_bytes_sent", len(chunk))
                yield chunk
            if drop_after is not None:  # empty body: still cut the connection
                self._drop(environ)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _drop(environ: WSGIEnvironment) -> None:
        # Cut the TCP connection mid-body: the client has a Content-Length it never gets.
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise _Dropped("connection dropped by the emulator (fault injection)")

    # --- faults and plumbing -----------------------------------------------------------------

    def _fault_response(self, kind: str) -> Response | WSGIApplication:
        if kind == "503":
            return _api_error(503, "ServiceUnavailable", "Service temporarily unavailable")
        if kind == "502":
            return _api_error(502, "BadGateway", "Bad gateway")
        if kind == "429":
            return _api_error(429, "TooManyRequests", "Slow down", **{"Retry-After": "1"})
        # "drop" on the API: a 200 with a full Content-Length whose body is cut halfway.
        body = json.dumps({"type": "FeatureCollection", "features": [], "links": [],
                           "padding": "x" * 2048}).encode()

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return self._stream([body], environ, drop_after=len(body) // 2)

        return app

    def _guard(
        self, handler: Callable[[Request], Response | WSGIApplication], request: Request
    ) -> WSGIApplication:
        try:
            return handler(request)
        except HTTPException as err:
            return err
        except Exception as err:  # keep the server alive; say what broke
            return _api_error(500, "InternalServerError", f"emulator error: {err!r}")
