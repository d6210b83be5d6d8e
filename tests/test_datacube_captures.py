"""ag.load's time slices for items without ``ag:capture_id`` (the guide's example has none)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac
import pytest

import pystac_axelglobe as ag
from pystac_axelglobe import _captures, datacube
from pystac_axelglobe.emulator import Emulator

pytestmark = [
    # Upstream, not ours (see tests/test_datacube.py).
    pytest.mark.filterwarnings(
        "ignore:The 'shapely.ops.transform\\(\\)' function is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Use `@` matmul instead of `\\*` mul operator:PendingDeprecationWarning"),
]

JAPAN_CAPTURE = "52eZg9k7rPEyYQGX"  # 2x2 tiles, 2021-05-12, two pairs 2 s apart


def _auth(emu: Emulator) -> ag.AxelGlobeAuth:
    return ag.AxelGlobeAuth(**emu.settings_kwargs())


def _without_capture_id(items: list[pystac.Item]) -> list[pystac.Item]:
    out = [i.clone() for i in items]
    for item in out:
        del item.properties["ag:capture_id"]
    return out


def _partition(groups: dict[str, str]) -> set[frozenset[str]]:
    return {frozenset(k for k, v in groups.items() if v == g) for g in groups.values()}


def test_a_four_tile_capture_without_the_property_is_one_slice_with_the_same_pixels(
        emulator: Emulator) -> None:
    tiles = [i for i in emulator.items() if i.properties["ag:capture_id"] == JAPAN_CAPTURE]
    assert len(tiles) == 4
    auth = _auth(emulator)

    with_id = ag.load(tiles, bands=["red", "udm"], auth=auth)
    without = ag.load(_without_capture_id(tiles), bands=["red", "udm"], auth=auth)

    assert with_id.sizes["time"] == without.sizes["time"] == 1  # not 4 slices, one per tile
    np.testing.assert_array_equal(without.time.values, with_id.time.values)
    for var in ("red", "udm"):
        np.testing.assert_array_equal(without[var].values, with_id[var].values)
    # no id is made up: the coordinate says the capture's id is not known
    assert list(without.capture_id.values) == [""]
    assert list(with_id.capture_id.values) == [JAPAN_CAPTURE]


def test_several_captures_without_the_property_give_one_slice_each_in_time_order(
        emulator: Emulator) -> None:
    japan = [i for i in emulator.items() if str(datacube.utm_crs([i])) == "EPSG:32653"]
    captures = {i.properties["ag:capture_id"] for i in japan}
    auth = _auth(emulator)

    with_id = ag.load(japan, bands=["red"], chunks={}, auth=auth)
    without = ag.load(_without_capture_id(japan), bands=["red"], chunks={}, auth=auth)

    assert without.sizes["time"] == with_id.sizes["time"] == len(captures) >= 3
    np.testing.assert_array_equal(without.time.values, with_id.time.values)
    np.testing.assert_array_equal(without.red.values, with_id.red.values)


def test_the_fallback_finds_every_capture_of_the_archive(emulator: Emulator) -> None:
    # 45 tiles, 9 captures of 5 platforms; one capture's tiles span 10 s, and some
    # platforms capture twice on one day, hours apart
    items = emulator.items()
    truth = {i.id: i.properties["ag:capture_id"] for i in items}
    assert _captures.capture_ids(items) == truth

    found = _captures.capture_ids(_without_capture_id(items))

    assert _partition(found) == _partition(truth)
    assert len(set(found.values())) == 9


def test_the_window_separates_captures_and_joins_tiles_to_a_known_capture() -> None:
    box = {"type": "Polygon", "coordinates": [[[135, 35], [135.1, 35], [135.1, 35.1],
                                                [135, 35.1], [135, 35]]]}
    start = dt.datetime(2021, 5, 12, 1, 44, 42, tzinfo=dt.timezone.utc)
    window = datacube.CAPTURE_WINDOW

    def item(name: str, after: float, platform: str = "GRUS-1A",
             capture: str | None = None) -> pystac.Item:
        props: dict[str, object] = {"platform": platform}
        if capture:
            props["ag:capture_id"] = capture
        when = start + dt.timedelta(seconds=after)
        return pystac.Item(name, box, [135, 35, 135.1, 35.1], when, props)

    items = [
        # a strip: each tile within the window of the previous one, the last 100 s after
        # the first
        *(item(f"strip{n}", 50.0 * n) for n in range(3)),
        item("late", 100 + window + 1),  # beyond the window: another capture
        item("other", 0, platform="GRUS-1B"),  # same time, another satellite
        item("known", 1000, capture="K"),
        item("joins", 1010),  # 10 s from a tile of known capture K, same satellite
        item("elsewhere", 1010, platform="GRUS-1C"),  # ... but not this one
    ]
    found = _captures.capture_ids(items)

    assert found["strip0"] == found["strip1"] == found["strip2"]
    assert len({found["strip0"], found["late"], found["other"], found["elsewhere"]}) == 4
    assert found["known"] == found["joins"] == "K"
    assert found["elsewhere"] != "K"
