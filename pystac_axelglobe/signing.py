"""Presigned storage hrefs for every other tool: :func:`sign` and :func:`sign_inplace`.

The Planetary Computer SDK's convention: ``ag.sign(obj)`` returns a copy of ``obj`` whose
AxelGlobe asset hrefs are replaced by the presigned storage URLs they redirect to, so any
tool that reads a URL (stackstac, rasterio, rioxarray, GDAL, stac-asset, a browser, curl)
reads the file without a token and without following the redirect; ``ag.sign_inplace(obj)``
does the same in place and is a pystac-client ``modifier=``.

What is signed: every href on the API's origin (the one ``auth`` gets its token for), so
all of an item's assets, thumbnail and metadata included, unless ``assets=`` names some.
Hrefs elsewhere (already signed, another host, local paths) are left as they are and cost
nothing. Each href costs one request to the API (a redirect, never the file), cached per
process: signing the same href again while its URL is fresh sends nothing. Many hrefs are
resolved at once, at most ``max_workers`` (:data:`MAX_WORKERS`) requests in flight; the
token is fetched once. AxelGlobe items are also normalised (:func:`normalize_item`: media
types, eo band names, the ``ag`` extension), so ``modifier=ag.sign_inplace`` alone gives
the plain pystac-client the items ``ag.open()`` gives, signed.

**Presigned URLs expire** (AxelGlobe does not say when; assume minutes). Sign right before
another tool reads the files at once: a download, ``rasterio.open``, an eager
``stackstac.stack(...).compute()``. A lazy dask graph built on signed hrefs fails with 403
once they expire; for lazy or long work use :func:`pystac_axelglobe.load`, which signs each
asset at read time, on the worker that reads it, and again when the URL expires. Signed
URLs are credentials until then: do not log or share them.

Example:
    >>> import pystac_axelglobe as ag
    >>> signed = ag.sign(items)  # doctest: +SKIP
    >>> signed[0].assets["tci"].href  # doctest: +SKIP
    'https://storage.axelglobe.com/…/2021-05-12_…_tci.tif?X-Amz-Algorithm=…'
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pystac

from . import presigned
from .auth import default_auth
from .errors import ConfigurationError
from .extension import normalize_item

if TYPE_CHECKING:
    from .auth import AxelGlobeAuth

__all__ = ["MAX_WORKERS", "MIN_VALIDITY", "sign", "sign_inplace"]

#: Redirect requests in flight at once, at most, while signing many hrefs.
MAX_WORKERS = 16
#: Seconds a signed URL is valid for at least when :func:`sign` returns it (or half its
#: lifetime, if that is shorter): a cached URL closer to its expiry is resolved again.
MIN_VALIDITY = 120.0

T = TypeVar("T")


def sign(
    obj: T,
    *,
    auth: AxelGlobeAuth | None = None,
    assets: str | Iterable[str] | None = None,
    max_workers: int = MAX_WORKERS,
) -> T:
    """A copy of ``obj`` with presigned storage URLs for its AxelGlobe hrefs.

    ``obj`` is left untouched. Accepted: an href (the signed href is returned), a
    ``pystac.Asset``, ``Item``, ``ItemCollection`` or ``Collection``, a STAC dict (an item,
    a FeatureCollection page, a collection, ``{"collections": [...]}``, an asset), or a
    list or mapping of any of these (e.g. ``item.assets``). Only hrefs on the API's origin
    are signed (see the module's docstring); AxelGlobe items are normalised as by
    :func:`normalize_item`.

    Args:
        obj: What to sign.
        auth: The authorisation, which also says what the API's origin is; default: that
            of your last ``ag.open()`` in this process, else one from the ``AXELGLOBE_*``
            environment (needed only when ``obj`` holds http(s) hrefs).
        assets: Sign only the assets with these keys (a key or a list); default: all.
            Each key must be on at least one of the items.
        max_workers: Redirect requests in flight at once, at most.

    Returns:
        The signed copy (of the same type; mappings are copied as ``dict``).

    Raises:
        AssetError: An href could not be resolved (nothing is returned then).
        ConfigurationError: Bad ``assets`` or ``max_workers``, an asset key no item has, or
            no credentials in the environment; raised before any request.
        RestrictedError: AxelGlobe restricts this client for now.
        TypeError: ``obj`` is of another type (e.g. an ``ItemSearch``: sign its
            ``item_collection()``).

    Example:
        >>> signed = ag.sign(items, assets=["tci"])  # doctest: +SKIP
        >>> rasterio.open(signed[0].assets["tci"].href)  # doctest: +SKIP
        >>> ag.sign(item.assets["tci"].href)  # doctest: +SKIP
        'https://storage.axelglobe.com/…_tci.tif?X-Amz-Algorithm=…'
        >>> sign("out/x_tci.tif")  # not on the API (a local file): as it is, nothing sent
        'out/x_tci.tif'
    """
    if not isinstance(obj, str):
        _check_type(obj)
        obj = _copy(obj)
    signed: T = sign_inplace(obj, auth=auth, assets=assets, max_workers=max_workers)
    return signed


def sign_inplace(
    obj: Any,
    *,
    auth: AxelGlobeAuth | None = None,
    assets: str | Iterable[str] | None = None,
    max_workers: int = MAX_WORKERS,
) -> Any:
    """:func:`sign`, changing ``obj`` itself; returns it. pystac-client's ``modifier=``.

    Every href is resolved before anything is changed: when one fails, ``obj`` is left as
    it was. An href string cannot change in place: its signed copy is returned. (Typed as
    returning ``Any``, as the Planetary Computer SDK's: pystac-client's ``modifier=`` is
    typed as returning ``None``, and a type checker accepts only that or ``Any``.)

    Args:
        obj: What to sign (see :func:`sign`); mappings must be mutable.
        auth: See :func:`sign`.
        assets: See :func:`sign`.
        max_workers: See :func:`sign`.

    Returns:
        ``obj``, signed (for an href: the signed href).

    Raises:
        AssetError: An href could not be resolved; ``obj`` is unchanged.
        ConfigurationError: See :func:`sign`.
        RestrictedError: AxelGlobe restricts this client for now.
        TypeError: ``obj`` is of another type, or a read-only mapping.

    Example:
        >>> client = pystac_client.Client.open(
        ...     "https://api.axelglobe.com/stac/v1/catalogs/axelglobe",
        ...     request_modifier=ag.AxelGlobeAuth(), modifier=ag.sign_inplace,
        ... )  # doctest: +SKIP
        >>> items = client.search(max_items=10).item_collection()  # signed  # doctest: +SKIP
    """
    keys = _check_arguments(assets, max_workers)
    if isinstance(obj, (str, pystac.Asset)) and keys is not None:
        raise ConfigurationError("assets= chooses among the assets of items and collections; "
                                 "leave it out to sign one href or one Asset")
    if isinstance(obj, str):
        if not _is_http(obj):
            return obj
        auth = auth if auth is not None else default_auth()
        if not auth.is_api_url(obj):
            return obj
        return presigned.resolve(obj, auth=auth, min_validity=MIN_VALIDITY).url
    _check_type(obj)
    found = _Found(keys)
    _collect(obj, found)
    found.check_keys()
    if not any(_is_http(s.href) for s in found.slots):
        return obj  # nothing could be AxelGlobe's: no auth needed, nothing sent
    auth = auth if auth is not None else default_auth()
    slots = [s for s in found.slots if auth.is_api_url(s.href)]
    # Side by side, at most max_workers at once; the first failure stops the rest.
    urls = presigned.resolve_many([s.href for s in slots], auth=auth, max_workers=max_workers,
                                  min_validity=MIN_VALIDITY)
    # All resolved: now change obj. Normalising first: it reads the hrefs' file suffixes.
    for stac in found.stac:
        if any(auth.is_api_url(href) for href in _own_hrefs(stac)):
            normalize_item(stac)
    for slot in slots:
        slot.set(urls[slot.href].url)
    return obj


# --- arguments --------------------------------------------------------------------------------

def _check_arguments(assets: str | Iterable[str] | None,
                     max_workers: object) -> frozenset[str] | None:
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers must be a positive integer, got {max_workers!r}")
    if assets is None:
        return None
    keys = [assets] if isinstance(assets, str) else assets
    try:
        keys = list(keys)
    except TypeError:
        keys = None  # type: ignore[assignment]
    if not keys or any(not isinstance(k, str) or not k for k in keys):
        raise ConfigurationError(
            f"assets must be None (all), an asset key or a non-empty list of keys, got {assets!r}")
    return frozenset(keys)


_TYPES = (str, pystac.Asset, pystac.Item, pystac.ItemCollection, pystac.Collection, Mapping,
          list, tuple)


def _check_type(obj: object) -> None:
    if isinstance(obj, _TYPES):
        return
    hint = ""
    if callable(getattr(obj, "item_collection", None)):
        hint = "; for a search, sign its results: ag.sign(search.item_collection())"
    raise TypeError(
        "sign() takes an href, a pystac Asset, Item, ItemCollection or Collection, a STAC "
        f"dict, or a list or mapping of them, not {type(obj).__name__}{hint}")


# --- what to sign --------------------------------------------------------------------------

@dataclasses.dataclass
class _Slot:
    """Where an href lives: an attribute of a pystac object, or a key of a dict or list."""

    owner: Any
    key: Any
    href: str

    def set(self, url: str) -> None:
        if isinstance(self.owner, pystac.Asset):
            self.owner.href = url
        elif isinstance(self.owner, (MutableMapping, list)):
            self.owner[self.key] = url


@dataclasses.dataclass
class _Found:
    """The hrefs of an object to sign, and the items and collections in it."""

    keys: frozenset[str] | None
    slots: list[_Slot] = dataclasses.field(default_factory=list)
    #: pystac items and collections, or their dicts: normalised if they are AxelGlobe's
    stac: list[Any] = dataclasses.field(default_factory=list)
    keys_seen: set[str] = dataclasses.field(default_factory=set)
    any_assets: bool = False

    def add(self, owner: Any, key: Any, href: Any) -> None:
        if isinstance(href, str) and _is_http(href):
            if isinstance(owner, Mapping) and not isinstance(owner, MutableMapping):
                raise TypeError("sign_inplace() cannot change a read-only mapping; "
                                "use ag.sign(), which returns a signed copy")
            self.slots.append(_Slot(owner, key, href))

    def asset(self, key: str, owner: Any, href: Any) -> None:
        """An asset of an item or collection: signed if ``assets=`` selects its key."""
        self.any_assets = True
        self.keys_seen.add(key)
        if self.keys is None or key in self.keys:
            self.add(owner, "href", href)

    def check_keys(self) -> None:
        if self.keys is None or not self.any_assets:
            return
        unknown = sorted(self.keys - self.keys_seen)
        if unknown:
            raise ConfigurationError(
                f"no asset named {', '.join(map(repr, unknown))}; the assets are: "
                f"{', '.join(sorted(self.keys_seen))}")


def _is_http(href: str) -> bool:
    return urlsplit(href).scheme.lower() in ("http", "https")


def _own_hrefs(stac: Any) -> list[str]:
    """The asset hrefs and the self link of an item or collection (object or dict).

    One of them on the API's origin makes it AxelGlobe's, and so normalised.
    """
    if isinstance(stac, (pystac.Item, pystac.Collection)):
        self_href = stac.get_self_href()
        return [a.href for a in stac.assets.values()] + ([self_href] if self_href else [])
    hrefs = [a.get("href") for a in (stac.get("assets") or {}).values() if isinstance(a, Mapping)]
    hrefs += [link.get("href") for link in stac.get("links") or []
              if isinstance(link, Mapping) and link.get("rel") == "self"]
    return [h for h in hrefs if isinstance(h, str)]


@functools.singledispatch
def _collect(obj: Any, found: _Found) -> None:
    """Record the hrefs of ``obj`` (objects of other types, inside a mapping: none)."""


@_collect.register
def _(obj: pystac.Asset, found: _Found) -> None:
    found.add(obj, "href", obj.href)


@_collect.register
def _(obj: pystac.Item, found: _Found) -> None:
    found.stac.append(obj)
    for key, asset in obj.assets.items():
        found.asset(key, asset, asset.href)


@_collect.register
def _(obj: pystac.ItemCollection, found: _Found) -> None:
    for item in obj.items:
        _collect(item, found)


@_collect.register
def _(obj: pystac.Collection, found: _Found) -> None:
    found.stac.append(obj)
    for key, asset in obj.assets.items():
        found.asset(key, asset, asset.href)


@_collect.register(list)
@_collect.register(tuple)
def _(obj: list[Any] | tuple[Any, ...], found: _Found) -> None:
    for index, value in enumerate(obj):
        if isinstance(value, str):
            if isinstance(obj, list):
                found.add(obj, index, value)
        else:
            _collect(value, found)


@_collect.register(Mapping)
def _(obj: Mapping[Any, Any], found: _Found) -> None:
    kind = obj.get("type")
    if kind in ("Feature", "Collection"):
        _collect_stac_dict(obj, found)
    elif kind == "FeatureCollection":
        for feature in obj.get("features") or []:
            _collect(feature, found)
    elif isinstance(obj.get("collections"), list):  # a page of /collections
        for collection in obj["collections"]:
            _collect(collection, found)
    elif isinstance(obj.get("href"), str):
        if "rel" not in obj:  # an asset dict; a link is not an asset
            found.add(obj, "href", obj["href"])
    else:  # a mapping of hrefs, assets, items...
        for key, value in obj.items():
            if isinstance(value, str):
                found.add(obj, key, value)
            else:
                _collect(value, found)


def _collect_stac_dict(obj: Mapping[Any, Any], found: _Found) -> None:
    """An item or collection dict: itself (its own links) and its assets' hrefs."""
    found.stac.append(obj)
    assets = obj.get("assets")
    for key, asset in (assets.items() if isinstance(assets, Mapping) else ()):
        if isinstance(asset, Mapping):
            found.asset(key, asset, asset.get("href"))


# --- copying ----------------------------------------------------------------------------------

def _copy(obj: Any) -> Any:
    """A copy that :func:`sign_inplace` may change without touching ``obj``."""
    if isinstance(obj, (pystac.Asset, pystac.Item, pystac.ItemCollection, pystac.Collection)):
        return obj.clone()
    if isinstance(obj, Mapping):
        return {key: _copy(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_copy(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_copy(value) for value in obj)
    return obj  # str, numbers, None, and objects sign() does not look into
