"""The servers' own process: emulators whose servers cannot be starved by the user's code.

A GDAL read (``rasterio.open`` of a storage URL) holds the calling process's GIL while it
waits for the answer; servers in threads of that process could then never answer. So by
default each process that starts an :class:`~pystac_axelglobe.emulator.Emulator` gets one
*host*: a child Python process, started on first use and kept for the next emulators (a
start then costs milliseconds, not the half-second of a fresh interpreter), that runs the
:class:`~.servers.ServerSet` of every emulator of its parent.

- The control channel is a pair of pipes only the two processes hold; messages are
  ``multiprocessing.connection`` frames, one request and its answer at a time.
- Counters live in a small file both processes map: the host writes, the parent reads
  them live without asking.
- The host never outlives its parent: it stops at the end of its control pipe (the parent
  exited, however it ended) or when its parent process changes (a watchdog), ignores
  Ctrl-C (the parent decides), and the parent ends it at exit.
- A child process of the parent (``os.fork``) starts its own host; an emulator stays
  usable only in the process that started it.

Unix only (the pipes are passed as file descriptors); elsewhere the servers run in the
parent's threads, as with ``Emulator(in_process=True)``.

Example:
    >>> from .servers import Config
    >>> servers = RemoteServers(Config(archive_root="..."))  # doctest: +SKIP
    >>> urls = servers.start()  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .state import COUNTERS_SIZE, Config, Counters

if TYPE_CHECKING:
    from .servers import ServerSet

#: Whether servers can run in a host process here (pipes passed as file descriptors).
SUPPORTED = os.name == "posix"
#: Seconds the parent waits for the host to come up (imports included), and for an answer.
START_TIMEOUT = 60.0
ANSWER_TIMEOUT = 60.0
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from pystac_axelglobe.emulator.host import serve; serve(*map(int, sys.argv[2:]))")


class HostError(RuntimeError):
    """The servers' process could not start, or is gone."""


class Host:
    """The parent's side of its host process (one per parent process: :meth:`shared`)."""

    _shared: Host | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        import pystac_axelglobe

        root = str(Path(pystac_axelglobe.__file__).resolve().parents[1])
        from_parent, to_host = os.pipe()
        from_host, to_parent = os.pipe()
        self.pid = os.getpid()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, root, str(from_parent), str(to_parent)],
                pass_fds=(from_parent, to_parent), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stderr inherited: a crash says why
            )
        except BaseException:
            for fd in (to_host, from_parent, from_host, to_parent):
                os.close(fd)
            raise
        os.close(from_parent)
        os.close(to_parent)
        self._send = Connection(to_host, readable=False)
        self._recv = Connection(from_host, writable=False)
        self._lock = threading.Lock()
        self._ready = False

    @classmethod
    def shared(cls) -> Host:
        """This process's host, started if there is none yet (or it died)."""
        with cls._shared_lock:
            host = cls._shared
            if host is not None and host.pid == os.getpid() and host.process.poll() is not None:
                host.close()  # died: its pipes go, a new host takes its place
                host = None
            if host is None or host.pid != os.getpid():
                host = cls._shared = Host()
            return host

    def request(self, *message: Any) -> Any:
        """Send one request and return its answer (or raise what the host raised)."""
        if os.getpid() != self.pid:
            raise HostError("an Emulator can only be used in the process that started it")
        with self._lock:
            if not self._ready:
                self._expect("ready", START_TIMEOUT)
                self._ready = True
            try:
                self._send.send(message)
            except OSError as err:
                raise self._gone() from err
            kind, value = self._expect(None, ANSWER_TIMEOUT)
        if kind == "error":
            error_type, text = value
            raise (ValueError if error_type == "ValueError" else HostError)(text)
        return value

    def _expect(self, word: str | None, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while not self._recv.poll(0.1):
            if self.process.poll() is not None:
                raise self._gone()
            if time.monotonic() > deadline:
                # A late answer would be taken for the next request's: end it instead.
                self.process.kill()
                raise HostError(f"the emulator's server process did not answer in {timeout} s")
        try:
            answer = self._recv.recv()
        except (EOFError, OSError) as err:
            raise self._gone() from err
        if word is not None and answer != word:
            raise HostError(f"the emulator's server process said {answer!r}, not {word!r}")
        return answer

    def _gone(self) -> HostError:
        code = self.process.poll()
        return HostError(f"the emulator's server process is gone (exit code {code}); its "
                         "error, if any, is above")

    def close(self) -> None:
        """End the host (its servers stop with it) and wait for it."""
        if os.getpid() != self.pid:
            return  # a forked copy: the host belongs to the parent
        self._send.close()  # the host's end-of-pipe: it stops everything and exits
        self._recv.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@atexit.register
def _close_shared() -> None:
    host = Host._shared
    if host is not None:
        host.close()


class RemoteServers:
    """A :class:`~.servers.ServerSet` in the host process, as the parent drives it.

    Args:
        config: What the servers serve.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.host = Host.shared()
        self._sid: int | None = None
        fd, path = tempfile.mkstemp(prefix="axelglobe-emulator-counters-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        try:
            os.ftruncate(fd, COUNTERS_SIZE)
            self._map = mmap.mmap(fd, COUNTERS_SIZE)
        finally:
            os.close(fd)
        self._path = path
        #: Live counters: a view of what the host writes.
        self.counters = Counters(self._map)

    def start(self) -> dict[str, str]:
        """Start the servers in the host; return their URLs."""
        try:
            self._sid, urls = self.host.request("start", self.config, self._path)
        finally:
            os.unlink(self._path)  # both processes have it mapped (or the start failed)
        result: dict[str, str] = urls
        return result

    def call(self, command: str, *args: Any) -> Any:
        """Run one of :attr:`~.servers.ServerSet.COMMANDS` in the host."""
        return self.host.request("call", self._sid, command, args)

    def stop(self) -> None:
        """Stop the servers (the counters keep their last values)."""
        sid, self._sid = self._sid, None
        if sid is not None:
            try:
                self.host.request("stop", sid)
            except HostError:
                pass  # the host is gone, and its servers with it


# --- in the host process ----------------------------------------------------------------------


def serve(from_parent: int, to_parent: int) -> None:
    """The host's main loop: answer the parent's requests until its pipe ends.

    Example:
        >>> serve(3, 4)  # doctest: +SKIP
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    receive = Connection(from_parent, writable=False)
    answer = Connection(to_parent, readable=False)
    _watch_parent(os.getppid())
    importlib.import_module(".servers", __package__)  # the slow imports, before "ready"

    answer.send("ready")
    running: dict[int, tuple[ServerSet, mmap.mmap]] = {}
    ids = itertools.count(1)
    try:
        while True:
            try:
                message = receive.recv()
            except (EOFError, OSError):
                return
            try:
                result = _handle(running, ids, *message)
            except Exception as err:  # the parent raises it; the host serves on
                answer.send(("error", (type(err).__name__, f"{err}")))
            else:
                answer.send(("ok", result))
    finally:
        for servers, shared in running.values():
            servers.stop()
            servers.state.counters.release()
            shared.close()


def _handle(running: dict[int, tuple[ServerSet, mmap.mmap]], ids: Iterator[int], op: str,
            *args: Any) -> Any:
    from .servers import ServerSet

    if op == "start":
        config, path = args
        with open(path, "r+b") as file:
            shared = mmap.mmap(file.fileno(), COUNTERS_SIZE)
        servers = ServerSet(config, Counters(shared))
        try:
            urls = servers.start()
        except BaseException:
            servers.state.counters.release()
            shared.close()
            raise
        sid = next(ids)
        running[sid] = (servers, shared)
        return sid, urls
    if op == "call":
        sid, command, call_args = args
        return running[sid][0].call(command, *call_args)
    if op == "stop":
        servers, shared = running.pop(args[0])
        servers.stop()
        servers.state.counters.release()
        shared.close()
        return None
    raise ValueError(f"unknown request {op!r}")


def _watch_parent(parent: int) -> None:
    """Exit as soon as the parent process is gone, even if another holds the pipe open."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)  # the servers die with the process: nothing to flush

    threading.Thread(target=watch, daemon=True, name="axelglobe-emulator-watchdog").start()
