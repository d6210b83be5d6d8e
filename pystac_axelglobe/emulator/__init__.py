"""A faithful AxelGlobe on loopback: token endpoint, STAC API and S3-like storage.

Three threaded werkzeug servers on free loopback ports serve a synthetic grus-1 archive the
way AxelGlobe does, quirks included (``?page=N``-only next links, no ``numberMatched``,
redirects to presigned storage URLs that refuse ``Authorization`` and ``HEAD``). Switches
shorten token and presign lifetimes, restrict clients that ask for tokens too often and
inject faults; counters say what reached the servers.

Example:
    >>> import requests
    >>> from pystac_axelglobe.emulator import Emulator
    >>> with Emulator(token_lifetime=60) as emu:  # doctest: +SKIP
    ...     token = requests.post(emu.token_url, json={
    ...         "grant_type": "client_credentials", "client_id": emu.client_id,
    ...         "client_secret": emu.client_secret, "audience": emu.audience,
    ...     }).json()["access_token"]
    ...     r = requests.get(f"{emu.api_url}/search", params={"limit": 5},
    ...                      headers={"Authorization": f"Bearer {token}"})
    ...     len(r.json()["features"]), emu.counters.search_requests
    (5, 1)

Or from a shell: ``python -m pystac_axelglobe.emulator`` prints the ``export AXELGLOBE_...``
lines to use it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .server import Counters, EmulatorState

if TYPE_CHECKING:
    import pystac
    from _typeshed.wsgi import WSGIApplication

__all__ = ["Counters", "Emulator", "SettingsKwargs", "unless_configured"]


class _QuietHandler(WSGIRequestHandler):
    """No per-request log lines: tests and the CLI would drown in them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadedWSGIServer):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _serve(host: str, app: WSGIApplication) -> tuple[_QuietServer, threading.Thread]:
    server = _QuietServer(host, 0, app, handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
        name=f"axelglobe-emulator-{host}:{server.server_port}",
    )
    thread.start()
    return server, thread


def _shutdown(servers: Sequence[tuple[_QuietServer, threading.Thread]]) -> None:
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class SettingsKwargs(TypedDict):
    """Keyword arguments for ``ag.open()``, ``AxelGlobeAuth()`` and ``Settings.from_env()``."""

    client_id: str
    client_secret: str
    api_url: str
    token_url: str
    audience: str


class Emulator(EmulatorState):
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
            is cut halfway through the body).
        storage_delay: seconds slept per 64 KiB streamed from storage.
        allow_post_search: answer ``POST /search`` instead of 405.
        conforms_to: put ``conformsTo`` in the landing page.
        root_links: add a ``rel=root`` link to collections, items and item pages. AxelGlobe
            sends none (see the guide's examples); STAC API validators want one.
        fault_seed: seed of the fault generator (the same seed gives the same faults).
        scale: archive scale, ``"small"`` or ``"large"``.
        data_dir: where the archive is built (default: the user cache folder).
        clients: extra ``{client_id: secret}`` pairs the token endpoint accepts.
        client_id: the default client's id (its secret is random per instance).
        audience: the audience the token endpoint expects.
        host: the loopback address of the token and API origins.
        storage_host: the loopback address of the storage origin (another port on
            ``host`` where it cannot bind).

    Every switch is also an attribute that may be changed while the servers run.

    Example:
        >>> with Emulator() as emu:  # doctest: +SKIP
        ...     os.environ.update(emu.env())
    """

    # The switches are EmulatorState's keyword arguments (one signature, documented above).
    # The running servers; a tuple, so that no instance can mutate a shared default.
    _servers: tuple[tuple[_QuietServer, threading.Thread], ...] = ()

    def __repr__(self) -> str:
        # Never the secret.
        state = f"api_url={self.api_url!r}" if self._servers else "stopped"
        return f"Emulator({state}, client_id={self.client_id!r})"

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return bool(self._servers)

    def start(self) -> Emulator:
        """Build (or load) the archive and start the three servers.

        Example:
            >>> emu = Emulator().start()  # doctest: +SKIP
            >>> emu.stop()  # doctest: +SKIP
        """
        if self._servers:
            return self
        from .archive import build_archive

        if self.archive is None:
            data_dir = None if self.data_dir is None else Path(self.data_dir)
            self.archive = build_archive(data_dir, scale=self.scale)
        started: list[tuple[_QuietServer, threading.Thread]] = []
        try:
            token = _serve(self.host, self.token_app)
            started.append(token)
            api = _serve(self.host, self.api_app)
            started.append(api)
            try:
                storage = _serve(self.storage_host, self.storage_app)
            except OSError:  # 127.0.0.2 not bindable here: another port on the main host
                storage = _serve(self.host, self.storage_app)
            started.append(storage)
        except BaseException:
            _shutdown(started)
            raise
        self._servers = tuple(started)
        self.token_url = f"http://{self.host}:{token[0].server_port}/oauth/token"
        self.api_url = f"http://{self.host}:{api[0].server_port}/stac/v1/catalogs/axelglobe"
        storage_host = str(storage[0].server_address[0])
        self.storage_url = f"http://{storage_host}:{storage[0].server_port}"
        self.load_items()
        return self

    def stop(self) -> None:
        """Stop the servers and wait for their threads."""
        servers, self._servers = self._servers, ()
        _shutdown(servers)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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

    def items(self) -> list[pystac.Item]:
        """Every item the API serves, as ``pystac.Item`` (hrefs on this emulator).

        The archive's truth, without a request: for tests to compute what a search, a
        download or a load should give.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     ids = {item.id for item in emu.items()}
        """
        if self.archive is None:
            raise RuntimeError("start the emulator first (with Emulator() as emu: ...)")
        import pystac

        return [pystac.Item.from_dict(d) for d in self.archive.items(self.api_url)]

    def token(self) -> str:
        """Issue a token for the default client straight from the server state (no request).

        Handy for tests that speak to the API directly; it counts as no token request.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     headers = {"Authorization": f"Bearer {emu.token()}"}
        """
        return self.issue_token(self.client_id)


@contextlib.contextmanager
def unless_configured(**switches: Any) -> Iterator[Emulator | None]:
    """Use AxelGlobe if ``AXELGLOBE_API_URL`` is set, else a fresh emulator, for a block.

    With no ``AXELGLOBE_API_URL`` it starts an :class:`Emulator` (``switches`` are its
    arguments) and exports its ``AXELGLOBE_*`` variables, with a temporary token cache, to
    ``os.environ`` while the block runs, so ``ag.open()``, ``ag.download()``,
    ``ag.load()`` and child processes all use it; the environment is restored afterwards.
    Yields the emulator, or ``None`` when the real API is configured. For scripts and
    notebooks that should run anywhere (the examples do).

    Example:
        >>> import pystac_axelglobe as ag
        >>> with unless_configured():  # doctest: +SKIP
        ...     print(ag.open().get_collection("grus-1").title)
        GRUS 1
    """
    if os.environ.get("AXELGLOBE_API_URL", "").strip():
        yield None
        return
    with Emulator(**switches) as emu, tempfile.TemporaryDirectory() as cache:
        exported = {**emu.env(), "AXELGLOBE_CACHE_DIR": cache}
        saved = {name: os.environ.get(name) for name in exported}
        os.environ.update(exported)
        try:
            yield emu
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

