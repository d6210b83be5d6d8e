"""Write search results to a file as the pages arrive: GeoJSON, NDJSON or stac-geoparquet.

``axelglobe search --save FILE`` hands each page of items to a writer and forgets it, so
memory stays flat however many items a search finds. The format follows FILE's suffix
(:func:`format_of`):

- ``json`` (``.json``, ``.geojson``, any other suffix): a GeoJSON FeatureCollection, the same
  bytes ``json.dumps(search.item_collection_as_dict(), indent=2)`` gives, item by item;
- ``ndjson`` (``.ndjson``, ``.jsonl``): one item a line;
- ``parquet`` (``.parquet``, ``.geoparquet``): stac-geoparquet, through the stac-geoparquet
  library (the ``[parquet]`` extra), by :class:`~pystac_axelglobe._parquet.ParquetWriter`:
  chunks of items to Arrow as they arrive, one parquet file at the end under a schema that
  takes in what later pages bring (new fields, and fields whose type drifts, as text).

Writes are atomic: everything goes to a private folder beside FILE (``.FILE.XXXX.partial``,
made by ``mkdtemp``: created exclusively, mode 0700, so no one can plant a link in it), and
FILE appears only at the end, by rename. On any error or Ctrl-C the folder is removed and
FILE is as it was.

Example:
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "items.ndjson"
    ...     with save_items(path, format_of(path)) as writer:
    ...         writer.write([{"type": "Feature", "id": "a"}])
    ...     print(path.read_text(), end="")
    {"type":"Feature","id":"a"}
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from .errors import ConfigurationError

#: The formats, by name (``--format``).
FORMATS = ("json", "ndjson", "parquet")
#: Suffixes (lower case) that choose a format other than ``json``.
SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet",
            ".geoparquet": "parquet"}
#: What the parquet format needs besides the core.
PARQUET_MODULES = ("pyarrow", "stac_geoparquet")
_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def format_of(path: Path, override: str | None = None) -> str:
    """The format to write ``path`` in: ``override``, else the one its suffix names.

    Example:
        >>> format_of(Path("a.parquet")), format_of(Path("a.geojson")), format_of(Path("a"))
        ('parquet', 'json', 'json')
    """
    if override is not None:
        if override not in FORMATS:
            raise ConfigurationError(f"unknown format {override!r}; give one of "
                                     f"{', '.join(FORMATS)}")
        return override
    return SUFFIXES.get(path.suffix.lower(), "json")


def require(fmt: str, what: str) -> None:
    """Raise a :class:`ConfigurationError` saying what to install if ``fmt`` needs an extra.

    Called before a search sends anything. ``what`` names the command for the message.

    Example:
        >>> require("json", "axelglobe search --save items.json")
    """
    if fmt != "parquet":
        return
    # find_spec is None for a module absent, or hidden as None in sys.modules
    if any(importlib.util.find_spec(name) is None for name in PARQUET_MODULES):
        raise ConfigurationError(f'{what} needs the [parquet] extra: pip install '
                                 '"pystac-axelglobe[parquet]"')


class ItemWriter:
    """Writes items to one file, page after page; :meth:`finish` completes the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: How many items were written.
        self.count = 0

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        """Add these items (STAC item dicts, as a search page has them) after the others."""
        raise NotImplementedError

    @property
    def notes(self) -> list[str]:
        """What the user should know about the file written (one line each), if anything."""
        return []

    def finish(self) -> None:
        """Complete the file: nothing is written after this."""

    def abort(self) -> None:
        """Release what the writer holds open; the file is abandoned."""


class _TextWriter(ItemWriter):
    """The file opened as :func:`save_items` promises: exclusively, never through a link."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # 0o666 less the umask: the mode a plain open() would give the finished file
        self._file: IO[str] = open(os.open(path, _OPEN_FLAGS, 0o666), "w", encoding="utf-8")

    def finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())  # on disk before the rename makes it FILE (a crash)
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class NdjsonWriter(_TextWriter):
    """One item a line, compact."""

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        self._file.writelines(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
        self._file.flush()  # each page on disk as it arrives, not in a buffer
        self.count += len(items)


class JsonWriter(_TextWriter):
    """A GeoJSON FeatureCollection: a header, the items, a footer.

    Byte for byte ``json.dumps({"type": "FeatureCollection", "features": items},
    indent=2)`` and a newline, without holding ``items``.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file.write('{\n  "type": "FeatureCollection",\n  "features": [')

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        for item in items:
            # json indents each level by 2: an item inside "features" is 4 deeper
            text = json.dumps(item, indent=2).replace("\n", "\n    ")
            self._file.write((",\n    " if self.count else "\n    ") + text)
            self.count += 1
        self._file.flush()  # each page on disk as it arrives, not in a buffer

    def finish(self) -> None:
        self._file.write("\n  ]\n}\n" if self.count else "]\n}\n")
        super().finish()


def _writer(fmt: str, path: Path) -> ItemWriter:
    if fmt == "parquet":  # pyarrow and stac-geoparquet: the [parquet] extra, see require()
        from ._parquet import ParquetWriter

        return ParquetWriter(path)
    return {"json": JsonWriter, "ndjson": NdjsonWriter}[fmt](path)


@contextlib.contextmanager
def save_items(path: Path, fmt: str) -> Iterator[ItemWriter]:
    """A writer of items to ``path`` in ``fmt``; ``path`` appears only if the block succeeds.

    The file is written in a private folder beside ``path`` and renamed onto it at the end
    (replacing a file, or a link, already there). An exception, Ctrl-C included, leaves
    ``path`` as it was and removes the folder.

    Example:
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "items.json"
        ...     with save_items(path, "json") as writer:
        ...         writer.write([{"id": "a"}])
        ...     json.loads(path.read_text())["features"]
        [{'id': 'a'}]
    """
    require(fmt, f"saving {path.name}")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial",
                                    dir=path.parent))
    try:
        writer = _writer(fmt, staging / path.name)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        os.replace(writer.path, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
