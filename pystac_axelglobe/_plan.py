"""What :func:`~pystac_axelglobe.downloads.download` checks and names before anything is sent.

Arguments are checked, every item and asset is turned into a :class:`Task` (which href,
saved where), and names that cannot be one folder or file name (``/``, a backslash,
NUL, ``..``, too long) or that clash with another file's temporaries are refused, all with a
:class:`~pystac_axelglobe.errors.ConfigurationError` that says what to do.

Example:
    >>> check_name("a.tif", "file name")
    'a.tif'
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pystac

from ._redact import redact
from .errors import ConfigurationError

#: The longest file name whose temporaries (``.part.json``) still fit in 255 bytes.
MAX_NAME = 255 - len(".part.json")


@dataclasses.dataclass
class Task:
    """One file to download: which asset of which item, from where, to where."""

    item_id: str
    key: str
    href: str
    dest: Path

    @property
    def name(self) -> str:
        return f"{self.item_id}/{self.key}"


def check_arguments(assets: str | Sequence[str] | None, directory: object, max_workers: object,
                     overwrite: object, progress: object) -> list[str] | None:
    """The asset keys asked for (``None``: all), once every argument is known to be usable."""
    if isinstance(assets, str):
        assets = [assets]
    if assets is not None:
        assets = list(assets)
        if not assets or any(not isinstance(a, str) for a in assets):
            raise ConfigurationError(
                "assets must be None (all), an asset key or a non-empty list of keys, "
                f"got {assets!r}"
            )
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers must be a positive integer, got {max_workers!r}")
    for name, flag in (("overwrite", overwrite), ("progress", progress)):
        if not isinstance(flag, bool):
            raise ConfigurationError(f"{name} must be True or False, got {flag!r}")
    if not isinstance(directory, (str, os.PathLike)) or isinstance(directory, bytes):
        raise ConfigurationError(
            f"directory must be a folder path (str or pathlib.Path), got {directory!r}")
    text = os.fspath(directory)
    if not isinstance(text, str) or not text.strip() or "\0" in text:
        raise ConfigurationError(
            f"directory must be a folder path (str or pathlib.Path), got {directory!r}")
    return assets


def download_root(directory: str | os.PathLike[str]) -> Path:
    """The absolute download directory (it may not exist yet, but must not be a file)."""
    root = Path(directory).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigurationError(f"directory {str(root)!r} exists and is not a folder")
    return root


def check_name(name: object, what: str) -> str:
    """``name`` if it can be one file or folder name in any directory, else raise."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(
        c in name for c in ("/", "\\", "\0")
    ):
        raise ConfigurationError(f"{what} {name!r} cannot be used as a file or folder name")
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise ConfigurationError(f"{what} {name!r} cannot be encoded as a file name") from None
    if size > MAX_NAME:
        raise ConfigurationError(f"{what} {name[:40]!r}... is too long for a file name")
    return name


def name_files(
    items: list[pystac.Item], keys: list[str] | None, directory: Path
) -> list[tuple[pystac.Item, list[Task]]]:
    """Check everything and name every file before any request is sent."""
    plan: list[tuple[pystac.Item, list[Task]]] = []
    by_dest: dict[Path, str] = {}
    for item in items:
        item_id = check_name(item.id, "item id")
        wanted = list(item.assets) if keys is None else keys
        missing = [k for k in wanted if k not in item.assets]
        if missing:
            raise ConfigurationError(
                f"item {item_id} has no asset(s) {', '.join(map(repr, missing))}; "
                f"it has: {', '.join(sorted(item.assets)) or 'none'}"
            )
        tasks: list[Task] = []
        for key in wanted:
            href = _absolute_href(item, key)
            name = check_name(unquote(urlsplit(href).path.rsplit("/", 1)[-1]),
                               f"the file name of asset {item_id}/{key}")
            dest = directory / item_id / name
            other = by_dest.get(dest)
            if other is not None and other != href:
                raise ConfigurationError(
                    f"two different assets would be saved as {dest}: {redact(other)} and "
                    f"{redact(href)}; download them in separate calls (assets=...) into "
                    "different directories"
                )
            by_dest[dest] = href
            tasks.append(Task(item_id, key, href, dest))
        plan.append((item, tasks))
    _refuse_temporary_names(by_dest)
    return plan


def _absolute_href(item: pystac.Item, key: str) -> str:
    href = item.assets[key].href
    if not urlsplit(href).scheme and not href.startswith(("/", "\\")) and not (
        len(href) > 1 and href[1] == ":"
    ):
        # A relative href is relative to the item's own (API) location.
        href = item.assets[key].get_absolute_href() or href
    if urlsplit(href).scheme.lower() not in ("http", "https"):
        raise ConfigurationError(
            f"asset {item.id}/{key} has href {redact(href)!r}, which is not an http(s) URL "
            "(already downloaded?); pass items as the API returned them"
        )
    return href


def _refuse_temporary_names(by_dest: dict[Path, str]) -> None:
    """Refuse a file named like another's temporaries (``x.tif`` and ``x.tif.part``)."""
    for dest in by_dest:
        for suffix in (".part", ".part.json"):
            clash = dest.with_name(dest.name + suffix)
            if clash in by_dest:
                raise ConfigurationError(
                    f"{clash.name} is the name of an asset and of the partial download of "
                    f"{dest.name} in {dest.parent}; download these assets in separate calls "
                    "(assets=...) into different directories"
                )


def is_complete(root: Path, task: Task) -> bool:
    """Whether the file is in place: a regular file in a real folder (no link followed)."""
    try:
        folder = os.lstat(root / task.item_id)
        found = os.lstat(task.dest)
    except OSError:
        return False
    return stat.S_ISDIR(folder.st_mode) and stat.S_ISREG(found.st_mode)


__all__ = [
    "MAX_NAME",
    "Task",
    "check_arguments",
    "check_name",
    "download_root",
    "is_complete",
    "name_files",
]
