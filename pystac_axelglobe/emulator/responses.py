"""Answers the emulator's apps share: JSON and S3 errors, injected faults, cut connections.

Example:
    >>> api_error(404, "NotFound", "No such item").status_code
    404
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class Dropped(ConnectionResetError):
    """Raised from a body iterator after the socket was cut on purpose (a 'drop' fault)."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """``data`` as compact JSON; GeoJSON features and collections as ``application/geo+json``.

    Example:
        >>> json_response({"type": "Feature"}).content_type
        'application/geo+json'
    """
    body = json.dumps(data, separators=(",", ":"))
    ctype = "application/json"
    if isinstance(data, dict) and data.get("type") in ("Feature", "FeatureCollection"):
        ctype = "application/geo+json"
    return Response(body, status=status, headers=headers, content_type=ctype)


def api_error(status: int, code: str, description: str, **headers: str) -> Response:
    """The API's error body, ``{"code": ..., "description": ...}``.

    Example:
        >>> api_error(429, "TooManyRequests", "Slow down", **{"Retry-After": "1"}).headers[
        ...     "Retry-After"]
        '1'
    """
    return json_response({"code": code, "description": description}, status, headers or None)


def s3_error(status: int, code: str, message: str, resource: str = "") -> Response:
    """An S3 XML error.

    Example:
        >>> b"<Code>NoSuchKey</Code>" in s3_error(404, "NoSuchKey", "Gone").data
        True
    """
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{secrets.token_hex(8).upper()}</RequestId>"
        "</Error>"
    )
    return Response(body, status=status, content_type="application/xml")


def fault_response(kind: str, *, storage: bool = False) -> Response | WSGIApplication:
    """The answer of an injected fault of ``kind`` (see ``fault_kinds``).

    Example:
        >>> fault_response("503").status_code
        503
    """
    if kind == "503":
        return api_error(503, "ServiceUnavailable", "Service temporarily unavailable")
    if kind == "502":
        return api_error(502, "BadGateway", "Bad gateway")
    if kind == "429":
        return api_error(429, "TooManyRequests", "Slow down", **{"Retry-After": "1"})
    if kind == "404":  # the object is gone (storage), or the resource (API)
        if storage:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return api_error(404, "NotFound", "No such resource")
    return _cut_json()


def _cut_json() -> WSGIApplication:
    """A 200 with a full ``Content-Length`` whose body is cut halfway (the API's "drop")."""
    body = json.dumps({"type": "FeatureCollection", "features": [], "links": [],
                       "padding": "x" * 2048}).encode()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return _half([body], environ)

    return app


def _half(body: list[bytes], environ: WSGIEnvironment) -> Iterator[bytes]:
    yield body[0][: len(body[0]) // 2]
    drop_connection(environ)


def drop_connection(environ: WSGIEnvironment) -> NoReturn:
    """Cut the TCP connection mid-body: the client has a Content-Length it never gets."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise Dropped("connection dropped by the emulator (fault injection)")


def guard(handler: Callable[[Request], Response | WSGIApplication], environ: WSGIEnvironment,
          start_response: StartResponse) -> Iterable[bytes]:
    """Run ``handler`` as a WSGI app; an unexpected error becomes a 500 that says what broke.

    The server stays alive whatever a handler raises.
    """
    request = Request(environ)
    try:
        answer = handler(request)
    except HTTPException as err:
        answer = err
    except Exception as err:
        answer = api_error(500, "InternalServerError", f"emulator error: {err!r}")
    return answer(environ, start_response)
