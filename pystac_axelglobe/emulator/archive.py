"""The emulator's synthetic GRUS-1 archive: deterministic items and real COG files.

The archive is generated on first use into a cache folder (seconds for ``scale="small"``)
and loaded from its index afterwards (milliseconds). Layout of an archive folder::

    items.json       {"archive_version", "scale", "features": [STAC item dicts]}
    collection.json  the grus-1 collection, as in the provider's guide
    files/{item_id}/{YYYY-MM-DD}_{item_id}_{key}.{ext}

Item and collection hrefs contain the placeholder ``{api_root}``; :meth:`Archive.items` and
:meth:`Archive.collection` replace it with the root the emulator serves.

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

import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigurationError

#: Bump whenever the generator's output changes, so that cached archives are rebuilt.
ARCHIVE_VERSION = 6
#: Stands for the API root (``.../stac/v1/catalogs/axelglobe``) in stored hrefs.
API_ROOT_PLACEHOLDER = "{api_root}"
#: Environment variable naming the parent folder of the default archive folders.
ENV_EMULATOR_DATA = "AXELGLOBE_EMULATOR_DATA"
#: Pixels per side of a 5 m tile at each scale (pan and tci have twice as many).
SCALES: dict[str, int] = {"small": 256, "large": 768}
#: Nodata of the uint16 bands and the tci; ``msi_udm`` has none.
NODATA = 0
#: Base value of cloud pixels in the uint16 bands (bright in every band).
CLOUD_VALUE = 6000

COLLECTION_ID = "grus-1"
ASSET_KEYS = ("thumbnail", "tci", "band0", "band1", "band2", "band3", "band4", "band5",
              "msi_udm", "msi_udm_metadata")
BAND_KEYS = ("band0", "band1", "band2", "band3", "band4", "band5")

# (name, common_name, center_wave_length, full_width_half_max, item-scale solar_illumination,
#  collection-scale solar_illumination): the guide's numbers, quirks included.
_BANDS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("band0", "pan", 0.673, 0.446, 1.60411216811148, 1604.11),
    ("band1", "blue", 0.476, 0.054, 1.98583364081622, 1985.83),
    ("band2", "green", 0.549, 0.068, 1.8232034021491599, 1823.2),
    ("band3", "red", 0.652, 0.063, 1.5716542224007, 1571.65),
    ("band4", "rededge", 0.724, 0.038, 1.34418032275358, 1344.18),
    ("band5", "nir", 0.834, 0.128, 1.09804143023128, 1098.04),
)
_ASSET_TITLES = {
    "thumbnail": "Thumbnail",
    "tci": "Pansharpened True Color Image",
    "band0": "Panchromatic band",
    "band1": "Blue band",
    "band2": "Green band",
    "band3": "Red band",
    "band4": "RedEdge band",
    "band5": "Near-Infrared band",
    # The provider's spelling, on purpose.
    "msi_udm": "Unusable Data Musk for Multi Spectral Image",
    "msi_udm_metadata": "Unusable Data Musk Metadata for Multi Spectral Image",
}
_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
]
_UUID_NAMESPACE = uuid.UUID("6d1c4f4e-9a51-5b3c-8f0e-0a7e1b0e6a11")

#: The guide's MULTIPOLYGON (the AOI of its third search scenario), as lon/lat rings.
GUIDE_MULTIPOLYGON: tuple[tuple[tuple[float, float], ...], ...] = (
    ((-50.377998355519196, -21.25571182037737), (-50.39389773429008, -21.306903229767897),
     (-50.33831203728997, -21.326928577662557), (-50.30119747112292, -21.30514840932203),
     (-50.30233752991262, -21.265344869483116), (-50.377998355519196, -21.25571182037737)),
    ((-50.30307167289692, -21.33556537511332), (-50.29675481118801, -21.352508108156158),
     (-50.320483483126424, -21.37151690592809), (-50.33829784306903, -21.37531838541942),
     (-50.32083308423938, -21.415381832666043), (-50.27781101074311, -21.39743120280255),
     (-50.26742062143981, -21.40399484490206), (-50.24515788837763, -21.3798116216757),
     (-50.20469383948901, -21.389847864440497), (-50.19355419558164, -21.371524192627504),
     (-50.249239808424704, -21.337647270055186), (-50.30307167289692, -21.33556537511332)),
)

# Surface reflectance-like values (DN) per land-cover class for blue, green, red, red edge,
# NIR: water dark with the lowest NIR, vegetation with NIR far above red, soil in between.
_CLASS_VALUES = np.array(
    [
        [900, 800, 600, 450, 300],  # 0 water
        [1400, 1700, 2000, 2300, 2600],  # 1 bare soil
        [700, 1100, 600, 2200, 4000],  # 2 vegetation
    ],
    dtype=np.int64,
)
WATER, SOIL, VEGETATION = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# The scene plan


@dataclass(frozen=True)
class _Capture:
    capture_id: str
    region: str
    epsg: int
    when: dt.datetime
    platform: str
    orbit_state: str
    off_nadir: float
    # (col, row) offsets from the region's anchor tile; row grows southwards.
    tiles: tuple[tuple[int, int], ...]
    # Cloud cover per tile; None means "derived from the MULTIPOLYGON" (Brazil).
    covers: tuple[float, ...] | None
    aoi_average: float = 0.0  # Brazil: mean over tiles intersecting the MULTIPOLYGON
    other_covers: tuple[float, ...] = ()  # Brazil: covers of the other tiles, in order
    offset: int = 0  # per-capture brightness offset, so captures of one place differ


def _capture_id(name: str) -> str:
    """A deterministic 16-character id of letters and digits, like AxelGlobe's."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    chars = []
    for _ in range(16):
        number, digit = divmod(number, 62)
        chars.append(alphabet[digit])
    return "".join(chars)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


_BLOCK_2X2 = ((0, 0), (1, 0), (0, 1), (1, 1))
# Columns -2 and -1 lie west of the MULTIPOLYGON's westmost vertex; the others reach into it.
_BRAZIL_BLOCK = ((-2, -1), (-1, -1), (0, -1), (1, -1), (-2, 0), (-1, 0), (0, 0), (1, 0))

_CAPTURES: tuple[_Capture, ...] = (
    _Capture("52eZg9k7rPEyYQGX", "japan", 32653, _utc("2021-05-12T01:44:42"), "GRUS-1A",
             "descending", 4.699864, _BLOCK_2X2, (10.0, 20.0, 50.0, 60.0), offset=0),
    _Capture(_capture_id("japan-2021-06-03"), "japan", 32653, _utc("2021-06-03T01:38:15"),
             "GRUS-1C", "descending", 12.305127, ((0, 0), (1, 0)), (35.0, 15.0), offset=40),
    _Capture(_capture_id("japan-2021-03-20"), "japan", 32653, _utc("2021-03-20T01:51:09"),
             "GRUS-1B", "descending", 7.118532, _BLOCK_2X2, (5.0, 0.0, 10.0, 5.0), offset=80),
    _Capture(_capture_id("japan-2021-07-15"), "japan", 32653, _utc("2021-07-15T01:47:30"),
             "GRUS-1D", "descending", 18.027441, ((1, 1), (2, 1), (3, 1)),
             (25.0, 30.0, 40.0), offset=120),
    _Capture(_capture_id("kyushu-2021-12-23"), "kyushu", 32652, _utc("2021-12-23T01:44:42"),
             "GRUS-1A", "ascending", 4.699864, ((0, 0), (1, 0)), (0.0, 12.5), offset=20),
    _Capture(_capture_id("brazil-2021-04-22"), "brazil", 32722, _utc("2021-04-22T13:21:05"),
             "GRUS-1E", "descending", 9.874210, _BRAZIL_BLOCK, None, aoi_average=18.75,
             other_covers=(70.0, 80.0, 75.0, 65.0, 90.0, 85.0, 60.0), offset=60),
    _Capture(_capture_id("brazil-2021-05-30"), "brazil", 32722, _utc("2021-05-30T13:17:48"),
             "GRUS-1B", "descending", 2.331907, _BRAZIL_BLOCK, None, aoi_average=30.0,
             other_covers=(0.0, 5.0, 0.0, 10.0, 5.0, 0.0, 5.0), offset=100),
    _Capture(_capture_id("brazil-2021-08-10"), "brazil", 32722, _utc("2021-08-10T13:25:33"),
             "GRUS-1D", "descending", 15.552016, _BRAZIL_BLOCK, None, aoi_average=5.0,
             other_covers=(5.0, 0.0, 10.0, 15.0, 0.0, 5.0, 10.0), offset=140),
    # South to north, so the guide's examples find some of its tiles but not all of them.
    _Capture(_capture_id("brazil-2021-08-27"), "brazil-south", 32722,
             _utc("2021-08-27T13:19:42"), "GRUS-1C", "descending", 6.418263,
             ((0, 0), (0, -1), (0, -2), (0, -3), (0, -4), (0, -5)),
             (20.0, 45.0, 10.0, 35.0, 0.0, 60.0), offset=160),
)

# Anchor points (lon, lat) of each region: the anchor tile is the one containing the point.
# Brazil's is the MULTIPOLYGON's westmost vertex, so the block's two west columns lie
# entirely west of the AOI and its east column touches it, at every scale.
_ANCHORS: dict[str, tuple[float, float]] = {
    "japan": (135.5, 35.5),
    "kyushu": (131.4355, 32.6820),
    "brazil": (-50.39389773429008, -21.306903229767897),
    # The guide's POINT example (also the start of its LINESTRING, MULTIPOINT and
    # MULTILINESTRING examples and a corner of its BBOX example).
    "brazil-south": (-50.38, -21.5),
}


def _aoi_covers(count: int, average: float) -> list[float]:
    """``count`` covers (multiples of 0.25) averaging exactly ``average``."""
    spread = [-8.75, 8.75, -3.75, 3.75, -1.25, 1.25, -6.25, 6.25]
    covers = [average + spread[i] for i in range(count - count % 2)]
    if count % 2:
        covers.append(average)
    return [min(100.0, max(0.0, c)) for c in covers]


# ---------------------------------------------------------------------------------------------
# Pixels


def land_cover(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Land-cover class (WATER, SOIL, VEGETATION) at UTM positions (pixel centres).

    Example:
        >>> int(land_cover(np.array([0.0]), np.array([0.0]))[0]) in (WATER, SOIL, VEGETATION)
        True
    """
    field = np.sin(x / 900.0) + np.sin(y / 1300.0) + 0.5 * np.sin((x - y) / 2100.0)
    classes: npt.NDArray[np.int64] = np.where(
        field < -0.9, WATER, np.where(field > 0.4, VEGETATION, SOIL)
    ).astype(np.int64)
    return classes


def band_values(
    band: int, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], res: float, offset: int
) -> npt.NDArray[np.int64]:
    """Cloud-free value of band 1..5 (blue..NIR), or 0 for pan, at UTM pixel centres.

    ``value = class value + capture offset + t``, where ``t`` in 0..15 is a hash of the
    pixel's column and row (pixels of size ``res`` counted from the UTM origin). Pan's class
    value is the mean of blue, green and red (integer division). Values are always >= 1 (0
    is nodata).

    Example:
        >>> int(band_values(5, np.array([2.5]), np.array([2.5]), 5.0, 0)[0]) in (300, 2600, 4000)
        True
    """
    return _values(band, land_cover(x, y), _position_term(x, y, res), offset)


# Pan's class value: the integer mean of blue, green and red.
_PAN_VALUES = _CLASS_VALUES[:, 0:3].sum(axis=-1) // 3


def _values(band: int, classes: npt.NDArray[np.int64], term: npt.NDArray[np.int64],
            offset: int) -> npt.NDArray[np.int64]:
    base = _PAN_VALUES[classes] if band == 0 else _CLASS_VALUES[classes, band - 1]
    values: npt.NDArray[np.int64] = base + (term + offset)
    return values


def _position_term(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], res: float
) -> npt.NDArray[np.int64]:
    """Texture in 0..15: an integer hash of the pixel's column and row on the UTM grid.

    Sensor-like noise, so files compress like imagery (and are big enough to download in
    several chunks), yet an exact function of position.
    """
    col = np.floor(x / res).astype(np.int64).astype(np.uint64)
    row = np.floor(y / res).astype(np.int64).astype(np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    h = (col * np.uint64(0x9E3779B1) + row * np.uint64(0x85EBCA77)) & mask
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & mask
    h ^= h >> np.uint64(12)
    term: npt.NDArray[np.int64] = (h >> np.uint64(28)).astype(np.int64)
    return term


def _cloud_mask(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], cover: float,
                phase: float) -> npt.NDArray[np.bool_]:
    """Cloud where a smooth field is lowest: exactly round(cover %) of the pixels."""
    field = (np.sin(x / 700.0 + phase) * np.cos(y / 800.0 + 2 * phase)
             + 0.3 * np.sin((x + y) / 350.0 + 3 * phase))
    flat = field.ravel()
    count = int(round(cover / 100.0 * flat.size))
    mask = np.zeros(flat.size, dtype=bool)
    if count:
        mask[np.argsort(flat, kind="stable")[:count]] = True
    return mask.reshape(field.shape)


def _centres(left: float, top: float, res: float, size: int
             ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    coords = (np.arange(size, dtype=np.float64) + 0.5) * res
    xs, ys = np.meshgrid(left + coords, top - coords)
    return xs, ys


# ---------------------------------------------------------------------------------------------
# The archive


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
    user cache folder of pystac-axelglobe, ``emulator``.

    Example:
        >>> default_data_dir().name == f"v{ARCHIVE_VERSION}-small"
        True
    """
    parent = os.environ.get(ENV_EMULATOR_DATA, "").strip()
    if parent:
        base = Path(parent).expanduser()
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("pystac-axelglobe", appauthor=False)) / "emulator"
    return base / f"v{ARCHIVE_VERSION}-{scale}"


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


# ---------------------------------------------------------------------------------------------
# Generation


def _item_id(capture_id: str, col: int, row: int) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{COLLECTION_ID}/{capture_id}/{col}/{row}"))


def _band_dict(name: str, common: str, cwl: float, fwhm: float, sun: float) -> dict[str, Any]:
    return {"name": name, "common_name": common, "center_wave_length": cwl,
            "full_width_half_max": fwhm, "solar_illumination": sun}


def _collection() -> dict[str, Any]:
    root = API_ROOT_PLACEHOLDER
    return {
        "type": "Collection",
        "id": COLLECTION_ID,
        "stac_version": "1.0.0",
        "description": "GRUS imagery processed to level 1",
        "links": [
            {"rel": "items", "href": f"{root}/collections/{COLLECTION_ID}/features"},
            {"rel": "self", "href": f"{root}/collections/{COLLECTION_ID}",
             "type": "application/json"},
            {"rel": "parent", "href": root, "type": "application/json",
             "title": "The AxelGlobe STAC catalog"},
        ],
        "stac_extensions": list(_EXTENSIONS),
        "title": "GRUS 1",
        "extent": {
            "spatial": {"bbox": [[-180.0, -80.0, 180.0, 80.0]]},
            "temporal": {"interval": [["2019-10-15T00:00:00Z", None]]},
        },
        "license": "proprietary",
        "providers": [
            {"name": "Axelspace", "roles": ["producer"], "url": "https://www.axelspace.com"},
            {"name": "AxelGlobe", "roles": ["host", "processor"],
             "url": "https://axelglobe.com"},
        ],
        "summaries": {
            "platform": ["GRUS-1A", "GRUS-1B", "GRUS-1C", "GRUS-1D", "GRUS-1E"],
            "constellation": ["GRUS-1"],
            "instruments": ["msi"],
            "eo:bands": [_band_dict(n, c, w, f, big) for n, c, w, f, _, big in _BANDS],
        },
    }


@dataclass(frozen=True)
class _Tile:
    capture: _Capture
    col: int  # absolute tile column on the region's grid (x = col * size)
    row: int  # absolute tile row (top edge y = row * size)
    cover: float
    along: int  # tiles from the capture's first row, along the track

    @property
    def item_id(self) -> str:
        return _item_id(self.capture.capture_id, self.col, self.row)


def _tile_size(scale: str) -> float:
    return SCALES[scale] * 5.0


def _footprint(epsg: int, col: int, row: int, size: float) -> list[list[float]]:
    """Lon/lat ring of a tile: lower-left, upper-left, upper-right, lower-right, closed."""
    from rasterio.warp import transform

    left, right, top = col * size, (col + 1) * size, row * size
    bottom = top - size
    xs, ys = transform(f"EPSG:{epsg}", "EPSG:4326", [left, left, right, right],
                       [bottom, top, top, bottom])
    ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    return ring + [list(ring[0])]


def _anchor_tile(region: str, epsg: int, size: float) -> tuple[int, int]:
    from rasterio.warp import transform

    lon, lat = _ANCHORS[region]
    xs, ys = transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
    return int(np.floor(xs[0] / size)), int(np.ceil(ys[0] / size))


def _plan(scale: str) -> list[_Tile]:
    """Every tile of every capture, with its cloud cover."""
    from shapely.geometry import MultiPolygon, Polygon

    size = _tile_size(scale)
    aoi = MultiPolygon([Polygon(ring) for ring in GUIDE_MULTIPOLYGON])
    tiles: list[_Tile] = []
    for capture in _CAPTURES:
        anchor_col, anchor_row = _anchor_tile(capture.region, capture.epsg, size)
        cells = [(anchor_col + dc, anchor_row - dr) for dc, dr in capture.tiles]
        if capture.covers is not None:
            covers = list(capture.covers)
        else:
            hits = [Polygon(_footprint(capture.epsg, c, r, size)).intersects(aoi)
                    for c, r in cells]
            inside = iter(_aoi_covers(sum(hits), capture.aoi_average))
            outside = iter(capture.other_covers)
            covers = [next(inside) if hit else next(outside) for hit in hits]
        tiles += [_Tile(capture, c, r, cover, dr)
                  for (c, r), (_, dr), cover in zip(cells, capture.tiles, covers, strict=True)]
    return tiles


@dataclass(frozen=True)
class ItemFacts:
    """What one item says: a tile of a capture, its lon/lat footprint, when, how cloudy."""

    item_id: str
    capture_id: str
    ring: list[list[float]]  # lower-left, upper-left, upper-right, lower-right, closed
    when: dt.datetime  # the tile's own time (UTC)
    day: str  # YYYY-MM-DD of the capture, in the asset file names
    cover: float
    platform: str
    orbit_state: str
    off_nadir: float


def _item(tile: _Tile, size: float) -> dict[str, Any]:
    capture = tile.capture
    return item_dict(ItemFacts(
        item_id=tile.item_id,
        capture_id=capture.capture_id,
        ring=_footprint(capture.epsg, tile.col, tile.row, size),
        # Tiles further along the track were seen a little later.
        when=capture.when + dt.timedelta(seconds=2 * tile.along),
        day=capture.when.strftime("%Y-%m-%d"),
        cover=tile.cover,
        platform=capture.platform,
        orbit_state=capture.orbit_state,
        off_nadir=capture.off_nadir,
    ))


def _assets(item_href: str, item_id: str, day: str) -> dict[str, Any]:
    small_bands = {n: _band_dict(n, c, w, f, s) for n, c, w, f, s, _ in _BANDS}
    assets: dict[str, Any] = {}
    for key in ASSET_KEYS:
        ext = "jpg" if key == "thumbnail" else "json" if key == "msi_udm_metadata" else "tif"
        asset: dict[str, Any] = {"href": f"{item_href}/{day}_{item_id}_{key}.{ext}",
                                 "title": _ASSET_TITLES[key]}
        if key in small_bands:
            asset["eo:bands"] = [dict(small_bands[key])]
        asset["roles"] = ["thumbnail" if key == "thumbnail"
                          else "metadata" if key == "msi_udm_metadata" else "data"]
        assets[key] = asset
    return assets


def item_dict(facts: ItemFacts) -> dict[str, Any]:
    """The STAC item AxelGlobe would serve for ``facts`` (hrefs under the placeholder root).

    Example:
        >>> ring = [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
        >>> item = item_dict(ItemFacts("i", "c", ring, dt.datetime(2022, 1, 1,
        ...     tzinfo=dt.timezone.utc), "2022-01-01", 5.0, "GRUS-1A", "descending", 3.0))
        >>> item["properties"]["datetime"], item["bbox"]
        ('2022-01-01T00:00:00Z', [0.0, 0.0, 1.0, 1.0])
    """
    lons = [p[0] for p in facts.ring]
    lats = [p[1] for p in facts.ring]
    base = f"{API_ROOT_PLACEHOLDER}/collections/{COLLECTION_ID}"
    item_href = f"{base}/features/{facts.item_id}"
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": facts.item_id,
        "properties": {
            "eo:bands": [_band_dict(n, c, w, f, s) for n, c, w, f, s, _ in _BANDS],
            "eo:cloud_cover": float(facts.cover),
            "view:off_nadir": facts.off_nadir,
            "sat:orbit_state": facts.orbit_state,
            "constellation": "GRUS-1",
            "instruments": ["msi"],
            "platform": facts.platform,
            "gsd": 2.5,
            "datetime": facts.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ag:capture_id": facts.capture_id,
        },
        "geometry": {
            "type": "Polygon",
            # Not GeoJSON, but what AxelGlobe sends (type "Polygon" included).
            "crs": {"type": "Polygon",
                    "properties": {"name": "urn:ogc:def:crs:OGC::CRS84"}},
            "coordinates": [facts.ring],
        },
        "links": [
            {"rel": "parent", "href": base, "type": "application/json", "title": "GRUS 1"},
            {"rel": "self", "href": item_href, "type": "application/json"},
            {"rel": "collection", "href": base, "type": "application/json",
             "title": "GRUS 1"},
        ],
        "assets": _assets(item_href, facts.item_id, facts.day),
        "bbox": [round(min(lons), 6), round(min(lats), 6), round(max(lons), 6),
                 round(max(lats), 6)],
        "stac_extensions": list(_EXTENSIONS),
        "collection": COLLECTION_ID,
    }


def _write_cog(path: Path, data: npt.NDArray[Any], *, epsg: int, left: float, top: float,
               res: float, nodata: int | None, blocksize: int,
               descriptions: Sequence[str], resampling: str = "average") -> None:
    import rasterio
    from affine import Affine
    from rasterio.enums import ColorInterp

    if data.ndim == 2:
        data = data[np.newaxis]
    profile: dict[str, Any] = {
        "driver": "COG", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": data.dtype.name, "crs": f"EPSG:{epsg}",
        # Not rasterio's from_origin: it warns (affine's deprecated `*`).
        "transform": Affine(res, 0.0, left, 0.0, -res, top), "blocksize": blocksize,
        # Fast deflate, no predictor: the noise term makes predictors and high levels
        # cost time for little gain.
        "compress": "DEFLATE", "level": 1, "overview_resampling": resampling,
        # Overviews down to one block; OVERVIEWS=AUTO stops at the block size.
        "overviews": "AUTO",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
        if data.shape[0] == 3:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]


def _write_jpeg(path: Path, rgb: npt.NDArray[np.uint8]) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        # A thumbnail has no georeferencing, on purpose.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="JPEG", width=rgb.shape[2], height=rgb.shape[1],
                           count=3, dtype="uint8", quality=85) as dst:
            dst.write(rgb)


def _write_tile(folder: Path, tile: _Tile, item: dict[str, Any], scale: str) -> None:
    capture = tile.capture
    n5 = SCALES[scale]
    size = n5 * 5.0
    left, top = tile.col * size, tile.row * size
    blocksize = 128 if n5 <= 256 else 256
    names = {key: asset["href"].rsplit("/", 1)[1] for key, asset in item["assets"].items()}
    folder.mkdir(parents=True)
    phase = (capture.offset % 97) / 7.0

    x5, y5 = _centres(left, top, 5.0, n5)
    cloud5 = _cloud_mask(x5, y5, tile.cover, phase)
    term5 = _position_term(x5, y5, 5.0)
    classes5 = land_cover(x5, y5)
    for band in range(1, 6):
        values = np.where(cloud5, CLOUD_VALUE + term5,
                          _values(band, classes5, term5, capture.offset))
        _write_cog(folder / names[f"band{band}"], values.astype(np.uint16), epsg=capture.epsg,
                   left=left, top=top, res=5.0, nodata=NODATA, blocksize=blocksize,
                   descriptions=[_BANDS[band][1]])
    _write_cog(folder / names["msi_udm"], cloud5.astype(np.uint8), epsg=capture.epsg,
               left=left, top=top, res=5.0, nodata=None, blocksize=blocksize,
               descriptions=["unusable"], resampling="mode")  # a mask: no in-between values

    # 2.5 m products: a pixel is cloudy where its 5 m pixel is.
    x2, y2 = _centres(left, top, 2.5, 2 * n5)
    cloud2 = np.repeat(np.repeat(cloud5, 2, axis=0), 2, axis=1)
    term2 = _position_term(x2, y2, 2.5)
    classes2 = land_cover(x2, y2)
    pan = np.where(cloud2, CLOUD_VALUE + term2, _values(0, classes2, term2, capture.offset))
    _write_cog(folder / names["band0"], pan.astype(np.uint16), epsg=capture.epsg, left=left,
               top=top, res=2.5, nodata=NODATA, blocksize=2 * blocksize,
               descriptions=["pan"])
    rgb = np.stack([_values(b, classes2, term2, capture.offset) for b in (3, 2, 1)])
    # DN / 16 spans 1..255 for these classes; clip keeps 0 free for nodata.
    tci = np.where(cloud2, 250, np.clip(rgb // 16, 1, 255)).astype(np.uint8)
    _write_cog(folder / names["tci"], tci, epsg=capture.epsg, left=left, top=top, res=2.5,
               nodata=NODATA, blocksize=2 * blocksize, descriptions=["red", "green", "blue"])
    step = max(1, (2 * n5) // 256)
    _write_jpeg(folder / names["thumbnail"], np.ascontiguousarray(tci[:, ::step, ::step]))

    metadata = {
        "item_id": item["id"],
        "capture_id": capture.capture_id,
        "cloud_cover": tile.cover,
        "width": n5,
        "height": n5,
        "gsd": 5.0,
        "unusable_pixels": int(cloud5.sum()),
        "usable_pixels": int(cloud5.size - cloud5.sum()),
        "values": {"0": "usable", "1": "cloud"},
    }
    (folder / names["msi_udm_metadata"]).write_text(json.dumps(metadata, indent=2) + "\n",
                                                    encoding="utf-8")


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
    index = {"archive_version": ARCHIVE_VERSION, "scale": scale, "features": items}
    # items.json last: its presence marks a complete archive.
    (root / "items.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


__all__ = [
    "API_ROOT_PLACEHOLDER",
    "ARCHIVE_VERSION",
    "Archive",
    "ItemFacts",
    "band_values",
    "build_archive",
    "default_data_dir",
    "item_dict",
    "open_archive",
    "land_cover",
]
