"""Paging a search: following ``next`` links, with AxelGlobe's ``?page=N`` pages fetched ahead.

:func:`walk` yields the pages of a search or listing in the server's order. It re-sends the
original query with every ``next`` link (AxelGlobe's carry only ``?page=N``), and stops at
the last page, at a page without new items, at a link already followed, or (an error) after
``max_pages`` pages.

Fetching ahead (``prefetch`` > 1): while the caller reads a page, its ``next`` page is
already on its way, on a small thread pool. When page N links to ``?page=N+1`` on its own
URL (the first page is page 1: AxelGlobe's first ``next`` link is ``?page=2``), the pages
are addressable, and the ones after are requested too, with the same query, up to
``prefetch`` requests in flight. A page requested ahead is only used when the page before
it links to it (a server that breaks the pattern costs the pages in flight, and fetching
ahead stops for that search); its error is raised when the iteration reaches it, except
when no complete answer came (a connection dropped, refused or silent, retries included):
then the reader fetches that page again itself, as paging in sequence would, and the
search fetches no more pages ahead (:func:`_settled`). No page is
requested before a ``next`` link says there is more (a one-page result costs one request),
beyond ``max_pages``, beyond what ``max_items`` needs at the first page's size, or beyond
a last page (no ``next`` link) or empty page already answered ahead. Pages past the end
(AxelGlobe answers them with an empty page; an error would do no harm either) cost at
most ``prefetch`` - 1 wasted requests; those not yet sent when the search ends are
cancelled, and a finished search waits briefly for the others (:data:`SETTLE_SECONDS`).
A search broken off (an error, Ctrl-C, the caller stops reading) does not wait: every
request still in flight is given up at once (its socket shut down through the package's
watchdog, :meth:`~pystac_axelglobe._deadline.Watch.cancel`, and not retried), so that no
thread is left waiting for a silent server, and the interpreter, which joins the pool's
threads at exit, ends at once.

Example:
    >>> fetch = lambda url, params: {"features": [{"id": "a"}], "links": []}
    >>> [p["features"] for p in walk(fetch, "http://api/search", {}, max_pages=5)]
    [[{'id': 'a'}]]
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from ._deadline import Watch, watching
from ._dialect import is_search, to_axelglobe_params
from .errors import APIRequestError, InvalidQueryError

logger = logging.getLogger("pystac_axelglobe.client")  # the name users configure

#: Seconds a finished search waits for pages it requested ahead and did not need, so that
#: none of its requests is still on its way when it returns; slower ones are then given up.
SETTLE_SECONDS = 2.0

#: Fetches one page: ``(url, parameters) -> the page's JSON object``.
Fetch = Callable[[str, dict[str, Any]], dict[str, Any]]
_Key = tuple[str, tuple[tuple[str, str], ...]]


def _bad_page(url: str, what: str) -> APIRequestError:
    return APIRequestError(f"{url} answered a page with {what}: not a STAC API page; "
                           "try again later, or report it to AxelGlobe", url=url)


def _records(page: dict[str, Any], url: str) -> list[dict[str, Any]]:
    """The page's features (or collections), checked to be a list of objects."""
    for name in ("features", "collections"):
        value = page.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise _bad_page(url, f"'{name}' that is not a list of objects")
        if value:
            return value
    return []


def _next_link(page: dict[str, Any], url: str) -> tuple[str, dict[str, Any]] | None:
    """The next page's URL (without query) and its own parameters, or None at the end."""
    links = page.get("links") or []
    if not isinstance(links, list):
        raise _bad_page(url, "'links' that is not a list")
    link = next((lk for lk in links if isinstance(lk, dict) and lk.get("rel") == "next"), None)
    if link is None:
        return None
    href = link.get("href")
    if not isinstance(href, str) or not href.strip():
        raise _bad_page(url, "a next link without href")
    # Relative links resolve against the page; anything but http(s) (file:, a local path
    # that pystac would open) is refused.
    parts = urlsplit(urljoin(url, href.strip()))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad_page(url, f"a next link to {href!r:.100}, not an http(s) URL")
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    own: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    body = link.get("body")
    if isinstance(body, dict):
        try:
            own.update(to_axelglobe_params(body) if is_search(target) else body)
        except InvalidQueryError as err:
            raise _bad_page(url, f"a next link whose body is not a valid search ({err})") from err
    return target, own


def _record_key(record: dict[str, Any], page: int, index: int) -> tuple[Any, ...]:
    key = record.get("id")
    if not isinstance(key, str):
        return ("#", page, index)  # no id: always new
    return (record.get("collection"), key)


def _key(target: str, params: dict[str, Any]) -> _Key:
    return (target, tuple(sorted((k, str(v)) for k, v in params.items())))


def page_number(own: dict[str, Any]) -> int | None:
    """N when a ``next`` link's own parameters are exactly ``page=N``, AxelGlobe's form.

    Example:
        >>> page_number({"page": "3"}), page_number({"page": "3", "token": "x"})
        (3, None)
    """
    value = own.get("page") if len(own) == 1 else None
    if isinstance(value, str) and value.isdigit() and value == str(int(value)):
        return int(value)
    return None


class _Ahead:
    """Pages requested ahead on a thread pool (started at the first), by their place.

    Each request runs in a block of :func:`~pystac_axelglobe._deadline.watching` whose
    watch is kept here, so that :meth:`close` can give up those still in flight.
    """

    def __init__(self, fetch: Fetch, size: int) -> None:
        self.size = size
        self.trusted = True  # False once a server's link left the ?page=N pattern
        self.wasted = 0
        self._fetch = fetch
        self.stopped = False  # True once a page fetched ahead got no answer: in sequence
        self._pool: ThreadPoolExecutor | None = None
        self._planned: dict[int, tuple[_Key, Future[dict[str, Any]]]] = {}
        self._started: list[Future[dict[str, Any]]] = []  # dropped, but maybe on their way
        self._watches: list[Watch] = []  # one per request submitted

    def plan(self, number: int, target: str, params: dict[str, Any]) -> None:
        """Request page ``number`` of the sequence now, unless planned or the window is full."""
        if self.stopped or number in self._planned or len(self._planned) >= self.size:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="axelglobe-pages")
        watch = Watch()
        # Those whose requests have ended need no giving up: a long search keeps few.
        self._watches = [w for w in self._watches if w.active] + [watch]
        future = self._pool.submit(self._watched, watch, target, params)
        self._planned[number] = (_key(target, params), future)

    def _watched(self, watch: Watch, target: str, params: dict[str, Any]) -> dict[str, Any]:
        with watching(watch):  # on a pool thread: its requests are given up by close()
            watch.check()  # given up before it began: not even a token request
            return self._fetch(target, params)

    def known_end(self) -> int | None:
        """The last page, if a page already answered ahead shows it (no ``next``, or empty).

        Pages of one round trip arrive together: the reader, at the first of them, can
        see the end in a later one and plan nothing past it.
        """
        for number in sorted(self._planned):
            future = self._planned[number][1]
            if not future.done() or future.cancelled() or future.exception() is not None:
                continue
            page = future.result()
            if not (page.get("features") or page.get("collections")):
                return number - 1
            links = page.get("links")
            if not (isinstance(links, list) and any(
                    isinstance(lk, dict) and lk.get("rel") == "next" for lk in links)):
                return number
        return None

    def take(self, number: int, key: _Key) -> Future[dict[str, Any]] | None:
        """The request for page ``number``, if the one planned is for ``key``."""
        planned = self._planned.pop(number, None)
        if planned is None:
            return None
        if planned[0] == key:
            return planned[1]
        # The server's link is not the one guessed: every page planned after it is wrong too.
        logger.debug("next link %s is not the page requested ahead: fetching in sequence", key[0])
        self._planned[number] = planned
        self.trusted = False
        self._drop()
        return None

    def stop(self) -> None:
        """Fetch no more pages ahead in this search: the rest comes one page at a time."""
        self.stopped = True
        self._drop()

    def _drop(self) -> None:
        """Cancel the planned pages not started; keep those started (sent, or done) to await."""
        self._started += [future for _, future in self._planned.values() if not future.cancel()]
        self.wasted += len(self._planned)
        self._planned.clear()

    def close(self, *, broken_off: bool = False) -> None:
        """Cancel what has not been sent, and give up what is still in flight.

        Args:
            broken_off: the search ends early (an error, Ctrl-C, the caller stopped
                reading): give up at once. Otherwise wait a little first
                (:data:`SETTLE_SECONDS`), so that no request is left half-way.
        """
        self._drop()
        if self._pool is None:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not broken_off:
            # Only started futures are awaited: one cancelled before it started is never
            # "done" for concurrent.futures.wait (no worker marks it), which would wait it out.
            concurrent.futures.wait(self._started, timeout=SETTLE_SECONDS)
        # Otherwise the pool's threads would wait for a silent server (read timeout and
        # retries), and the interpreter joins them at exit: Ctrl-C would not end the
        # process. A watch whose request has ended is left alone by cancel().
        for watch in self._watches:
            watch.cancel()
        if self.wasted:
            logger.debug("%d page(s) requested ahead were not needed", self.wasted)


def walk(fetch: Fetch, url: str, base: dict[str, Any], *, max_pages: int, prefetch: int = 1,
         max_items: int | None = None) -> Iterator[dict[str, Any]]:
    """The pages from ``url``: ``next`` links followed with ``base`` re-sent, pages fetched ahead.

    Args:
        fetch: fetches one page; called from pool threads when ``prefetch`` > 1.
        url: the first page.
        base: the query of every page (a link's own parameters win).
        max_pages: more pages than this is an error (none is requested ahead beyond it).
        prefetch: requests in flight at most; 1 requests each page when it is asked for.
        max_items: the items the caller will read at most, so pages beyond are not fetched
            ahead.

    Raises:
        APIRequestError: more than ``max_pages`` pages, or a page that is not one; any error
            of ``fetch``, when the iteration reaches that page (a page fetched ahead that
            got no answer is first fetched once more, in sequence: :func:`_settled`).
    """
    ahead = _Ahead(fetch, prefetch) if prefetch > 1 else None
    try:
        yield from _follow(fetch, url, base, ahead, max_pages, max_items)
    except BaseException:  # an error, Ctrl-C, or the caller stopped reading (GeneratorExit)
        if ahead is not None:
            ahead.close(broken_off=True)
        raise
    if ahead is not None:  # the last page
        ahead.close()


def _follow(fetch: Fetch, url: str, base: dict[str, Any], ahead: _Ahead | None,
            max_pages: int, max_items: int | None) -> Iterator[dict[str, Any]]:
    followed: set[_Key] = set()
    seen: set[tuple[Any, ...]] = set()
    # via: N when this page is ?page=N (the first page is page 1 unless the query says)
    target, params, via = url, base, page_number({"page": str(base.get("page", 1))})
    last = max_pages  # the last page worth requesting ahead
    for number in itertools.count(1):
        key = _key(target, params)
        if not _may_request(key, followed, number, max_pages, url, target):
            return
        followed.add(key)
        page = _page(number, key, ahead, fetch, target, params)
        records = _records(page, target)
        keys = {_record_key(record, number, i) for i, record in enumerate(records)}
        if not keys - seen:  # empty, or only items already returned
            if keys:
                logger.warning("stopping: page %d of %s repeats earlier items", number, url)
            return
        seen |= keys
        if number == 1 and max_items is not None:
            last = min(max_pages, math.ceil(max_items / len(records)))
        try:
            following = _next_link(page, target)
        except APIRequestError:
            yield page  # a bad link fails after its page's items, as in sequence
            raise
        if following is not None and ahead is not None:
            _plan(ahead, number, target, via, following, base, followed, last)
        yield page
        if following is None:
            return
        target, own = following
        params, via = {**base, **own}, page_number(own)


def _may_request(key: _Key, followed: set[_Key], number: int, max_pages: int, url: str,
                 target: str) -> bool:
    """Whether page ``number`` is one to request: not a repeat, nor past ``max_pages``."""
    if key in followed:  # a server that links a page to itself would loop forever
        logger.warning("stopping: next link repeats an earlier page (%s)", target)
        return False
    if number > max_pages:
        raise APIRequestError(
            f"stopped after {max_pages:,} pages of {url}: its next links did not "
            "end. Narrow the search (bbox, datetime, filter), cap it with max_items=, "
            "or allow more pages with ag.open(max_pages=...)", url=target)
    return True


def _page(number: int, key: _Key, ahead: _Ahead | None, fetch: Fetch, target: str,
          params: dict[str, Any]) -> dict[str, Any]:
    """Page ``number``: the request sent ahead for it, if that was for ``key``, else sent now."""
    future = ahead.take(number, key) if ahead is not None else None
    if future is not None and ahead is not None:
        return _settled(future, fetch, target, params, ahead)
    return fetch(target, params)


def _settled(future: Future[dict[str, Any]], fetch: Fetch, target: str,
             params: dict[str, Any], ahead: _Ahead) -> dict[str, Any]:
    """The page requested ahead; fetched again, in sequence, if it got no complete answer.

    A request sent ahead runs beside others, earlier than its turn: a dropped, refused or
    silent connection (its retries spent) need not fail the search where paging in sequence
    would go on. The reader then sends the page's request itself, as paging in sequence
    does, with the same retries, and the search fetches no more pages ahead (at most one
    such second try per search). An answer the server gave (an error status, a body that
    is not a page) is the page's, and is raised as it is.
    """
    try:
        return future.result()
    except APIRequestError as err:
        if err.status is not None or err.url != target:
            raise  # the server's answer about this page (or not this page's request)
        logger.debug("page %s fetched ahead got no answer (%s): fetching it again, and the "
                     "rest one page at a time", target, err)
    ahead.stop()
    return fetch(target, params)


def _plan(ahead: _Ahead, number: int, target: str, via: int | None,
          following: tuple[str, dict[str, Any]], base: dict[str, Any],
          followed: set[_Key], last: int) -> None:
    """Request the next page, and the ones after when ``?page=N`` links proved addressable."""
    next_target, own = following
    params = {**base, **own}
    end = ahead.known_end()
    last = last if end is None else min(last, end)
    if number + 1 > last or _key(next_target, params) in followed:
        return
    ahead.plan(number + 1, next_target, params)
    n = page_number(own)
    # Guessing needs a pattern: this page is ?page=N and links to ?page=N+1 on its URL.
    if not ahead.trusted or via is None or n != via + 1 or next_target != target:
        return
    for step in range(1, ahead.size):
        if number + 1 + step > last:
            return
        ahead.plan(number + 1 + step, next_target, {**base, "page": str(n + step)})
