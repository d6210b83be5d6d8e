"""Token sources: where a process that must not ask the token endpoint gets its tokens.

A dask worker has no client secret. :mod:`pystac_axelglobe.cluster` therefore installs a
source for the credential with :func:`set_token_source` that asks the dask client; every
:class:`~pystac_axelglobe.tokens.TokenProvider` of that credential in the process then
calls it (:func:`ask_source`) where it would send the secret to the token endpoint, and
caches what it gives like a fetched token.

Example:
    >>> key = ("http://127.0.0.1/t", "me", "a")
    >>> set_token_source(key, lambda settings, failed, fresh: None)
    >>> has_source(key), set_token_source(key, None), has_source(key)
    (True, None, False)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ._token import Token, header_safe, iso
from .errors import AuthenticationError
from .settings import Settings

# The tokens' own logger: one name to configure for everything about tokens.
logger = logging.getLogger("pystac_axelglobe.tokens")

#: What :func:`set_token_source` takes: called as ``source(settings, failed, fresh)`` when a
#: token is needed and neither memory nor the cache file has one. ``failed`` is the token
#: the API just rejected with 401 (else ``None``); ``fresh(token)`` says whether a token
#: would be used without refreshing it. Returns a token, or ``None`` to let the provider ask
#: the token endpoint as usual; raises an :class:`~pystac_axelglobe.errors.AxelGlobeError`
#: to fail the request.
TokenSource = Callable[[Settings, str | None, Callable[[Token], bool]], Token | None]
_SOURCES: dict[tuple[str, str, str], TokenSource] = {}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child: renew.
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def credential_key(settings: Settings) -> tuple[str, str, str]:
    """The (token URL, client id, audience) a token belongs to, whatever the secret or cache.

    Example:
        >>> credential_key(Settings.from_env(client_id="me", token_url="http://127.0.0.1/t",
        ...                                  audience="a", api_url="http://127.0.0.1/s"))
        ('http://127.0.0.1/t', 'me', 'a')
    """
    return (settings.token_url, settings.client_id or "", settings.audience)


def set_token_source(key: tuple[str, str, str], source: TokenSource | None) -> None:
    """Let ``source`` supply this process's tokens of a credential instead of the endpoint.

    Every provider of the credential ``key`` (see :func:`credential_key`) in this process
    then calls ``source`` where it would send the client secret to the token endpoint: for
    the first token, for one about to expire and after a 401. Memory, the cache file, the
    single flight across threads and processes and the fallback on a still-valid token work
    as for fetched tokens. ``None`` removes the source.

    Example:
        >>> key = ("http://127.0.0.1/t", "me", "a")
        >>> set_token_source(key, lambda settings, failed, fresh: None)
        >>> set_token_source(key, None)
    """
    with _LOCK:
        if source is None:
            _SOURCES.pop(key, None)
        else:
            _SOURCES[key] = source


def has_source(key: tuple[str, str, str]) -> bool:
    """Whether a token source is set for the credential ``key`` in this process."""
    return key in _SOURCES


def ask_source(settings: Settings, failed: str | None, fresh: Callable[[Token], bool],
               reason: str) -> Token | None:
    """The token the credential's source gives, or ``None`` (no source, or it declined).

    Raises:
        AuthenticationError: The source gave a token that cannot go into a header.

    Example:
        >>> ask_source(Settings.from_env(client_id="nobody"), None, bool, "none cached")
    """
    source = _SOURCES.get(credential_key(settings))
    received = source(settings, failed, fresh) if source is not None else None
    if received is None:
        return None
    client = settings.client_id or ""
    if not header_safe(received.access_token):
        raise AuthenticationError(
            f"the token source of client {client!r} gave a token that cannot go into a "
            "header", client_id=client)
    logger.info("received a token for client %r from its token source (%s); valid until %s",
                client, reason, iso(received.expires_at))
    return received


__all__ = ["TokenSource", "ask_source", "credential_key", "has_source", "set_token_source"]
