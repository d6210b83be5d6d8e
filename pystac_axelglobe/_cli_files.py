"""The files the ``axelglobe`` command reads: a GeoJSON AOI and a saved ItemCollection.

Each is checked before anything is sent (:func:`read_json_file`): a file that is not what
it should be is a usage error (exit 2) naming the file and the problem, never a hang on a
FIFO, a megabytes-long parse of a disk image or a recursion error.

Example:
    >>> depth_exceeds({"a": [[1]]}, 2)
    True
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._cli_errors import one_line

if TYPE_CHECKING:
    import pystac


#: The largest GeoJSON or ItemCollection file read (a mistaken path could name a disk image).
MAX_JSON_FILE = 256 * 1024 * 1024
#: Deeper JSON is refused: GeoJSON needs about 8 levels, a STAC ItemCollection a few more;
#: a pathologically nested file would exhaust the recursion of the parsers behind us.
MAX_JSON_DEPTH = 64


def depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists/dicts more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else ())
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def read_json_file(path: Path, hint: str) -> Any:
    """The JSON in ``path``, or a usage error saying what is wrong with the file.

    Refused before parsing: anything but a regular file (a FIFO would block forever, a
    device never end), more than :data:`MAX_JSON_FILE` bytes; then text that is not UTF-8,
    HTML, invalid JSON, and nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    def bad(reason: str) -> click.BadParameter:
        return click.BadParameter(f"{path} {reason}", param_hint=hint)

    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise bad(f"cannot be opened: {err.strerror or err}") from err
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise bad("is not a regular file (a FIFO, a device or a socket?); give a file")
        raw = handle.read(MAX_JSON_FILE + 1)
    if len(raw) > MAX_JSON_FILE:
        raise bad(f"is larger than {MAX_JSON_FILE // 2**20} MiB; give a smaller file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise bad(f"is not UTF-8 text (a binary file?): byte {err.start} cannot be "
                  "decoded") from err
    if re.match(r"\s*<(!doctype|html|head|body|\?xml)", text, re.I):
        raise bad("is an HTML or XML page, not JSON (saved from a browser?); give a GeoJSON "
                  "or STAC JSON file")
    try:
        data = json.loads(text)
    except RecursionError:
        raise bad(f"is nested more than {MAX_JSON_DEPTH} levels deep; that is no GeoJSON or "
                  "STAC file") from None
    except ValueError as err:
        raise bad(f"is not valid JSON: {err}") from err
    if depth_exceeds(data, MAX_JSON_DEPTH):
        raise bad(f"is nested more than {MAX_JSON_DEPTH} levels deep; that is no GeoJSON or "
                  "STAC file")
    return data


def read_geometry(path: Path) -> dict[str, Any]:
    """The geometry of a GeoJSON file: a geometry, a Feature or a FeatureCollection (union)."""
    data = read_json_file(path, "'--intersects'")
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        import shapely.geometry
        from shapely import unary_union

        try:
            geoms = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])
                     if f.get("geometry")]
        except Exception as err:  # shapely raises several types for broken GeoJSON
            raise click.BadParameter(f"{path} holds a feature that is not valid GeoJSON: "
                                     f"{err!r}", param_hint="'--intersects'") from err
        if not geoms:
            raise click.BadParameter(f"{path} holds no geometry", param_hint="'--intersects'")
        data = shapely.geometry.mapping(unary_union(geoms))
    if not isinstance(data, dict) or "type" not in data:
        raise click.BadParameter(f"{path} is not GeoJSON", param_hint="'--intersects'")
    return dict(data)


def read_items(path: Path) -> list[pystac.Item]:
    """The items of a saved ItemCollection (``axelglobe search --save FILE``)."""
    import pystac

    data = read_json_file(path, "'ITEMS_FILE'")
    try:
        return list(pystac.ItemCollection.from_dict(data))
    except Exception as err:  # pystac raises many types for a file that is not STAC
        raise click.BadParameter(f"{path} is not a STAC ItemCollection: {one_line(err)}",
                                 param_hint="'ITEMS_FILE'") from err
