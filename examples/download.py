"""Download the true-colour images and cloud masks of one capture.

Runs against your account when AXELGLOBE_API_URL (and the credentials) are set, otherwise
against the built-in emulator, started here on loopback:

    python examples/download.py [FOLDER]      # default: ./axelglobe-download

Re-running it skips the files already complete; an interrupted download resumes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pystac_axelglobe as ag
from pystac_axelglobe import filters

CAPTURE_ID = "52eZg9k7rPEyYQGX"


@contextlib.contextmanager
def axelglobe() -> Iterator[dict[str, str]]:
    """Settings for ag.open(): yours from the environment, else a fresh emulator's."""
    if os.environ.get("AXELGLOBE_API_URL"):
        yield {}
        return
    from pystac_axelglobe.emulator import Emulator

    print("AXELGLOBE_API_URL is not set: using the built-in emulator.")
    with Emulator() as emu, tempfile.TemporaryDirectory() as cache:
        yield {**emu.settings_kwargs(), "cache_dir": cache}


def main(folder: Path) -> None:
    with axelglobe() as settings:
        auth = ag.AxelGlobeAuth(**settings)
        client = ag.open(auth.settings.api_url, auth=auth)
        items = client.search(collections=["grus-1"],
                              filter=filters.capture_id(CAPTURE_ID)).item_collection()
        print(f"capture {CAPTURE_ID}: {len(items)} tile(s)")
        local = ag.download(items, assets=["tci", "msi_udm"], directory=folder, auth=auth)
        for item in local:
            for key in ("tci", "msi_udm"):
                path = Path(item.assets[key].href)
                print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("axelglobe-download"))
