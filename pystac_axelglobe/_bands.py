"""The grus-1 band and asset tables, as the provider's guide lists them.

Example:
    >>> band_by_common_name("nir").name
    'band5'
    >>> BAND_ASSET_KEYS
    ('band0', 'band1', 'band2', 'band3', 'band4', 'band5')
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Band(NamedTuple):
    """One grus-1 band, in the units of the eo extension.

    ``center_wavelength`` and ``full_width_half_max`` are in µm, ``gsd`` in metres and
    ``solar_illumination`` in W/m²/µm (the collection's unit; see :func:`normalize_item`).
    """

    name: str
    common_name: str
    center_wavelength: float
    full_width_half_max: float
    gsd: float
    solar_illumination: float

    def to_eo_dict(self) -> dict[str, Any]:
        """The band as an ``eo:bands`` entry (no ``gsd``: eo v1.0.0 has none per band).

        Example:
            >>> GRUS1_BANDS[5].to_eo_dict()["center_wavelength"]
            0.834
        """
        return {
            "name": self.name,
            "common_name": self.common_name,
            "center_wavelength": self.center_wavelength,
            "full_width_half_max": self.full_width_half_max,
            "solar_illumination": self.solar_illumination,
        }


#: The grus-1 bands as the provider's guide lists them (collection summaries).
GRUS1_BANDS: tuple[Band, ...] = (
    Band("band0", "pan", 0.673, 0.446, 2.5, 1604.11),
    Band("band1", "blue", 0.476, 0.054, 5.0, 1985.83),
    Band("band2", "green", 0.549, 0.068, 5.0, 1823.2),
    Band("band3", "red", 0.652, 0.063, 5.0, 1571.65),
    Band("band4", "rededge", 0.724, 0.038, 5.0, 1344.18),
    Band("band5", "nir", 0.834, 0.128, 5.0, 1098.04),
)

#: Every asset key a grus-1 item carries.
ASSET_KEYS: tuple[str, ...] = (
    "thumbnail",
    "tci",
    "band0",
    "band1",
    "band2",
    "band3",
    "band4",
    "band5",
    "msi_udm",
    "msi_udm_metadata",
)

#: Asset keys holding one band each (the band table's names).
BAND_ASSET_KEYS: tuple[str, ...] = tuple(b.name for b in GRUS1_BANDS)


def band_by_common_name(common_name: str) -> Band:
    """The grus-1 band with this eo common name (``"red"``, ``"nir"``, ``"pan"``...).

    Raises:
        KeyError: no grus-1 band has that common name; the message lists those that do.

    Example:
        >>> band_by_common_name("red").name
        'band3'
    """
    for band in GRUS1_BANDS:
        if band.common_name == common_name:
            return band
    names = ", ".join(b.common_name for b in GRUS1_BANDS)
    raise KeyError(f"grus-1 has no band with common name {common_name!r}; use one of {names}")


def band_by_name(name_or_alias: str) -> Band:
    """The grus-1 band for an asset key (``"band3"``) or a common name (``"red"``).

    Raises:
        KeyError: neither an asset key nor a common name of a grus-1 band.

    Example:
        >>> band_by_name("band5").common_name, band_by_name("nir").name
        ('nir', 'band5')
    """
    for band in GRUS1_BANDS:
        if name_or_alias in (band.name, band.common_name):
            return band
    names = ", ".join(f"{b.name}/{b.common_name}" for b in GRUS1_BANDS)
    raise KeyError(f"grus-1 has no band {name_or_alias!r}; use one of {names}")
