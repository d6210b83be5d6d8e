"""One token for a whole dask cluster: the workers get the client's token, never its secret.

A dask worker on another machine has neither the client secret nor the token cache of the
process that called :func:`pystac_axelglobe.load`. :func:`share_token` (which ``load()``
calls when a ``distributed`` client is active) gives every worker of the cluster, present
and future, a way to get the token from that process instead:

* the client side (the process holding the secret) publishes its current token in a
  ``distributed.Variable`` on the scheduler, and answers requests for a renewed one that
  workers put on a ``distributed.Queue``. Its :class:`~pystac_axelglobe.tokens.TokenProvider`
  serves them all: it fetches at most one token per lifetime (single flight), and after a
  401 only if the rejected token is still its current one;
* a worker plugin, registered once per client and credential, installs on each worker a
  token source (:func:`pystac_axelglobe.tokens.set_token_source`): where a worker would send
  the secret to the token endpoint (first token, one about to expire, a 401), it reads the
  Variable, and asks for a renewal when that token will not do. The scheduler hands the
  plugin to workers that join later and to restarted worker processes.

What crosses the wire: the bearer token and its expiry (client → scheduler → workers), over
the cluster's own comms (use TLS comms, ``tls://``, to encrypt them). Never the secret.

Example:
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> ds = ag.load(items, bands=["red"], chunks={})  # doctest: +SKIP
    >>> share_token(client)  # what load() just did  # doctest: +SKIP
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sys
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
    ConfigurationError,
    RestrictedError,
)
from .tokens import DEFAULT_DEADLINE, Token, TokenProvider, credential_key, set_token_source

if TYPE_CHECKING:
    from distributed import Client, Worker
    from distributed.diagnostics.plugin import WorkerPlugin

    from .auth import AxelGlobeAuth
    from .settings import Settings
else:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:  # distributed is optional: only share_token() needs it
        WorkerPlugin = object

__all__ = ["DEFAULT_TIMEOUT", "TokenPlugin", "active_client", "share_token"]

log = logging.getLogger(__name__)

#: Seconds a worker waits for the client to answer its request for a renewed token: the
#: client's own token request may take up to its deadline.
DEFAULT_TIMEOUT = DEFAULT_DEADLINE + 30.0
#: The client side looks for requests this often while workers ask, then backs off to
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

Key = tuple[str, str, str]


class _Names(NamedTuple):
    """The scheduler-side names of one credential's token: Variable, Queue, worker plugin."""

    token: str
    wanted: str
    plugin: str


def _names(key: Key) -> _Names:
    # A digest: names show up on the dashboard and in scheduler logs.
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]
    base = f"axelglobe-token-{digest}"
    return _Names(base, f"{base}-wanted", base)


def _distributed() -> Any:
    # distributed's functions are untyped; one Any-typed handle keeps mypy strict elsewhere.
    import distributed

    return distributed


def _fingerprint(access_token: str) -> str:
    # Requests name a rejected token by its digest, not the token itself.
    return hashlib.sha256(access_token.encode()).hexdigest()[:32]


# (client id, credential) -> the loop serving that client's workers; and the credentials
# served from this process (the plugin installs no source where the secret already is).
_BROKERS: dict[tuple[str, Key], _Broker] = {}
_HOSTED: dict[Key, int] = {}
_LOCK = threading.Lock()
_HOSTED_LOCK = threading.Lock()


# --------------------------------------------------------------------------- client side


def active_client() -> Client | None:
    """The ``distributed`` client this process computes with, if any; never creates one.

    ``None`` when distributed was never imported, no client is active, the active one is
    asynchronous or closed, or this runs inside a dask task (a worker's client).

    Example:
        >>> active_client() is None  # no Client() created in this process
        True
    """
    if "distributed" not in sys.modules:
        return None  # no client can exist, and importing distributed is slow
    distributed = _distributed()
    try:
        distributed.get_worker()
    except ValueError:
        pass
    else:
        return None  # load() inside a task: the worker's client, on a machine without secret
    try:
        client = distributed.default_client()
    except ValueError:
        return None
    if getattr(client, "asynchronous", False) or client.status != "running":
        return None
    found: Client = client
    return found


def share_token(client: Client | None = None, auth: AxelGlobeAuth | None = None, *,
                timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Let the workers of ``client``'s cluster use ``auth``'s token, renewed through here.

    :func:`pystac_axelglobe.load` calls it when a client is active; call it yourself when
    you create the client after ``load()``. Once per client and credential (later calls
    return at once). The whole cluster then makes one token request per token lifetime:
    this process's, and only while workers need a token.

    Args:
        client: a synchronous ``distributed.Client``. Default: the active one.
        auth: whose token to share. Default: :func:`~pystac_axelglobe.auth.default_auth`.
        timeout: seconds a worker waits for a renewed token before failing (or, if it has
            ``AXELGLOBE_CLIENT_SECRET``, fetching its own).

    Returns:
        ``True`` if the token is now shared (or already was).

    Raises:
        ConfigurationError: distributed is not installed, no client is active, or the
            client is asynchronous.

    Example:
        >>> share_token(Client("tcp://scheduler:8786"))  # doctest: +SKIP
        True
    """
    from .auth import default_auth

    try:
        import distributed  # noqa: F401 - only to say what is missing
    except ImportError:
        raise ConfigurationError("share_token() needs distributed: pip install "
                                 "'pystac-axelglobe[distributed]'") from None
    if client is None:
        client = active_client()
        if client is None:
            raise ConfigurationError("no distributed client is active: create one "
                                     "(distributed.Client(...)) first, or pass client=")
    if getattr(client, "asynchronous", False):
        raise ConfigurationError("share_token() needs a synchronous distributed.Client; "
                                 "with an asynchronous one, call it from a thread with a "
                                 "synchronous Client to the same scheduler")
    if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
        raise ConfigurationError(f"timeout must be positive seconds, not {timeout!r}")
    auth = auth if auth is not None else default_auth()
    key = credential_key(auth.settings)
    with _LOCK:
        broker = _BROKERS.get((client.id, key))
        if broker is not None and broker.alive:
            return True
        broker = _Broker(client, auth.provider, _names(key))
        # Hosted before the plugin runs: a worker in this very process (processes=False)
        # uses this process's provider, and must not ask itself.
        broker.host(+1)
        try:
            broker.publish([])  # the current token, before any worker can ask for it
            client.register_plugin(TokenPlugin(key, timeout), name=broker.names.plugin)
        except BaseException:
            broker.host(-1)
            broker.withdraw()
            raise
        broker.start()
        _BROKERS[(client.id, key)] = broker
    log.info("sharing the token of client %r with the workers of %s", key[1], client.id)
    return True


class _Broker:
    """The client-side loop: answers the workers' requests from this process's provider."""

    def __init__(self, client: Client, provider: TokenProvider, names: _Names) -> None:
        self.client = client
        self.provider = provider
        self.names = names
        self.key = credential_key(provider.settings)
        self.variable = _distributed().Variable(names.token, client=client)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"axelglobe-token-broker-{names.token[-16:]}")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.client.status == "running"

    def host(self, change: int) -> None:
        """Count this credential as served from this process (+1), or no longer (-1)."""
        with _HOSTED_LOCK:
            count = _HOSTED.get(self.key, 0) + change
            if count > 0:
                _HOSTED[self.key] = count
            else:
                _HOSTED.pop(self.key, None)

    def start(self) -> None:
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
            queue = _distributed().Queue(self.names.wanted, client=self.client)
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
            self.host(-1)
            with _LOCK:
                if _BROKERS.get((self.client.id, self.key)) is self:
                    del _BROKERS[(self.client.id, self.key)]


# --------------------------------------------------------------------------- worker side


class TokenPlugin(WorkerPlugin):
    """Worker plugin: this credential's tokens come from the dask client, not the endpoint.

    Carries the credential (token URL, client id, audience) and a timeout, no token and no
    secret. Registered by :func:`share_token`; idempotent per credential.

    Example:
        >>> TokenPlugin(("https://t.example/token", "me", "aud"), 60).idempotent
        True
    """

    idempotent = True

    def __init__(self, key: Key, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.key = tuple(key)
        self.timeout = float(timeout)

    def setup(self, worker: Worker) -> None:
        """Install the token source, unless this worker runs in the sharing process."""
        key: Key = (self.key[0], self.key[1], self.key[2])
        with _HOSTED_LOCK:
            if key in _HOSTED:
                return  # processes=False: the client's provider is right here
        set_token_source(key, _Source(_names(key), self.timeout, worker))

    def teardown(self, worker: Worker) -> None:
        """Remove the token source."""
        set_token_source((self.key[0], self.key[1], self.key[2]), None)


class _Source:
    """A worker's token source: the Variable, and renewals asked of the client."""

    def __init__(self, names: _Names, timeout: float, worker: Worker) -> None:
        self.names = names
        self.timeout = timeout
        self._worker = weakref.ref(worker)

    def _client(self) -> Client | None:
        try:
            client: Client = _distributed().get_client()  # in a task: the worker's own
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
        distributed = _distributed()
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
