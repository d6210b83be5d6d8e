"""stac-geoparquet for ``search --save``: one schema for pages whose fields come and drift.

A parquet file has one schema, fixed before its first row, while a search's later pages
may bring a property, an asset or a field that no earlier item had, or give a field a type
it did not have before (a platform that was text becomes a number). :class:`ParquetWriter`
converts each chunk of :data:`PARQUET_CHUNK_ITEMS` items to Arrow with stac-geoparquet as
it arrives and keeps it on disk (an Arrow IPC part), and widens one schema as the chunks
come (:func:`merge_types`):

- a field that only later items have is added (earlier rows get nulls there);
- an integer field that later holds fractions becomes floating point (Arrow's promotion);
- a field whose values are of different JSON kinds (text and numbers, true/false and
  numbers, an object and a list), in one chunk or across chunks, becomes text: strings
  stay as they are, anything else is written as its JSON text (:func:`as_text`), and the
  writer's :attr:`~ParquetWriter.notes` name the field. No item is dropped and no drift
  is an error; the same items give the same file however the pages or chunks fall.

At the end the parts are written, in order and one at a time, into one parquet file under
that schema (:func:`conform`).

Example:
    >>> merge_types(pa.int64(), pa.string(), "platform", drifted := set())
    DataType(string)
    >>> drifted
    {'platform'}
    >>> conform(pa.array([1, None, 2]), pa.string()).to_pylist()
    ['1', None, '2']
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import shapely.errors

from ._save import ItemWriter
from .errors import ConfigurationError

#: Items converted to Arrow at once: the parquet writer's memory is bounded by this many
#: items (and the pages in flight), whatever the search finds. Larger chunks cost fewer
#: conversions.
PARQUET_CHUNK_ITEMS = 500
#: What stac-geoparquet raises for items it cannot convert (Arrow's errors are ValueError
#: and TypeError; a geometry shapely cannot read, an ``assets`` that is not an object).
_CONVERSION_ERRORS = (ValueError, TypeError, KeyError, AttributeError,
                      shapely.errors.ShapelyError)
#: Parts of an item that stac-geoparquet converts itself (to WKB, to a bbox struct): never
#: rewritten as text. ``proj:geometry`` is skipped wherever it is.
_OWN_FIELDS = ("type", "stac_version", "id", "geometry", "bbox")
_LIST = "[]"  # a path's step into a list's elements

FieldPath = tuple[str, ...]


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind))


def merge_types(a: pa.DataType, b: pa.DataType, path: str, drifted: set[str]) -> pa.DataType:
    """A type that holds values of both ``a`` and ``b``; text where none does.

    Structs merge field by field (``a``'s fields first), lists by their values; types of
    one JSON kind as Arrow promotes them (int to float; null to anything). Types of
    different kinds (text and a number, true/false and a number, a struct and a list) give
    text, and add ``path`` to ``drifted``.

    Example:
        >>> merge_types(pa.struct({"a": pa.int64()}), pa.struct({"a": pa.float64(),
        ...             "b": pa.string()}), "x", set())
        StructType(struct<a: double, b: string>)
    """
    if a == b:
        return a
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return pa.struct(_merge_fields(list(a), list(b), f"{path}.", drifted))
    if _is_list(a) and _is_list(b):
        value = merge_types(a.value_type, b.value_type, path + _LIST, drifted)
        both_small = pa.types.is_list(a) and pa.types.is_list(b)
        return pa.list_(value) if both_small else pa.large_list(value)
    # Not Arrow's promotion alone: it would make true 1.0 beside a float
    if _family(a) == _family(b) or pa.types.is_null(a) or pa.types.is_null(b):
        try:
            schemas = [pa.schema([pa.field("x", a)]), pa.schema([pa.field("x", b)])]
            return pa.unify_schemas(schemas, promote_options="permissive").field("x").type
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass
    drifted.add(path)
    return pa.string()


def _family(kind: pa.DataType) -> str:
    """The JSON kind an Arrow type holds, so that types of one kind merge and no others."""
    for name, test in (("number", pa.types.is_integer), ("number", pa.types.is_floating),
                       ("number", pa.types.is_decimal), ("text", pa.types.is_string),
                       ("text", pa.types.is_large_string), ("time", pa.types.is_timestamp)):
        if test(kind):
            return name
    return str(kind)


def _merge_fields(a: list[pa.Field], b: list[pa.Field], prefix: str,
                  drifted: set[str]) -> list[pa.Field]:
    """``a``'s fields merged with ``b``'s of the same name, then ``b``'s new ones."""
    others = {field.name: field for field in b}
    merged = [field.with_type(merge_types(field.type, others[field.name].type,
                                          prefix + field.name, drifted)).with_nullable(True)
              if field.name in others else field for field in a]
    names = {field.name for field in a}
    return merged + [field for field in b if field.name not in names]


def merge_schemas(a: pa.Schema, b: pa.Schema, drifted: set[str]) -> pa.Schema:
    """:func:`merge_types` for two tables' schemas; ``a``'s metadata (geoarrow's) is kept."""
    if a.equals(b):
        return a
    return pa.schema(_merge_fields(list(a), list(b), "", drifted), metadata=a.metadata)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON has it: without the nulls Arrow gives a key an item did not have."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.hex()
    return value


def as_text(value: Any) -> str | None:
    """A value of a field that became text: a string as it is, anything else as JSON.

    Example:
        >>> as_text("GRUS-1A"), as_text(1), as_text({"a": [1, None], "b": None}), as_text(None)
        ('GRUS-1A', '1', '{"a":[1,null]}', None)
    """
    if value is None or isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), separators=(",", ":"), default=str)


def conform(array: pa.Array, target: pa.DataType) -> pa.Array:
    """``array`` as ``target`` has it: fields added as nulls, numbers widened, drift as text.

    ``target`` is a :func:`merge_types` of ``array``'s type (and others).

    Example:
        >>> kind = pa.struct({"a": pa.string(), "b": pa.int64()})
        >>> conform(pa.array([{"a": 1}, None]), kind).to_pylist()
        [{'a': '1', 'b': None}, None]
    """
    source = array.type
    if source == target:
        return array
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        # flatten() applies the struct's offset (a sliced array) to its children
        children = dict(zip([field.name for field in source], array.flatten(), strict=True))
        columns = [conform(children[field.name], field.type) if field.name in children
                   else pa.nulls(len(array), field.type) for field in target]
        return pa.StructArray.from_arrays(columns, fields=list(target), mask=array.is_null())
    if _is_list(source) and _is_list(target):
        kind = pa.LargeListArray if pa.types.is_large_list(target) else pa.ListArray
        offsets = array.offsets.cast(pa.int64() if kind is pa.LargeListArray else pa.int32())
        return kind.from_arrays(offsets, conform(array.values, target.value_type),
                                type=target, mask=array.is_null())
    if pa.types.is_string(target) and not (pa.types.is_null(source)
                                           or pa.types.is_string(source)
                                           or pa.types.is_large_string(source)):
        return pa.array([as_text(v) for v in array.to_pylist()], pa.string())
    return array.cast(target)


def _kinds(value: Any, path: FieldPath, seen: dict[FieldPath, set[type]]) -> None:
    """Record the JSON kind of ``value`` and of everything in it, by path."""
    if value is None or path[-1] == "proj:geometry":  # null fits any kind; WKB later
        return
    kind = float if isinstance(value, int | float) and not isinstance(value, bool) else type(
        value)
    seen.setdefault(path, set()).add(kind)
    if isinstance(value, dict):
        for key, inner in value.items():
            _kinds(inner, (*path, key), seen)
    elif isinstance(value, list):
        for inner in value:
            _kinds(inner, (*path, _LIST), seen)


def drifting_paths(items: Sequence[dict[str, Any]]) -> set[FieldPath]:
    """The outermost paths where ``items`` give values of different JSON kinds.

    Example:
        >>> sorted(drifting_paths([{"properties": {"p": "a", "q": [1, "b"]}},
        ...                        {"properties": {"p": 2, "q": None}}]))
        [('properties', 'p'), ('properties', 'q', '[]')]
    """
    seen: dict[FieldPath, set[type]] = {}
    for item in items:
        for key, value in item.items():
            if key not in _OWN_FIELDS:
                _kinds(value, (key,), seen)
    drifting = {path for path, kinds in seen.items() if len(kinds) > 1}
    return {path for path in drifting if not any(path[:n] in drifting
                                                 for n in range(1, len(path)))}


def _texted(value: Any, path: FieldPath, paths: set[FieldPath], prefixes: set[FieldPath]) -> Any:
    """``value`` with the values at ``paths`` in it made text (copied along the way)."""
    if path in paths:
        return as_text(value)
    if path not in prefixes:
        return value
    if isinstance(value, dict):
        return {k: _texted(v, (*path, k), paths, prefixes) for k, v in value.items()}
    if isinstance(value, list):
        return [_texted(v, (*path, _LIST), paths, prefixes) for v in value]
    return value


def label(path: FieldPath) -> str:
    """A path as the parquet file's columns name it (properties are columns of their own).

    Example:
        >>> label(("properties", "eo:bands", "[]", "name")), label(("assets", "tci", "title"))
        ('eo:bands[].name', 'assets.tci.title')
    """
    steps = path[1:] if path[0] == "properties" and len(path) > 1 else path
    return ".".join(steps).replace("." + _LIST, _LIST)


def to_arrow(items: Sequence[dict[str, Any]], drifted: set[str]) -> pa.Table:
    """``items`` converted by stac-geoparquet, with the fields whose values drift as text.

    A field whose values are of different JSON kinds in ``items`` (:func:`drifting_paths`)
    is made text first (its :func:`label` added to ``drifted``): Arrow would refuse text
    and numbers in one column, and silently read ``true`` as ``1.0`` beside fractions.

    Raises:
        ConfigurationError: items stac-geoparquet cannot convert even so (an invalid
            geometry or datetime, say).

    Example:
        >>> items = [{"type": "Feature", "id": str(n), "bbox": [0, 0, 1, 1], "geometry":
        ...           {"type": "Point", "coordinates": [0, 0]}, "links": [], "assets": {},
        ...           "properties": {"datetime": "2021-05-01T00:00:00Z", "platform": p}}
        ...          for n, p in enumerate(["GRUS-1A", 1])]
        >>> to_arrow(items, drifted := set())["platform"].to_pylist(), drifted
        (['GRUS-1A', '1'], {'platform'})
    """
    from stac_geoparquet.arrow import parse_stac_items_to_arrow

    paths = drifting_paths(items)
    if paths:
        prefixes = {path[:n] for path in paths for n in range(len(path))}
        items = [_texted(item, (), paths, prefixes) for item in items]
        drifted |= {label(path) for path in paths}
    try:
        return parse_stac_items_to_arrow(items, schema="FullFile").read_all()
    except _CONVERSION_ERRORS as err:
        raise ConfigurationError(f"these items cannot be written as stac-geoparquet ({err}); "
                                 "save them as .ndjson or .json instead") from err


class ParquetWriter(ItemWriter):
    """stac-geoparquet: chunks to Arrow IPC parts as they arrive, then one parquet file.

    Each part keeps the schema its own items give; :attr:`schema` merges them
    (:func:`merge_schemas`), and :attr:`drifted` names the fields written as text.
    """

    def __init__(self, path: Path, chunk_items: int | None = None) -> None:
        super().__init__(path)
        self.chunk_items = chunk_items or PARQUET_CHUNK_ITEMS
        self.schema: pa.Schema | None = None
        #: Fields whose values were of different kinds, written as text (by :func:`label`).
        self.drifted: set[str] = set()
        self._buffer: list[dict[str, Any]] = []
        self._parts: list[Path] = []

    @property
    def notes(self) -> list[str]:
        """One line naming the fields written as text, if any."""
        if not self.drifted:
            return []
        return [f"{', '.join(sorted(self.drifted))}: values of different types in these "
                f"items, written as text in {self.path.name} (.ndjson and .json keep each "
                "value as it is)"]

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        self._buffer.extend(items)
        self.count += len(items)
        if len(self._buffer) >= self.chunk_items:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = to_arrow(self._buffer, self.drifted)
        self._buffer = []
        self.schema = table.schema if self.schema is None else merge_schemas(
            self.schema, table.schema, self.drifted)
        # beside the output, in a folder of their own: no FILE name can be a part's
        part = self.path.parent / "parts" / f"{len(self._parts):06d}.arrow"
        part.parent.mkdir(exist_ok=True)
        with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(
                sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as ipc:
            ipc.write_table(table)
        self._parts.append(part)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        """Every part's batches, in order, as :attr:`schema` has them (:func:`conform`)."""
        assert self.schema is not None
        for part in self._parts:
            with pa.memory_map(str(part)) as source:
                reader = pa.ipc.open_file(source)
                for index in range(reader.num_record_batches):
                    yield _conformed(reader.get_batch(index), self.schema)

    def finish(self) -> None:
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


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` under ``schema``: its columns conformed, the ones it lacks all nulls."""
    names = set(batch.schema.names)
    columns = [conform(batch.column(field.name), field.type) if field.name in names
               else pa.nulls(batch.num_rows, field.type) for field in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_MINIMAL_ITEM: dict[str, Any] = {
    "type": "Feature", "stac_version": "1.0.0", "id": "", "collection": "",
    "geometry": {"type": "Point", "coordinates": [0.0, 0.0]}, "bbox": [0.0, 0.0, 0.0, 0.0],
    "properties": {"datetime": "1970-01-01T00:00:00Z"}, "links": [], "assets": {}}
