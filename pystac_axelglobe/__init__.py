"""pystac-axelglobe: the standard STAC tools, working against AxelGlobe.

Example:
    >>> import pystac_axelglobe as ag
    >>> client = ag.open()  # doctest: +SKIP
    >>> items = client.search(bbox=[133, 35, 137, 36], filter="eo:cloud_cover <= 30")  # doctest: +SKIP

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
    "download": "assets",
    "filters": "",
    "load": "datacube",
    "mask_unusable": "datacube",
    "open": "client",
    "resolve": "assets",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from . import filters
    from .assets import download, resolve
    from .auth import AxelGlobeAuth
    from .client import open
    from .datacube import load, mask_unusable
    from .errors import (
        APIRequestError,
        AssetError,
        AuthenticationError,
        AxelGlobeError,
        ConfigurationError,
        DownloadError,
        InvalidQueryError,
        RestrictedError,
    )
    from .extension import AxelGlobeExtension
    from .settings import Settings
    from .tokens import Token, TokenProvider


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pystac_axelglobe' has no attribute {name!r}")
    if module == "":
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
