"""What the emulator's three apps share: switches, counters, signing, faults and the clock.

Also :class:`Config`, all a :class:`~.servers.ServerSet` needs to start (it crosses to the
servers' process, so it lives here, away from the servers' imports).

One :class:`State` per running emulator. The token app (:mod:`.token`), the API
(:mod:`.api`) and the storage (:mod:`.storage`) each get it; nothing else is shared between
them, except the token grants the API checks (:class:`.token.Grants`).

Example:
    >>> state = State(Switches())
    >>> state.counters.add("faults")
    1
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

#: The client id the token endpoint accepts by default (its secret is random).
DEFAULT_CLIENT_ID = "emulator-client"
#: The audience the token endpoint expects by default.
DEFAULT_AUDIENCE = "https://api.axelglobe.com"
#: The path of the STAC API on the API origin.
API_PATH = "/stac/v1/catalogs/axelglobe"
#: The bucket presigned storage URLs point into.
BUCKET = "axelglobe-archive"
#: The faults drawn by default (``fault_kinds``).
FAULT_KINDS = ("503", "502", "429", "drop")
#: Every fault kind: ``"404"`` (the file is gone) is drawn only when asked for.
ALL_FAULT_KINDS = (*FAULT_KINDS, "404")
#: The request counters, in :meth:`Counters.as_dict` order.
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
    "storage_in_flight",
    "storage_in_flight_most",
    "token_connections",
    "api_connections",
    "storage_connections",
)
#: Bytes of a :class:`Counters` buffer.
COUNTERS_SIZE = 8 * len(COUNTER_NAMES)
_INDEX = {name: i for i, name in enumerate(COUNTER_NAMES)}
# Signed query parameters of a presigned URL (X-Amz-SignedHeaders is not checked).
_SIGNED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
           "X-Amz-Signature")


class Counters:
    """Live request counters (plain int attributes), in a buffer another process may map.

    The process that serves is the only writer (under a lock); a process that maps the same
    buffer reads them live.

    Example:
        >>> c = Counters()
        >>> c.add("faults", 2)
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
    storage_in_flight: int  # storage requests being answered now
    storage_in_flight_most: int  # the most at once since the last reset
    token_connections: int  # TCP connections accepted, per server (kept alive: fewer than
    api_connections: int  # requests; see the keep_alive switch)
    storage_connections: int

    def __init__(self, buffer: Any = None) -> None:
        # Any writable buffer of COUNTERS_SIZE bytes: a bytearray, or an mmap shared with
        # the parent process (see .host).
        raw = bytearray(COUNTERS_SIZE) if buffer is None else buffer
        self._values = memoryview(raw).cast("B").cast("q")
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> int:
        index = _INDEX.get(name)
        if index is None:
            raise AttributeError(name)
        return int(self._values[index])

    def add(self, name: str, n: int = 1) -> int:
        """Add ``n`` to counter ``name`` atomically; its new value."""
        index = _INDEX[name]
        with self._lock:
            self._values[index] += n
            return int(self._values[index])

    def raise_to(self, name: str, value: int) -> None:
        """Set counter ``name`` to ``value`` if that is more (atomically): a high-water mark."""
        index = _INDEX[name]
        with self._lock:
            self._values[index] = max(self._values[index], value)

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            for i in range(len(COUNTER_NAMES)):
                self._values[i] = 0

    def as_dict(self) -> dict[str, int]:
        """A snapshot of every counter (exact once the requests it counts have finished)."""
        with self._lock:
            return {name: int(self._values[i]) for i, name in enumerate(COUNTER_NAMES)}

    def release(self) -> None:
        """Let go of the buffer (an mmap cannot be closed while a view of it exists)."""
        self._values.release()

    def __repr__(self) -> str:
        return f"Counters({self.as_dict()})"


@dataclasses.dataclass
class Switches:
    """The switches the apps read on every request; any may change while they serve.

    See :class:`~pystac_axelglobe.emulator.Emulator` for what each does.
    """

    token_lifetime: float = 86400
    presign_lifetime: float = 900
    restrict_after: int | None = None
    restrict_window: float = 60
    restrict_period: float = 60
    api_fault_rate: float = 0.0
    storage_fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    storage_delay: float = 0.0
    api_latency: float = 0.0
    storage_latency: float = 0.0
    keep_alive: bool = True
    idle_timeout: float = 60.0
    handshake_round_trips: int = 0
    allow_post_search: bool = False
    conforms_to: bool = True
    root_links: bool = False
    capture_ids: bool = True
    reject_tokens: bool = False

    def __post_init__(self) -> None:
        self.fault_kinds = check_fault_kinds(self.fault_kinds)


#: Names of the switches that may be set while the servers run.
RUNTIME_SWITCHES = frozenset(f.name for f in dataclasses.fields(Switches))


def check_fault_kinds(kinds: Any) -> tuple[str, ...]:
    """``kinds`` as a tuple, if it is a non-empty subset of :data:`ALL_FAULT_KINDS`.

    Example:
        >>> check_fault_kinds(["503"])
        ('503',)
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    checked = tuple(kinds)
    if not checked or set(checked) - set(ALL_FAULT_KINDS):
        raise ValueError(
            f"fault_kinds must be a non-empty subset of {ALL_FAULT_KINDS}, not {checked}"
        )
    return checked


class Signer:
    """Presigns storage URLs and checks them, with a key only this emulator knows.

    Example:
        >>> from urllib.parse import parse_qsl, urlsplit
        >>> signer = Signer(time.time)
        >>> url = signer.presign("http://127.0.0.2:9", "item", "a.tif", 60)
        >>> signer.check("/axelglobe-archive/item/a.tif", dict(parse_qsl(urlsplit(url).query)))
        >>> signer.rotate()
        >>> signer.check(  # doctest: +ELLIPSIS
        ...     "/axelglobe-archive/item/a.tif", dict(parse_qsl(urlsplit(url).query)))
        'The request signature we calculated does not match the signature you provided. ...'
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._access_key = "AKIAEMULATOR" + secrets.token_hex(4).upper()

    def rotate(self) -> None:
        """A new key: every URL presigned so far fails its signature check from now on."""
        self._key = secrets.token_bytes(32)

    def presign(self, storage_url: str, item_id: str, filename: str, lifetime: float) -> str:
        """A presigned URL of ``item_id/filename``, valid ``lifetime`` seconds."""
        path = f"/{BUCKET}/{quote(item_id)}/{quote(filename)}"
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        credential = f"{self._access_key}/{now:%Y%m%d}/us-east-1/s3/aws4_request"
        expires = str(max(1, int(lifetime)))
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": credential,
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
        }
        query["X-Amz-Signature"] = self._sign(path, credential, amz_date, expires)
        return f"{storage_url}{path}?{urlencode(query)}"

    def check(self, path: str, args: Mapping[str, str]) -> str | None:
        """Why storage refuses a GET of ``path`` with query ``args``; ``None`` if it may pass.

        The reasons are S3's messages: ``"Access Denied"`` (unsigned), ``"The request
        signature ..."`` (wrong or rotated key), ``"Request has expired"``.
        """
        if any(name not in args for name in _SIGNED):
            return "Access Denied"
        good = self._sign(quote(path), args["X-Amz-Credential"], args["X-Amz-Date"],
                          args["X-Amz-Expires"])
        if args["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or not hmac.compare_digest(
            good, args["X-Amz-Signature"]
        ):
            return ("The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.")
        try:
            signed = datetime.strptime(args["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            expires = int(args["X-Amz-Expires"])
        except ValueError:
            return "Access Denied"
        if self._clock() > signed.replace(tzinfo=timezone.utc).timestamp() + expires:
            return "Request has expired"
        return None

    def _sign(self, path: str, credential: str, amz_date: str, expires: str) -> str:
        message = "\n".join(("GET", path, credential, amz_date, expires)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


class State:
    """Switches, counters, signing, faults, request logs and the clock of one emulator.

    Args:
        switches: The switches (this object is read on every request: change it in place).
        counters: Where to count (default: a private buffer).
        fault_seed: Seed of the fault generator.
        clock: Seconds since the epoch (``time.time``; a test may pass a fake one).
    """

    def __init__(
        self,
        switches: Switches,
        counters: Counters | None = None,
        *,
        fault_seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.switches = switches
        self.counters = counters if counters is not None else Counters()
        self.clock = clock
        self.signer = Signer(clock)
        self.api_url = ""
        self.storage_url = ""
        self._lock = threading.Lock()
        self._rng = random.Random(fault_seed)
        self._api_log: list[tuple[str, str, str]] = []
        self._storage_log: list[tuple[str, str, str]] = []
        self._storage_headers: list[dict[str, str]] = []
        self._token_times: list[float] = []

    def set_switch(self, name: str, value: Any) -> None:
        """Change one switch for the requests that follow."""
        if name not in RUNTIME_SWITCHES:
            raise AttributeError(f"{name} is not a switch that can change while serving")
        if name == "fault_kinds":
            value = check_fault_kinds(value)
        setattr(self.switches, name, value)

    def presign(self, item_id: str, filename: str) -> str:
        """A presigned storage URL for one asset file, valid ``presign_lifetime`` seconds."""
        return self.signer.presign(self.storage_url, item_id, filename,
                                   self.switches.presign_lifetime)

    def sleep(self, seconds: float) -> None:
        """Pause the calling request's thread (the servers answer others meanwhile)."""
        if seconds > 0:
            time.sleep(seconds)

    def pick_fault(self, rate: float) -> str | None:
        """A fault kind drawn with probability ``rate`` (counted), or ``None``."""
        if rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            kind = self._rng.choice(self.switches.fault_kinds)
        self.counters.add("faults")
        return kind

    def log_api(self, method: str, path: str, query: str) -> None:
        """Remember one API request (for :attr:`Emulator.requests`)."""
        with self._lock:
            self._api_log.append((method, path, query))

    def log_storage(self, method: str, path: str, byte_range: str,
                    headers: dict[str, str] | None = None) -> None:
        """Remember one storage request (for :attr:`Emulator.storage_log`, ``storage_headers``)."""
        with self._lock:
            self._storage_log.append((method, path, byte_range))
            self._storage_headers.append(dict(headers or {}))

    def api_log(self) -> list[tuple[str, str, str]]:
        """``(method, path, query)`` of every API request since the last reset."""
        with self._lock:
            return list(self._api_log)

    def storage_log(self) -> list[tuple[str, str, str]]:
        """``(method, path, Range header or "")`` of every storage request since the reset."""
        with self._lock:
            return list(self._storage_log)

    def log_token(self) -> None:
        """Remember when a token was issued (for :attr:`Emulator.token_times`)."""
        with self._lock:
            self._token_times.append(time.time())

    def token_times(self) -> list[float]:
        """The epoch times of the tokens issued since the reset."""
        with self._lock:
            return list(self._token_times)

    def storage_headers(self) -> list[dict[str, str]]:
        """The headers of every storage request since the reset (lower-case names)."""
        with self._lock:
            return [dict(h) for h in self._storage_headers]

    def reset(self) -> None:
        """Zero the counters and forget the logged requests."""
        self.counters.reset()
        with self._lock:
            self._api_log.clear()
            self._storage_log.clear()
            self._storage_headers.clear()
            self._token_times.clear()


@dataclasses.dataclass
class Config:
    """Everything a :class:`ServerSet` needs to start (picklable: it crosses processes).

    Attributes:
        archive_root: The folder of a built archive (:func:`.archive.build_archive`).
        switches: The switches the apps start with.
        clients: ``{client_id: secret}`` the token endpoint accepts.
        audience: The audience it expects.
        host: Loopback address of the token and API origins.
        storage_host: Loopback address of the storage origin (falls back to ``host``).
        fault_seed: Seed of the fault generator.
        extra_items: Metadata-only items served besides the archive's (:mod:`.bulk`).
    """

    archive_root: str
    switches: Switches = dataclasses.field(default_factory=Switches)
    clients: dict[str, str] = dataclasses.field(default_factory=dict)
    audience: str = DEFAULT_AUDIENCE
    host: str = "127.0.0.1"
    storage_host: str = "127.0.0.2"
    fault_seed: int = 0
    extra_items: int = 0
