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

This module is the dask side (the active client, :func:`share_token`, the worker plugin and
what runs where); the channel itself, both of its ends and the records they exchange, is
:mod:`._cluster_channel`.

Example:
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> ds = ag.load(items, bands=["red"], chunks={})  # doctest: +SKIP
    >>> share_token(client)  # what load() just did  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING

from ._cluster_channel import Broker, Key, Source, channel_names, distributed_module
from .errors import ConfigurationError
from .tokens import DEFAULT_DEADLINE, credential_key, set_token_source

if TYPE_CHECKING:
    from distributed import Client, Worker
    from distributed.diagnostics.plugin import WorkerPlugin

    from .auth import AxelGlobeAuth
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

# (client id, credential) -> the loop serving that client's workers; and the credentials
# served from this process (the plugin installs no source where the secret already is).
_BROKERS: dict[tuple[str, Key], Broker] = {}
_HOSTED: dict[Key, int] = {}
_LOCK = threading.Lock()
_HOSTED_LOCK = threading.Lock()


def _host(key: Key, change: int) -> None:
    """Count credential ``key`` as served from this process (+1), or no longer (-1)."""
    with _HOSTED_LOCK:
        count = _HOSTED.get(key, 0) + change
        if count > 0:
            _HOSTED[key] = count
        else:
            _HOSTED.pop(key, None)


def _retire(broker: Broker) -> None:
    """A broker's loop ended: this process no longer serves that client's workers."""
    _host(broker.key, -1)
    with _LOCK:
        if _BROKERS.get((broker.client.id, broker.key)) is broker:
            del _BROKERS[(broker.client.id, broker.key)]


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
    distributed = distributed_module()
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
        broker = Broker(client, auth.provider, channel_names(key), on_stop=_retire)
        # Hosted before the plugin runs: a worker in this very process (processes=False)
        # uses this process's provider, and must not ask itself.
        _host(key, +1)
        try:
            broker.publish([])  # the current token, before any worker can ask for it
            client.register_plugin(TokenPlugin(key, timeout), name=broker.names.plugin)
        except BaseException:
            _host(key, -1)
            broker.withdraw()
            raise
        broker.start()
        _BROKERS[(client.id, key)] = broker
    log.info("sharing the token of client %r with the workers of %s", key[1], client.id)
    return True


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
        set_token_source(key, Source(channel_names(key), self.timeout, worker))

    def teardown(self, worker: Worker) -> None:
        """Remove the token source."""
        set_token_source((self.key[0], self.key[1], self.key[2]), None)
