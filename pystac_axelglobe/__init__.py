"""pystac-axelglobe: the standard STAC tools, working against AxelGlobe.

Example:
    >>> import pystac_axelglobe as ag
    >>> client = ag.open()  # doctest: +SKIP
    >>> f = "avg(eo:cloud_cover) <= 30"  # AOI-level cloud cover
    >>> search = client.search(bbox=[133, 35, 137, 36], filter=f)  # doctest: +SKIP
    >>> items = search.item_collection()  # doctest: +SKIP

Names are imported lazily, so ``import pystac_axelglobe`` stays cheap (odc-stac and
dask load only when :func:`load` is first used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "APIRequestError": "errors",
    "AssetError": "errors",
    "AuthenticationError": "errors",
    "AxelGlobeAuth": "auth",
    "AxelGlobeError": "errors",
    "AxelGlobeExtension": "extension",
    "ConfigurationError": "errors",
    "DownloadError": "errors",
    "InvalidQueryError": "errors",
    "RestrictedError": "errors",
    "Settings": "settings",
    "Token": "tokens",
    "TokenProvider": "tokens",
    "download": "downloads",
    "filters": "",
    "load": "datacube",
    "mask_unusable": "datacube",
    "normalize_item": "extension",
    "open": "client",
    "resolve": "presigned",
    "sign": "signing",
    "sign_inplace": "signing",
}

__all__ = [
    "APIRequestError",
    "AssetError",
    "AuthenticationError",
    "AxelGlobeAuth",
    "AxelGlobeError",
    "AxelGlobeExtension",
    "ConfigurationError",
    "DownloadError",
    "InvalidQueryError",
    "RestrictedError",
    "Settings",
    "Token",
    "TokenProvider",
    "download",
    "filters",
    "load",
    "mask_unusable",
    "normalize_item",
    "open",
    "resolve",
    "sign",
    "sign_inplace",
]

if TYPE_CHECKING:  # pragma: no cover
    # "import X as X" marks these as re-exports for type checkers.
    from . import filters as filters
    from .auth import AxelGlobeAuth as AxelGlobeAuth
    from .client import open as open
    from .datacube import load as load
    from .datacube import mask_unusable as mask_unusable
    from .downloads import download as download
    from .errors import APIRequestError as APIRequestError
    from .errors import AssetError as AssetError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import AxelGlobeError as AxelGlobeError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import DownloadError as DownloadError
    from .errors import InvalidQueryError as InvalidQueryError
    from .errors import RestrictedError as RestrictedError
    from .extension import AxelGlobeExtension as AxelGlobeExtension
    from .extension import normalize_item as normalize_item
    from .presigned import resolve as resolve
    from .settings import Settings as Settings
    from .signing import sign as sign
    from .signing import sign_inplace as sign_inplace
    from .tokens import Token as Token
    from .tokens import TokenProvider as TokenProvider


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pystac_axelglobe' has no attribute {name!r}")
    if module == "":
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
