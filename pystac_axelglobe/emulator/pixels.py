"""The archive's pixels: band values as a known function of position, and the files.

Every raster is an exact function of the UTM position of its pixels (:func:`land_cover`,
:func:`band_values`), so tests can compute what a load must give. See :mod:`.archive` for
the bands, their nodata and the cloud mask in words.

Example:
    >>> import numpy as np
    >>> int(land_cover(np.array([0.0]), np.array([0.0]))[0]) in (WATER, SOIL, VEGETATION)
    True
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .scenes import _BANDS, SCALES, _Tile

#: Nodata of the uint16 bands and the tci; ``msi_udm`` has none.
NODATA = 0
#: Base value of cloud pixels in the uint16 bands (bright in every band).
CLOUD_VALUE = 6000

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
