"""``axelglobe search --save FILE``: .json, .ndjson and stac-geoparquet, page by page, atomically.

Searches run on the emulator (``Emulator(extra_items=N)`` for many pages) or on a scripted
API on 127.0.0.1 (tokens from the session emulator) whose pages bring new fields, change a
field's type, fail midway or never answer. A parquet file is read back with
stac-geoparquet, the library that wrote it, and compared with the JSON save of the same
search. Where what happens between two pages is the point, pages are fetched one at a time
(``ag.open(prefetch_pages=1)``); elsewhere as ``ag.open()`` fetches them (ahead).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
import shapely.geometry
from click.testing import CliRunner, Result

from pystac_axelglobe import _parquet, _save
from pystac_axelglobe._stac_io import DEFAULT_PREFETCH_PAGES
from pystac_axelglobe.cli import cli
from pystac_axelglobe.emulator import Emulator
from tests.fake_api import FakeAPI, Handler, asked_page, item, page

CAPTURE = "52eZg9k7rPEyYQGX"
BULK = ("--datetime", "2022-01-01T00:00:00Z/..")  # the bulk items only (the archive is 2021)
N_BULK = 1100


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import stac_table_to_items

    return list(stac_table_to_items(pq.read_table(path)))


def _no_nulls(value: Any) -> Any:
    """``value`` without None members: an Arrow column fills them in where a key is absent."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def comparable(item: dict[str, Any]) -> dict[str, Any]:
    """What both JSON and stac-geoparquet say of an item (parquet writes datetimes as
    timestamps, geometries as WKB, absent keys as nulls)."""
    props = _no_nulls(item["properties"])
    props["datetime"] = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
    return {"id": item["id"], "collection": item.get("collection"), "bbox": list(item["bbox"]),
            "geometry": shapely.geometry.shape(item["geometry"]).wkb, "properties": props,
            "assets": _no_nulls(item["assets"]), "links": _no_nulls(item["links"])}


def leftovers(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def one_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's searches fetch each page when the one before is written (no prefetch)."""
    import pystac_axelglobe.client

    monkeypatch.setattr(pystac_axelglobe.client, "open",
                        functools.partial(pystac_axelglobe.client.open, prefetch_pages=1))


# ---------------------------------------------------------------- many pages, three formats


@pytest.fixture(scope="module")
def bulk() -> Iterator[Emulator]:
    with Emulator(extra_items=N_BULK) as emu:
        yield emu


@pytest.fixture(scope="module")
def saved(bulk: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bulk search (11 pages of 100) saved in each format, the parquet in 11 parts."""
    folder = tmp_path_factory.mktemp("saved")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in bulk.env().items():
            mp.setenv(name, value)
        mp.setenv("AXELGLOBE_CACHE_DIR", str(tmp_path_factory.mktemp("token-cache")))
        # one Arrow part per page: more than 10 parts, so their order is put to the test
        mp.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 100)
        paths = {}
        for fmt in _save.FORMATS:
            paths[fmt] = folder / f"items.{fmt}"
            before = bulk.counters.search_requests
            result = run("search", *BULK, "--limit", "100", "--save", str(paths[fmt]))
            assert result.exit_code == 0, result.stderr
            assert result.stderr == f"Saved {N_BULK} item(s) to {paths[fmt]}\n"
            # each page once; pages fetched ahead may go past the last one (empty pages)
            sent = bulk.counters.search_requests - before
            assert N_BULK // 100 <= sent <= N_BULK // 100 + DEFAULT_PREFETCH_PAGES, sent
    assert leftovers(folder) == ["items.json", "items.ndjson", "items.parquet"]
    return paths


@pytest.mark.slow
def test_parquet_round_trip_same_items_in_the_same_order(saved: dict[str, Path]) -> None:
    features = json.loads(saved["json"].read_text())["features"]
    back = read_parquet(saved["parquet"])
    assert len(features) == N_BULK
    assert [i["id"] for i in back] == [f["id"] for f in features]
    for original, read in zip(features, back, strict=True):
        assert comparable(read) == comparable(original)
    assert all(pystac.Item.from_dict(read).id for read in back[::50])  # STAC items again


@pytest.mark.slow
def test_parquet_is_stac_geoparquet_in_bounded_row_groups(saved: dict[str, Path]) -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(saved["parquet"]).metadata
    assert meta.num_rows == N_BULK
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 100
    geo = json.loads(meta.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    assert b"stac-geoparquet" in meta.metadata


@pytest.mark.slow
def test_ndjson_lines_are_the_items(saved: dict[str, Path]) -> None:
    features = json.loads(saved["json"].read_text())["features"]
    lines = saved["ndjson"].read_text().splitlines()
    assert [json.loads(line) for line in lines] == features
    assert all(pystac.Item.from_dict(json.loads(line)).id for line in lines[:50])


BENCH = Path(__file__).resolve().parents[1] / "bench" / "save.py"


@pytest.mark.slow
def test_memory_does_not_grow_with_the_items(tmp_path: Path) -> None:
    # Each save in a process of its own, as bench/save.py measures it: how much its peak
    # RSS (VmHWM) grows over the RSS it had before the search. Streamed, that is one
    # parquet chunk and the pages in flight, whatever the items (500 or 3,000: 2-3 MiB
    # apart). Kept, 2,500 more items would add ~45 MiB as dicts (pages kept by the command
    # or the writer), ~190 MiB as pystac.Items (what --save did before it streamed).
    # Parquet: the command's loop and the writer with the most to keep.
    small, large = 500, 3000
    growth = {}
    with Emulator(extra_items=large) as emu:
        env = {**os.environ, **emu.env(), "AXELGLOBE_CACHE_DIR": str(tmp_path / "cache")}
        for size in (small, large):
            proc = subprocess.run(
                [sys.executable, str(BENCH), "--child", "parquet", str(size), "100",
                 str(tmp_path / f"{size}.parquet"), "0", str(_parquet.PARQUET_CHUNK_ITEMS)],
                env=env, capture_output=True, text=True, timeout=240, check=False)
            assert proc.returncode == 0, proc.stderr
            growth[size] = json.loads(proc.stdout.splitlines()[-1])["growth"]  # MiB
    assert growth[large] - growth[small] < 20, growth


def test_json_save_is_what_pystac_client_saves(emulator_env: Emulator, tmp_path: Path) -> None:
    import pystac_axelglobe as ag

    path = tmp_path / "items.json"
    assert run("search", "--capture-id", CAPTURE, "--limit", "2", "--save",
               str(path)).exit_code == 0
    search = ag.open().search(collections=["grus-1"], filter=f"ag:capture_id = '{CAPTURE}'",
                              limit=2)
    collection = search.item_collection_as_dict()
    assert len(collection["features"]) > 2  # several pages
    # what `stac-client search --save` writes (the API's items, all pages), indented
    assert path.read_text() == json.dumps(collection, indent=2) + "\n"
    # and what `axelglobe download ITEMS_FILE` and pystac read
    assert len(pystac.ItemCollection.from_file(str(path))) == len(collection["features"])


def test_format_follows_the_suffix_or_the_flag(emulator_env: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "items.txt"
    result = run("search", "--capture-id", CAPTURE, "--save", str(path), "--format", "ndjson",
                 "--table")
    assert result.exit_code == 0, result.stderr
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert len(ids) > 1
    assert sorted(row.split()[0] for row in result.stdout.splitlines()[2:-1]) == sorted(ids)
    assert result.stdout.splitlines()[-1] == f"{len(ids)} item(s)"
    usage = CliRunner().invoke(cli, ["search", "--format", "ndjson"])
    assert usage.exit_code == 2 and "--format needs --save FILE" in usage.stderr


@pytest.mark.parametrize(("name", "expected"), [
    ("none.json", '{\n  "type": "FeatureCollection",\n  "features": []\n}\n'),
    ("none.ndjson", ""),
    ("none.parquet", None),
])
def test_no_items_still_make_a_valid_file(emulator_env: Emulator, tmp_path: Path, name: str,
                                          expected: str | None) -> None:
    path = tmp_path / name
    path.write_text("an older search")
    result = run("search", "--ids", "no-such-item", "--save", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"Saved 0 item(s) to {path}\n"
    if expected is None:
        assert read_parquet(path) == []
    else:
        assert path.read_text() == expected
    assert leftovers(tmp_path) == [name]


# ------------------------------------------------------------------- a scripted API

Page = Callable[[Handler, int], None]  # route(handler, n): answers page n of the search


def scripted(route: Page) -> FakeAPI:
    """An API on 127.0.0.1 whose search answers page ``n`` with ``route(handler, n)``."""
    return FakeAPI({"search": lambda h, _: route(h, asked_page(h))})


def serve_pages(pages: list[list[dict[str, Any]]]) -> Page:
    """Each page links to the next, as AxelGlobe's do; pages past the last are empty."""
    def route(h: Handler, n: int) -> None:
        features = pages[n - 1] if n <= len(pages) else []
        h.json(page(h.server.url, features, n + 1 if n < len(pages) else None))
    return route


HREF = {"href": "https://example.com/a.tif", "type": "image/tiff", "roles": ["data"]}
#: Each page brings what no earlier item had: a property, an asset, a field of an asset and
#: of a list's structs; an int that becomes a float; a property null in a whole page.
DRIFTING = [
    [item(0, {"gsd": 2}), item(1, {"gsd": 2})],
    [item(2, {"gsd": 2.5, "ag:capture_id": "c1"}), item(3, {"ag:capture_id": "c1"})],
    [item(4, assets={"tci": HREF}), item(5, assets={"tci": {**HREF, "title": "TCI"}})],
    [item(6, {"eo:bands": [{"name": "b1"}]}),
     item(7, {"eo:bands": [{"name": "b1", "center_wavelength": 0.5}]})],
    [item(8, {"eo:cloud_cover": None}), item(9, {"eo:cloud_cover": None})],
    [item(10, {"eo:cloud_cover": 12.5, "gsd": 3})],
]


def test_parquet_keeps_what_later_pages_bring(emulator_env: Emulator, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A parquet schema is fixed before the first row: a writer that took it from the first
    # page would drop capture ids, assets, band fields (rustac's GeoparquetWriter does).
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 2)
    with scripted(serve_pages(DRIFTING)) as server:
        for name in ("items.ndjson", "items.parquet"):
            result = run("--api-url", server.url, "search", "--limit", "2", "--save",
                         str(tmp_path / name))
            assert result.exit_code == 0, result.stderr
    features = [json.loads(line) for line in (tmp_path / "items.ndjson").read_text().splitlines()]
    back = read_parquet(tmp_path / "items.parquet")
    assert [i["id"] for i in back] == [f"item-{n}" for n in range(11)]
    assert [comparable(i) for i in back] == [comparable(f) for f in features]
    assert back[3]["properties"]["ag:capture_id"] == "c1"
    assert back[5]["assets"]["tci"]["title"] == "TCI"
    assert back[7]["properties"]["eo:bands"][0]["center_wavelength"] == 0.5
    assert back[10]["properties"]["gsd"] == 3


#: Fields whose type changes: across pages (platform: text, then a number), inside one
#: item (a band's name), in an asset (a title), from an object to a list, from true/false
#: to a number (which Arrow alone would read as 1.0).
TYPE_DRIFT = [
    [item(0, {"platform": "GRUS-1A", "gsd": 2}), item(1, {"platform": "GRUS-1B"})],
    [item(2, {"platform": 1, "gsd": 2.5}),
     item(3, {"platform": "GRUS-1C", "eo:bands": [{"name": "b1"}, {"name": 2}]})],
    [item(4, {"eo:bands": [{"name": "b1", "center_wavelength": 0.5}]},
          assets={"tci": {**HREF, "title": 5}}),
     item(5, assets={"tci": {**HREF, "title": "TCI"}})],
    [item(6, {"ag:extra": {"a": 1}}), item(7, {"ag:extra": [1, 2], "ag:flag": True})],
    [item(8, {"ag:extra": "text", "ag:flag": 1.5})],
]


@pytest.mark.parametrize("chunk", [1, 2, 500])
def test_parquet_keeps_items_whose_types_drift(emulator_env: Emulator, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               chunk: int) -> None:
    # Chunks of 1 and 2 items meet the drift between chunks, 500 inside one chunk: the same
    # file either way. Before, a drift between chunks was an error, one inside a chunk a
    # crash; the items were lost either way.
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", chunk)
    path = tmp_path / "items.parquet"
    with scripted(serve_pages(TYPE_DRIFT)) as server:
        result = run("--api-url", server.url, "search", "--limit", "2", "--save", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"Saved 9 item(s) to {path}\n"
        "Note: ag:extra, ag:flag, assets.tci.title, eo:bands[].name, platform: values of "
        "different types in these items, written as text in items.parquet (.ndjson and "
        ".json keep each value as it is)\n")
    back = read_parquet(path)
    assert [i["id"] for i in back] == [f"item-{n}" for n in range(9)]
    props = [i["properties"] for i in back]
    # strings as they were, anything else as its JSON text
    assert [p["platform"] for p in props[:4]] == ["GRUS-1A", "GRUS-1B", "1", "GRUS-1C"]
    assert [b["name"] for b in props[3]["eo:bands"]] == ["b1", "2"]
    assert [back[n]["assets"]["tci"]["title"] for n in (4, 5)] == ["5", "TCI"]
    assert [p["ag:extra"] for p in props[6:]] == ['{"a":1}', "[1,2]", "text"]
    assert [p["ag:flag"] for p in props[7:]] == ["true", "1.5"]
    # fields that did not drift keep their types: an int widened to a float, a float
    assert [p["gsd"] for p in props[:3]] == [2.0, None, 2.5]
    assert props[4]["eo:bands"][0]["center_wavelength"] == 0.5
    assert leftovers(tmp_path) == ["items.parquet"]


def test_parquet_keeps_the_archive_and_bulk_items_together(bulk: Emulator, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # The archive's items (2021) come first, then the metadata-only ones, in chunks that
    # hold both kinds.
    for name, value in bulk.env().items():
        if name != "AXELGLOBE_CACHE_DIR":
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 30)
    for name in ("items.ndjson", "items.parquet"):
        result = run("search", "--limit", "40", "--max-items", "120", "--save",
                     str(tmp_path / name))
        assert result.exit_code == 0, result.stderr
        assert result.stderr == f"Saved 120 item(s) to {tmp_path / name}\n"
    features = [json.loads(line) for line in (tmp_path / "items.ndjson").read_text().splitlines()]
    assert {f["properties"]["datetime"][:4] for f in features} >= {"2021", "2022"}
    back = read_parquet(tmp_path / "items.parquet")
    assert [comparable(i) for i in back] == [comparable(f) for f in features]


def test_parquet_says_which_items_it_cannot_write(emulator_env: Emulator, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a drift: a datetime that is no date cannot be a stac-geoparquet timestamp.
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 1)
    bad = item(1)
    bad["properties"]["datetime"] = "yesterday"
    path = tmp_path / "items.parquet"
    with scripted(serve_pages([[item(0)], [bad]])) as server:
        result = CliRunner().invoke(cli, ["--api-url", server.url, "search", "--save",
                                          str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: these items cannot be written as stac-geoparquet")
    assert result.stderr.endswith("save them as .ndjson or .json instead\n")
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------ nothing half-written


def staged(folder: Path, name: str) -> int | None:
    """How many items the private folder beside ``folder / name`` holds on disk (None: no
    folder)."""
    import pyarrow as pa

    found = list(folder.glob(f".{name}.*.partial"))
    if not found:
        return None
    (private,) = found
    try:
        if name.endswith(".parquet"):
            return sum(int(pa.ipc.open_file(part).read_all().num_rows)
                       for part in private.glob("parts/*.arrow"))
        text = (private / name).read_text()
    except FileNotFoundError:  # removed meanwhile: the save failed and cleaned up after it
        return None
    return text.count('"id": "item-') if name.endswith(".json") else len(text.splitlines())


def failing_at_page_4(on_disk: dict[int, int | None], folder: Path, name: str) -> Page:
    """Three good pages of 3 items, then HTML; what is on disk at each request is noted."""
    # page 3 links to page 4, which answers HTML
    good = serve_pages([[item(n) for n in range(3 * p, 3 * p + 3)] for p in range(4)])

    def route(h: Handler, n: int) -> None:
        on_disk[n] = staged(folder, name)
        if n < 4:
            good(h, n)
            return
        h.answer(200, b"<html><body>Maintenance</body></html>", "text/html")
    return route


@pytest.mark.usefixtures("one_page_at_a_time")
@pytest.mark.parametrize("name", ["items.json", "items.ndjson", "items.parquet"])
def test_pages_are_on_disk_as_they_arrive_and_a_failure_leaves_the_file_as_it_was(
        emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 3)
    target = tmp_path / name
    target.write_text("the previous search")
    on_disk: dict[int, int | None] = {}
    with scripted(failing_at_page_4(on_disk, tmp_path, name)) as server:
        result = CliRunner().invoke(cli, ["--api-url", server.url, "search", "--limit", "3",
                                          "--save", str(target)])
        assert dict(Counter(server.asked)) == {1: 1, 2: 1, 3: 1, 4: 1}
    # When each page was asked for, the pages before it were on disk, in the private
    # folder beside the target: written as they came, not kept in memory until the end.
    assert on_disk == {1: 0, 2: 3, 3: 6, 4: 9}
    assert result.exit_code == 1
    assert "answered HTTP 200 with an HTML page" in result.stderr
    assert target.read_text() == "the previous search"
    assert leftovers(tmp_path) == [name]


@pytest.mark.parametrize("name", ["items.json", "items.ndjson", "items.parquet"])
def test_a_failure_while_pages_are_fetched_ahead_leaves_the_file_as_it_was(
        emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    monkeypatch.setattr(_parquet, "PARQUET_CHUNK_ITEMS", 3)
    target = tmp_path / name
    target.write_text("the previous search")
    with scripted(failing_at_page_4({}, tmp_path, name)) as server:
        result = CliRunner().invoke(cli, ["--api-url", server.url, "search", "--limit", "3",
                                          "--save", str(target)])
        hits = dict(Counter(server.asked))
    assert [hits.get(n) for n in range(1, 5)] == [1, 1, 1, 1], hits
    assert set(hits) <= set(range(1, 4 + DEFAULT_PREFETCH_PAGES)), hits  # a bound
    assert result.exit_code == 1
    assert "answered HTTP 200 with an HTML page" in result.stderr
    assert target.read_text() == "the previous search"
    assert leftovers(tmp_path) == [name]


#: ``axelglobe ...`` in a process of its own, its searches fetching up to {} pages at once.
#: Ctrl-C raises, as in a terminal: a child of a process started in the background by a
#: non-interactive shell (some CI runners) inherits SIGINT ignored.
COMMAND = ("import functools, signal, sys, pystac_axelglobe.client as c; "
           "signal.signal(signal.SIGINT, signal.default_int_handler); "
           "c.open = functools.partial(c.open, prefetch_pages={}); "
           "from pystac_axelglobe.cli import main; main(sys.argv[1:])")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prefetch", [1, DEFAULT_PREFETCH_PAGES])
def test_ctrl_c_midway_leaves_nothing_and_ends_at_once(emulator_env: Emulator,
                                                       tmp_path: Path, prefetch: int) -> None:
    asked = threading.Event()

    def route(h: Handler, n: int) -> None:
        if n == 1:
            serve_pages([[item(0), item(1)], [item(2)]])(h, n)
            return
        asked.set()
        h.server.stop.wait(60)  # page 2 does not come

    target = tmp_path / "items.ndjson"
    with scripted(route) as server:
        proc = subprocess.Popen(
            [sys.executable, "-c", COMMAND.format(prefetch), "--api-url", server.url,
             "search", "--limit", "2", "--save", str(target)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # page 2 is asked for; wait until page 1 is on disk, then press Ctrl-C
            assert asked.wait(60), "the search never asked for page 2"
            for _ in range(600):
                if staged(tmp_path, target.name) == 2:
                    break
                threading.Event().wait(0.1)
            assert staged(tmp_path, target.name) == 2
            proc.send_signal(signal.SIGINT)
            try:
                _, stderr = proc.communicate(timeout=10)  # generous: it has nothing to wait for
            except subprocess.TimeoutExpired:
                pytest.fail("the command did not end within 10 s of Ctrl-C")
        finally:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert stderr.endswith("\nAborted!\n") or stderr == "Aborted!\n", stderr
    assert leftovers(tmp_path) == []


def test_a_link_at_the_target_is_replaced_not_followed(emulator_env: Emulator,
                                                       tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not yours")
    target = tmp_path / "items.json"
    target.symlink_to(elsewhere)
    assert run("search", "--capture-id", CAPTURE, "--save", str(target)).exit_code == 0
    assert elsewhere.read_text() == "not yours"
    assert not target.is_symlink() and json.loads(target.read_text())["features"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # as a plain open() gives
    assert leftovers(tmp_path) == ["elsewhere.txt", "items.json"]


# ------------------------------------------------------------------- the extra


@pytest.mark.parametrize("hidden", ["stac_geoparquet", "pyarrow"])
def test_without_the_parquet_extra_one_error_line_and_nothing_sent(
        emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        hidden: str) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # importing it fails, as if not installed
    before = emulator_env.counters.as_dict()
    result = CliRunner().invoke(cli, ["search", "--capture-id", CAPTURE, "--save",
                                      str(tmp_path / "items.parquet")])
    assert result.exit_code == 1
    assert result.stderr == ('Error: axelglobe search --save items.parquet needs the [parquet] '
                             'extra: pip install "pystac-axelglobe[parquet]"\n')
    assert emulator_env.counters.as_dict() == before
    assert leftovers(tmp_path) == []
