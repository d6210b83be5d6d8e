"""The token channel of a dask cluster: a Variable and a Queue on the scheduler, two ends.

For one credential (:class:`Names`, digests of it, as they show on the dashboard):

* the ``token`` :class:`distributed.Variable` holds a record, published by the client end
  (:class:`Broker`, in the process with the secret): ``{"access_token", "expires_at",
  "issued_at", "serial"}``, or, when no token could be had for the workers, ``{"error"
  (redacted), "kind", "until", "serial"}``. A new ``serial`` is what waiting workers watch
  for;
* the ``wanted`` :class:`distributed.Queue` takes the workers' requests for a renewal,
  ``{"failed": <fingerprint of the token their API rejected, or None>}``: a digest, never
  the token itself. The broker answers everything asked meanwhile with one look at its
  :class:`~pystac_axelglobe.tokens.TokenProvider`;
* the worker end (:class:`Source`, installed on each worker by
  :class:`pystac_axelglobe.cluster.TokenPlugin`) reads the Variable, and puts a request on
  the Queue when the token there will not do.

Only the bearer token and its times cross the wire, never the secret.

Example:
    >>> channel_names(("https://t.example/token", "me", "aud")).wanted[-7:]
    '-wanted'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._redact import redact
from .errors import (
    APIRequestError,
    AuthenticationError,
    AxelGlobeError,
    RestrictedError,
)
from .tokens import Token, TokenProvider, credential_key

if TYPE_CHECKING:
    from distributed import Client, Worker

    from .settings import Settings

# The name users configure for everything about sharing the token with a cluster.
log = logging.getLogger("pystac_axelglobe.cluster")

#: The client end looks for requests this often while workers ask, then backs off to
#: _IDLE_POLL (how long a worker may wait for the first answer after a quiet spell).
_BUSY_POLL = 0.05
_IDLE_POLL = 1.0
#: A worker polls the token Variable this often at first, then backs off up to _MAX_DELAY.
_FIRST_DELAY = 0.02
_MAX_DELAY = 0.5
#: Seconds a worker waits for the token Variable to exist before asking the client anyway.
_FIRST_LOOK = 5.0
_ERRORS: dict[str, type[AxelGlobeError]] = {
    "RestrictedError": RestrictedError, "AuthenticationError": AuthenticationError}

#: A credential: token URL, client id, audience (:func:`~pystac_axelglobe.tokens.credential_key`).
Key = tuple[str, str, str]


class Names(NamedTuple):
    """The scheduler-side names of one credential's token: Variable, Queue, worker plugin."""

    token: str
    wanted: str
    plugin: str


def channel_names(key: Key) -> Names:
    """The names of the channel of credential ``key``.

    Example:
        >>> channel_names(("https://t.example/token", "me", "aud")).token[:16]
        'axelglobe-token-'
    """
    # A digest: names show up on the dashboard and in scheduler logs.
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]
    base = f"axelglobe-token-{digest}"
    return Names(base, f"{base}-wanted", base)


def distributed_module() -> Any:
    """The ``distributed`` package, typed ``Any``.

    distributed's functions are untyped; one Any-typed handle keeps mypy strict elsewhere.
    """
    import distributed

    return distributed


def _fingerprint(access_token: str) -> str:
    # Requests name a rejected token by its digest, not the token itself.
    return hashlib.sha256(access_token.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- client end


class Broker:
    """The client-side loop: answers the workers' requests from this process's provider.

    ``on_stop(broker)`` is called once its loop ends (the client closed, or its comms
    failed).
    """

    def __init__(self, client: Client, provider: TokenProvider, names: Names,
                 on_stop: Callable[[Broker], None]) -> None:
        self.client = client
        self.provider = provider
        self.names = names
        self.key = credential_key(provider.settings)
        self.variable = distributed_module().Variable(names.token, client=client)
        self._on_stop = on_stop
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"axelglobe-token-broker-{names.token[-16:]}")

    @property
    def alive(self) -> bool:
        """Whether the loop runs and its client is still connected."""
        return self._thread.is_alive() and self.client.status == "running"

    def start(self) -> None:
        """Start answering requests (in a daemon thread)."""
        self._thread.start()

    def withdraw(self) -> None:
        """Take the token off the scheduler (sharing could not be set up)."""
        try:
            self.variable.delete()
        except Exception as err:  # the client may be what failed
            log.debug("could not delete %s: %s", self.names.token, err)

    def publish(self, requests: list[Any]) -> None:
        """Put the token the workers should use into the Variable (renewed if asked)."""
        failed = {r.get("failed") for r in requests if isinstance(r, dict)}
        record: dict[str, Any]
        try:
            token = self.provider.token()
            if _fingerprint(token.access_token) in failed:
                # the workers' API rejected this very token: one refresh (budgeted)
                token = self.provider.refresh(token.access_token)
            record = {"access_token": token.access_token, "expires_at": token.expires_at,
                      "issued_at": token.issued_at}
        except AxelGlobeError as err:
            if not requests:
                raise  # share_token(): the caller sees it
            until = getattr(err, "until", None)
            record = {"error": redact(str(err)), "kind": type(err).__name__,
                      "until": until.timestamp() if until is not None else None}
        record["serial"] = uuid.uuid4().hex  # what waiting workers watch for
        self.variable.set(record)

    def _run(self) -> None:
        # Polled without blocking: a get() waiting on the scheduler when the client closes
        # makes the scheduler log an error, and one that times out logs one every time.
        delay = _IDLE_POLL
        try:
            queue = distributed_module().Queue(self.names.wanted, client=self.client)
            while self.client.status == "running":
                wanted = queue.get(batch=True)
                if wanted:
                    # Everything asked meanwhile is answered by one look at the provider.
                    self.publish(list(wanted))
                    delay = _BUSY_POLL
                else:
                    delay = min(delay * 2, _IDLE_POLL)
                time.sleep(delay)
        except Exception as err:  # the client closed under us: its comms raise anything
            if self.client.status == "running":
                log.warning("stopped renewing tokens for the dask workers: %s",
                            redact(str(err)))
        finally:
            self._on_stop(self)


# --------------------------------------------------------------------------- worker end


class Source:
    """A worker's token source: the Variable, and renewals asked of the client."""

    def __init__(self, names: Names, timeout: float, worker: Worker) -> None:
        self.names = names
        self.timeout = timeout
        self._worker = weakref.ref(worker)

    def _client(self) -> Client | None:
        try:
            client: Client = distributed_module().get_client()  # in a task: the worker's own
            return client
        except ValueError:
            worker = self._worker()
            # another thread of the worker process: the client get_client() would return
            return worker._get_client() if worker is not None else None

    def __call__(self, settings: Settings, failed: str | None,
                 fresh: Callable[[Token], bool]) -> Token | None:
        """A token from the dask client; ``None`` to fetch one here (secret present)."""
        failed_fp = _fingerprint(failed) if failed else None
        try:
            client = self._client()
            if client is None:
                return None
            return self._obtain(client, failed_fp, fresh)
        except AxelGlobeError:
            raise
        except Exception as err:  # scheduler or client gone: distributed raises many types
            problem = (f"no token from the dask client ({type(err).__name__}: "
                       f"{redact(str(err)) or 'no answer'})")
        if settings.client_secret:
            log.warning("%s; fetching one with this worker's AXELGLOBE_CLIENT_SECRET", problem)
            return None
        raise APIRequestError(
            f"{problem}. Keep the client that called ag.load() connected while the workers "
            "compute, or give the workers AXELGLOBE_CLIENT_SECRET",
            url=settings.token_url)

    def _obtain(self, client: Client, failed_fp: str | None,
                fresh: Callable[[Token], bool]) -> Token:
        distributed = distributed_module()
        deadline = time.monotonic() + self.timeout
        variable = distributed.Variable(self.names.token, client=client)
        try:
            record = variable.get(timeout=min(self.timeout, _FIRST_LOOK))
        except TimeoutError:
            record = None  # none published (a restarted scheduler): the request makes one
        token = _token_of(record)
        if token is not None and _fingerprint(token.access_token) != failed_fp and fresh(token):
            return token  # another worker had it renewed already
        serial = _serial(record)
        wanted = distributed.Queue(self.names.wanted, client=client)
        wanted.put({"failed": failed_fp}, timeout=self.timeout)
        delay = _FIRST_DELAY
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)
            record = variable.get(timeout=max(remaining, 0.1))
            if _serial(record) == serial:
                continue  # not answered yet
            token = _token_of(record)
            if token is None:
                raise _error_of(record)
            if _fingerprint(token.access_token) != failed_fp:
                return token
            serial = _serial(record)  # answered before our request: wait for ours
        raise TimeoutError(f"the client did not answer in {self.timeout:g} s")


def _serial(record: Any) -> Any:
    return record.get("serial") if isinstance(record, dict) else None


def _token_of(record: Any) -> Token | None:
    if not isinstance(record, dict) or not isinstance(record.get("access_token"), str):
        return None
    return Token(record["access_token"], expires_at=float(record.get("expires_at") or 0),
                 issued_at=float(record.get("issued_at") or 0))


def _error_of(record: Any) -> AxelGlobeError:
    record = record if isinstance(record, dict) else {}
    message = (f"the dask client could not renew the token: "
               f"{record.get('error') or 'no token and no reason given'}")
    kind = _ERRORS.get(str(record.get("kind")))
    if kind is RestrictedError and isinstance(record.get("until"), (int, float)):
        until = dt.datetime.fromtimestamp(record["until"], dt.timezone.utc)
        return RestrictedError(message, until=until)
    if kind is AuthenticationError:
        return AuthenticationError(message)
    return APIRequestError(message)


__all__ = ["Broker", "Key", "Names", "Source", "channel_names", "distributed_module"]
