"""Write search results to a file as the pages arrive: GeoJSON, NDJSON or stac-geoparquet.

``axelglobe search --save FILE`` hands each page of items to a writer and forgets it, so
memory stays flat however many items a search finds. The format follows FILE's suffix
(:func:`format_of`):

- ``json`` (``.json``, ``.geojson``, any other suffix): a GeoJSON FeatureCollection, the same
  bytes ``json.dumps(search.item_collection_as_dict(), indent=2)`` gives, item by item;
- ``ndjson`` (``.ndjson``, ``.jsonl``): one item a line;
- ``parquet`` (``.parquet``, ``.geoparquet``): stac-geoparquet, through the stac-geoparquet
  library (the ``[parquet]`` extra). A parquet file has one schema, fixed before its first
  row, while a later page may bring a property or an asset no earlier item had: each chunk of
  :data:`PARQUET_CHUNK_ITEMS` items is converted to Arrow as it arrives and kept in an Arrow
  IPC part file, their schemas unified; at the end the parts are written, in order, into one
  parquet file under the unified schema, one chunk in memory at a time.

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
from typing import IO, TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

#: The formats, by name (``--format``).
FORMATS = ("json", "ndjson", "parquet")
#: Suffixes (lower case) that choose a format other than ``json``.
SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet",
            ".geoparquet": "parquet"}
#: Items converted to Arrow at once: the parquet writer's memory is bounded by this many
#: items (and one page), whatever the search finds. Larger chunks cost fewer conversions.
PARQUET_CHUNK_ITEMS = 500
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

    def finish(self) -> None:
        self._file.write("\n  ]\n}\n" if self.count else "]\n}\n")
        super().finish()


class ParquetWriter(ItemWriter):
    """stac-geoparquet: chunks to Arrow IPC parts as they arrive, then one parquet file.

    Each part keeps the schema its own items give; :attr:`schema` is their union (a field
    that only later items have is added, an int that becomes a float is widened). Two items
    giving one field incompatible types (text and a number) cannot share a column: that is
    a :class:`ConfigurationError` naming the field, raised as soon as the page arrives.
    """

    def __init__(self, path: Path, chunk_items: int | None = None) -> None:
        super().__init__(path)
        self.chunk_items = chunk_items or PARQUET_CHUNK_ITEMS
        self.schema: pa.Schema | None = None
        self._buffer: list[dict[str, Any]] = []
        self._parts: list[Path] = []

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        self._buffer.extend(items)
        self.count += len(items)
        if len(self._buffer) >= self.chunk_items:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        from stac_geoparquet.arrow import parse_stac_items_to_arrow

        if not self._buffer:
            return
        table = parse_stac_items_to_arrow(self._buffer, schema="FullFile").read_all()
        self._buffer = []
        try:
            self.schema = table.schema if self.schema is None else pa.unify_schemas(
                [self.schema, table.schema], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as err:
            raise ConfigurationError(
                f"these items cannot share one stac-geoparquet schema ({err}); save them "
                "as .ndjson or .json instead") from err
        # beside the output, in a folder of their own: no FILE name can be a part's
        part = self.path.parent / "parts" / f"{len(self._parts):06d}.arrow"
        part.parent.mkdir(exist_ok=True)
        with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(
                sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as ipc:
            ipc.write_table(table)
        self._parts.append(part)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        """Every part's batches, in order, as :attr:`schema` has them (nulls where absent)."""
        import pyarrow as pa

        assert self.schema is not None
        for part in self._parts:
            with pa.memory_map(str(part)) as source:
                reader = pa.ipc.open_file(source)
                for index in range(reader.num_record_batches):
                    batch = reader.get_batch(index)
                    columns = [batch.column(field.name).cast(field.type)
                               if field.name in batch.schema.names
                               else pa.nulls(batch.num_rows, field.type)
                               for field in self.schema]
                    yield pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def finish(self) -> None:
        import pyarrow as pa
        from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

        self._flush()
        if self.schema is None:
            # No items: still a valid stac-geoparquet file (zero rows), so FILE always says
            # what this search found. Its schema comes from one minimal item.
            empty = parse_stac_items_to_arrow([_MINIMAL_ITEM], schema="FullFile").read_all()
            to_parquet(empty.slice(0, 0), self.path)
        else:
            to_parquet(pa.RecordBatchReader.from_batches(self.schema, self._batches()),
                       self.path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before the rename makes it FILE (a crash)
        finally:
            os.close(fd)


_MINIMAL_ITEM: dict[str, Any] = {
    "type": "Feature", "stac_version": "1.0.0", "id": "", "collection": "",
    "geometry": {"type": "Point", "coordinates": [0.0, 0.0]}, "bbox": [0.0, 0.0, 0.0, 0.0],
    "properties": {"datetime": "1970-01-01T00:00:00Z"}, "links": [], "assets": {}}

_WRITERS: dict[str, type[ItemWriter]] = {"json": JsonWriter, "ndjson": NdjsonWriter,
                                         "parquet": ParquetWriter}


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
        writer = _WRITERS[fmt](staging / path.name)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        os.replace(writer.path, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
