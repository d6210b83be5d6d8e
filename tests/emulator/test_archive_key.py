"""The default archive folder is keyed by what determines the archive's bytes.

Another PROJ rounds a footprint's last digit differently (pyproj/rasterio wheels of other
releases do), another GDAL encodes a COG differently: an archive built by one set of library
versions is not the archive another set builds, so the two must not share a cache folder
(``tox -e mindeps`` and the developers' venv share the user cache).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import rasterio
import shapely

from pystac_axelglobe.emulator import archive as archive_module
from pystac_axelglobe.emulator.archive import ARCHIVE_VERSION, default_data_dir


def _default_with(module: object, name: str) -> Path:
    """default_data_dir() as it would be were ``module.name`` another version."""
    ours = getattr(module, name)
    setattr(module, name, "0.0.0-another")
    archive_module._built_with.cache_clear()
    try:
        return default_data_dir()
    finally:
        setattr(module, name, ours)
        archive_module._built_with.cache_clear()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (numpy, "__version__"),
        (rasterio, "__version__"),
        (rasterio, "__gdal_version__"),
        (rasterio, "__proj_version__"),
        (shapely, "__version__"),
        (shapely, "geos_version_string"),
    ],
)
def test_other_library_versions_get_another_default_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: object, name: str
) -> None:
    monkeypatch.setenv("AXELGLOBE_EMULATOR_DATA", str(tmp_path))
    here = default_data_dir()
    other = _default_with(module, name)
    assert here.parent == other.parent == tmp_path
    assert here.name.startswith(f"v{ARCHIVE_VERSION}-small-")
    assert other.name.startswith(f"v{ARCHIVE_VERSION}-small-")
    assert other != here
    assert default_data_dir() == here  # and back, once the versions are ours again


def test_the_folder_name_is_stable_and_the_index_says_what_built_it(
    emulator_archive_root: Path,
) -> None:
    assert default_data_dir().name == default_data_dir().name
    built_with = json.loads((emulator_archive_root / "items.json").read_text())["built_with"]
    assert built_with["numpy"] == numpy.__version__
    assert built_with["gdal"] == rasterio.__gdal_version__
    assert built_with["geos"] == shapely.geos_version_string


@pytest.fixture
def emulator_archive_root() -> Path:
    """The default archive, as the emulator fixture builds it (in the user cache)."""
    return archive_module.build_archive().root
