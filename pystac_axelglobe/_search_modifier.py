"""The plain pystac-client made whole: its requests rewritten into AxelGlobe's dialect.

pystac-client calls its ``request_modifier`` with each ``requests.Request`` before
preparing it. :class:`~pystac_axelglobe.auth.AxelGlobeAuth` calls :func:`rewrite` on those
that go to the API's origin, which:

- turns a search (a path ending in ``/search``, ``POST`` JSON body or ``GET`` parameters)
  into AxelGlobe's ``GET`` dialect with :func:`~._dialect.to_axelglobe_params` (the checks of
  ``ag.open()``: a bad argument raises :class:`~.errors.InvalidQueryError` and nothing is
  sent), since AxelGlobe may refuse ``POST`` with 405, pystac-client's default;
- gives a request with a query a response hook that rewrites the page's ``rel=next`` link to
  carry that query (the link's own parameters win), since AxelGlobe's links carry only
  ``?page=N`` and pystac-client follows a link as it is (it merges the query into a link only
  for ``"method": "POST"`` links with ``"merge": true``); on the pages of a search for one
  capture, the same hook gives items without ``ag:capture_id`` the id searched for
  (:func:`~.extension.carry_capture_id`), as ``ag.open()`` does;
- completes the landing page as ``ag.open()`` does: ``conformsTo`` when missing, and a
  ``POST`` search link beside the ``GET`` one (a ``POST`` search now works, so pystac-client
  need not warn that it is not advertised).

No state outlives a request: each hook is a closure over its own request's query, so two
searches advanced alternately, or in two threads, cannot borrow each other's query.

Example:
    >>> import requests
    >>> r = requests.Request("POST", "http://127.0.0.1:9/stac/search",
    ...                      json={"collections": ["grus-1"], "limit": 2})
    >>> hooks = rewrite(r, "http://127.0.0.1:9/stac")
    >>> r.method, r.url, r.params, len(hooks)
    ('GET', 'http://127.0.0.1:9/stac/search', {'collections': 'grus-1', 'limit': '2'}, 1)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from ._dialect import check_limit, is_search, searched_capture_id, to_axelglobe_params
from ._paging import _next_link
from ._stac_io import complete_conformance
from .errors import InvalidQueryError
from .extension import carry_capture_id

logger = logging.getLogger("pystac_axelglobe.client")

Hook = Callable[..., Any]  # a requests response hook


def rewrite(request: requests.Request, api_url: str) -> list[Hook]:
    """Put an API request in AxelGlobe's dialect; return the response hooks it needs.

    Only ``GET`` and ``POST`` are touched: a search becomes a ``GET`` with AxelGlobe's
    parameters; a ``GET`` with a query (a search, an ``/items`` listing) gets the hook that
    makes its ``next`` link carry that query; the landing page gets completed.

    Raises:
        InvalidQueryError: a search AxelGlobe would refuse, with the words of ``ag.open()``.
    """
    method = (request.method or "GET").upper()
    parts = urlsplit(request.url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if method == "POST" and is_search(request.url):
        given = {**_url_query(request.url), **_body(request)}
    elif method == "GET":
        given = {**_url_query(request.url), **_params(request)}
        if not given:
            return [_complete_landing] if _is_root(parts.path, api_url) else []
        if not is_search(request.url):
            return [_carry_query(bare, given)]  # a listing: sent as pystac-client made it
    else:
        return []
    sent = to_dialect(given)
    request.method = "GET"
    request.url = bare
    request.params = sent
    request.json = None
    request.data = []
    return [_carry_query(bare, sent, capture=searched_capture_id(sent))]


def to_dialect(given: Mapping[str, Any]) -> dict[str, str]:
    """A search's parameters (pystac-client's GET or POST form) in AxelGlobe's dialect.

    The checks of ``ag.open()`` that can still be made once pystac-client has formatted the
    search: the filter, bbox, datetime, geometry, ids, collections and limit.

    Raises:
        InvalidQueryError: as :func:`~._dialect.to_axelglobe_params`, or a bad limit.

    Example:
        >>> to_dialect({"bbox": (133.0, 35.0, 137.0, 36.0), "limit": 2})
        {'bbox': '133,35,137,36', 'limit': '2'}
    """
    params = dict(given)
    if (params.get("filter-lang") == "cql2-json" and isinstance(params.get("filter"), str)
            and not params["filter"].lstrip().startswith("{")):
        # pystac-client labels a text filter with the method's language even when it kept
        # the text (a filter_lang given): read the text for what it is.
        params.pop("filter-lang")
    sent = to_axelglobe_params(params)
    if "limit" in sent:
        check_limit(int(sent["limit"]))
    return sent


def _url_query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _params(request: requests.Request) -> dict[str, Any]:
    params: Any = request.params
    if isinstance(params, (str, bytes)):
        text = params.decode("utf-8") if isinstance(params, bytes) else params
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(params or {})  # a mapping or a list of pairs, as requests takes them


def _body(request: requests.Request) -> dict[str, Any]:
    body: Any = request.json
    if body is None and request.data:
        try:
            body = json.loads(request.data)
        except (TypeError, ValueError) as err:
            raise InvalidQueryError(
                f"the search body is not JSON ({err}); pass the search's arguments to "
                "client.search(...)") from err
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise InvalidQueryError(
            f"the search body must be a JSON object, got {type(body).__name__}")
    return dict(body)


def _is_root(path: str, api_url: str) -> bool:
    return path.rstrip("/") == urlsplit(api_url).path.rstrip("/")


# --- response hooks -------------------------------------------------------------------------


def _page(resp: requests.Response, stream: Any) -> dict[str, Any] | None:
    """The response's JSON object, or None (an error status, not JSON: left as it is)."""
    if stream or not 200 <= resp.status_code < 300:
        # A streamed body is the caller's to read (ag.open()'s StacApiIO reads it under a
        # deadline, and re-sends the query itself).
        return None
    try:
        page = json.loads(resp.content)
    except (ValueError, RecursionError):
        return None  # pystac-client reports it as it would without us
    return page if isinstance(page, dict) else None


def _replace(resp: requests.Response, page: dict[str, Any]) -> None:
    # pystac-client reads resp.content (as UTF-8) right after the hooks have run.
    resp._content = json.dumps(page).encode("utf-8")
    resp.encoding = "utf-8"


def _carry_query(url: str, sent: Mapping[str, Any], capture: str | None = None) -> Hook:
    """A hook rewriting the page's ``next`` link to carry ``sent`` (this request's query).

    With ``capture`` (a search for that one capture), the page's items without
    ``ag:capture_id`` get it too.
    """
    # requests sends a list as repeated parameters: kept so, the rest as text.
    base = {name: value if isinstance(value, list) else str(value)
            for name, value in sent.items()}

    def carry_query(resp: requests.Response, **kwargs: Any) -> requests.Response:
        page = _page(resp, kwargs.get("stream"))
        if page is None:
            return resp
        changed = capture is not None and carry_capture_id(page, capture)
        # As ag.open() reads it: relative links resolved, http(s) only, a body merged in
        # (APIRequestError otherwise, which pystac-client reports as its APIError).
        following = _next_link(page, resp.url or url)
        if following is not None:
            _rewrite_next(page, url, base, following)
            changed = True
        if changed:
            _replace(resp, page)
        return resp

    return carry_query


def _rewrite_next(page: dict[str, Any], url: str, base: dict[str, Any],
                  following: tuple[str, dict[str, Any]]) -> None:
    """Make the page's ``next`` link carry ``base`` (or drop a link to the page itself)."""
    target, own = following
    query = {**base, **{name: str(value) for name, value in own.items()}}
    links = page["links"]
    index = next(i for i, link in enumerate(links)
                 if isinstance(link, dict) and link.get("rel") == "next")
    if target == url and query == base:
        # A page linking to itself: pystac-client would request it forever.
        logger.warning("stopping: next link repeats the page (%s)", url)
        del links[index]
    else:
        link = {k: v for k, v in links[index].items() if k not in ("body", "merge")}
        link["href"] = urlunsplit((*urlsplit(target)[:3], urlencode(query, doseq=True), ""))
        link["method"] = "GET"  # the body, if any, is in the query now
        links[index] = link


def _complete_landing(resp: requests.Response, **kwargs: Any) -> requests.Response:
    """Hook on the landing page: ``conformsTo`` if missing, ``POST`` searches advertised."""
    page = _page(resp, kwargs.get("stream"))
    if page is None or page.get("type") != "Catalog":
        return resp
    changed = not page.get("conformsTo")
    complete_conformance(page)
    links = page.get("links")
    if isinstance(links, list):
        search = [link for link in links if isinstance(link, dict)
                  and link.get("rel") == "search" and isinstance(link.get("href"), str)]
        methods = {str(link.get("method") or "GET").upper() for link in search}
        if search and "POST" not in methods:
            links.append({**search[0], "method": "POST"})
            changed = True
    if changed:
        _replace(resp, page)
    return resp


__all__ = ["rewrite", "to_dialect"]
