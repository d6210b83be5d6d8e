"""The steps of ``axelglobe demo``: the provider guide, end to end, on the built-in emulator.

1. :func:`run_scenarios`: the guide's four searches, counting what each finds;
2. :func:`download_capture`: the true-colour images (``tci``) of one capture;
3. :func:`ndvi_series`: a red/NIR datacube of every capture of that ground, unusable pixels
   masked, NDVI per capture;
4. :func:`write_quicklook` and :func:`write_summary`: ``quicklook.png``, ``summary.json``,
   ``summary.txt``.

:func:`run_demo` runs them all against a fresh :class:`~pystac_axelglobe.emulator.Emulator`
with a temporary token cache, so it needs no credentials and leaves no token behind.

Example:
    >>> from pathlib import Path
    >>> result = run_demo(Path("axelglobe-demo"))  # doctest: +SKIP
    >>> result.scenarios[0].count  # doctest: +SKIP
    3
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac_axelglobe.filters as filters

from .emulator.archive import GUIDE_MULTIPOLYGON as _GUIDE_RINGS
from .errors import AxelGlobeError
from .settings import COLLECTION_ID

if TYPE_CHECKING:
    import pystac
    import pystac_client
    import xarray as xr

    from .auth import AxelGlobeAuth

#: The guide's example AOI and period.
GUIDE_BBOX = (133.0, 35.0, 137.0, 36.0)
GUIDE_DATETIME = "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z"
#: The guide's capture id (the Tasking API scenario).
GUIDE_CAPTURE_ID = "52eZg9k7rPEyYQGX"
#: The guide's MULTIPOLYGON (its third search scenario), as GeoJSON; the emulator's archive
#: lays its Brazilian captures around the same rings.
GUIDE_MULTIPOLYGON = {
    "type": "MultiPolygon",
    "coordinates": [[[list(point) for point in ring]] for ring in _GUIDE_RINGS],
}
#: How ``summary.txt`` shows a capture whose items carry no ``ag:capture_id``.
NO_CAPTURE_ID = "(no capture id)"
#: Where the demo writes when no folder is given.
DEFAULT_OUTPUT = Path("axelglobe-demo")

Echo = Callable[[str], Any]


@dataclasses.dataclass
class Scenario:
    """One of the guide's searches and what it found."""

    name: str
    description: str
    params: dict[str, Any]
    count: int = 0
    item_ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class NDVIPoint:
    """The mean NDVI of one capture over the AOI (usable pixels only).

    ``capture_id`` is ``""`` for a capture whose items carry no ``ag:capture_id``.
    """

    date: str
    capture_id: str
    mean: float | None
    usable_pixels: int


@dataclasses.dataclass
class DemoResult:
    """What the demo did; written out as ``summary.json``."""

    output: Path
    scenarios: list[Scenario]
    downloads: list[tuple[Path, int]]
    ndvi: list[NDVIPoint]
    quicklook: Path

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (paths relative to the output folder)."""
        return {
            "scenarios": [
                {"name": s.name, "description": s.description, "count": s.count,
                 "params": s.params, "item_ids": s.item_ids}
                for s in self.scenarios
            ],
            "downloads": [
                {"file": _relative(path, self.output), "bytes": size}
                for path, size in self.downloads
            ],
            "ndvi": [dataclasses.asdict(point) for point in self.ndvi],
            "quicklook": _relative(self.quicklook, self.output),
        }


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def guide_scenarios() -> list[Scenario]:
    """The four searches of the provider's getting-started guide.

    Example:
        >>> [s.name for s in guide_scenarios()]
        ['item-cloud-cover', 'aoi-cloud-cover', 'multipolygon-aoi-cloud-cover', 'capture-id']
    """
    common = {"collections": [COLLECTION_ID], "datetime": GUIDE_DATETIME, "limit": 5}
    return [
        Scenario("item-cloud-cover",
                 "tiles in bbox 133,35,137,36, 2021-04-10..06-30, item cloud cover <= 30%",
                 {**common, "bbox": list(GUIDE_BBOX), "filter": filters.cloud_cover(30)}),
        Scenario("aoi-cloud-cover",
                 "same bbox and dates, mean cloud cover of each capture's tiles in it <= 30%",
                 {**common, "bbox": list(GUIDE_BBOX), "filter": filters.aoi_cloud_cover(30)}),
        Scenario("multipolygon-aoi-cloud-cover",
                 "the guide's MULTIPOLYGON, same dates, AOI cloud cover <= 20%",
                 {**common, "filter": filters.all_of(filters.aoi_cloud_cover(20),
                                                     filters.intersects(GUIDE_MULTIPOLYGON))}),
        Scenario("capture-id", f"every tile of capture {GUIDE_CAPTURE_ID}",
                 {"collections": [COLLECTION_ID], "limit": 20,
                  "filter": filters.capture_id(GUIDE_CAPTURE_ID)}),
    ]


def run_scenarios(client: pystac_client.Client, echo: Echo = print
                  ) -> tuple[list[Scenario], dict[str, list[pystac.Item]]]:
    """Run the guide's searches; print and return how many items each found.

    Example:
        >>> scenarios, items = run_scenarios(ag.open())  # doctest: +SKIP
    """
    scenarios = guide_scenarios()
    found: dict[str, list[pystac.Item]] = {}
    echo("Searching (the provider guide's scenarios):")
    for scenario in scenarios:
        items = list(client.search(**scenario.params).item_collection())
        scenario.count = len(items)
        scenario.item_ids = sorted(item.id for item in items)
        found[scenario.name] = items
        echo(f"  {scenario.count:3d} item(s)  {scenario.description}")
    return scenarios, found


def download_capture(items: Sequence[pystac.Item], directory: Path, *, auth: AxelGlobeAuth,
                     progress: bool = True, echo: Echo = print) -> list[tuple[Path, int]]:
    """Download the true-colour image (``tci``) of each item; the files and their sizes.

    Example:
        >>> download_capture(items, Path("out"), auth=ag.AxelGlobeAuth())  # doctest: +SKIP
    """
    from .downloads import download

    echo(f"Downloading the true-colour images of {len(items)} tile(s)...")
    local = download(list(items), assets=["tci"], directory=directory, progress=progress,
                     auth=auth)
    files = sorted((Path(item.assets["tci"].href) for item in local), key=str)
    result = [(path, path.stat().st_size) for path in files]
    for path, size in result:
        echo(f"  {path} ({size / 1e6:.2f} MB)")
    return result


def _aoi_of(items: Sequence[pystac.Item]) -> tuple[float, float, float, float]:
    """The lon/lat bounds of the items' footprints."""
    import shapely.geometry
    from shapely import unary_union

    union = unary_union([shapely.geometry.shape(item.geometry) for item in items])
    minx, miny, maxx, maxy = union.bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def ndvi_series(client: pystac_client.Client, capture_items: Sequence[pystac.Item], *,
                auth: AxelGlobeAuth, echo: Echo = print
                ) -> tuple[xr.Dataset, xr.DataArray, list[NDVIPoint]]:
    """NDVI of every capture of the ground that ``capture_items`` cover.

    Searches every capture of that AOI, loads red, NIR, the unusable-data mask and the
    true-colour image on one 5 m grid (one time slice per capture), masks unusable pixels
    and computes NDVI. A capture whose items do not carry ``ag:capture_id`` (the API may
    leave it out) has ``""`` as its id: it is not made up.

    Returns:
        The unmasked dataset (for the true-colour picture), the NDVI array and the mean
        NDVI per capture.

    Example:
        >>> ds, ndvi, points = ndvi_series(client, items, auth=auth)  # doctest: +SKIP
    """
    import numpy as np

    from .datacube import load, mask_unusable

    aoi = _aoi_of(capture_items)
    # The capture's own items, as the capture search gave them: they carry its id even from
    # a server that leaves ag:capture_id out (the guide's example item has none), and the
    # load's time slice of that capture takes it from them.
    known = {item.id: item for item in capture_items}
    series = [known.get(item.id, item) for item in
              client.search(collections=[COLLECTION_ID], bbox=list(aoi)).item_collection()]
    echo(f"Loading a red/NIR datacube of {len(series)} tile(s) over "
         f"{', '.join(f'{v:.3f}' for v in aoi)}...")
    ds = load(series, bands=["red", "nir", "msi_udm", "tci_red", "tci_green", "tci_blue"],
              resolution=5, bbox=list(aoi), auth=auth)
    clean = mask_unusable(ds)
    red = clean["red"]
    nir = clean["nir"]
    ndvi = ((nir - red) / (nir + red)).rename("ndvi")
    points = []
    capture_ids = (ds["capture_id"].values if "capture_id" in ds.coords
                   else [""] * ds.sizes["time"])
    for i, when in enumerate(ds["time"].values):
        values = ndvi.isel(time=i).values
        usable = int(np.isfinite(values).sum())
        mean = float(np.nanmean(values)) if usable else None
        date = str(np.datetime_as_string(when, unit="D"))
        points.append(NDVIPoint(date=date, capture_id=str(capture_ids[i]),
                                mean=None if mean is None else round(mean, 4),
                                usable_pixels=usable))
        shown = "no usable pixel" if mean is None else f"{mean:+.3f}"
        echo(f"  {date}  NDVI mean {shown}  ({usable} usable pixels)")
    return ds, ndvi, points


def write_quicklook(ds: xr.Dataset, ndvi: xr.DataArray, points: Sequence[NDVIPoint],
                    path: Path) -> Path:
    """A PNG: per capture, the true-colour image beside its NDVI (colour bar, dates).

    Example:
        >>> write_quicklook(ds, ndvi, points, Path("quicklook.png"))  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed (servers, CI)
    import matplotlib.pyplot as plt
    import numpy as np

    rows = len(points)
    fig, axes = plt.subplots(rows, 2, figsize=(8, 3.6 * rows), squeeze=False,
                             constrained_layout=True)
    image = None
    for i, point in enumerate(points):
        rgb = np.stack([ds[f"tci_{c}"].isel(time=i).values for c in ("red", "green", "blue")],
                       axis=-1).astype(np.float32) / 255.0
        ax_rgb, ax_ndvi = axes[i]
        ax_rgb.imshow(np.clip(rgb, 0, 1))
        ax_rgb.set_title(f"{point.date} true colour")
        image = ax_ndvi.imshow(ndvi.isel(time=i).values, cmap="RdYlGn", vmin=-1, vmax=1)
        mean = "n/a" if point.mean is None else f"{point.mean:.3f}"
        ax_ndvi.set_title(f"{point.date} NDVI (mean {mean})")
        # Masked pixels (cloud, no data) are NaN: grey, so they do not pass for NDVI 0.
        ax_ndvi.set_facecolor("0.6")
        for ax in (ax_rgb, ax_ndvi):
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=axes[:, 1].tolist(), label="NDVI (grey: cloud or no data)",
                     shrink=0.8)
    fig.suptitle("AxelGlobe emulator: GRUS-1 true colour and NDVI per capture")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_summary(result: DemoResult) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.txt`` in the output folder.

    Example:
        >>> write_summary(result)  # doctest: +SKIP
    """
    data = result.to_dict()
    json_path = result.output / "summary.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    lines = ["AxelGlobe demo (on the built-in emulator)", "", "Searches:"]
    lines += [f"  {s['count']:3d} item(s)  {s['description']}" for s in data["scenarios"]]
    lines += ["", "Downloaded:"]
    lines += [f"  {d['file']}  {d['bytes']} bytes" for d in data["downloads"]]
    lines += ["", "Mean NDVI per capture (unusable pixels masked):"]
    for p in data["ndvi"]:
        mean = "no usable pixel" if p["mean"] is None else f"{p['mean']:+.4f}"
        lines.append(f"  {p['date']}  {p['capture_id'] or NO_CAPTURE_ID}  {mean}")
    lines += ["", f"Quick-look: {data['quicklook']}"]
    txt_path = result.output / "summary.txt"
    txt_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, txt_path


def run_demo(output: Path = DEFAULT_OUTPUT, *, echo: Echo = print, progress: bool = True,
             emulator_kwargs: dict[str, Any] | None = None) -> DemoResult:
    """Run the whole demo against a fresh emulator; write everything into ``output``.

    Args:
        output: The folder to write into (created if missing).
        echo: Where progress lines go.
        progress: Show the download progress bar (on a terminal).
        emulator_kwargs: Switches for the :class:`~pystac_axelglobe.emulator.Emulator`,
            e.g. ``{"capture_ids": False}`` for items without ``ag:capture_id``, as the
            guide's example item.

    Example:
        >>> run_demo(Path("axelglobe-demo"))  # doctest: +SKIP
    """
    from .auth import AxelGlobeAuth
    from .client import open as ag_open
    from .emulator import Emulator

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    echo("Starting the AxelGlobe emulator (the first run builds its archive)...")
    # A throw-away token cache: the demo must not leave tokens in the user's real cache.
    with tempfile.TemporaryDirectory(prefix="axelglobe-demo-") as cache, \
            Emulator(**(emulator_kwargs or {})) as emu:
        auth = AxelGlobeAuth(emu.client_id, emu.client_secret, api_url=emu.api_url,
                             token_url=emu.token_url, audience=emu.audience, cache_dir=cache)
        client = ag_open(emu.api_url, auth=auth)
        scenarios, found = run_scenarios(client, echo)
        capture = found["capture-id"]
        if not capture:
            raise AxelGlobeError(f"the emulator has no capture {GUIDE_CAPTURE_ID}; delete its "
                                 "archive folder to have it rebuilt")
        downloads = download_capture(capture, output / "downloads", auth=auth,
                                     progress=progress, echo=echo)
        ds, ndvi, points = ndvi_series(client, capture, auth=auth, echo=echo)
        quicklook = write_quicklook(ds, ndvi, points, output / "quicklook.png")
    result = DemoResult(output=output, scenarios=scenarios, downloads=downloads, ndvi=points,
                        quicklook=quicklook)
    write_summary(result)
    echo(f"Wrote {quicklook.name}, summary.json and summary.txt to {output.resolve()}")
    return result


__all__ = [
    "DemoResult",
    "NDVIPoint",
    "Scenario",
    "download_capture",
    "guide_scenarios",
    "ndvi_series",
    "run_demo",
    "run_scenarios",
    "write_quicklook",
    "write_summary",
]
