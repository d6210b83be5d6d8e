"""A faithful AxelGlobe on loopback: token endpoint, STAC API and S3-like storage.

Three threaded HTTP servers on free loopback ports serve a synthetic grus-1 archive the
way AxelGlobe does, quirks included (``?page=N``-only next links, no ``numberMatched``,
redirects to presigned storage URLs that refuse ``Authorization`` and ``HEAD``). Switches
shorten token and presign lifetimes, restrict clients that ask for tokens too often and
inject faults; counters say what reached the servers.

One module per origin: :mod:`.token`, :mod:`.api`, :mod:`.storage`, around the state they
share (:mod:`.state`); :mod:`.servers` runs them, in a process of their own (:mod:`.host`),
which :class:`.emulator.Emulator` starts and drives; :mod:`.switches` puts the switches on
a command line; :mod:`.archive` and :mod:`.bulk` make the data, :mod:`.items` and
:mod:`.params` and :mod:`.search` find it.

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
import tempfile
from collections.abc import Iterator
from typing import Any

from .emulator import Emulator, SettingsKwargs
from .state import Counters

__all__ = ["Counters", "Emulator", "SettingsKwargs", "unless_configured"]


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
