"""The words of the STAC I/O's failures, each an ``APIRequestError`` naming the request.

Each :class:`~pystac_axelglobe.errors.APIRequestError` says what to do next, with at most a
short, redacted snippet of what the server said: :func:`no_answer` (nothing came in time,
retries included), :func:`status_error` (an error status) and :func:`not_json` (HTML, an
empty body, or JSON that is not an object).

Example:
    >>> str(not_json("https://api.example/", 200, b"<html>portal</html>", "")).split(",")[0]
    'https://api.example/ answered HTTP 200 with an HTML page'
"""

from __future__ import annotations

import requests
from urllib3.exceptions import ReadTimeoutError

from ._redact import redact
from .errors import APIRequestError

_ADVICE = {
    401: "the token was refused: check AXELGLOBE_CLIENT_ID/AXELGLOBE_CLIENT_SECRET",
    403: "access is refused: check that this client may use the collection",
    404: "not found: check the URL and the ids",
    429: "rate limited by this server: try again later",
}


def no_answer(method: str, href: str, err: requests.RequestException,
              timeout: object) -> APIRequestError:
    """No (whole) answer came: a connect or read timeout, or the connection failed."""
    reason = err.args[0] if err.args else err
    reason = getattr(reason, "reason", reason)  # MaxRetryError: what the last try hit
    if isinstance(err, requests.exceptions.ConnectTimeout):
        what = f"could not connect (connect timeout; timeout={timeout})"
    elif isinstance(reason, ReadTimeoutError) or isinstance(err, requests.exceptions.ReadTimeout):
        what = f"no answer in time (read timeout; timeout={timeout})"
    else:
        what = f"no answer ({redact(str(reason))[:300]})"
    return APIRequestError(
        f"{method} {href}: {what}, retries included. The API may be down or overloaded: try "
        "again later (a slow network: ag.open(timeout=(connect_s, read_s)))", url=href)


def status_error(resp: requests.Response, method: str, href: str) -> APIRequestError:
    """An error status (its body already read), with advice and the start of the answer."""
    status = resp.status_code
    head = resp.content[:600].decode("utf-8", "replace")
    snippet = redact(" ".join(head.split()))[:300]
    advice = _ADVICE.get(status, "the API kept failing: try again later" if status >= 500
                         else "check the request")
    return APIRequestError(f"HTTP {status} from {method} {href}: {advice}. The answer: "
                           f"{snippet or '(empty)'}", status=status, url=resp.url or href)


def not_json(url: str, status: int | None, body: bytes, detail: str) -> APIRequestError:
    """An answer that is not the JSON object of a STAC API (a proxy, a captive portal...)."""
    start = body.lstrip()[:1]
    kind = ("an HTML page" if start == b"<" else "an empty body" if not body
            else f"a body that is not a JSON object ({detail})")
    answered = f"answered HTTP {status}" if status is not None else "answered"
    return APIRequestError(
        f"{url} {answered} with {kind}, not the JSON of a STAC API. Is the URL right "
        "(AXELGLOBE_API_URL, ag.open(url=...))? A proxy or a captive portal may answer like "
        "this; otherwise try again later", status=status, url=url)
