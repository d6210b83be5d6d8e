"""HTTP plumbing shared by resolving and downloading: sessions, deadlines, counted retries.

- :func:`mount`: the one place an adapter is mounted on a session, its connection pools
  sized to the threads that send through it.
- :class:`Session`: a ``requests.Session`` that reads the environment once per origin and
  whose connections obey :func:`deadline`.
- :func:`deadline` (from :mod:`._deadline`, the one watchdog of the package, shared with
  token requests): inside the block, the requests this thread sends are cut off (their
  sockets shut down) once a moment passes. A read timeout bounds each *silence*; only this
  bounds a server that trickles a byte every few seconds into the status line or headers.
- :func:`count_failure`: one failed attempt counted on a urllib3 ``Retry``, its backoff
  slept, ending early on Ctrl-C and never past a deadline.

Example:
    >>> session = Session()
    >>> with deadline(time.monotonic() + 5):  # doctest: +SKIP
    ...     session.get("http://127.0.0.1:8000/slow", timeout=(5, 5))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from urllib3.util.retry import Retry

from ._deadline import Watch, WatchedAdapter, deadline
from ._deadline import _watchdog as _watchdog  # the one watchdog (tests reach it here)
from ._redact import redact
from .errors import AssetError


def display(url: str) -> str:
    """``scheme://host/path`` of a URL: safe for logs and messages (no query string).

    Example:
        >>> display("https://s.example/a.tif?X-Amz-Signature=abc")
        'https://s.example/a.tif'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path


#: Hosts whose connection pools one adapter keeps (requests' default): a session talks to
#: the API, or to storage, seldom to more hosts than this.
POOL_HOSTS = requests.adapters.DEFAULT_POOLSIZE


def mount(session: requests.Session, *, concurrency: int, max_retries: Retry | int = 0,
          adapter: type[requests.adapters.HTTPAdapter] = WatchedAdapter,
          ) -> requests.adapters.HTTPAdapter:
    """Mount one ``adapter`` for ``http://`` and ``https://``, pools sized to ``concurrency``.

    urllib3 opens a connection for each thread that sends at once, but keeps at most the
    pool's size per host: each one beyond is closed after its answer, with a "Connection
    pool is full, discarding connection" warning, and a later request pays for a new one.
    So every session's pools are made here, as large as the threads that share them.

    Args:
        session: The session to mount on.
        concurrency: The most requests its threads send at once (to one host).
        max_retries: The adapter's retry policy (``0``: the caller counts failures).
        adapter: The adapter class; default :class:`WatchedAdapter`.

    Example:
        >>> s = requests.Session()
        >>> mount(s, concurrency=16).poolmanager.connection_pool_kw["maxsize"]
        16
    """
    mounted = adapter(pool_connections=POOL_HOSTS, pool_maxsize=concurrency,
                      max_retries=max_retries)
    session.mount("http://", mounted)
    session.mount("https://", mounted)
    return mounted


class Session(requests.Session):
    """A session that reads the environment (proxies, CA bundle) once per origin.

    With ``trust_env`` on, requests scans ``os.environ`` on every request (about a
    millisecond each, more than the rest of a small transfer costs); here it is read once
    per origin and passed explicitly. ``trust_env`` being off also keeps requests from adding
    ``~/.netrc`` credentials, which must never reach the storage host. Its connections obey
    :func:`deadline`; retries are the caller's (see :func:`count_failure`).

    Args:
        pool_size: The most threads that send through it at once (:func:`mount`).
    """

    def __init__(self, pool_size: int = POOL_HOSTS) -> None:
        super().__init__()
        self.trust_env = False
        self._env: dict[tuple[str, str], dict[str, Any]] = {}
        self._env_lock = threading.Lock()
        mount(self, concurrency=pool_size)

    def get_plain(self, url: str, headers: Mapping[str, str], timeout: tuple[float, float],
                  ) -> requests.Response:
        """A streamed ``GET`` of ``url`` straight through the adapter, never authorised.

        What :meth:`get` adds to each request is left out: no auth (an ``Authorization``
        header is never sent, not even one made of credentials in the URL), no cookies, no
        hooks, no redirect followed or prepared. For many small downloads that is a quarter
        of the CPU time of each request. Sent: the session's default headers and ``headers``.

        Example:
            >>> r = session.get_plain(url, {"Range": "bytes=10-"}, (10, 30))  # doctest: +SKIP
            >>> r.raw.read1(65536)  # doctest: +SKIP
        """
        merged = requests.structures.CaseInsensitiveDict(self.headers)
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method="GET", url=url, headers=merged)
        prepared.headers.pop("Authorization", None)  # e.g. made of the URL's user:password@
        adapter = self.get_adapter(url)
        return adapter.send(prepared, stream=True, timeout=timeout, **self.env_for(url))

    def resolve_redirects(self, resp: requests.Response, req: requests.PreparedRequest,
                          *args: Any, yield_requests: bool = False, **kwargs: Any,
                          ) -> Generator[requests.Response, None, None]:
        """As requests' own, but a redirect not followed is not prepared for ``response.next``.

        requests builds that next request (cookies, auth, proxies) for every redirect it does
        not follow: for each resolved asset href, work nobody uses. ``response.next`` is
        ``None`` here.
        """
        if yield_requests:
            return
        yield from super().resolve_redirects(resp, req, *args, **kwargs)

    def env_for(self, url: str) -> dict[str, Any]:
        """``proxies``/``verify``/``cert`` keyword arguments for requests to ``url``."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        with self._env_lock:
            found = self._env.get(origin)
        if found is None:
            probe = requests.Session()  # trust_env on: what requests would have used
            merged = probe.merge_environment_settings(url, {}, None, None, None)
            probe.close()
            found = {name: merged[name] for name in ("proxies", "verify", "cert")}
            with self._env_lock:
                self._env[origin] = found
        return found


# --- counting failed attempts ---------------------------------------------------------------

class Cancelled(Exception):
    """The download was interrupted (Ctrl-C in the calling thread): stop this file now."""


class GaveUp(AssetError):
    """The retry budget is spent (attempts, or the time left before a deadline)."""


def count_failure(
    retry: Retry,
    where: str,
    error: Exception | None,
    response: requests.Response | None = None,
    *,
    cancel: threading.Event | None = None,
    until: float | None = None,
    until_means: str = "",
) -> Retry:
    """Count one failed attempt on ``retry``, sleep its backoff, return the new policy.

    Args:
        retry: The policy so far.
        where: The URL for messages, without its query string (:func:`display`).
        error: What failed (a requests or urllib3 exception), or ``None`` for ``response``.
        response: An answer with a retryable status (its ``Retry-After`` is honoured).
        cancel: When set during the backoff (Ctrl-C), :class:`Cancelled` is raised at once.
        until: A ``time.monotonic()`` deadline: a backoff that would end after it gives up.
        until_means: What the deadline is, for the message (e.g. ``"no progress for 90 s"``).

    Raises:
        GaveUp: The attempts are used up, or the deadline would pass.
        Cancelled: ``cancel`` was set.

    Example:
        >>> policy = count_failure(Retry(total=2), "https://s.example/a.tif",
        ...                        urllib3.exceptions.ProtocolError("dropped"))
        >>> policy.total
        1
    """
    raw = response.raw if response is not None else None
    if error is not None and not isinstance(error, urllib3.exceptions.HTTPError):
        # requests wraps urllib3's errors; the policy wants urllib3's kinds: a refused or
        # timed-out connect is a connect error, a dropped or stalled transfer a read error.
        message = redact(str(error))
        if isinstance(error, requests.ConnectTimeout) or _connect_phase(error):
            error = urllib3.exceptions.ConnectTimeoutError(message)
        else:
            error = urllib3.exceptions.ProtocolError(message)
    attempts = len(retry.history) + 1
    reason = f"HTTP {response.status_code}" if response is not None else redact(str(error))
    try:
        # url= only ever gets the display form: urllib3 puts it in its error messages.
        new = retry.increment(method="GET", url=where, response=raw, error=error)
    except urllib3.exceptions.MaxRetryError:
        raise GaveUp(f"gave up after {attempts} attempts: {reason}") from None
    wait = new.get_retry_after(raw) if raw is not None and new.respect_retry_after_header \
        else None
    if wait is None:
        wait = new.get_backoff_time()
    if until is not None and time.monotonic() + wait >= until:
        raise GaveUp(f"gave up after {attempts} attempts ({until_means}): {reason}")
    # Waited on the cancel event, not slept, so that Ctrl-C does not sit through it.
    if cancel is not None and cancel.wait(wait):
        raise Cancelled("interrupted")
    if cancel is None and wait > 0:
        time.sleep(wait)
    return new


def _connect_phase(err: Exception) -> bool:
    inner = err.args[0] if err.args else None
    reason = getattr(inner, "reason", inner)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def timeouts(connect: float, read: float, left: float) -> tuple[float, float]:
    """``(connect, read)`` timeouts for one request, neither longer than ``left`` seconds.

    Example:
        >>> timeouts(10, 30, 12.5)
        (10, 12.5)
    """
    left = max(left, 0.001)
    return min(connect, left), min(read, left)


__all__ = [
    "Cancelled",
    "POOL_HOSTS",
    "GaveUp",
    "Session",
    "Watch",
    "WatchedAdapter",
    "count_failure",
    "deadline",
    "display",
    "mount",
    "timeouts",
]
