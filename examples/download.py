"""Download the true-colour images and cloud masks of one capture.

Runs against your account when AXELGLOBE_API_URL (and the credentials) are set, otherwise
against the built-in emulator, started here on loopback:

    python examples/download.py [FOLDER]      # default: ./axelglobe-download

Re-running it skips the files already complete; an interrupted download resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pystac_axelglobe as ag
from pystac_axelglobe import filters
from pystac_axelglobe.emulator import unless_configured

CAPTURE_ID = "52eZg9k7rPEyYQGX"


def main(folder: Path) -> None:
    with unless_configured() as emulator:
        if emulator is not None:
            print("AXELGLOBE_API_URL is not set: using the built-in emulator.")
        client = ag.open()
        items = client.search(collections=["grus-1"],
                              filter=filters.capture_id(CAPTURE_ID)).item_collection()
        print(f"capture {CAPTURE_ID}: {len(items)} tile(s)")
        local = ag.download(items, assets=["tci", "msi_udm"], directory=folder)
        for item in local:
            for key in ("tci", "msi_udm"):
                path = Path(item.assets[key].href)
                print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("axelglobe-download"))
