"""Asset hrefs → presigned storage URLs, and downloads that resume and never half-write.

Every AxelGlobe asset href lives on the API origin and answers, with the bearer token, a
redirect (302/307) to an expiring S3-style presigned URL on a storage host. The storage host
refuses any ``Authorization`` header, refuses ``HEAD`` and honours ``Range``.

:func:`resolve` turns an href into a :class:`PresignedURL` (one authorised request, cached per
process, single-flight per href); :func:`invalidate` forgets one after storage answered 403.
:func:`download` fetches assets to ``{directory}/{item_id}/{basename of the href}``.

Example:
    >>> import pystac_axelglobe as ag
    >>> url = ag.resolve(item.assets["tci"].href)  # doctest: +SKIP
    >>> url                                         # doctest: +SKIP
    PresignedURL(https://storage.example/…/tci.tif, expires in 899 s)
    >>> local = ag.download(item, assets=["tci"], directory="out")  # doctest: +SKIP
    >>> local[0].assets["tci"].href                 # doctest: +SKIP
    '/home/me/out/00129aa5-…/2021-12-23_00129aa5-…_tci.tif'
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import logging
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import pystac
import requests
import requests.adapters
import urllib3.exceptions
from urllib3.util.retry import Retry

from ._redact import redact
from ._retry import RETRY_STATUSES, download_retry, resolve_retry
from .auth import default_auth
from .errors import AssetError, ConfigurationError, DownloadError

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = [
    "DEFAULT_EXPIRY",
    "PresignedURL",
    "download",
    "invalidate",
    "resolve",
]

log = logging.getLogger(__name__)

#: Assumed lifetime (seconds) of a redirect target whose URL says nothing about its expiry.
DEFAULT_EXPIRY = 60.0
#: Bytes per read/write while streaming a file (large chunks: fewer syscalls, more throughput).
CHUNK_SIZE = 1024 * 1024
#: (connect, read) timeouts in seconds for every request this module sends.
TIMEOUT = (10.0, 60.0)
#: Statuses that are retried with backoff (``Retry-After`` honoured).
#: How many 403s from storage in a row (each followed by a fresh redirect) before giving up.
MAX_FORBIDDEN = 3

#: Retry policy of the resolving (API) session's adapter (a restriction is not slept through).
RESOLVE_RETRY = resolve_retry()
#: Retry policy of each storage transfer. The budget starts afresh after an attempt that made
#: progress, so a long transfer over a flaky link keeps resuming while a dead one stops quickly.
DOWNLOAD_RETRY = download_retry()

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def _display(url: str) -> str:
    """``scheme://host/path`` of a URL: safe for logs and messages (no query string)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path



@dataclasses.dataclass(frozen=True)
class PresignedURL:
    """A downloadable URL and when it stops working.

    Attributes:
        url: The presigned storage URL (or the href itself when it needed no resolving).
            Its signature is a credential until it expires: do not log it.
        expires_at: Epoch seconds after which storage refuses the URL; ``math.inf`` when the
            URL does not expire.

    Example:
        >>> p = PresignedURL("https://s.example/a.tif?X-Amz-Signature=abc", math.inf)
        >>> p
        PresignedURL(https://s.example/a.tif, does not expire)
    """

    url: str = dataclasses.field(repr=False)
    expires_at: float

    def remaining(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def __repr__(self) -> str:
        # The signature is a credential: show where the URL points and when it expires only.
        if math.isinf(self.expires_at):
            when = "does not expire"
        else:
            when = f"expires in {self.remaining():.0f} s"
        return f"PresignedURL({_display(self.url)}, {when})"


def _expiry_from_url(url: str, requested_at: float) -> float | None:
    """Expiry of an S3-style presigned URL (``X-Amz-Date`` + ``X-Amz-Expires``), if it says.

    The smaller of "server's signing time + lifetime" and "our request time + lifetime" is
    returned, so a clock skew in either direction errs on the early side.
    """
    query = {k.lower(): v for k, v in parse_qs(urlsplit(url).query).items()}
    expires = query.get("x-amz-expires")
    if not expires:
        return None
    try:
        lifetime = float(expires[0])
    except ValueError:
        return None
    candidates = [requested_at + lifetime]
    date = query.get("x-amz-date")
    if date:
        try:
            signed = calendar.timegm(time.strptime(date[0], _AMZ_DATE))
            candidates.append(signed + lifetime)
        except ValueError:
            pass
    return min(candidates)


# --- process-wide state: cache, single-flight locks, sessions, the default auth ------------

@dataclasses.dataclass(frozen=True)
class _Cached:
    url: PresignedURL
    lifetime: float  # seconds from resolving to expiry, to cap the reuse margin


_state_lock = threading.Lock()
_cache: dict[tuple[str, str], _Cached] = {}
_flight_locks: dict[tuple[str, str], threading.Lock] = {}
_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()


def _reset_after_fork() -> None:
    # A forked child (e.g. a dask process worker) must not inherit held locks or the parent's
    # pooled sockets; the cached URLs stay valid and are kept.
    global _state_lock, _sessions
    _state_lock = threading.Lock()
    _flight_locks.clear()
    _sessions = weakref.WeakKeyDictionary()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class _Session(requests.Session):
    """A session that reads the environment (proxies, CA bundle) once per origin.

    With ``trust_env`` on, requests scans ``os.environ`` on every request (about a
    millisecond each, more than the rest of a small transfer costs); here it is read once
    per origin and passed explicitly. ``trust_env`` being off also keeps requests from adding
    ``~/.netrc`` credentials, which must never reach the storage host.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._env: dict[tuple[str, str], dict[str, Any]] = {}
        self._env_lock = threading.Lock()

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


def _api_session(auth: AxelGlobeAuth) -> _Session:
    """The session that carries ``auth`` (one per auth object, shared by threads)."""
    with _state_lock:
        session = _sessions.get(auth)
        if session is None:
            session = _Session()
            session.auth = auth
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=4, pool_maxsize=32, max_retries=RESOLVE_RETRY
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[auth] = session
        return session


def _cache_key(href: str, auth: AxelGlobeAuth) -> tuple[str, str]:
    # Presigned URLs grant access: never hand one credential's URL to another credential.
    settings = auth.settings
    return (f"{settings.client_id}@{settings.api_url}", href)


def _fresh(entry: _Cached | None, min_validity: float) -> bool:
    if entry is None:
        return False
    # "Shortly before expiry" is min_validity, but never more than half the URL's lifetime,
    # so that URLs living only a few seconds are still reused.
    margin = min(min_validity, entry.lifetime / 2)
    return entry.url.remaining() > margin


def resolve(
    href: str, *, auth: AxelGlobeAuth | None = None, min_validity: float = 30.0
) -> PresignedURL:
    """The presigned storage URL an asset href redirects to, and when it expires.

    One authorised ``GET`` (redirects not followed, body not read) on a session carrying
    ``auth``; 5xx, 429 and dropped connections are retried with backoff (``Retry-After``
    honoured), a 401 is cured by the auth's token refresh. The answer is cached per process
    and shared by all threads until ``min_validity`` seconds (at most half its lifetime)
    before it expires; threads asking for the same href at once cause a single request.

    Hrefs that are not on the API origin (a storage URL, a presigned URL, any other host)
    need no token and no redirect: they are returned as they are, with no request sent; their
    expiry is read from ``X-Amz-Date``/``X-Amz-Expires`` when present, else they never
    expire. Other schemes (``file://``, local paths) raise :class:`AssetError`.

    Safe to call from many threads and from dask workers (threads or processes).

    Args:
        href: An asset href, e.g. ``item.assets["tci"].href``.
        auth: The authorisation; default: one ``AxelGlobeAuth()`` per process built from the
            ``AXELGLOBE_*`` environment.
        min_validity: Seconds the returned URL must still be valid for; a cached URL closer
            to expiry is replaced by a fresh one.

    Returns:
        The presigned URL; its ``repr`` never shows the signature.

    Raises:
        AssetError: The API did not answer a redirect (status and a hint in the message), or
            the redirect points at something other than http(s).

    Example:
        >>> url = resolve(item.assets["band3"].href)  # doctest: +SKIP
        >>> requests.get(url.url)  # no Authorization header: storage refuses it  # doctest: +SKIP
    """
    scheme = urlsplit(href).scheme.lower()
    if scheme not in ("http", "https"):
        raise AssetError(
            f"cannot resolve {href!r}: only http(s) asset hrefs can be resolved "
            "(a local path is already downloaded; open it directly)"
        )
    if auth is None:
        auth = default_auth()
    if not auth.is_api_url(href):
        expiry = _expiry_from_url(href, time.time())
        return PresignedURL(href, math.inf if expiry is None else expiry)

    key = _cache_key(href, auth)
    with _state_lock:
        entry = _cache.get(key)
        if _fresh(entry, min_validity):
            assert entry is not None
            return entry.url
        flight = _flight_locks.setdefault(key, threading.Lock())
    # Single flight: the first thread resolves while the others wait on the href's lock and
    # then find the fresh answer in the cache.
    with flight:
        with _state_lock:
            entry = _cache.get(key)
        if _fresh(entry, min_validity):
            assert entry is not None
            return entry.url
        entry = _request_redirect(href, auth)
        with _state_lock:
            _cache[key] = entry
            if len(_cache) > _CACHE_SWEEP_SIZE:
                _sweep_expired(time.time())
    return entry.url


#: Past this many cached URLs, a new one sweeps out the expired (long-running workers
#: resolve hrefs without end; each entry is small, so sweeping rarely is enough).
_CACHE_SWEEP_SIZE = 4096


def _sweep_expired(now: float) -> None:
    """Drop expired URLs and the locks of their hrefs (call with ``_state_lock`` held)."""
    for key in [k for k, e in _cache.items() if e.url.expires_at <= now]:
        del _cache[key]
        # A thread that took this lock but has not acquired it yet would then race a newer
        # one for this expired href: at worst one extra redirect, never a wrong URL.
        lock = _flight_locks.get(key)
        if lock is not None and not lock.locked():
            del _flight_locks[key]


def _request_redirect(href: str, auth: AxelGlobeAuth) -> _Cached:
    session = _api_session(auth)
    # The adapter retries 5xx/429 and failed connections; this policy covers the one case it
    # cannot see: an answer whose body is cut off (a dropped connection after the headers).
    retry: Retry = RESOLVE_RETRY.new()
    while True:
        started = time.time()
        try:
            response = session.get(href, allow_redirects=False, stream=True, timeout=TIMEOUT,
                                   **session.env_for(href))
        except requests.RequestException as err:
            raise AssetError(
                f"could not resolve {href}: {redact(str(err))}; the API could not be reached "
                "after retries, check the network and try again"
            ) from err
        with response:
            status = response.status_code
            location = response.headers.get("Location")
            if status in _REDIRECT_STATUSES and location:
                _release(response)
                break
            try:
                body = _read_some(response)
            except requests.RequestException as err:
                retry = _increment(retry, href, err)
                continue
        if status == 429:
            auth.provider.check_restriction()  # recorded by the auth: a RestrictedError
        raise AssetError(
            f"could not resolve {href}: HTTP {status}{_describe(body)}; {_hint(status)}"
        )
    url = urljoin(href, location)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise AssetError(
            f"could not resolve {href}: the API redirected to a {urlsplit(url).scheme!r} URL; "
            "only http(s) redirects are followed"
        )
    expiry = _expiry_from_url(url, started)
    if expiry is None:
        expiry = started + DEFAULT_EXPIRY
    log.debug("resolved %s -> %s (valid %.0f s)", href, _display(url), expiry - started)
    return _Cached(PresignedURL(url, expiry), lifetime=max(expiry - started, 0.0))


def _release(response: requests.Response, limit: int = 65536) -> None:
    """Put the connection back in the pool if the (unwanted) body is small, else drop it.

    A redirect's body is of no use, but reading a few hundred bytes of it lets the next
    request reuse the connection instead of paying for a new one (a TLS handshake).
    """
    length = _int(response.headers.get("Content-Length"))
    if length is not None and length <= limit:
        response.raw.drain_conn()
        response.raw.release_conn()


def _read_some(response: requests.Response, limit: int = 65536) -> bytes:
    """Up to ``limit`` bytes of the body; raises if the connection drops before its end."""
    data = b""
    for chunk in response.iter_content(8192):
        data += chunk
        if len(data) >= limit:
            break
    return data


def _describe(body: bytes) -> str:
    """The API's own ``description`` of an error, if its body says one."""
    try:
        text = json.loads(body).get("description")
    except (ValueError, AttributeError):
        return ""
    return f" ({redact(str(text))[:200]})" if text else ""


def _hint(status: int) -> str:
    if status == 200:
        return "expected a redirect to the file; is this href an AxelGlobe asset href?"
    if status == 401:
        return ("the token was refused even after a refresh: check AXELGLOBE_CLIENT_ID and "
                "AXELGLOBE_CLIENT_SECRET")
    if status == 403:
        return "access denied: your contract may not cover this item or AOI"
    if status == 404:
        return "no such asset: take hrefs from the item's assets as the API returned them"
    if status == 429:
        return "AxelGlobe restricts this client for now: wait a minute and try again"
    if status >= 500:
        return "the AxelGlobe API kept failing after retries: try again later"
    return "expected a redirect (302/307) to the file"


def invalidate(href: str) -> None:
    """Forget the cached presigned URL of ``href`` (for every credential).

    Call it after storage refused the URL (403: expired or revoked); the next
    :func:`resolve` asks the API again.

    Example:
        >>> invalidate("https://api.axelglobe.com/…/x_tci.tif")  # no-op when not cached
    """
    with _state_lock:
        for key in [k for k in _cache if k[1] == href]:
            del _cache[key]


# --- download -----------------------------------------------------------------------------

class _NoAuthorization(requests.auth.AuthBase):
    """Strip any ``Authorization`` header: storage refuses requests that carry one.

    Setting it as the session's auth also keeps requests from adding ``~/.netrc``
    credentials (it only consults .netrc when a session has no auth).
    """

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        return r


def _storage_session(pool_size: int) -> _Session:
    session = _Session()
    session.auth = _NoAuthorization()
    # Retries are driven per transfer (resume with Range), not by the adapter.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclasses.dataclass
class _Task:
    item_id: str
    key: str
    href: str
    dest: Path

    @property
    def name(self) -> str:
        return f"{self.item_id}/{self.key}"


class _Progress:
    """One thread-safe byte counter over all files (tqdm, or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024,
                             desc="download", dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

    def update(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _as_items(items: object) -> list[pystac.Item]:
    if isinstance(items, pystac.Item):
        return [items]
    if isinstance(items, pystac.ItemCollection):
        return list(items.items)
    search_items = getattr(items, "items", None)
    if callable(search_items) and not isinstance(items, dict):
        # pystac_client.ItemSearch: iterating its items() pages through the search.
        items = search_items()
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
        raise ConfigurationError(
            f"download() takes a pystac.Item, a list of them, an ItemCollection or an "
            f"ItemSearch, not {type(items).__name__}; for an item dict use "
            "pystac.Item.from_dict(d)"
        )
    result = list(items)
    for obj in result:
        if not isinstance(obj, pystac.Item):
            raise ConfigurationError(
                f"download() takes pystac.Item objects, got a {type(obj).__name__} in the "
                "list; for item dicts use pystac.Item.from_dict(d)"
            )
    return result


def _basename(href: str) -> str:
    name = unquote(urlsplit(href).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigurationError(f"asset href {href!r} has no usable file name")
    return name


def _plan(
    items: list[pystac.Item], assets: Sequence[str] | None, directory: Path
) -> list[tuple[pystac.Item, list[_Task]]]:
    """Check everything and name every file before any request is sent."""
    plan: list[tuple[pystac.Item, list[_Task]]] = []
    by_dest: dict[Path, str] = {}
    for item in items:
        if not item.id or item.id in (".", "..") or "/" in item.id or "\\" in item.id:
            raise ConfigurationError(f"item id {item.id!r} cannot be used as a folder name")
        keys = list(item.assets) if assets is None else list(assets)
        missing = [k for k in keys if k not in item.assets]
        if missing:
            raise ConfigurationError(
                f"item {item.id} has no asset(s) {', '.join(map(repr, missing))}; "
                f"it has: {', '.join(sorted(item.assets)) or 'none'}"
            )
        tasks: list[_Task] = []
        for key in keys:
            href = item.assets[key].href
            if not urlsplit(href).scheme and not href.startswith(("/", "\\")) and not (
                len(href) > 1 and href[1] == ":"
            ):
                # A relative href is relative to the item's own (API) location.
                href = item.assets[key].get_absolute_href() or href
            if urlsplit(href).scheme.lower() not in ("http", "https"):
                raise ConfigurationError(
                    f"asset {item.id}/{key} has href {href!r}, which is not an http(s) URL "
                    "(already downloaded?); pass items as the API returned them"
                )
            dest = directory / item.id / _basename(href)
            other = by_dest.get(dest)
            if other is not None and other != href:
                raise ConfigurationError(
                    f"two different assets would be saved as {dest}: {other} and {href}; "
                    "download them in separate calls (assets=...) into different directories"
                )
            by_dest[dest] = href
            tasks.append(_Task(item.id, key, href, dest))
        plan.append((item, tasks))
    return plan


def download(
    items: Any,
    assets: str | Sequence[str] | None = None,
    directory: str | os.PathLike[str] = ".",
    *,
    overwrite: bool = False,
    max_workers: int = 8,
    progress: bool = True,
    auth: AxelGlobeAuth | None = None,
) -> list[pystac.Item]:
    """Download assets to ``{directory}/{item_id}/{basename of the asset href}``.

    Each file streams into ``{name}.part`` and is renamed into place only once complete and
    of the announced size, so the final name never holds a partial file. A dropped transfer
    continues with a ``Range`` request from the bytes already written; 5xx, 429 and dropped
    connections are retried with backoff (``Retry-After`` honoured, bounded attempts); an
    expired presigned URL (403 from storage) is resolved again. ``Authorization`` is never
    sent to the storage host. Files download concurrently; one progress bar counts bytes.

    Re-running the same call resumes: a file whose final name exists is skipped without any
    request (pass ``overwrite=True`` to fetch it again; the old file stays until the new one
    is complete), and a ``.part`` left by an interrupted run is continued. Beside each
    ``.part`` a small ``{name}.part.json`` records the version (ETag, size) it holds: a
    ``.part`` is continued only if the server still has that version, else it starts over.
    A failed asset does not stop the others; its ``.part`` is kept for the next run to
    resume. ``KeyboardInterrupt`` (Ctrl-C) stops every transfer at its next chunk and is
    raised again; complete files are in place, the others are left as ``.part`` files.

    Concurrent runs from several processes into the same directory are not supported.

    Args:
        items: A ``pystac.Item``, a list of them, a ``pystac.ItemCollection`` or a
            ``pystac_client.ItemSearch``.
        assets: Asset keys to fetch (a key or a list); ``None`` fetches all. Every key must
            exist in every item.
        directory: Where to save; created if missing.
        overwrite: Download files even when they already exist.
        max_workers: Files downloaded at once (also the connection pool size).
        progress: Show a progress bar (only when stderr is a terminal).
        auth: The authorisation; default: one ``AxelGlobeAuth()`` from the environment.

    Returns:
        Clones of the items whose downloaded assets' hrefs are absolute local paths.

    Raises:
        ConfigurationError: Bad arguments (unknown asset keys, wrong item types); raised
            before anything is sent.
        DownloadError: Some assets failed; ``failures`` maps ``item_id/asset_key`` to the
            reason. The other assets were downloaded.

    Example:
        >>> items = client.search(bbox=[133, 35, 137, 36], max_items=2)  # doctest: +SKIP
        >>> local = download(items, assets=["tci", "msi_udm"], directory="out")  # doctest: +SKIP
    """
    if isinstance(assets, str):
        assets = [assets]
    if assets is not None:
        assets = list(assets)
        bad = [a for a in assets if not isinstance(a, str)]
        if bad or not assets:
            raise ConfigurationError(
                "assets must be None (all), an asset key or a non-empty list of keys, "
                f"got {assets!r}"
            )
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers must be a positive integer, got {max_workers!r}")
    root = Path(directory).expanduser().resolve()
    plan = _plan(_as_items(items), assets, root)

    unique: dict[Path, _Task] = {}
    for _, tasks in plan:
        for task in tasks:
            unique.setdefault(task.dest, task)
    todo = [t for t in unique.values() if overwrite or not t.dest.exists()]
    if todo and auth is None:
        auth = default_auth()

    failures: dict[str, str] = {}
    if todo:
        assert auth is not None
        tty = sys.stderr is not None and sys.stderr.isatty()
        bar = _Progress(progress and tty)
        session = _storage_session(min(max_workers, len(todo)))
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=min(max_workers, len(todo)),
                                  thread_name_prefix="axelglobe-download")
        try:
            futures = {
                pool.submit(_fetch, t, session, auth, overwrite, bar, cancel): t for t in todo
            }
            for future, task in futures.items():
                err = future.exception()
                if err is not None:
                    failures[task.name] = redact(str(err)) or type(err).__name__
        except BaseException:
            # Ctrl-C (or any error here): stop the transfers at their next chunk instead of
            # waiting for every file to finish; their .part files stay for the next run.
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            session.close()
            bar.close()

    if failures:
        # Keep the order the assets were asked for.
        ordered = {t.name: failures[t.name] for _, ts in plan for t in ts if t.name in failures}
        raise DownloadError(ordered)

    result = []
    for item, tasks in plan:
        clone = item.clone()
        for task in tasks:
            clone.assets[task.key].href = str(task.dest)
        result.append(clone)
    return result


class _Cancelled(Exception):
    """The download was interrupted (Ctrl-C in the calling thread): stop this file now."""


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Which version of the remote file a ``.part`` holds the beginning of.

    Kept beside it as ``{name}.part.json`` so that a later run resumes a ``.part`` only into
    the same version: a file that changed on the server meanwhile (another size or ETag)
    would otherwise be completed from two versions into a corrupt file of the right size.
    """

    etag: str | None
    size: int | None

    @classmethod
    def load(cls, path: Path) -> _Origin | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            etag, size = data.get("etag"), data.get("size")
        except (OSError, ValueError, AttributeError):
            return None
        if not (etag is None or isinstance(etag, str)) or not (
            size is None or isinstance(size, int)
        ):
            return None
        return cls(etag, size)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"etag": self.etag, "size": self.size}), encoding="utf-8")
        os.replace(tmp, path)

    def matches(self, etag: str | None, size: int | None) -> bool:
        """Whether an answer with this ETag and total size is the same version."""
        if self.size is not None and size is not None and size != self.size:
            return False
        return not (self.etag and etag and etag != self.etag)


def _discard(part: Path, origin_file: Path) -> None:
    part.unlink(missing_ok=True)
    origin_file.unlink(missing_ok=True)


def _fetch(
    task: _Task,
    session: _Session,
    auth: AxelGlobeAuth,
    overwrite: bool,
    bar: _Progress,
    cancel: threading.Event,
) -> None:
    """Download one file into place (the worker of :func:`download`)."""
    task.dest.parent.mkdir(parents=True, exist_ok=True)
    part = task.dest.with_name(task.dest.name + ".part")
    origin_file = task.dest.with_name(task.dest.name + ".part.json")
    if overwrite:
        # A .part may be from an older version of the file: start clean.
        _discard(part, origin_file)
    retry = DOWNLOAD_RETRY.new()
    forbidden = 0
    origin: _Origin | None = None  # the version the .part holds (None: not known yet)
    counted_total = 0  # bytes added to the progress bar's total for this file
    counted_done = 0  # bytes added to the progress bar's count for this file
    where = _display(task.href)

    while True:
        if cancel.is_set():
            raise _Cancelled("interrupted")
        offset = part.stat().st_size if part.exists() else 0
        if offset and origin is None:
            origin = _Origin.load(origin_file)
            if origin is None:
                # A .part whose version is unknown cannot be trusted: start over.
                _discard(part, origin_file)
                offset = 0
        presigned = resolve(task.href, auth=auth)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        etag = origin.etag if origin is not None else None
        if offset and etag and not etag.startswith("W/"):  # weak ETags are not allowed
            # If-Range: should the file have changed meanwhile, storage sends all of it (200).
            headers["If-Range"] = etag
        written = 0
        try:
            response = session.get(presigned.url, headers=headers, stream=True,
                                   timeout=TIMEOUT, allow_redirects=False,
                                   **session.env_for(presigned.url))
        except requests.RequestException as err:
            retry = _increment(retry, where, cancel=cancel, error=err)
            continue
        with response:
            status = response.status_code
            if status == 403:
                # Expired (or about to) presigned URL: forget it and ask the API again.
                forbidden += 1
                invalidate(task.href)
                if forbidden >= MAX_FORBIDDEN:
                    raise AssetError(
                        f"storage refused the presigned URL {MAX_FORBIDDEN} times (HTTP 403) "
                        "even after resolving it again; check your access to this item"
                    )
                continue
            if status in RETRY_STATUSES:
                response.raw.drain_conn()
                retry = _increment(retry, where, cancel=cancel, error=None, response=response)
                continue
            if status == 416:
                total = _content_range_total(response.headers.get("Content-Range", ""))
                if (total is not None and offset == total and origin is not None
                        and origin.matches(None, total)):
                    _finish(part, task.dest, origin_file)
                    return
                _discard(part, origin_file)  # longer than the file, or another version
                origin = None
                retry = _increment(retry, where, cancel=cancel,
                                   error=urllib3.exceptions.ProtocolError("416"))
                continue
            answer_etag = response.headers.get("ETag")
            if status == 200:
                start, total = 0, _int(response.headers.get("Content-Length"))
                # A fresh .part: record which version it holds before writing a byte.
                origin = _Origin(answer_etag, total)
                origin.save(origin_file)
            elif status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset or origin is None or not origin.matches(answer_etag, total):
                    # Not where we asked, or the file changed on the server since the .part
                    # was begun: the .part cannot be trusted; start over.
                    _discard(part, origin_file)
                    origin = None
                    why = "bad Content-Range" if start != offset else "the file changed"
                    retry = _increment(retry, where, cancel=cancel,
                                       error=urllib3.exceptions.ProtocolError(why))
                    continue
            else:
                hint = " (storage refuses Authorization headers)" if status == 400 else ""
                raise AssetError(f"storage answered HTTP {status} for {where}{hint}")

            forbidden = 0
            if total is not None and counted_total != total:
                bar.add_total(total - counted_total)
                counted_total = total
            if start == 0 and counted_done:
                bar.update(-counted_done)
                counted_done = 0
            elif start and not counted_done:
                bar.update(start)  # bytes kept from an earlier run
                counted_done = start
            try:
                with open(part, "ab" if start else "wb") as out:
                    # read1: write whatever has arrived. A plain read(1 MiB) buffers until
                    # the MiB is complete and loses that buffer when the connection drops;
                    # raw (undecoded) bytes so that Range offsets match the file on disk.
                    while chunk := response.raw.read1(CHUNK_SIZE, decode_content=False):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                        if cancel.is_set():
                            # Ctrl-C: keep what arrived in the .part for the next run.
                            counted_done += written
                            raise _Cancelled("interrupted")
                    out.flush()
                    os.fsync(out.fileno())
            except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                # Network trouble only: urllib3 wraps socket errors. A failing write (disk
                # full, permissions) is an OSError and fails this file at once.
                counted_done += written
                if written:
                    retry = DOWNLOAD_RETRY.new()  # progress was made: a fresh budget
                retry = _increment(retry, where, cancel=cancel, error=err)
                continue
            counted_done += written

        size = part.stat().st_size
        if total is None or size == total:
            _finish(part, task.dest, origin_file)
            return
        if size > total:
            _discard(part, origin_file)
            origin = None
        if written:
            retry = DOWNLOAD_RETRY.new()
        retry = _increment(
            retry, where, cancel=cancel,
            error=urllib3.exceptions.ProtocolError(f"got {size} of {total} bytes"),
        )


def _finish(part: Path, dest: Path, origin_file: Path) -> None:
    # Atomic on POSIX and Windows: the final name appears only with complete content.
    os.replace(part, dest)
    origin_file.unlink(missing_ok=True)


def _increment(
    retry: Retry,
    where: str,
    error: Exception | None,
    response: requests.Response | None = None,
    *,
    cancel: threading.Event | None = None,
) -> Retry:
    """Count one failed attempt on ``retry``, sleep its backoff, return the new policy.

    With ``cancel``, the backoff ends early when it is set (Ctrl-C), raising ``_Cancelled``.

    Raises:
        AssetError: The attempts are used up.
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
    try:
        # url= only ever gets the display form: urllib3 puts it in its error messages.
        new = retry.increment(method="GET", url=where, response=raw, error=error)
    except urllib3.exceptions.MaxRetryError as err:
        reason = err.reason if err.reason is not None else error
        status = f"HTTP {response.status_code}" if response is not None else str(reason)
        raise AssetError(
            f"gave up after {len(retry.history) + 1} attempts: {redact(status)}"
        ) from None
    if cancel is None:
        new.sleep(raw)
        return new
    # What Retry.sleep() would wait (Retry-After if the answer has one, else the backoff),
    # waited on the cancel event instead, so that Ctrl-C does not sit through it.
    wait = new.get_retry_after(raw) if raw is not None and new.respect_retry_after_header \
        else None
    if cancel.wait(wait if wait else new.get_backoff_time()):
        raise _Cancelled("interrupted")
    return new


def _connect_phase(err: Exception) -> bool:
    inner = err.args[0] if err.args else None
    reason = getattr(inner, "reason", inner)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` → (start, total or None for ``*``).

    A range shorter than asked for is fine: the transfer loop asks for the rest.
    """
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        raise AssetError(f"storage sent a 206 with an unreadable Content-Range {value!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_range_total(value: str) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", value)
    return int(match.group(1)) if match else None
