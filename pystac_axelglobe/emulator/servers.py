"""One running emulator: its shared state, its three apps and their threaded HTTP servers.

:class:`ServerSet` is what runs wherever the servers run (in a child process by default, see
:mod:`.host`); :class:`~pystac_axelglobe.emulator.Emulator` drives it through
:meth:`ServerSet.call`.

Example:
    >>> from .archive import build_archive
    >>> from .state import Config
    >>> config = Config(archive_root=str(build_archive().root))  # doctest: +SKIP
    >>> servers = ServerSet(config)  # doctest: +SKIP
    >>> urls = servers.start()  # doctest: +SKIP
    >>> servers.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .api import ApiApp
from .archive import open_archive
from .items import ItemStore
from .state import API_PATH, Config, Counters, State
from .storage import StorageApp
from .token import TOKEN_PATH, Grants, TokenApp


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, without log lines, keeping connections alive between answers.

    werkzeug closes every connection after one answer (``Connection: close``), because
    http.server cannot drain a request body the app left unread. A GET or HEAD without a
    body leaves nothing to drain: with the ``keep_alive`` switch its connection stays open
    for the client's next request, as AxelGlobe's load balancers keep it, until it sits
    unused ``idle_timeout`` seconds. A new connection first waits ``handshake_round_trips``
    times its server's latency (the handshakes).
    """

    server: _Server
    # As a real server: an answer's head and body, written apart, go out at once (with
    # Nagle, a kept-alive connection's second write waits 40 ms for a delayed ACK).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        # An idle connection is closed, as a load balancer closes it (a send to a client
        # that stopped reading is bounded by it too).
        self.connection.settimeout(self.server.state.switches.idle_timeout)
        self.server.connected(self.connection)

    def finish(self) -> None:
        self.server.disconnected(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        if not self._kept():
            return super().run_wsgi()
        # After its answer werkzeug reads whatever the client sent next, to drain a body
        # left unread: here there is no body, and what follows is the next request. The
        # app and the drain get an empty body instead; the socket keeps the next request.
        rfile, self.rfile = self.rfile, io.BytesIO()
        try:
            return super().run_wsgi()
        finally:
            self.rfile = rfile

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and self._kept():
            return  # werkzeug closes every connection; this one serves the next request
        super().send_header(keyword, value)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True  # what was cut cannot carry another answer

    def _kept(self) -> bool:
        return (self.server.state.switches.keep_alive and self.command in ("GET", "HEAD")
                and self.headers.get("Content-Length", "0").strip() in ("", "0")
                and "Transfer-Encoding" not in self.headers)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # tests and the command line would drown in per-request lines

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _Server(ThreadedWSGIServer):
    """A quiet werkzeug server that counts its connections and can cut those still open.

    Args:
        host: The address to bind (port chosen by the system).
        kind: ``"token"``, ``"api"`` or ``"storage"``: its counter and its latency.
        state: The emulator's state.
    """

    def __init__(self, host: str, kind: str, state: State) -> None:
        super().__init__(host, 0, _unready, handler=_Handler)
        self.kind, self.state = kind, state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def connected(self, sock: socket.socket) -> None:
        """Count a new connection, and charge its handshakes."""
        with self._open_lock:
            self._open.add(sock)
        self.state.counters.add(f"{self.kind}_connections")
        switches = self.state.switches
        latency = switches.storage_latency if self.kind == "storage" else switches.api_latency
        self.state.sleep(switches.handshake_round_trips * latency)

    def disconnected(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    def cut_connections(self) -> None:
        """Shut down the connections still open: a stopped server answers nothing more."""
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _url(server: _Server) -> str:
    return f"http://{server.server_address[0]!s}:{server.server_port}"


class ServerSet:
    """The token, API and storage servers of one emulator, in this process's threads.

    Args:
        config: What to serve, and how.
        counters: Where to count (e.g. over a buffer the parent process maps).
    """

    #: The commands :meth:`call` accepts: what a parent process may ask.
    COMMANDS = frozenset({"set_switch", "token", "revoke_tokens", "rotate_signing_key",
                          "reset", "api_log", "storage_log", "storage_headers",
                          "token_times"})

    def __init__(self, config: Config, counters: Counters | None = None) -> None:
        self.config = config
        self.state = State(config.switches, counters, fault_seed=config.fault_seed)
        self.grants = Grants(self.state)
        self.archive = open_archive(config.archive_root)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> dict[str, str]:
        """Bind and start the three servers; return their URLs.

        Returns:
            ``{"token_url": ..., "api_url": ..., "storage_url": ...}``.
        """
        cfg = self.config
        try:
            token = _Server(cfg.host, "token", self.state)
            self._servers.append(token)
            api = _Server(cfg.host, "api", self.state)
            self._servers.append(api)
            try:
                storage = _Server(cfg.storage_host, "storage", self.state)
            except OSError:  # 127.0.0.2 not bindable here: another port on the main host
                storage = _Server(cfg.host, "storage", self.state)
            self._servers.append(storage)
            self.state.api_url = f"{_url(api)}{API_PATH}"
            self.state.storage_url = _url(storage)
            items = ItemStore(self.archive, self.state.api_url, cfg.extra_items)
            token.app = TokenApp(self.state, self.grants, cfg.clients, cfg.audience)
            api.app = ApiApp(self.state, self.grants, items)
            storage.app = StorageApp(self.state, items)
            for server in self._servers:
                thread = threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                    name=f"axelglobe-emulator-{_url(server)}",
                )
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return {"token_url": f"{_url(token)}{TOKEN_PATH}", "api_url": self.state.api_url,
                "storage_url": self.state.storage_url}

    def stop(self) -> None:
        """Stop the servers (all three at once) and close their sockets."""
        servers, self._servers = self._servers, []
        threads, self._threads = self._threads, []
        # Each shutdown() waits for its loop's next poll: side by side, not one after another.
        serving = servers[: len(threads)]  # shutdown() of a server never started would hang
        stoppers = [threading.Thread(target=server.shutdown, daemon=True) for server in serving]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for server in servers:
            server.server_close()
            server.cut_connections()
        for thread in threads:
            thread.join(timeout=5)

    def call(self, command: str, *args: Any) -> Any:
        """Run one of :attr:`COMMANDS` (the parent's way in; see :mod:`.host`)."""
        if command not in self.COMMANDS:
            raise ValueError(f"unknown emulator command {command!r}")
        method = getattr(self, f"_cmd_{command}")
        return method(*args)

    def _cmd_set_switch(self, name: str, value: Any) -> None:
        self.state.set_switch(name, value)

    def _cmd_token(self, client_id: str) -> str:
        return self.grants.issue(client_id)

    def _cmd_revoke_tokens(self) -> None:
        self.grants.revoke_all()

    def _cmd_rotate_signing_key(self) -> None:
        self.state.signer.rotate()

    def _cmd_reset(self) -> None:
        self.state.reset()

    def _cmd_api_log(self) -> list[tuple[str, str, str]]:
        return self.state.api_log()

    def _cmd_storage_log(self) -> list[tuple[str, str, str]]:
        return self.state.storage_log()

    def _cmd_storage_headers(self) -> list[dict[str, str]]:
        return self.state.storage_headers()

    def _cmd_token_times(self) -> list[float]:
        return self.state.token_times()


def _unready(environ: Any, start_response: Any) -> list[bytes]:
    """The app of a server bound but not yet started (never called: nothing serves yet)."""
    start_response("503 Service Unavailable", [("Content-Length", "0")])
    return []
