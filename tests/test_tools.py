"""The pages of docs/tools/ run as a reader pastes them, against the emulator.

Each page's fenced ``python`` blocks run in one namespace, and its ``sh`` blocks in bash, in
order, in a fresh folder, with the emulator's ``AXELGLOBE_*`` variables exported and the
production URL pointed at the emulator. A block preceded by ``<!-- needs: MODULE -->`` runs
only where MODULE is installed. What each page sent to AxelGlobe (token requests, searches,
redirects, other API requests) is counted at the emulator and must be what the table in
docs/tools/index.md says; then the results are checked against the archive's files or
``ag.load()``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import requests
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import Archive

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "docs" / "tools"
PRODUCTION = "https://api.axelglobe.com/stac/v1/catalogs/axelglobe"
CAPTURE = "52eZg9k7rPEyYQGX"
BLOCK = re.compile(
    r"(?:<!-- needs: (?P<needs>[\w.]+) -->\n)?```(?P<lang>python|sh)\n(?P<code>.*?)```", re.S)

pytestmark = [
    # Upstream, not ours (as in tests/test_datacube.py).
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]


@dataclasses.dataclass(frozen=True)
class Cost:
    """What a page sent to AxelGlobe, counted at the emulator."""

    token_requests: int
    searches: int
    redirects: int
    other_api_requests: int
    #: for a documented cost: the most redirects, where the count depends on scheduling
    redirects_at_most: int | None = dataclasses.field(default=None, compare=False)

    def within(self, documented: Cost) -> bool:
        """Whether this measured cost is what ``documented`` says."""
        most = documented.redirects_at_most or documented.redirects
        return (dataclasses.replace(self, redirects=0) == dataclasses.replace(documented,
                                                                              redirects=0)
                and documented.redirects <= self.redirects <= most)

    @classmethod
    def between(cls, before: dict[str, int], after: dict[str, int]) -> Cost:
        d = {k: after[k] - before[k] for k in after}
        return cls(d["token_requests"], d["search_requests"], d["redirects"],
                   d["api_requests"] - d["search_requests"] - d["redirects"])


@dataclasses.dataclass
class Run:
    namespace: dict[str, Any]
    cost: Cost
    storage: dict[str, int]
    skipped: list[str]
    shell_output: list[str]


def _archive(emu: Emulator) -> Archive:
    assert emu.archive is not None
    return emu.archive


def documented_costs() -> dict[str, Cost]:
    """The table of docs/tools/index.md: page file -> the cost it states."""
    costs = {}
    row = re.compile(r"\| \[[^]]+\]\(([\w.-]+\.md)\) \|.*"
                     r"\| (\d+) \| (\d+) \| (\d+)(?:–(\d+))? \| (\d+) \|$")
    for line in (TOOLS / "index.md").read_text().splitlines():
        m = row.match(line)
        if m:
            tokens, searches, redirects, most, other = m.group(2, 3, 4, 5, 6)
            costs[m.group(1)] = Cost(int(tokens), int(searches), int(redirects), int(other),
                                     int(most) if most else None)
    return costs


def run_page(name: str, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             *, run_all: bool = False) -> Run:
    """Run the page's blocks in order; what they left and what they cost."""
    text = (TOOLS / name).read_text()
    blocks = list(BLOCK.finditer(text))
    assert blocks, f"{name} has no code block"
    monkeypatch.chdir(tmp_path)
    # The venv's commands (axelglobe, stac-client) first, as in an activated venv.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict[str, Any] = {}
    skipped, shell_output = [], []
    before = emu.counters.as_dict()
    for block in blocks:
        needs = block.group("needs")
        if needs and not run_all and importlib.util.find_spec(needs) is None:
            skipped.append(needs)
            continue
        code = block.group("code").replace(PRODUCTION, emu.api_url)
        if block.group("lang") == "python":
            exec(compile(code, f"{name}:block", "exec"), namespace)
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True,
                                  text=True, timeout=120, check=False)
            assert proc.returncode == 0, f"{name}: {code}\n{proc.stderr}"
            shell_output.append(proc.stdout)
    after = emu.counters.as_dict()
    cost = Cost.between(before, after)
    storage = {k: after[k] - before[k] for k in after if k.startswith("storage")}
    print(f"\n{name}: {cost}; storage: {storage}")  # the costs, for `pytest -s`
    return Run(namespace, cost, storage, skipped, shell_output)


def assert_documented_cost(name: str, run: Run) -> None:
    documented = documented_costs()[name]
    assert run.cost.within(documented), (
        f"{name} cost {run.cost}, docs/tools/index.md says {documented}")


def search_ids(emu: Emulator, tmp_path: Path, **kwargs: Any) -> list[str]:
    """What ``ag.open()`` finds (the reference), without touching the page's counters."""
    client = ag.open(**emu.settings_kwargs(), cache_dir=tmp_path / "reference-cache")
    return [item.id for item in client.search(**kwargs).items()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_bytes(emu: Emulator, item: pystac.Item, key: str) -> bytes:
    name = item.assets[key].href.rsplit("/", 1)[1].split("?")[0]
    return _archive(emu).asset_path(item.id, name).read_bytes()


def archive_pixels(emu: Emulator, item: pystac.Item, key: str) -> np.ndarray[Any, Any]:
    name = item.assets[key].href.rsplit("/", 1)[1].split("?")[0]
    with rasterio.open(_archive(emu).asset_path(item.id, name)) as src:
        pixels: np.ndarray[Any, Any] = src.read()
    return pixels


def on_storage(emu: Emulator, href: str) -> bool:
    return href.startswith(emu.storage_url) and "X-Amz-Signature=" in href


# --- the pages ---------------------------------------------------------------------------


def test_every_tools_page_is_run_here() -> None:
    tested = {"index.md", "pystac-client.md", "stac-client-cli.md", "stackstac.md",
              "rasterio.md", "stac-asset.md", "geoparquet.md", "xarray-files.md", "dask.md"}
    assert {p.name for p in TOOLS.glob("*.md")} == tested
    assert set(documented_costs()) == tested


def test_signing_page(emulator_env: Emulator, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("index.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("index.md", run)
    items, signed, url = run.namespace["items"], run.namespace["signed"], run.namespace["url"]
    assert len(items) == 4
    for original, copy in zip(items, signed, strict=True):
        for key, asset in copy.assets.items():
            assert on_storage(emulator_env, asset.href)
            assert original.assets[key].href.startswith(emulator_env.api_url)  # untouched
    assert url == signed[0].assets["tci"].href  # the cached URL: no second redirect
    got = requests.get(url, timeout=30)
    assert sha(got.content) == sha(archive_bytes(emulator_env, items[0], "tci"))


def test_pystac_client_page(emulator_env: Emulator, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("pystac-client.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("pystac-client.md", run)
    items, signed = run.namespace["items"], run.namespace["signed"]
    assert [i.id for i in items] == search_ids(
        emulator_env, tmp_path, collections=["grus-1"], bbox=[133, 35, 137, 36],
        filter="eo:cloud_cover <= 30")
    assert len(items) == 9  # 5 pages at limit=2
    assert [i.id for i in signed] == search_ids(emulator_env, tmp_path,
                                                filter=f"ag:capture_id = '{CAPTURE}'")
    for item in signed:
        assert all(on_storage(emulator_env, a.href) for a in item.assets.values())
        assert ag.AxelGlobeExtension.ext(item).capture_id == CAPTURE  # normalised too
        assert item.assets["band3"].media_type == pystac.MediaType.COG


def test_stac_client_cli_page(emulator_env: Emulator, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("stac-client-cli.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("stac-client-cli.md", run)
    one_page = pystac.ItemCollection.from_file(str(tmp_path / "items.json"))
    assert [i.id for i in one_page] == search_ids(
        emulator_env, tmp_path, collections=["grus-1"], bbox=[133, 35, 137, 36],
        datetime="2021-04-10T00:00:00Z/2021-06-30T23:59:59Z", filter="eo:cloud_cover <= 30")
    everything = pystac.ItemCollection.from_file(str(tmp_path / "all-items.json"))
    assert [i.id for i in everything] == search_ids(
        emulator_env, tmp_path, bbox=[133, 35, 137, 36],
        datetime="2021-04-10T00:00:00Z/2021-06-30T23:59:59Z", filter="eo:cloud_cover <= 30")


def test_stac_client_cli_page_says_what_fails(emulator_env: Emulator, tmp_path: Path) -> None:
    # The page's table: POST is refused, and a second page silently loses the filter.
    token = emulator_env.token()
    base = ["stac-client", "search", emulator_env.api_url, "--headers",
            f"Authorization=Bearer {token}", "-c", "grus-1"]
    exe = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    post = subprocess.run(base + ["--max-items", "3"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **exe})
    assert post.returncode != 0 and "MethodNotAllowed" in post.stderr
    out = tmp_path / "paged.json"
    paged = subprocess.run(base + ["--method", "GET", "--filter", "eo:cloud_cover <= 30",
                                   "--filter-lang", "cql2-text", "--limit", "5",
                                   "--max-items", "20", "--save", str(out)],
                           capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, **exe})
    assert paged.returncode == 0, paged.stderr
    clouds = [i.properties["eo:cloud_cover"] for i in pystac.ItemCollection.from_file(str(out))]
    assert all(c <= 30 for c in clouds[:5])  # page 1: filtered
    assert any(c > 30 for c in clouds[5:])  # page 2 on: the filter is gone


def _same_grid(a: xr.DataArray) -> xr.DataArray:
    # stackstac and odc-stac compute pixel centres differently: equal to the millimetre.
    rounded: xr.DataArray = a.assign_coords(x=np.round(a.x.values, 3), y=np.round(a.y.values, 3))
    return rounded


def test_stackstac_page(emulator_env: Emulator, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("stackstac.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("stackstac.md", run)
    ns = run.namespace
    assert list(ns["cube"].band.values) == ["band3", "band5"]
    items = ns["items"]
    # Tile by tile, the pixels stackstac read are those ag.load() reads.
    for i, item in enumerate(items):
        mine = ag.load([item], bands=["red", "nir"]).isel(time=0)
        for band, name in (("band3", "red"), ("band5", "nir")):
            theirs, ours = xr.align(_same_grid(ns["cube"].isel(time=i).sel(band=band)),
                                    _same_grid(mine[name]), join="inner")
            assert ours.size >= 0.9 * mine[name].size  # the same grid, nearly the same extent
            inside = (ours != 0).values & ~np.isnan(theirs.values)
            assert inside.sum() > 0.5 * ours.size
            np.testing.assert_array_equal(theirs.values[inside], ours.values[inside])
    assert np.isfinite(ns["ndvi"].values).any()


def test_rasterio_page(emulator_env: Emulator, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("rasterio.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("rasterio.md", run)
    ns, item = run.namespace, run.namespace["item"]
    np.testing.assert_array_equal(ns["tci"].values, archive_pixels(emulator_env, item, "tci"))
    assert str(ns["tci"].rio.crs) == "EPSG:32653"
    np.testing.assert_array_equal(ns["red"], archive_pixels(emulator_env, item, "band3")[0])
    # What the page says of GDAL: no HEAD, no Authorization at storage.
    assert run.storage["storage_head_requests"] == 0
    assert run.storage["storage_requests_with_authorization"] == 0


def test_stac_asset_page(emulator_env: Emulator, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("stac-asset.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("stac-asset.md", run)
    items, local = run.namespace["items"], run.namespace["local"]
    assert [i.id for i in local] == [i.id for i in items]
    for item, got in zip(items, local, strict=True):
        path = Path(got.assets["tci"].href)
        assert path.is_file() and tmp_path / "downloads" in path.parents
        assert sha(path.read_bytes()) == sha(archive_bytes(emulator_env, item, "tci"))
    assert run.storage["storage_requests_with_authorization"] == 0


def test_geoparquet_page(emulator_env: Emulator, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_page("geoparquet.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("geoparquet.md", run)
    items, back = run.namespace["items"], run.namespace["back"]

    def without_root(item: pystac.Item) -> dict[str, Any]:
        d = item.to_dict(transform_hrefs=False)
        d["links"] = [link for link in d["links"] if link["rel"] != "root"]
        return d

    assert [without_root(i) for i in back] == [without_root(i) for i in items]
    assert all(link.rel != "root" for i in back for link in i.links)
    expected = ag.load(items, bands=["red", "nir"])
    xr.testing.assert_identical(run.namespace["ds"], expected)


# to_netcdf() without engine= tries h5netcdf too only from xarray 2025.8 (before: netCDF4,
# scipy), and the page names no engine.
NETCDF_WRITERS = ("h5netcdf", "netCDF4", "scipy") if tuple(
    int(p) for p in xr.__version__.split(".")[:2]) >= (2025, 8) else ("netCDF4", "scipy")


def test_xarray_files_page(emulator_env: Emulator, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(importlib.util.find_spec(m) for m in NETCDF_WRITERS):
        pytest.skip(f"no netCDF back-end that xarray picks by itself "
                    f"({', '.join(NETCDF_WRITERS)}) is installed")
    run = run_page("xarray-files.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("xarray-files.md", run)
    ds, back = run.namespace["ds"], run.namespace["back"]
    assert back.odc.crs == ds.odc.crs == "EPSG:32653"
    assert back.red.odc.crs == ds.red.odc.crs
    xr.testing.assert_equal(back.red, ds.red)
    assert "spatial_ref" in back.red.coords
    # What the page says happens without decode_coords="all".
    plain = xr.open_dataset(tmp_path / "capture.nc")
    assert "spatial_ref" in plain.data_vars and "spatial_ref" not in plain.red.coords
    assert plain.red.rio.crs is None


def test_xarray_files_page_zarr(emulator_env: Emulator, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("zarr")
    run = run_page("xarray-files.md", emulator_env, tmp_path, monkeypatch, run_all=True)
    assert run.namespace["back"].red.odc.crs == run.namespace["ds"].red.odc.crs


@pytest.mark.slow
def test_dask_page(emulator_env: Emulator, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    with warnings.catch_warnings():
        # distributed's own, when another cluster on the machine holds its dashboard port
        warnings.filterwarnings("ignore", "Port 8787 is already in use")
        run = run_page("dask.md", emulator_env, tmp_path, monkeypatch)
    assert_documented_cost("dask.md", run)
    ds = ag.mask_unusable(ag.load(run.namespace["items"], bands=["red", "nir", "udm"]))
    expected = ((ds.nir - ds.red) / (ds.nir + ds.red)).mean(dim=["x", "y"])
    xr.testing.assert_allclose(run.namespace["ndvi"], expected)
