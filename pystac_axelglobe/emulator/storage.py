"""The emulator's storage origin: S3-style presigned GETs of the archive's files.

As S3 does: only ``GET`` with a valid, unexpired presigned query; ``Authorization`` beside
it is refused (400), ``HEAD`` gets a 403 (the presigned method is GET), single byte ranges
are honoured and anything else about ``Range`` is ignored, errors are S3's XML.

Example:
    >>> normalise_range("bytes=-10", 4)
    (0, 3)
"""

from __future__ import annotations

import mimetypes
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast
from xml.sax.saxutils import escape

from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import FileWrapper

from .responses import drop_connection, fault_response, guard, s3_error
from .state import BUCKET, State

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .items import ItemStore

#: Bytes read from a file at once, and the unit of ``storage_delay``.
CHUNK = 64 * 1024
# One byte range, "bytes=first-last" with either end (not both) left out (RFC 9110 14.1.2).
_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)")
_TWO_AUTHS = ("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
              "Signature query string parameter or the Authorization header should be "
              "specified")


class RangeNotSatisfiable(ValueError):
    """A ``Range`` that starts at or past the end of the file (S3's 416 ``InvalidRange``)."""


def normalise_range(value: str, size: int) -> tuple[int, int] | None:
    """How S3 reads a ``Range`` header on a file of ``size`` bytes.

    werkzeug alone would answer 416 to a suffix longer than the file (RFC 9110 says: the
    whole file) and to malformed or multiple ranges (S3 ignores those: the whole file).

    Returns:
        ``(first, last)`` of a satisfiable single range; ``None`` for a header S3 ignores.

    Raises:
        RangeNotSatisfiable: The range starts at or past the end (or is ``bytes=-0``).

    Example:
        >>> normalise_range("bytes=0-99,200-299", 1000) is None
        True
    """
    match = _RANGE.fullmatch(value.strip())
    first, last = (match.group(1), match.group(2)) if match else ("", "")
    if not (first or last) or (first and last and int(last) < int(first)):
        return None
    if not first:  # a suffix: the last N bytes, or the whole file if it is shorter
        if int(last) <= 0 or size <= 0:
            raise RangeNotSatisfiable(value)
        return max(0, size - int(last)), size - 1
    if int(first) >= size:
        raise RangeNotSatisfiable(value)
    return int(first), min(int(last), size - 1) if last else size - 1


def _invalid_range(value: str, size: int) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>InvalidRange</Code>"
        "<Message>The requested range is not satisfiable</Message>"
        f"<RangeRequested>{escape(value)}</RangeRequested>"
        f"<ActualObjectSize>{size}</ActualObjectSize>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    )
    return Response(body, status=416, content_type="application/xml",
                    headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})


class StorageApp:
    """WSGI app of the storage origin.

    Args:
        state: The emulator's shared state (its signer checks the URLs).
        items: Where the files are.
    """

    def __init__(self, state: State, items: ItemStore) -> None:
        self.state = state
        self.items = items

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        """The WSGI entry point."""
        # How many requests storage answers at once: what tests of read concurrency count.
        counters = self.state.counters
        counters.raise_to("storage_in_flight_most", counters.add("storage_in_flight"))
        try:
            self.state.sleep(self.state.switches.storage_latency)  # this request's thread only
            return guard(self.answer, environ, start_response)
        finally:
            counters.add("storage_in_flight", -1)

    def answer(self, request: Request) -> Response | WSGIApplication:
        """The answer to one request: check it as S3 would, then send the file."""
        counters = self.state.counters
        counters.add("storage_requests")
        self.state.log_storage(request.method, request.path, request.headers.get("Range", ""),
                               {k.lower(): v for k, v in request.headers.items()})
        if "Authorization" in request.headers:
            counters.add("storage_requests_with_authorization")
            return s3_error(400, "InvalidArgument", _TWO_AUTHS, request.path)
        if request.method == "HEAD":
            counters.add("storage_head_requests")
            return s3_error(403, "Forbidden", "", request.path)
        if request.method != "GET":
            return s3_error(405, "MethodNotAllowed", "The method is not allowed", request.path)
        refusal = self.state.signer.check(request.path, request.args)
        if refusal is not None:
            code = "SignatureDoesNotMatch" if refusal.startswith("The request") else "AccessDenied"
            return s3_error(403, code, refusal, request.path)
        path = self._file(request.path)
        if path is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", request.path)
        value = request.environ.get("HTTP_RANGE")
        if value is not None:
            try:
                span = normalise_range(value, path.stat().st_size)
            except RangeNotSatisfiable:
                return _invalid_range(value, path.stat().st_size)
            if span is None:
                del request.environ["HTTP_RANGE"]  # S3 ignores it: the whole file
            else:
                request.environ["HTTP_RANGE"] = f"bytes={span[0]}-{span[1]}"
        fault = self.state.pick_fault(self.state.switches.storage_fault_rate)
        if fault is not None and fault != "drop":
            return fault_response(fault, storage=True)
        return self._send(request, path, drop=fault == "drop")

    def _file(self, url_path: str) -> Path | None:
        parts = url_path.split("/")
        if len(parts) != 4 or parts[1] != BUCKET:
            return None
        try:
            return self.items.asset_path(parts[2], parts[3])
        except KeyError:
            return None

    def _send(self, request: Request, path: Path, *, drop: bool) -> Response:
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".tif":
            mimetype = "image/tiff"
        response = send_file(path, request.environ, mimetype=mimetype, conditional=True,
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
            # 64 KiB blocks, not werkzeug's 8 KiB: an eighth of the Python loop turns per
            # byte, the same bytes on the wire
            wrapper.buffer_size = CHUNK
        length = response.content_length or 0
        response.response = self._stream(original, request.environ,
                                         drop_after=length // 2 if drop else None)
        return response

    def _stream(self, body: Iterable[bytes], environ: WSGIEnvironment, drop_after: int | None
                ) -> Iterator[bytes]:
        """Yield the body, counting bytes, sleeping per 64 KiB, maybe cutting it short."""
        sent = 0
        paused_upto = 0  # one pause for every 64 KiB block begun, so small files are slow too
        try:
            for chunk in body:
                while self.state.switches.storage_delay > 0 and sent + len(chunk) > paused_upto:
                    self.state.sleep(self.state.switches.storage_delay)
                    paused_upto += CHUNK
                if drop_after is not None and sent + len(chunk) > drop_after:
                    part = chunk[: max(0, drop_after - sent)]
                    if part:
                        self.state.counters.add("storage_bytes_sent", len(part))
                        yield part
                    drop_connection(environ)
                sent += len(chunk)
                self.state.counters.add("storage_bytes_sent", len(chunk))
                yield chunk
            if drop_after is not None:  # empty body: still cut the connection
                drop_connection(environ)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
