"""NDVI time series over an area of interest, from grus-1 red and NIR bands.

Searches AxelGlobe (pystac-client through ``ag.open()``), loads red, NIR and the
unusable-data mask lazily (``ag.load`` with ``chunks={}``), blanks cloudy pixels
(``ag.mask_unusable``) and prints the mean NDVI of each capture.

Without ``AXELGLOBE_API_URL`` in the environment it starts the project's emulator and runs
against it, so it works anywhere:

    python examples/ndvi_timeseries.py
    python examples/ndvi_timeseries.py --bbox 135.49 35.48 135.56 35.51 --max-cloud 30
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pystac_axelglobe as ag
from pystac_axelglobe.datacube import utm_crs
from pystac_axelglobe.emulator import unless_configured

DEFAULT_BBOX = (133.0, 35.0, 137.0, 36.0)  # the provider guide's example area
DEFAULT_DATETIME = "2021-01-01T00:00:00Z/2021-12-31T23:59:59Z"


def ndvi_table(bbox: Sequence[float], datetime: str, max_cloud: float | None = None) -> str:
    """One line per capture: date, capture id, usable pixels, mean NDVI."""
    with unless_configured() as emulator:
        if emulator is not None:
            print("AXELGLOBE_API_URL is not set: using the built-in emulator.")
        client = ag.open()
        query = f"eo:cloud_cover <= {max_cloud}" if max_cloud is not None else None
        items = list(client.search(collections=["grus-1"], bbox=list(bbox), datetime=datetime,
                                   filter=query).items())
        if not items:
            return "no grus-1 items in that area and time range"
        # one zone only: take the zone of the first item's area
        crs = utm_crs(items[:1])
        items = [i for i in items if utm_crs([i]) == crs]

        ds = ag.load(items, bands=["red", "nir", "udm"], chunks={})
        # share of the capture's own pixels (udm 255: outside its tiles) that are usable
        usable = (ds.udm == 0).sum(dim=("y", "x")) / (ds.udm != 255).sum(dim=("y", "x"))
        clean = ag.mask_unusable(ds)
        ndvi = (clean.nir - clean.red) / (clean.nir + clean.red)
        mean = ndvi.mean(dim=("y", "x"), skipna=True)
        usable, mean = usable.compute(), mean.compute()

    lines = [f"{len(items)} tiles, {ds.sizes['time']} captures, {crs}, 5 m",
             f"{'date':<20} {'capture':<17} {'usable':>7} {'NDVI':>7}"]
    for t in range(ds.sizes["time"]):
        when = str(ds.time.values[t])[:19]
        capture = str(ds.capture_id.values[t])
        value = float(mean.values[t])
        lines.append(f"{when:<20} {capture:<17} {float(usable.values[t]):>6.0%} "
                     f"{value:>7.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bbox", type=float, nargs=4, default=DEFAULT_BBOX,
                        metavar=("MINX", "MINY", "MAXX", "MAXY"))
    parser.add_argument("--datetime", default=DEFAULT_DATETIME)
    parser.add_argument("--max-cloud", type=float, default=None,
                        help="item-level eo:cloud_cover limit, percent")
    args = parser.parse_args(argv)
    print(ndvi_table(args.bbox, args.datetime, args.max_cloud))


if __name__ == "__main__":
    main()
