"""What a test asks of a running emulator: what its servers saw, and a few actions.

:class:`ServerHooks` is the part of :class:`~.emulator.Emulator` that talks to servers
already running (in the emulator's own process, :mod:`.host`, or in threads of this one):
the request logs and token times, the headers that reached storage, the counters, and
actions a test takes mid-way (revoke the tokens, rotate the signing key, issue a token
without a request). Starting and stopping them, and the switches, are the
:class:`~.emulator.Emulator`'s own.

Example:
    >>> from pystac_axelglobe.emulator import Emulator
    >>> issubclass(Emulator, ServerHooks), Emulator().requests
    (True, [])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pystac

    from .archive import Archive
    from .host import RemoteServers
    from .servers import ServerSet
    from .state import Counters


class ServerHooks:
    """The logs, counters and actions of an emulator's running servers (a base class).

    Example:
        >>> from pystac_axelglobe.emulator import Emulator
        >>> with Emulator() as emu:  # doctest: +SKIP
        ...     emu.reset_counters()
    """

    # What the Emulator provides; read here, set there.
    _servers: ServerSet | RemoteServers | None
    counters: Counters
    archive: Archive | None
    api_url: str
    client_id: str
    extra_items: int
    capture_ids: bool

    def _call(self, command: str, *args: Any) -> Any:
        if self._servers is None:
            raise RuntimeError("start the emulator first (with Emulator() as emu: ...)")
        return self._servers.call(command, *args)

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """``(method, path, query)`` of every request the API received since the last reset.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.requests
            []
        """
        if self._servers is None:
            return []
        result: list[tuple[str, str, str]] = self._call("api_log")
        return result

    @property
    def storage_log(self) -> list[tuple[str, str, str]]:
        """``(method, path, Range header or "")`` of every storage request since the reset.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.storage_log
            []
        """
        if self._servers is None:
            return []
        result: list[tuple[str, str, str]] = self._call("storage_log")
        return result

    @property
    def token_times(self) -> list[float]:
        """When (epoch seconds) the token endpoint issued each token since the reset.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.token_times
            []
        """
        if self._servers is None:
            return []
        result: list[float] = self._call("token_times")
        return result

    @property
    def storage_headers(self) -> list[dict[str, str]]:
        """The headers (lower-case names) of every storage request since the reset.

        For tests that check what reaches storage: no ``authorization``, no ``cookie``.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.storage_headers
            []
        """
        if self._servers is None:
            return []
        result: list[dict[str, str]] = self._call("storage_headers")
        return result

    def reset_counters(self) -> None:
        """Zero every counter and forget the logged requests.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.reset_counters()
        """
        if self._servers is None:
            self.counters.reset()
        else:
            self._call("reset")

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 401 from now on.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.revoke_tokens()
        """
        self._call("revoke_tokens")

    def rotate_signing_key(self) -> None:
        """Storage refuses every URL presigned so far (403), as after a key rotation.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     emu.rotate_signing_key()
        """
        self._call("rotate_signing_key")

    def token(self) -> str:
        """Issue a token for the default client straight from the server state (no request).

        Handy for tests that speak to the API directly; it counts as no token request.

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     headers = {"Authorization": f"Bearer {emu.token()}"}
        """
        token: str = self._call("token", self.client_id)
        return token

    def items(self) -> list[pystac.Item]:
        """Every item the API serves, as ``pystac.Item`` (hrefs on this emulator).

        The archive's truth, without a request: for tests to compute what a search, a
        download or a load should give. As served: without ``ag:capture_id`` when
        ``capture_ids`` is off (``emu.archive.items(emu.api_url)`` keeps it).

        Example:
            >>> with Emulator() as emu:  # doctest: +SKIP
            ...     ids = {item.id for item in emu.items()}
        """
        if self.archive is None or not self.api_url:
            raise RuntimeError("start the emulator first (with Emulator() as emu: ...)")
        import pystac

        from .bulk import bulk_items
        from .items import as_served

        found = self.archive.items(self.api_url) + bulk_items(self.extra_items, self.api_url)
        return [pystac.Item.from_dict(as_served(d, capture_ids=self.capture_ids))
                for d in found]
