"""The :class:`Emulator`: a context manager that starts the servers and drives them.

Its switches, the start and stop of the servers (in the emulator's own process,
:mod:`.host`, or in threads) and the settings that point a client at them are here; what a
test asks of the running servers (logs, counters, revoking tokens, ...) is
:class:`~.hooks.ServerHooks`, its base class.

Example:
    >>> Emulator().running
    False
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shlex
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

from .hooks import ServerHooks
from .host import SUPPORTED as SERVERS_PROCESS_SUPPORTED
from .host import Host, RemoteServers
from .state import (
    DEFAULT_AUDIENCE,
    DEFAULT_CLIENT_ID,
    FAULT_KINDS,
    RUNTIME_SWITCHES,
    Config,
    Counters,
    Switches,
)
from .switches import check

if TYPE_CHECKING:
    from ..settings import Settings
    from .archive import Archive
    from .servers import ServerSet


class SettingsKwargs(TypedDict):
    """Keyword arguments for ``ag.open()``, ``AxelGlobeAuth()`` and ``Settings.from_env()``."""

    client_id: str
    client_secret: str
    api_url: str
    token_url: str
    audience: str


def _switch(name: str) -> Any:
    """An attribute that reads the switch ``name`` and forwards a change to the servers."""

    def get(self: Emulator) -> Any:
        return getattr(self._switches, name)

    def set(self: Emulator, value: Any) -> None:
        value = check(name, value)
        setattr(self._switches, name, value)
        if self._servers is not None:
            self._servers.call("set_switch", name, value)

    return property(get, set, doc=f"The ``{name}`` switch (may change while serving).")


class Emulator(ServerHooks):
    """The loopback AxelGlobe, as a context manager.

    Args:
        token_lifetime: seconds a token lives (``expires_in``).
        presign_lifetime: seconds a presigned storage URL lives.
        restrict_after: more than this many token requests of one client within
            ``restrict_window`` seconds restricts it for ``restrict_period`` seconds (429 with
            ``Retry-After`` on its token and API requests). ``None``: never.
        restrict_window: see ``restrict_after``.
        restrict_period: see ``restrict_after``.
        api_fault_rate: share of API requests (not token requests) that get a fault.
        storage_fault_rate: share of storage GETs that get a fault.
        fault_kinds: the faults to choose from: ``"503"``, ``"502"``, ``"429"`` (with
            ``Retry-After: 1``) and ``"drop"`` (a full ``Content-Length``, then the connection
            is cut halfway through the body); also ``"404"``, not drawn by default (the
            file is gone from storage: S3's ``NoSuchKey``).
        storage_delay: seconds slept per 64 KiB streamed from storage.
        api_latency: seconds the API and the token endpoint wait before each answer (a
            wide-area round trip; concurrent requests wait side by side, not in turn).
        storage_latency: seconds storage waits before each answer.
        keep_alive: keep a connection open after the answer to a GET or HEAD, for the
            client's next request, as AxelGlobe's load balancers do. ``False``: one answer
            per connection.
        idle_timeout: seconds after which a connection kept open and unused is closed (a
            load balancer's idle timeout; also the longest a send may block). Read when a
            connection opens.
        handshake_round_trips: a new connection waits this many times its server's latency
            (``api_latency`` or ``storage_latency``) before its first answer: what the TCP
            (1) and TLS (1 more) handshakes of a real connection cost over a wide-area link.
        allow_post_search: answer ``POST /search`` instead of 405.
        conforms_to: put ``conformsTo`` in the landing page.
        root_links: add a ``rel=root`` link to collections, items and item pages. AxelGlobe
            sends none (see the guide's examples); STAC API validators want one.
        capture_ids: put ``ag:capture_id`` in the items' properties. ``False`` serves them
            as the guide's example item (without it); filters on it, and the capture groups
            of ``avg()``, still work.
        reject_tokens: the API refuses every token, old and new, with 401 (the token
            endpoint still issues them): a persistent authorization failure.
        fault_seed: seed of the fault generator (the same seed gives the same faults).
        extra_items: serve this many metadata-only grus-1 items besides the archive's (no
            files: their assets redirect to a 404 at storage), for searches over thousands
            of items. They are generated on the first search, the same every time; see
            :mod:`.bulk` for where and when they lie.
        scale: archive scale, ``"small"`` or ``"large"``.
        data_dir: where the archive is built (default: the user cache folder).
        clients: extra ``{client_id: secret}`` pairs the token endpoint accepts.
        client_id: the default client's id (its secret is random per instance).
        audience: the audience the token endpoint expects.
        host: the loopback address of the token and API origins.
        storage_host: the loopback address of the storage origin (another port on
            ``host`` where it cannot bind).
        in_process: run the servers in threads of this process rather than in the
            emulator's own process (:mod:`.host`). Only for a process that reads nothing
            from storage with GDAL (``rasterio.open`` of a storage URL would wait forever
            for servers it starves of the GIL): ``python -m pystac_axelglobe.emulator``
            does, as a debugger stepping through the servers would. Always so on Windows.

    The switches from ``token_lifetime`` to ``reject_tokens`` are also attributes that may be
    changed while the servers run; the others are read when it starts. What the running
    servers saw and the actions on them (``requests``, ``storage_log``, ``token_times``,
    ``reset_counters()``, ``revoke_tokens()``, ...) come from :class:`~.hooks.ServerHooks`.

    Example:
        >>> with Emulator() as emu:  # doctest: +SKIP
        ...     os.environ.update(emu.env())
    """

    token_lifetime: float = _switch("token_lifetime")
    presign_lifetime: float = _switch("presign_lifetime")
    restrict_after: int | None = _switch("restrict_after")
    restrict_window: float = _switch("restrict_window")
    restrict_period: float = _switch("restrict_period")
    api_fault_rate: float = _switch("api_fault_rate")
    storage_fault_rate: float = _switch("storage_fault_rate")
    fault_kinds: tuple[str, ...] = _switch("fault_kinds")
    storage_delay: float = _switch("storage_delay")
    api_latency: float = _switch("api_latency")
    storage_latency: float = _switch("storage_latency")
    keep_alive: bool = _switch("keep_alive")
    idle_timeout: float = _switch("idle_timeout")
    handshake_round_trips: int = _switch("handshake_round_trips")
    allow_post_search: bool = _switch("allow_post_search")
    conforms_to: bool = _switch("conforms_to")
    root_links: bool = _switch("root_links")
    capture_ids: bool = _switch("capture_ids")
    reject_tokens: bool = _switch("reject_tokens")

    def __init__(
        self,
        *,
        token_lifetime: float = 86400,
        presign_lifetime: float = 900,
        restrict_after: int | None = None,
        restrict_window: float = 60,
        restrict_period: float = 60,
        api_fault_rate: float = 0.0,
        storage_fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        storage_delay: float = 0.0,
        api_latency: float = 0.0,
        storage_latency: float = 0.0,
        keep_alive: bool = True,
        idle_timeout: float = 60.0,
        handshake_round_trips: int = 0,
        allow_post_search: bool = False,
        conforms_to: bool = True,
        root_links: bool = False,
        capture_ids: bool = True,
        reject_tokens: bool = False,
        fault_seed: int = 0,
        extra_items: int = 0,
        scale: str = "small",
        data_dir: str | os.PathLike[str] | None = None,
        clients: dict[str, str] | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        audience: str = DEFAULT_AUDIENCE,
        host: str = "127.0.0.1",
        storage_host: str = "127.0.0.2",
        in_process: bool = False,
    ) -> None:
        given = dict(locals())  # the runtime switches are the arguments named as in Switches
        self._servers: ServerSet | RemoteServers | None = None
        self._switches = Switches(**{name: check(name, given[name])
                                     for name in RUNTIME_SWITCHES if name in given})
        self.fault_seed = fault_seed
        self.extra_items = check("extra_items", extra_items)
        self.scale = scale
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24)
        self.audience = audience
        self.clients: dict[str, str] = {client_id: self.client_secret, **(clients or {})}
        self.host = host
        self.storage_host = storage_host
        self.in_process = in_process
        self.counters = Counters()
        self.archive: Archive | None = None
        self.api_url = ""
        self.token_url = ""
        self.storage_url = ""

    def __repr__(self) -> str:
        # Never the secret.
        state = f"api_url={self.api_url!r}" if self.running else "stopped"
        return f"Emulator({state}, client_id={self.client_id!r})"

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._servers is not None

    @property
    def server_pid(self) -> int | None:
        """The id of the process the servers run in (``None`` when stopped).

        Example:
            >>> with Emulator(in_process=True) as emu:  # doctest: +SKIP
            ...     emu.server_pid == os.getpid()
            True
        """
        if self._servers is None:
            return None
        if isinstance(self._servers, RemoteServers):
            return self._servers.host.process.pid
        return os.getpid()

    def start(self) -> Emulator:
        """Build (or load) the archive and start the three servers.

        Example:
            >>> emu = Emulator().start()  # doctest: +SKIP
            >>> emu.stop()  # doctest: +SKIP
        """
        if self._servers is not None:
            return self
        from .archive import build_archive

        remote = SERVERS_PROCESS_SUPPORTED and not self.in_process
        if remote:
            Host.shared()  # started now: its imports run while this process loads the archive
        if self.archive is None:
            data_dir = None if self.data_dir is None else Path(self.data_dir)
            self.archive = build_archive(data_dir, scale=self.scale)
        config = Config(
            archive_root=str(self.archive.root), switches=dataclasses.replace(self._switches),
            clients=dict(self.clients), audience=self.audience, host=self.host,
            storage_host=self.storage_host, fault_seed=self.fault_seed,
            extra_items=self.extra_items,
        )
        servers: ServerSet | RemoteServers
        if remote:
            servers = RemoteServers(config)
            self.counters = servers.counters
        else:
            from .servers import ServerSet  # werkzeug: only where the servers run

            self.counters = Counters()
            servers = ServerSet(config, self.counters)
        urls = servers.start()
        self._servers = servers
        self.token_url, self.api_url = urls["token_url"], urls["api_url"]
        self.storage_url = urls["storage_url"]
        return self

    def stop(self) -> None:
        """Stop the servers (the counters keep their last values)."""
        servers, self._servers = self._servers, None
        if servers is not None:
            servers.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- pointing clients at it --------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The ``AXELGLOBE_*`` variables that point the client at this emulator.

        Example:
            >>> sorted(Emulator().env())[0]
            'AXELGLOBE_API_URL'
        """
        return {
            "AXELGLOBE_CLIENT_ID": self.client_id,
            "AXELGLOBE_CLIENT_SECRET": self.client_secret,
            "AXELGLOBE_API_URL": self.api_url,
            "AXELGLOBE_TOKEN_URL": self.token_url,
            "AXELGLOBE_AUDIENCE": self.audience,
        }

    def settings_kwargs(self) -> SettingsKwargs:
        """The same as :meth:`env`, as keyword arguments for ``ag.open()`` and friends.

        Example:
            >>> sorted(Emulator().settings_kwargs())
            ['api_url', 'audience', 'client_id', 'client_secret', 'token_url']
        """
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_url": self.api_url,
            "token_url": self.token_url,
            "audience": self.audience,
        }

    def settings(self, cache_dir: str | os.PathLike[str] | None = None) -> Settings:
        """``Settings`` for this emulator, for ``AxelGlobeAuth(settings=...)`` and friends.

        Args:
            cache_dir: The token cache folder (default: ``AXELGLOBE_CACHE_DIR``, else the
                user cache folder).

        Example:
            >>> import pystac_axelglobe as ag
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     auth = ag.AxelGlobeAuth(settings=emu.settings())
        """
        if not self.running:
            raise RuntimeError("start the emulator first (with Emulator() as emu: ...)")
        from ..settings import Settings

        return Settings.from_env(**self.settings_kwargs(), cache_dir=cache_dir)

    def serve_forever(self, echo: Callable[[str], None] = print) -> None:
        """Print the ``export`` lines for :meth:`env`, then serve until Ctrl-C or SIGTERM.

        Both signals get an explicit handler: a process started in the background by a
        non-interactive shell inherits SIGINT as *ignored*, and Python then never raises
        KeyboardInterrupt. Call it from the main thread of a started emulator.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.serve_forever()
        """
        stop = threading.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        # Installed before the variables are printed: whoever reads them may signal at once.
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
        try:
            for name, value in self.env().items():
                echo(f"export {name}={shlex.quote(value)}")
            echo("# Ctrl-C stops it.")
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
