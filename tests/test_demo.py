"""``axelglobe demo`` end to end, its figures checked against the emulator's own data.

The demo runs twice: as the command (a subprocess), and in-process on an emulator that
serves items without ``ag:capture_id``, as the guide's example item; both must find,
download and compute the same.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cql2
import numpy as np
import pytest
import rasterio
import shapely.geometry
from shapely import unary_union

from pystac_axelglobe.demo import NO_CAPTURE_ID, guide_scenarios, run_demo
from pystac_axelglobe.emulator.archive import GUIDE_MULTIPOLYGON, Archive, build_archive

CAPTURE = "52eZg9k7rPEyYQGX"
START, END = "2021-04-10", "2021-06-30"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["with-capture-ids", "without-capture-ids"])
def demo_output(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bool]:
    """The output folder, what the demo printed, and whether the items carried their ids.

    The user's token cache (``AXELGLOBE_CACHE_DIR``) is ``user-cache`` beside the output.
    """
    out = tmp_path_factory.mktemp("demo") / "axelglobe-demo"
    user_cache = out.parent / "user-cache"
    if request.param == "with-capture-ids":
        env = {**os.environ, "AXELGLOBE_CACHE_DIR": str(user_cache)}
        proc = subprocess.run([sys.executable, "-m", "pystac_axelglobe.cli", "demo",
                               "--output", str(out)], capture_output=True, text=True,
                              timeout=240, check=False, env=env)
        assert proc.returncode == 0, proc.stderr
        return out, proc.stdout, True
    lines: list[str] = []
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("AXELGLOBE_CACHE_DIR", str(user_cache))
        # odc-geo (not ours) still calls shapely.ops.transform and multiplies Affines with *
        warnings.filterwarnings("ignore", "The 'shapely.ops.transform", DeprecationWarning)
        warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)
        run_demo(out, echo=lines.append, progress=False,
                 emulator_kwargs={"capture_ids": False})
    return out, "\n".join(lines) + "\n", False


def known(capture_id: str, served: bool) -> str:
    """The capture id the demo can know: every one when served, else the one it searched."""
    return capture_id if served or capture_id == CAPTURE else ""


@pytest.fixture(scope="module")
def items() -> list[dict[str, Any]]:
    # The same archive the demo's emulator serves (built once, deterministic).
    return build_archive().items("http://127.0.0.1:1/stac/v1/catalogs/axelglobe")


def _geom(item: dict[str, Any]) -> Any:
    return shapely.geometry.shape(item["geometry"])


def _in_period(item: dict[str, Any]) -> bool:
    return bool(START <= item["properties"]["datetime"][:10] <= END)


def _aoi_cloud_cover(items: list[dict[str, Any]], aoi: Any) -> dict[str, float]:
    """Per capture: the mean cloud cover of its tiles that touch the AOI (any date)."""
    groups: dict[str, list[float]] = {}
    for item in items:
        if _geom(item).intersects(aoi):
            groups.setdefault(item["properties"]["ag:capture_id"], []).append(
                item["properties"]["eo:cloud_cover"])
    return {cid: sum(v) / len(v) for cid, v in groups.items()}


def expected_scenarios(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The guide's four searches, evaluated here over the archive's items."""
    box = shapely.geometry.box(133, 35, 137, 36)
    poly = shapely.geometry.MultiPolygon([(ring, []) for ring in GUIDE_MULTIPOLYGON])
    box_avg = _aoi_cloud_cover(items, box)
    poly_avg = _aoi_cloud_cover(items, poly)
    found = {
        "item-cloud-cover": [i for i in items if _geom(i).intersects(box) and _in_period(i)
                             and i["properties"]["eo:cloud_cover"] <= 30],
        "aoi-cloud-cover": [i for i in items if _geom(i).intersects(box) and _in_period(i)
                            and box_avg[i["properties"]["ag:capture_id"]] <= 30],
        "multipolygon-aoi-cloud-cover": [
            i for i in items if _geom(i).intersects(poly) and _in_period(i)
            and poly_avg[i["properties"]["ag:capture_id"]] <= 20],
        "capture-id": [i for i in items if i["properties"].get("ag:capture_id") == CAPTURE],
    }
    return {name: sorted(i["id"] for i in found_items) for name, found_items in found.items()}


def test_demo_prints_counts_and_names_its_folder(demo_output: tuple[Path, str, bool],
                                                 items: list[dict[str, Any]]) -> None:
    out, stdout, _ = demo_output
    expected = expected_scenarios(items)
    counts = [int(m) for m in re.findall(r"^\s+(\d+) item\(s\)", stdout, flags=re.M)]
    assert counts == [len(ids) for ids in expected.values()]
    assert stdout.strip().splitlines()[-1].endswith(str(out.resolve()))


def test_summary_counts_match_the_archive(demo_output: tuple[Path, str, bool],
                                          items: list[dict[str, Any]]) -> None:
    out, _, _ = demo_output
    summary = json.loads((out / "summary.json").read_text())
    expected = expected_scenarios(items)
    assert {s["name"]: s["count"] for s in summary["scenarios"]} == {
        name: len(ids) for name, ids in expected.items()}
    assert {s["name"]: s["item_ids"] for s in summary["scenarios"]} == expected
    assert all(expected.values())  # every scenario finds something in the archive
    text = (out / "summary.txt").read_text()
    for ids in expected.values():
        assert f"{len(ids):3d} item(s)" in text


def test_downloads_are_the_capture_tci_files(demo_output: tuple[Path, str, bool],
                                             items: list[dict[str, Any]]) -> None:
    out, _, _ = demo_output
    archive = build_archive()
    summary = json.loads((out / "summary.json").read_text())
    capture = [i for i in items if i["properties"].get("ag:capture_id") == CAPTURE]
    assert len(summary["downloads"]) == len(capture)
    for entry in summary["downloads"]:
        path = out / entry["file"]
        assert path.is_file()
        assert path.stat().st_size == entry["bytes"] > 0
        item_id = path.name.split("_")[1]
        assert path.read_bytes() == archive.asset_path(item_id, path.name).read_bytes()
        assert path.name.endswith("_tci.tif")
        assert f"{entry['bytes']} bytes" in (out / "summary.txt").read_text()


def test_demo_leaves_no_token_behind(demo_output: tuple[Path, str, bool]) -> None:
    # The demo's token goes to a temporary cache, not to the user's.
    out, _, _ = demo_output
    assert not list((out.parent / "user-cache").rglob("*.json"))
    assert (out / "summary.json").is_file()  # it ran, with its own throw-away cache


def test_quicklook_is_a_real_png(demo_output: tuple[Path, str, bool]) -> None:
    out, _, _ = demo_output
    data = (out / "quicklook.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 400 <= width <= 4000 and 300 <= height <= 8000
    assert len(data) > 20_000  # pictures, not a blank canvas


def _tiles(archive: Archive, item: dict[str, Any], key: str) -> Any:
    name = Path(item["assets"][key]["href"]).name
    with rasterio.open(archive.asset_path(item["id"], name)) as src:
        return src.read(1)


def _ndvi_by_capture(archive: Archive, tiles: Iterable[dict[str, Any]]
                     ) -> dict[str, tuple[float, int]]:
    """Mean NDVI over usable pixels (msi_udm == 0, no nodata) read straight from the COGs."""
    sums: dict[str, list[float]] = {}
    for item in tiles:
        red = _tiles(archive, item, "band3").astype(np.float64)
        nir = _tiles(archive, item, "band5").astype(np.float64)
        udm = _tiles(archive, item, "msi_udm")
        ok = (udm == 0) & (red > 0) & (nir > 0)
        ndvi = (nir[ok] - red[ok]) / (nir[ok] + red[ok])
        acc = sums.setdefault(item["properties"]["ag:capture_id"], [0.0, 0])
        acc[0] += float(ndvi.sum())
        acc[1] += int(ok.sum())
    return {cid: (s / n, int(n)) for cid, (s, n) in sums.items() if n}


def test_ndvi_per_date_matches_the_rasters(demo_output: tuple[Path, str, bool],
                                           items: list[dict[str, Any]]) -> None:
    out, _, served = demo_output
    archive = build_archive()
    summary = json.loads((out / "summary.json").read_text())
    capture = [i for i in items if i["properties"].get("ag:capture_id") == CAPTURE]
    aoi = shapely.geometry.box(*unary_union([_geom(i) for i in capture]).bounds)
    # Tiles mostly inside the AOI (a sliver of a neighbour adds a handful of pixels at most).
    inside = [i for i in items if _geom(i).intersection(aoi).area > 0.5 * _geom(i).area]
    expected = _ndvi_by_capture(archive, inside)
    dates = {i["properties"]["ag:capture_id"]: i["properties"]["datetime"][:10] for i in inside}

    points = summary["ndvi"]
    in_order = sorted(expected, key=lambda c: dates[c])
    # one point per capture, in time order; without ids served, only the capture searched
    # for by its id is named (the others are not made up)
    assert [p["capture_id"] for p in points] == [known(c, served) for c in in_order]
    assert CAPTURE in expected and len(points) >= 2  # a time series, not one picture
    text = (out / "summary.txt").read_text()
    for point, capture_id in zip(points, in_order, strict=True):
        mean, usable = expected[capture_id]
        assert point["date"] == dates[capture_id]
        assert point["mean"] == pytest.approx(mean, abs=0.01)
        assert point["usable_pixels"] == pytest.approx(usable, rel=0.02)
        shown = point["capture_id"] or NO_CAPTURE_ID
        assert f"{point['date']}  {shown}  {point['mean']:+.4f}" in text


def test_scenarios_are_the_guides(shared_dir: Path) -> None:
    guide = (shared_dir / "seeds" / "axelglobe-stac-api-getting-started.txt").read_text()
    guide_filters = re.findall(r'--data-urlencode "filter=(.*?)"\n', guide)
    assert len(guide_filters) == 4
    ours = [s.params["filter"] for s in guide_scenarios()]
    for text, theirs in zip(ours, guide_filters, strict=True):
        assert cql2.parse_text(text).to_json() == cql2.parse_text(theirs).to_json()
    bboxes = re.findall(r'"bbox=([\d,]+)"', guide)
    assert [s.params.get("bbox") for s in guide_scenarios()][:2] == [
        [float(v) for v in b.split(",")] for b in bboxes]
