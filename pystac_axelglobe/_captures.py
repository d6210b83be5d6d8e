"""One time slice per capture: :func:`capture_key`, odc-stac's ``groupby`` for grus-1 items.

A capture is the tiles one satellite takes in one pass: ``ag:capture_id`` says which. Items
without it (the provider guide's example item has none) are grouped by time instead: tiles
of one ``platform`` whose datetimes follow each other within :data:`CAPTURE_WINDOW` seconds.

Example:
    >>> import datetime
    >>> when = datetime.datetime(2021, 4, 22, 1, 2, 3, tzinfo=datetime.timezone.utc)
    >>> items = [pystac.Item(i, None, None, when + datetime.timedelta(seconds=s),
    ...                      {"platform": "GRUS-1A"}) for i, s in (("a", 0), ("b", 7))]
    >>> capture_ids(items)
    {'a': '~GRUS-1A@2021-04-22T01:02:03+00:00', 'b': '~GRUS-1A@2021-04-22T01:02:03+00:00'}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pystac

from .extension import CAPTURE_ID_PROP

__all__ = ["CAPTURE_WINDOW", "capture_ids", "capture_key", "shown"]

#: Tiles of one platform whose datetimes follow each other within this many seconds form one
#: capture, for items without ``ag:capture_id`` (the guide's example item has none). A
#: capture's tiles are taken seconds apart; one satellite's captures, hours or days apart.
CAPTURE_WINDOW = 60.0


def _when(item: pystac.Item) -> dt.datetime | None:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def capture_ids(items: Sequence[pystac.Item]) -> dict[str, str]:
    """Item id -> capture: ``ag:capture_id``, else the fallback of :data:`CAPTURE_WINDOW`.

    A capture found by the fallback is named ``"~<platform>@<first datetime>"`` here; an
    item without a datetime stays its own capture. Items without the property that lie
    within the window of an item with it (same platform) join that item's capture.
    """
    out: dict[str, str] = {}
    runs: dict[str, list[tuple[dt.datetime, pystac.Item]]] = {}
    for item in items:
        value = item.properties.get(CAPTURE_ID_PROP)
        when = _when(item)
        if value:
            out[item.id] = str(value)
        elif when is None:
            out[item.id] = f"~item:{item.id}"
        if when is not None:
            platform = str(item.properties.get("platform") or "")
            runs.setdefault(platform, []).append((when, item))
    window = dt.timedelta(seconds=CAPTURE_WINDOW)
    for platform, timed in runs.items():
        timed.sort(key=lambda pair: pair[0])
        run = timed[:1]
        for pair in timed[1:]:
            if pair[0] - run[-1][0] > window:
                _name_run(run, platform, out)
                run = []
            run.append(pair)
        _name_run(run, platform, out)
    return out


def _name_run(run: list[tuple[dt.datetime, pystac.Item]], platform: str,
              out: dict[str, str]) -> None:
    # The items of one run without ag:capture_id take the id of the nearest item with one;
    # a run without any is one capture of its own.
    named = [(when, out[item.id]) for when, item in run if item.id in out]
    for when, item in run:
        if item.id in out:
            continue
        if named:
            out[item.id] = min(named, key=lambda pair: abs(pair[0] - when))[1]
        else:
            out[item.id] = f"~{platform}@{run[0][0].isoformat()}"


def capture_key(items: Sequence[pystac.Item]) -> Any:
    """A groupby key: one group per capture, ordered by the capture's first tile's time."""
    captures = capture_ids(items)
    starts: dict[str, dt.datetime] = {}
    for item in items:
        when = _when(item)
        if when is not None:
            cid = captures[item.id]
            starts[cid] = min(starts.get(cid, when), when)

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

    def key(item: pystac.Item, parsed: Any, idx: int) -> tuple[dt.datetime, str]:
        cid = captures.get(item.id) or capture_ids([item])[item.id]
        return (starts.get(cid, epoch), cid)

    return key


def shown(capture: str) -> str:
    """The ``capture_id`` coordinate of a capture: its id, ``""`` for one found by time.

    Example:
        >>> shown("oj4TNU2QPeNoH3fz"), shown("~GRUS-1A@2021-04-22T01:02:03+00:00")
        ('oj4TNU2QPeNoH3fz', '')
    """
    # An id made up here would look like AxelGlobe's and match nothing in a search.
    return "" if capture.startswith("~") else capture
