"""Settings: explicit arguments over ``AXELGLOBE_*`` environment variables over defaults.

Example:
    >>> s = Settings.from_env(client_id="abc", client_secret="s3cret")
    >>> s.client_id, "s3cret" in repr(s)
    ('abc', False)
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests

from .errors import ConfigurationError

DEFAULT_API_URL = "https://api.axelglobe.com/stac/v1/catalogs/axelglobe"
DEFAULT_TOKEN_URL = "https://auth.axelglobe.com/oauth/token"
DEFAULT_AUDIENCE = "https://api.axelglobe.com"

#: The id of AxelGlobe's one collection, the GRUS-1 archive (``collections=[COLLECTION_ID]``).
COLLECTION_ID = "grus-1"
#: The largest page size (``limit=``) AxelGlobe accepts.
MAX_PAGE_LIMIT = 10000

ENV_CLIENT_ID = "AXELGLOBE_CLIENT_ID"
ENV_CLIENT_SECRET = "AXELGLOBE_CLIENT_SECRET"
ENV_API_URL = "AXELGLOBE_API_URL"
ENV_TOKEN_URL = "AXELGLOBE_TOKEN_URL"
ENV_AUDIENCE = "AXELGLOBE_AUDIENCE"
ENV_CACHE_DIR = "AXELGLOBE_CACHE_DIR"

#: Every environment variable this package reads.
_DEFAULT_PORTS = {"http": 80, "https": 443}

ENV_VARS = (ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_API_URL, ENV_TOKEN_URL, ENV_AUDIENCE,
            ENV_CACHE_DIR)


def default_cache_dir() -> Path:
    """The platform's user cache folder for this package (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("pystac-axelglobe", appauthor=False))


def receiving_cache_dir(sent: str | os.PathLike[str]) -> Path:
    """The token cache folder for an auth that crossed a process boundary (pickle, dask).

    The sender's folder where it exists here (same machine: one shared token), else this
    machine's ``AXELGLOBE_CACHE_DIR`` if set, else the sender's path anyway.

    Example:
        >>> receiving_cache_dir("/") == Path("/")
        True
    """
    path = Path(sent)
    if path.is_dir():
        return path
    local = os.environ.get(ENV_CACHE_DIR, "").strip()
    return Path(local).expanduser() if local else path


def split_as_sent(url: str) -> SplitResult:
    r"""``url`` split as requests will send it: parsed and normalised the way it prepares URLs.

    Python's ``urlsplit`` and requests (urllib3) disagree on some URLs: for
    ``http://evil.example\@127.0.0.1/`` ``urlsplit`` finds the host ``127.0.0.1`` while
    requests connects to ``evil.example``. Every decision about where a URL goes (loopback,
    same origin) is taken on requests' reading. A URL requests cannot prepare splits as
    empty: it cannot be sent either.

    Example:
        >>> split_as_sent("http://evil.example\\@127.0.0.1:8000/").hostname
        'evil.example'
        >>> split_as_sent("HTTPS://B\u00dcCHER.example/x").hostname
        'xn--bcher-kva.example'
    """
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError):  # InvalidURL, MissingSchema, IDNA
        return urlsplit("")
    return urlsplit(prepared.url or "")


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (where plain HTTP is acceptable).

    Decided by parsing the host (as requests will connect to it) as an IP address
    (``127.0.0.0/8``, ``::1``) or the exact name ``localhost``, never by a prefix:
    ``127.evil.example`` is a name anyone can own.

    Example:
        >>> is_loopback("http://127.0.0.2:8000/x"), is_loopback("http://127.evil.example")
        (True, False)
    """
    host = (split_as_sent(url).hostname or "").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=512)  # on every request of an auth: parsing costs ~40 us
def url_origin(url: str) -> tuple[str, str, int]:
    """The (scheme, host, port) ``url`` is sent to by requests (see :func:`split_as_sent`).

    Example:
        >>> url_origin("HTTPS://API.example/stac") == url_origin("https://api.example:443/x")
        True
    """
    parts = split_as_sent(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where and as whom to talk to AxelGlobe. The secret never appears in the repr.

    Build one with :meth:`from_env`; fields left ``None`` there come from the environment.

    **A pickled Settings carries no client secret** (pickles travel: dask graphs, caches,
    logs): it unpickles with ``client_secret=None``, as a pickled
    :class:`~pystac_axelglobe.auth.AxelGlobeAuth` does. In-process copies
    (:func:`copy.copy`, :func:`copy.deepcopy`) are the same immutable object, secret included.

    Example:
        >>> import pickle
        >>> s = Settings.from_env(client_id="me", client_secret="s3cret")
        >>> pickle.loads(pickle.dumps(s)).client_secret is None
        True
    """

    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    token_url: str = DEFAULT_TOKEN_URL
    audience: str = DEFAULT_AUDIENCE
    cache_dir: Path = dataclasses.field(default_factory=default_cache_dir)

    @classmethod
    def from_env(
        cls,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_url: str | None = None,
        token_url: str | None = None,
        audience: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from arguments, else ``AXELGLOBE_*`` variables, else the defaults.

        Example:
            >>> Settings.from_env(environ={"AXELGLOBE_API_URL": "http://127.0.0.1:9/x"}).api_url
            'http://127.0.0.1:9/x'
        """
        env = os.environ if environ is None else environ

        def pick(arg: str | None, var: str) -> str | None:
            value = arg if arg is not None else env.get(var)
            return value.strip() if value and value.strip() else None

        cache = pick(None if cache_dir is None else os.fspath(cache_dir), ENV_CACHE_DIR)
        settings = cls(
            client_id=pick(client_id, ENV_CLIENT_ID),
            client_secret=pick(client_secret, ENV_CLIENT_SECRET),
            api_url=(pick(api_url, ENV_API_URL) or DEFAULT_API_URL).rstrip("/"),
            token_url=pick(token_url, ENV_TOKEN_URL) or DEFAULT_TOKEN_URL,
            audience=pick(audience, ENV_AUDIENCE) or DEFAULT_AUDIENCE,
            cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
        )
        settings.check_urls()
        return settings

    def __reduce__(self) -> tuple[Any, ...]:
        # Every field but the secret (see the class docstring).
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["client_secret"] = None
        return (_unpickle_settings, (fields,))

    def __copy__(self) -> Settings:
        return self  # frozen: a copy is indistinguishable (and keeps the secret)

    def __deepcopy__(self, memo: dict[int, Any]) -> Settings:
        return self

    def check_urls(self) -> None:
        """Refuse URLs that are not http(s), and plain HTTP to anything but loopback."""
        for name, url in (("api_url", self.api_url), ("token_url", self.token_url)):
            parts = split_as_sent(url)
            scheme = parts.scheme
            if scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"{name} {url!r} is not an http(s) URL; pass a full URL such as "
                    f"{DEFAULT_API_URL if name == 'api_url' else DEFAULT_TOKEN_URL!r}"
                )
            if scheme == "http" and not is_loopback(url):
                raise ConfigurationError(
                    f"{name} {url!r} uses plain HTTP; credentials and tokens travel only over "
                    "HTTPS (plain HTTP is allowed for loopback test servers only)"
                )

    def require_credentials(self) -> tuple[str, str]:
        """The client id and secret, or a :class:`ConfigurationError` naming the variables."""
        missing = [var for var, value in ((ENV_CLIENT_ID, self.client_id),
                                          (ENV_CLIENT_SECRET, self.client_secret)) if not value]
        if missing:
            raise ConfigurationError(
                "AxelGlobe credentials are missing: set " + " and ".join(missing)
                + " (or pass client_id=/client_secret=). For a try-out without credentials, "
                "run `axelglobe emulator` and export the variables it prints."
            )
        assert self.client_id is not None and self.client_secret is not None
        return self.client_id, self.client_secret


def _unpickle_settings(fields: dict[str, Any]) -> Settings:
    return Settings(**fields)
