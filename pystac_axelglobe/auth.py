"""``AxelGlobeAuth``: the bearer token on AxelGlobe API requests, and only there.

Example:
    >>> import requests
    >>> auth = AxelGlobeAuth(client_id="me", client_secret="s3cret")
    >>> requests.get(auth.settings.api_url, auth=auth)  # doctest: +SKIP
    >>> pystac_client.Client.open(auth.settings.api_url, request_modifier=auth,
    ...                           modifier=ag.normalize_item)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.utils import rewind_body

from . import _redact
from ._redact import BearerHeader
from ._retry import restriction_until
from .errors import ConfigurationError
from .settings import ENV_CLIENT_SECRET, Settings, receiving_cache_dir, url_origin
from .tokens import TokenProvider

_R = TypeVar("_R", requests.PreparedRequest, requests.Request)
# Marks a request that this auth already re-sent after a 401 (never twice).
_RETRIED = "_axelglobe_retried"


class AxelGlobeAuth(AuthBase):
    """Adds ``Authorization: Bearer`` to requests for the AxelGlobe API's origin.

    - Only URLs with the scheme, host and port of ``settings.api_url`` get the header:
      never the storage host of presigned asset URLs, nor a redirect target elsewhere.
    - On a 401 from the API it refreshes the token once and re-sends the request (as
      requests' ``HTTPDigestAuth`` does); threads that saw the same stale token cause
      one refresh between them.
    - Works as ``session.auth`` / ``requests.get(..., auth=auth)`` and as pystac-client's
      ``request_modifier`` (it then also handles the 401 through a response hook on the
      ``requests.Request``).
    - As ``request_modifier`` it makes the plain ``pystac_client.Client`` search AxelGlobe:
      searches (``POST`` by default, or ``GET``) go out in AxelGlobe's ``GET`` dialect,
      checked as ``ag.open()`` checks them, and each page's ``next`` link carries the query
      (:mod:`._search_modifier`). A refused argument surfaces as pystac-client's
      ``APIError`` with the message of the :class:`~pystac_axelglobe.errors.InvalidQueryError`
      (its ``__context__``), when the search is first iterated; nothing is sent.
    - Tokens come from :meth:`TokenProvider.shared`: one per credential per process, one
      token cache file per machine.

    Copying and pickling: :func:`copy.deepcopy` (pystac-client does it) keeps everything.
    **A pickled auth carries no client secret** (dask graphs travel and get logged). When
    unpickled it takes the secret from ``AXELGLOBE_CLIENT_SECRET`` if set, else from a
    provider of the same credential in that process; without either it still works from
    the machine's shared token cache (``AXELGLOBE_CACHE_DIR``), and raises
    :class:`~pystac_axelglobe.errors.ConfigurationError` naming ``AXELGLOBE_CLIENT_SECRET``
    only when a token has to be fetched. So dask workers on the same machine share the
    client's token; workers on other machines need ``AXELGLOBE_CLIENT_SECRET``.

    The repr shows the client id, never the secret or a token.

    Args:
        client_id: Default: ``AXELGLOBE_CLIENT_ID`` (required).
        client_secret: Default: ``AXELGLOBE_CLIENT_SECRET`` (required to fetch a token).
        api_url: Default: ``AXELGLOBE_API_URL`` or production.
        token_url: Default: ``AXELGLOBE_TOKEN_URL`` or production.
        audience: Default: ``AXELGLOBE_AUDIENCE`` or production.
        cache_dir: Token cache folder. Default: ``AXELGLOBE_CACHE_DIR`` or the user cache.
        settings: Complete settings instead of the arguments above.

    Raises:
        ConfigurationError: No client id, or a URL that is not HTTPS (except loopback).

    Example:
        >>> auth = AxelGlobeAuth(client_id="me", client_secret="s3cret")
        >>> auth
        AxelGlobeAuth(client_id='me', api_url='https://api.axelglobe.com/stac/v1/catalogs/axelglobe')

        The plain pystac-client, in one line (``ag.open()`` is the shortcut for it)::

            import pystac_client
            import pystac_axelglobe as ag

            client = pystac_client.Client.open(
                "https://api.axelglobe.com/stac/v1/catalogs/axelglobe",
                request_modifier=ag.AxelGlobeAuth(), modifier=ag.normalize_item)
            items = client.search(collections=["grus-1"], filter="eo:cloud_cover <= 30",
                                  max_items=100).item_collection()
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        api_url: str | None = None,
        token_url: str | None = None,
        audience: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(client_id, client_secret, api_url, token_url,
                                         audience, cache_dir)
        else:
            if any(v is not None for v in (client_id, client_secret, api_url, token_url,
                                             audience, cache_dir)):
                raise ConfigurationError(
                    "pass either settings= or the individual arguments (client_id=, ...), "
                    "not both")
            settings.check_urls()
        if not settings.client_id:
            settings.require_credentials()  # raises, naming the missing variables
        self._setup(settings, TokenProvider.shared(settings))

    def _setup(self, settings: Settings, provider: TokenProvider) -> None:
        self.settings = settings
        self.provider = provider
        _redact.install()  # every path that sends (open, resolve, download, load) has an auth
        self._api_origin = url_origin(settings.api_url)
        self._hook = self.handle_response  # one bound method, compared on every request
        self._last: tuple[str, BearerHeader] = ("", BearerHeader(""))

    def _header(self, access_token: str) -> BearerHeader:
        # One header object per token, not one per request.
        last = self._last
        if last[0] != access_token:
            last = self._last = (access_token, BearerHeader(f"Bearer {access_token}"))
        return last[1]

    # -- requests' AuthBase -------------------------------------------------------------

    def __call__(self, r: _R) -> _R:
        """Add the token to ``r`` (prepared or not) if it goes to the API's origin.

        A ``requests.Request`` (pystac-client's ``request_modifier`` gets those, before they
        are prepared) is also put in AxelGlobe's dialect (:mod:`._search_modifier`): a search
        becomes a ``GET`` with AxelGlobe's parameters, and the page's ``next`` link carries
        the query. A ``PreparedRequest`` (``session.auth``, as in ``ag.open()``) is sent as
        it was prepared: only the token is added.

        Raises:
            InvalidQueryError: a search AxelGlobe would refuse (before a token is fetched).
        """
        if not r.url or not self.is_api_url(r.url):
            return r  # storage, other hosts: nothing, not even the hook
        extra: list[Callable[..., Any]] = []
        if isinstance(r, requests.Request):
            from ._search_modifier import rewrite  # imports pystac-client: only when needed

            extra = rewrite(r, self.settings.api_url)
        token = self.provider.token()
        # A restricted client gets 429 for every call: send nothing until it ends. (After
        # token(): a first look at the cache file learns what other processes recorded.)
        self.provider.check_restriction()
        r.headers["Authorization"] = self._header(token.access_token)
        hooks = r.hooks.setdefault("response", [])
        if self._hook not in hooks:  # session.auth and request_modifier both set
            hooks.append(self._hook)
        hooks.extend(extra)  # after the 401 hook: they see the answer the caller gets
        return r

    def is_api_url(self, url: str) -> bool:
        """Whether ``url`` has the scheme, host and port of the API (and so gets the token).

        Read as requests will send it, after preparing it (:func:`~.settings.split_as_sent`):
        a backslash ends the host for requests (not for ``urlsplit``), so
        ``http://evil.example<backslash>@<api host>/`` goes to ``evil.example``: not the API.

        Example:
            >>> auth = AxelGlobeAuth(client_id="me", api_url="http://127.0.0.1:8000/stac")
            >>> auth.is_api_url("http://127.0.0.1:8000/x"), auth.is_api_url("http://127.0.0.2:8000/x")
            (True, False)
        """
        return url_origin(url) == self._api_origin

    def headers(self) -> dict[str, str]:
        """The header to add by hand, e.g. for GDAL or another HTTP library.

        Example:
            >>> AxelGlobeAuth().headers()  # doctest: +SKIP
            {'Authorization': 'Bearer eyJ...'}
        """
        return {"Authorization": f"Bearer {self.provider.token().access_token}"}

    def handle_response(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        """Response hook on API requests: a 401 refreshes, a restriction is remembered.

        An answer that :func:`~pystac_axelglobe._retry.restriction_until` calls a restriction
        is recorded in the token cache, so that this and every other process sends nothing
        more until it ends.
        """
        if r.status_code == 429:
            until = restriction_until(429, r.url or "", r.headers.get("Retry-After"),
                                      api_url=self.settings.api_url,
                                      token_url=self.settings.token_url, now=time.time())
            if until is not None:
                self.provider.record_restriction(until, status=429)
            return r
        return self.handle_401(r, **kwargs)

    def handle_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        """Response hook: after a 401 from the API, refresh the token and re-send once.

        Only when the request carried the token that is still current is a new one
        fetched (:meth:`TokenProvider.refresh`); otherwise the newer token is used.
        """
        request = r.request
        if (r.status_code != 401 or request.url is None or not self.is_api_url(request.url)
                or getattr(request, _RETRIED, False)):
            return r
        sent = request.headers.get("Authorization", "")
        if not sent.startswith("Bearer "):
            return r  # not a token we added
        if (request.body is not None and not isinstance(request.body, (bytes, str))
                and getattr(request, "_body_position", None) is None):
            return r  # a streamed body (generator, pipe) that cannot be sent again
        try:
            # The failed token travels as a BearerHeader (a str whose repr hides it): the
            # frames below print it as <redacted> in tracebacks that show locals.
            token = self.provider.refresh(BearerHeader(sent[len("Bearer "):]))
        except BaseException:
            r.close()  # the caller gets the exception, not the response: free the connection
            raise
        # Release the connection so that the re-sent request can reuse it.
        r.content  # noqa: B018
        r.close()
        prep = request.copy()
        if getattr(prep, "_body_position", None) is not None:
            rewind_body(prep)
        if r.raw is not None:
            extract_cookies_to_jar(prep._cookies, request, r.raw)  # type: ignore[no-untyped-call, attr-defined]
            prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        prep.headers["Authorization"] = self._header(token.access_token)
        setattr(prep, _RETRIED, True)
        connection = r.connection
        new = connection.send(prep, **kwargs)
        assert isinstance(new, requests.Response)
        new.history.append(r)
        new.request = prep
        return new

    # -- copying ------------------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> AxelGlobeAuth:
        # In-process copies keep the secret and share the provider (and its token).
        new = type(self).__new__(type(self))
        new._setup(self.settings, self.provider)
        return new

    def __copy__(self) -> AxelGlobeAuth:
        return self.__deepcopy__({})

    def __getstate__(self) -> dict[str, Any]:
        # Pickles cross process boundaries (dask graphs): never the secret.
        state = self.settings.__dict__.copy()
        state["client_secret"] = None
        return {"settings": state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fields = dict(state["settings"])
        # This machine's secret, if it has one; the sender's cache folder if it exists here.
        fields["client_secret"] = os.environ.get(ENV_CLIENT_SECRET, "").strip() or None
        fields["cache_dir"] = receiving_cache_dir(fields["cache_dir"])
        settings = Settings(**fields)
        # Without a secret, shared() prefers this process's provider of the same credential.
        self._setup(settings, TokenProvider.shared(settings))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(client_id={self.settings.client_id!r}, "
                f"api_url={self.settings.api_url!r})")


__all__ = ["AxelGlobeAuth"]


# The auth of the last ag.open() in this process, and those built from the environment
# (one per distinct settings), for default_auth().
_opened: AxelGlobeAuth | None = None
_from_env: dict[Settings, AxelGlobeAuth] = {}


def set_default_auth(auth: AxelGlobeAuth | None) -> None:
    """Make ``auth`` what :func:`default_auth` returns (``ag.open()`` calls this).

    Example:
        >>> set_default_auth(None)  # back to the environment
    """
    global _opened
    _opened = auth


def default_auth() -> AxelGlobeAuth:
    """The auth ``download()``, ``resolve()`` and ``load()`` use when given none.

    The one of the last :func:`pystac_axelglobe.open` in this process, so that
    ``ag.open(client_id=..., client_secret=...)`` also authorises the downloads of the
    items it found; else one built from the ``AXELGLOBE_*`` environment.

    Example:
        >>> default_auth()  # doctest: +SKIP
        AxelGlobeAuth(client_id='me', api_url='https://api.axelglobe.com/stac/v1/catalogs/axelglobe')
    """
    opened = _opened
    if opened is not None:
        return opened
    settings = Settings.from_env()
    auth = _from_env.get(settings)
    if auth is None:  # a race builds two equal auths at worst: they share one provider
        auth = _from_env.setdefault(settings, AxelGlobeAuth(settings=settings))
    return auth

