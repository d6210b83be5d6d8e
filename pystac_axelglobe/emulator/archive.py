"""The emulator's synthetic GRUS-1 archive: deterministic items and real COG files.

The archive is generated on first use into a cache folder (seconds for ``scale="small"``)
and loaded from its index afterwards (milliseconds). Layout of an archive folder::

    items.json       {"archive_version", "scale", "built_with", "features": [STAC item dicts]}
    collection.json  the grus-1 collection, as in the provider's guide
    files/{item_id}/{YYYY-MM-DD}_{item_id}_{key}.{ext}

Item and collection hrefs contain the placeholder ``{api_root}``; :meth:`Archive.items` and
:meth:`Archive.collection` replace it with the root the emulator serves. This module builds,
keeps and loads archives; :mod:`.scenes` plans the captures and their items, :mod:`.pixels`
computes and writes the rasters.

Scenes (designed so that the guide's search scenarios give distinct, non-trivial answers):

- Japan (EPSG:32653, around lon 135.5, lat 35.5, inside bbox ``133,35,137,36``): capture
  ``52eZg9k7rPEyYQGX`` (2021-05-12, 2x2 tiles, item cloud covers 10, 20, 50, 60: two pass
  ``eo:cloud_cover <= 30``, none pass ``avg(eo:cloud_cover) <= 30``), a capture on
  2021-06-03 (2 tiles, 35 and 15: one passes the item filter, both the AOI filter), and two
  captures of the same ground outside 2021-04-10..2021-06-30.
- Kyushu (EPSG:32652, near the guide's example item): one capture on 2021-12-23, outside
  the bbox and the date range.
- Brazil (EPSG:32722, at the west end of the guide's MULTIPOLYGON): three captures of one 4x2
  block of tiles; the block's two west columns lie west of the MULTIPOLYGON, the two east
  columns reach into it. Tiles intersecting the MULTIPOLYGON average 18.75 % cloud on
  2021-04-22 and 30 % on 2021-05-30 (the guide's two numbers); the other tiles are chosen so
  that the whole-capture average gives the opposite answer. A third capture: 2021-08-10.
- Brazil, south (EPSG:32722, same grid): one capture on 2021-08-27, a strip of 1 x 6 tiles
  running north from the tile holding the guide's ``POINT(-50.38 -21.5)``, so that each of
  the guide's S_INTERSECTS examples finds tiles. At ``"small"``: the POINT and MULTIPOINT
  hit its south tile, the LINESTRING the two south tiles, the MULTILINESTRING the four south
  ones, the POLYGON the two north ones, the BBOX all six; the MULTIPOLYGON, 10 km further
  north, misses the strip and finds the block above. Cloud covers 20, 45, 10, 35, 0, 60
  from south to north; dated outside 2021-04-10..2021-06-30, so the guide's date-limited
  scenarios keep their answers.

Rasters (all UTM, north-up, tiles of one region on one grid with a common origin, so the
tiles of a capture share edges exactly and mosaic pixel-aligned; tiles are 256 x 256 pixels
at 5 m for ``"small"``, 768 x 768 for ``"large"``; COGs are DEFLATE-compressed, tiled, with
overviews):

- ``band0`` (pan, 2.5 m) and ``band1``..``band5`` (blue, green, red, red edge, NIR; 5 m):
  uint16 COGs, **nodata 0**; valid pixels are always >= 1. Values follow a land-cover field
  of the UTM position (water: dark, NIR lowest; vegetation: NIR high, red low; bare soil)
  plus a per-capture offset and a noise-like term in 0..15 (a hash of the pixel's column and
  row): an exact function of position, see :func:`band_values` and :func:`land_cover`.
- ``tci`` (2.5 m): 3-band uint8 COG (red, green, blue), **nodata 0**; valid values 1..255.
- ``msi_udm`` (5 m): uint8 COG, **no nodata**: 0 = usable, 1 = cloud. The share of cloud
  pixels in a tile equals the item's ``eo:cloud_cover`` (to the nearest pixel). Cloud
  pixels are bright in every band (``CLOUD_VALUE`` + a small term; tci 250).
- ``msi_udm_metadata``: JSON with the item id, capture id, cloud cover and pixel counts.
- ``thumbnail``: a JPEG of the tci, at most 256 pixels a side.

Example:
    >>> archive = build_archive()  # doctest: +SKIP
    >>> item = archive.items("http://127.0.0.1:8000/x")[0]  # doctest: +SKIP
    >>> archive.assets(item["id"])["tci"]  # doctest: +SKIP
    PosixPath('.../files/.../2021-05-12_..._tci.tif')
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .pixels import CLOUD_VALUE, NODATA, _write_tile, band_values, land_cover
from .scenes import (
    API_ROOT_PLACEHOLDER,
    ASSET_KEYS,
    BAND_KEYS,
    COLLECTION_ID,
    GUIDE_MULTIPOLYGON,
    SCALES,
    ItemFacts,
    _collection,
    _item,
    _plan,
    _Tile,
    _tile_size,
    item_dict,
)

#: Bump whenever the generator's output changes, so that cached archives are rebuilt.
#: (Other versions of the libraries that compute the bytes get their own cache folder, see
#: :func:`default_data_dir`.)
ARCHIVE_VERSION = 6
#: Environment variable naming the parent folder of the default archive folders.
ENV_EMULATOR_DATA = "AXELGLOBE_EMULATOR_DATA"


class Archive:
    """A built archive: its items (from ``items.json``) and the paths of their files.

    Build or load one with :func:`build_archive`.

    Example:
        >>> archive = build_archive()  # doctest: +SKIP
        >>> len(archive.item_ids()) >= 20  # doctest: +SKIP
        True
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        index = json.loads((self.root / "items.json").read_text(encoding="utf-8"))
        self.archive_version: int = index["archive_version"]
        self.scale: str = index["scale"]
        self._features_text = json.dumps(index["features"])
        self._collection_text = (self.root / "collection.json").read_text(encoding="utf-8")
        self._ids: list[str] = [f["id"] for f in index["features"]]
        self._files: dict[str, dict[str, str]] = {
            f["id"]: {key: asset["href"].rsplit("/", 1)[1]
                      for key, asset in f["assets"].items()}
            for f in index["features"]
        }
        self._filenames: dict[str, set[str]] = {
            item_id: set(files.values()) for item_id, files in self._files.items()
        }

    def __repr__(self) -> str:
        return f"Archive({str(self.root)!r}, scale={self.scale!r}, items={len(self._ids)})"

    @staticmethod
    def _fill(text: str, api_root: str) -> Any:
        # Replace inside the JSON text (escaped as a JSON string) to get fresh deep copies.
        escaped = json.dumps(api_root.rstrip("/"))[1:-1]
        return json.loads(text.replace(API_ROOT_PLACEHOLDER, escaped))

    def items(self, api_root: str) -> list[dict[str, Any]]:
        """Every item (fresh deep copies), with hrefs under ``api_root``.

        Example:
            >>> archive.items("http://127.0.0.1:8000/x")[0]["collection"]  # doctest: +SKIP
            'grus-1'
        """
        items: list[dict[str, Any]] = self._fill(self._features_text, api_root)
        return items

    def item_ids(self) -> list[str]:
        """The ids of all items, in the archive's order.

        Example:
            >>> archive.item_ids()[:1]  # doctest: +SKIP
            ['9d6c...']
        """
        return list(self._ids)

    def collection(self, api_root: str) -> dict[str, Any]:
        """The grus-1 collection (the guide's), with links under ``api_root``.

        Example:
            >>> archive.collection("http://127.0.0.1:8000/x")["id"]  # doctest: +SKIP
            'grus-1'
        """
        collection: dict[str, Any] = self._fill(self._collection_text, api_root)
        return collection

    def assets(self, item_id: str) -> dict[str, Path]:
        """Asset key → the file of that asset of ``item_id`` (KeyError if unknown).

        Example:
            >>> archive.assets(archive.item_ids()[0])["tci"].suffix  # doctest: +SKIP
            '.tif'
        """
        files = self._files[item_id]
        return {key: self.root / "files" / item_id / name for key, name in files.items()}

    def asset_path(self, item_id: str, filename: str) -> Path:
        """The file behind ``{api_root}/collections/grus-1/features/{item_id}/{filename}``.

        Only names of the item's own assets are accepted, so no path can escape the archive.

        Raises:
            KeyError: Unknown item or file name.

        Example:
            >>> archive.asset_path("no-such-item", "x.tif")  # doctest: +SKIP
            Traceback (most recent call last):
            KeyError: 'no-such-item'
        """
        names = self._filenames.get(item_id)
        if names is None:
            raise KeyError(item_id)
        if filename not in names:
            raise KeyError(filename)
        return self.root / "files" / item_id / filename


def default_data_dir(scale: str = "small") -> Path:
    """Where :func:`build_archive` keeps the archive of ``scale`` unless told otherwise.

    ``$AXELGLOBE_EMULATOR_DATA`` names the parent folder; by default it is the platform's
    user cache folder of pystac-axelglobe, ``emulator``. The folder's name is keyed by what
    determines the archive's bytes: :data:`ARCHIVE_VERSION`, ``scale`` and a digest of the
    versions of the libraries that compute them (numpy, rasterio with its GDAL and PROJ,
    shapely with its GEOS). Another PROJ rounds a footprint's last digit differently, another
    GDAL encodes a COG differently: each set of versions gets, and keeps, its own archive.

    Example:
        >>> default_data_dir().name.startswith(f"v{ARCHIVE_VERSION}-small-")
        True
    """
    parent = os.environ.get(ENV_EMULATOR_DATA, "").strip()
    if parent:
        base = Path(parent).expanduser()
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("pystac-axelglobe", appauthor=False)) / "emulator"
    digest = hashlib.sha256(json.dumps(_built_with(), sort_keys=True).encode()).hexdigest()
    return base / f"v{ARCHIVE_VERSION}-{scale}-{digest[:10]}"


@functools.lru_cache(maxsize=1)
def _built_with() -> dict[str, str]:
    """The versions of the libraries whose arithmetic and encoders make the archive's bytes."""
    import numpy
    import rasterio
    import shapely

    return {
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        # rasterio's own PROJ (footprints come from rasterio.warp), not pyproj's
        "proj": str(getattr(rasterio, "__proj_version__", "")),
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
    }


def build_archive(data_dir: Path | str | None = None, *, scale: str = "small") -> Archive:
    """The synthetic archive in ``data_dir``, generated there first if it is not yet built.

    Idempotent and safe across processes: generation happens once, under a file lock, in a
    temporary folder beside ``data_dir`` that is renamed into place when complete, so a
    killed build never leaves a half archive.

    Args:
        data_dir: The archive folder. Default: :func:`default_data_dir` of ``scale``.
        scale: ``"small"`` (tens of MB; tests) or ``"large"`` (bigger tiles; benchmarks).

    Raises:
        ConfigurationError: (a ValueError) Unknown ``scale``, or ``data_dir`` holds an
            archive of another version or scale, or something that is not an archive.

    Example:
        >>> archive = build_archive(scale="small")  # doctest: +SKIP
        >>> archive.scale  # doctest: +SKIP
        'small'
    """
    from filelock import FileLock

    if scale not in SCALES:
        raise ConfigurationError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(scale)
    root = root.absolute()
    archive = _load_if_built(root, scale)
    if archive is not None:
        return archive
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        archive = _load_if_built(root, scale)  # another process may have built it meanwhile
        if archive is not None:
            return archive
        if root.exists() and any(root.iterdir()):
            raise ConfigurationError(
                f"{root} exists and is not an emulator archive; pass another data_dir or "
                "delete that folder"
            )
        # Holding the lock, any leftover temporary folder is from a killed build.
        for stale in root.parent.glob(f".{root.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            _generate(tmp, scale)
            if root.exists():
                root.rmdir()  # empty (checked above); os.replace needs it gone or empty
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Archive(root)


def open_archive(root: Path | str) -> Archive:
    """The built archive in ``root``, read once per process (until its index changes).

    An archive never changes once built, and an emulator start reads it (the parent, and
    the servers' process): a cached object saves both the parse of its index.

    Example:
        >>> root = build_archive().root  # doctest: +SKIP
        >>> open_archive(root) is open_archive(root)  # doctest: +SKIP
        True
    """
    index = (Path(root) / "items.json").stat()
    return _open(str(root), index.st_mtime_ns, index.st_size)


@functools.lru_cache(maxsize=8)
def _open(root: str, mtime_ns: int, size: int) -> Archive:
    return Archive(Path(root))


def _load_if_built(root: Path, scale: str) -> Archive | None:
    if not (root / "items.json").is_file():
        return None
    archive = open_archive(root)
    if archive.archive_version != ARCHIVE_VERSION or archive.scale != scale:
        raise ConfigurationError(
            f"{root} holds a {archive.scale!r} archive of version {archive.archive_version}, "
            f"not {scale!r} of version {ARCHIVE_VERSION}; pass another data_dir or delete "
            "that folder"
        )
    return archive


def _generate(root: Path, scale: str) -> None:
    import rasterio

    size = _tile_size(scale)
    tiles = _plan(scale)
    items = [_item(tile, size) for tile in tiles]

    def write(pair: tuple[_Tile, dict[str, Any]]) -> None:
        # GDAL options are per thread; no .aux.xml side files: the archive holds the assets.
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):
            _write_tile(root / "files" / pair[1]["id"], pair[0], pair[1], scale)

    # numpy and GDAL release the GIL, so threads use every core. Output does not depend on
    # the order: each tile is a pure function of its plan.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(write, zip(tiles, items, strict=True)))
    (root / "collection.json").write_text(json.dumps(_collection(), indent=1) + "\n",
                                          encoding="utf-8")
    index = {"archive_version": ARCHIVE_VERSION, "scale": scale, "built_with": _built_with(),
             "features": items}
    # items.json last: its presence marks a complete archive.
    (root / "items.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


__all__ = [
    "API_ROOT_PLACEHOLDER",
    "ARCHIVE_VERSION",
    "ASSET_KEYS",
    "BAND_KEYS",
    "CLOUD_VALUE",
    "COLLECTION_ID",
    "ENV_EMULATOR_DATA",
    "GUIDE_MULTIPOLYGON",
    "NODATA",
    "SCALES",
    "Archive",
    "ItemFacts",
    "band_values",
    "build_archive",
    "default_data_dir",
    "item_dict",
    "land_cover",
    "open_archive",
]
