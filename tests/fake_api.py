"""Scripted servers on 127.0.0.1 for the tests whose API, storage or token endpoint misbehaves.

- :class:`FakeAPI`: a STAC API (``http.server``) that answers each GET (and POST, if asked)
  with the route of its last path segment (``""`` for the root, ``"search"``, ...) and counts
  what it receives.
  :func:`landing`, :func:`item` and :func:`page` build its answers; :func:`silent` and
  :func:`trickle` are routes that never finish answering.
- :class:`RawServer`: a server at the socket level, for answers ``http.server`` cannot give
  (a status line that never ends, a body cut short without a length). :func:`silent_socket`
  and :func:`trickling_head` are such answers.

Neither checks tokens: tests take theirs from the emulator's token endpoint. A ``with`` block
serves them; its end releases every answer still held (``stop``).

Example::

    with FakeAPI({"search": lambda h, n: h.json(page(h.server.url, range(3)))}) as api:
        client = ag.open(**emulator.settings_kwargs(), api_url=api.url)
        assert len(list(client.search().items())) == 3 and api.hits["search"] == 1
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

Route = Callable[["Handler", int], None]  # route(handler, n): the n-th request (from 1) to it
Answer = Callable[["RawServer", socket.socket, str], None]  # answer(server, sock, head)
Served = TypeVar("Served", bound=socketserver.BaseServer)
API = TypeVar("API", bound="FakeAPI")
Raw = TypeVar("Raw", bound="RawServer")


#: The listen backlog of every test server. http.server's is 5: when its accept loop falls
#: behind a burst of connections (a busy CI machine, 16 redirects at once), the kernel drops
#: those past it and the clients send them again a second later, so a test that counts
#: requests in flight sees fewer than the client sent.
BACKLOG = 128


class LoopbackHTTPServer(ThreadingHTTPServer):
    """http.server's threading server as the tests need it: daemon threads, a deep backlog.

    Example:
        >>> with LoopbackHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        ...     server.request_queue_size
        128
    """

    daemon_threads = True
    request_queue_size = BACKLOG


class Handler(BaseHTTPRequestHandler):
    """Hands each GET to its server's route; ``answer()`` and ``json()`` write an answer."""

    protocol_version = "HTTP/1.1"
    server: FakeAPI

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.dispatch(self)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if not self.server.post:  # http.server's own answer to a method it does not serve
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        # read, then dropped: the connection stays usable for the next request
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.dispatch(self)

    def answer(self, status: int, body: bytes, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def json(self, value: Any, status: int = 200) -> None:
        self.answer(status, json.dumps(value).encode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _serve(server: Served) -> Served:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server


def _end(server: FakeAPI | RawServer) -> None:
    server.stop.set()  # first: held answers end, and with them their threads
    server.shutdown()
    server.server_close()


class FakeAPI(LoopbackHTTPServer):
    """A scripted STAC API at ``url`` (``http://127.0.0.1:PORT/stac``).

    ``routes`` maps the last path segment of a GET to the route that answers it; the root
    answers :func:`landing` unless routed, anything else unrouted a 404. A POST gets
    http.server's 501, or with ``post=True`` the same route as a GET (its body dropped;
    ``h.command`` tells them apart). Kept, for the test's assertions: ``hits`` (requests per
    route), ``seen`` (route, query and headers of each request), ``asked`` (the ``?page=`` of
    each search, in order: 1 without one), ``in_flight`` and ``most_in_flight`` (requests
    being answered now, and at most).
    """

    def __init__(self, routes: dict[str, Route] | None = None, post: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.post = post
        self.url = f"http://127.0.0.1:{self.server_address[1]}/stac"
        self.routes: dict[str, Route] = {"": lambda h, n: h.json(landing(self.url)),
                                         **(routes or {})}
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set on exit: ends silent and trickling answers
        self.hits: Counter[str] = Counter()
        self.seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.asked: list[int] = []
        self.in_flight = self.most_in_flight = 0

    def dispatch(self, h: Handler) -> None:
        """Count the request, then answer it with its route (or a 404)."""
        parts = urlsplit(h.path)
        name = parts.path.rstrip("/").rsplit("/", 1)[-1]
        name = "" if name == "stac" else name
        with self.lock:
            self.hits[name] += 1
            count = self.hits[name]
            self.seen.append((name, parse_qs(parts.query), dict(h.headers)))
            if name == "search":
                self.asked.append(asked_page(h))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        route = self.routes.get(name)
        try:
            if route is None:
                h.answer(404, b'{"code": "NotFound"}')
            else:
                route(h, count)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should
        finally:
            with self.lock:
                self.in_flight -= 1

    def __enter__(self: API) -> API:
        return _serve(self)

    def __exit__(self, *exc: object) -> None:
        _end(self)


def asked_page(h: Handler) -> int:
    """The ``page`` number the request asked for (1 without one)."""
    return int(parse_qs(urlsplit(h.path).query).get("page", ["1"])[0])


def landing(url: str) -> dict[str, Any]:
    """A landing page without conformsTo, as AxelGlobe's (the client completes it)."""
    return {"type": "Catalog", "id": "fake", "stac_version": "1.0.0",
            "description": "a scripted API", "links": [
                {"rel": "self", "href": url}, {"rel": "root", "href": url},
                {"rel": "search", "href": f"{url}/search", "method": "GET",
                 "type": "application/geo+json"}]}


def item(n: int, props: dict[str, Any] | None = None,
         assets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Item ``item-{n}`` of grus-1: a small square footprint of its own, a day in May 2021."""
    x, y = 135 + n % 4000 / 100, 35.0  # a longitude up to 175, whatever n
    return {"type": "Feature", "stac_version": "1.0.0", "id": f"item-{n}",
            "collection": "grus-1",
            "geometry": {"type": "Polygon", "coordinates": [
                [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]},
            "bbox": [x, y, x + 0.01, y + 0.01],
            "properties": {"datetime": f"2021-05-{1 + n % 28:02d}T00:00:00Z", **(props or {})},
            "links": [], "assets": assets or {}}


def page(url: str, features: Iterable[int | dict[str, Any]],
         next_page: int | str | None = None) -> dict[str, Any]:
    """A search page of ``features`` (a number ``n`` is ``item(n)``).

    Its next link: ``{url}/search?page={next_page}`` for a number, the href itself for
    text, none for ``None``.
    """
    if isinstance(next_page, int):
        next_page = f"{url}/search?page={next_page}"
    links = [] if next_page is None else [
        {"rel": "next", "href": next_page, "type": "application/geo+json"}]
    return {"type": "FeatureCollection",
            "features": [item(f) if isinstance(f, int) else f for f in features],
            "links": links}


def silent(h: Handler, n: int) -> None:
    """Take the request, never answer."""
    h.server.stop.wait(60)


def trickle(h: Handler, n: int) -> None:
    """A 200 whose body comes a byte every 0.1 s: a read timeout never fires."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    while not h.server.stop.wait(0.1):
        h.wfile.write(b" ")
        h.wfile.flush()


# --- at the socket level ---------------------------------------------------------------------


class _RawHandler(socketserver.BaseRequestHandler):
    server: RawServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        self.server.heads.append(head.decode("latin-1"))
        try:
            self.server.answer(self.server, sock, head.decode("latin-1"))
        except OSError:
            pass  # the client gave up


class RawServer(socketserver.ThreadingTCPServer):
    """An HTTP server whose every answer is ``answer(server, sock, head)``, written by hand.

    ``head`` is the request's head (request line and headers; a body is left unread). One
    request per connection; ``heads`` keeps them in order. ``url``: the origin, then ``path``.
    """

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, answer: Answer, path: str = "") -> None:
        super().__init__(("127.0.0.1", 0), _RawHandler)
        self.answer = answer
        self.heads: list[str] = []
        self.stop = threading.Event()  # set on exit: ends silent and trickling answers
        self.url = f"http://127.0.0.1:{self.server_address[1]}{path}"

    def ranges(self) -> list[str | None]:
        """The ``Range`` header of each request (``None`` where there was none)."""
        found: list[str | None] = []
        for head in self.heads:
            lines = [ln.split(":", 1)[1].strip() for ln in head.split("\r\n")
                     if ln.lower().startswith("range:")]
            found.append(lines[0] if lines else None)
        return found

    def __enter__(self: Raw) -> Raw:
        return _serve(self)

    def __exit__(self, *exc: object) -> None:
        _end(self)


def silent_socket(server: RawServer, sock: socket.socket, head: str) -> None:
    """Take the request, never answer."""
    server.stop.wait(120)


def trickling_head(status: str = "200 OK", every: float = 0.1) -> Answer:
    """An answer whose header line grows a byte every ``every`` s and never ends."""
    def answer(server: RawServer, sock: socket.socket, head: str) -> None:
        sock.sendall(f"HTTP/1.1 {status}\r\nX-Slow: ".encode())
        while not server.stop.wait(every):
            sock.sendall(b"a")
    return answer
