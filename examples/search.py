"""Search AxelGlobe as the provider's getting-started guide does, with pystac-client.

Runs against your account when AXELGLOBE_API_URL (and the credentials) are set, otherwise
against the built-in emulator, started here on loopback:

    python examples/search.py

Prints what each of the guide's searches finds, then a table of the AOI cloud cover search.
"""

from __future__ import annotations

from typing import Any

import pystac_axelglobe as ag
from pystac_axelglobe import filters
from pystac_axelglobe.emulator import unless_configured

BBOX = [133, 35, 137, 36]
DATETIME = "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z"
CAPTURE_ID = "52eZg9k7rPEyYQGX"
# The guide's MULTIPOLYGON, as GeoJSON.
AOI = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[-50.377998355519196, -21.25571182037737], [-50.39389773429008, -21.306903229767897],
          [-50.33831203728997, -21.326928577662557], [-50.30119747112292, -21.30514840932203],
          [-50.30233752991262, -21.265344869483116], [-50.377998355519196, -21.25571182037737]]],
        [[[-50.30307167289692, -21.33556537511332], [-50.29675481118801, -21.352508108156158],
          [-50.320483483126424, -21.37151690592809], [-50.33829784306903, -21.37531838541942],
          [-50.32083308423938, -21.415381832666043], [-50.27781101074311, -21.39743120280255],
          [-50.26742062143981, -21.40399484490206], [-50.24515788837763, -21.3798116216757],
          [-50.20469383948901, -21.389847864440497], [-50.19355419558164, -21.371524192627504],
          [-50.249239808424704, -21.337647270055186], [-50.30307167289692, -21.33556537511332]]],
    ],
}


def main() -> None:
    with unless_configured() as emulator:
        if emulator is not None:
            print("AXELGLOBE_API_URL is not set: using the built-in emulator.")
        client = ag.open()
        searches: dict[str, dict[str, Any]] = {
            "item cloud cover <= 30% in the bbox": dict(
                bbox=BBOX, datetime=DATETIME, filter=filters.cloud_cover(30)),
            "AOI cloud cover <= 30% in the bbox": dict(
                bbox=BBOX, datetime=DATETIME, filter=filters.aoi_cloud_cover(30)),
            "AOI cloud cover <= 20% in the MULTIPOLYGON": dict(
                datetime=DATETIME,
                filter=filters.all_of(filters.aoi_cloud_cover(20), filters.intersects(AOI))),
            f"capture {CAPTURE_ID}": dict(filter=filters.capture_id(CAPTURE_ID)),
        }
        for name, params in searches.items():
            items = client.search(collections=["grus-1"], limit=5, **params).item_collection()
            print(f"{len(items):3d} item(s): {name}")

        items = client.search(collections=["grus-1"], **searches[
            "AOI cloud cover <= 30% in the bbox"]).item_collection()
        print()
        print(f"{'id':38} {'date':10} {'cloud':>5}  capture")
        for item in items:
            capture = ag.AxelGlobeExtension.ext(item).capture_id
            date = item.datetime.date().isoformat() if item.datetime else ""
            print(f"{item.id:38} {date:10} {item.properties['eo:cloud_cover']:5.1f}  {capture}")


if __name__ == "__main__":
    main()
