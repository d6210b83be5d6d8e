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

import threading
from typing import TYPE_CHECKING, Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .api import ApiApp
from .archive import open_archive
from .items import ItemStore
from .state import API_PATH, Config, Counters, State
from .storage import StorageApp
from .token import TOKEN_PATH, Grants, TokenApp

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

class _QuietHandler(WSGIRequestHandler):
    """No per-request log lines: tests and the command line would drown in them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadedWSGIServer):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _bind(host: str, app: WSGIApplication) -> _QuietServer:
    return _QuietServer(host, 0, app, handler=_QuietHandler)


def _url(server: _QuietServer) -> str:
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
        self._servers: list[_QuietServer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> dict[str, str]:
        """Bind and start the three servers; return their URLs.

        Returns:
            ``{"token_url": ..., "api_url": ..., "storage_url": ...}``.
        """
        cfg = self.config
        try:
            token, api = _bind(cfg.host, _unready), _bind(cfg.host, _unready)
            self._servers += [token, api]
            try:
                storage = _bind(cfg.storage_host, _unready)
            except OSError:  # 127.0.0.2 not bindable here: another port on the main host
                storage = _bind(cfg.host, _unready)
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
