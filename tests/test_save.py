"""``axelglobe search --save FILE``: .json, .ndjson and stac-geoparquet, page by page, atomically.

Searches run on the emulator (``Emulator(extra_items=N)`` for many pages) or on a scripted
API on 127.0.0.1 (tokens from the session emulator) whose pages bring new fields, fail
midway or never answer. A parquet file is read back with stac-geoparquet, the library that
wrote it, and compared with the JSON save of the same search.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pystac
import pytest
import shapely.geometry
from click.testing import CliRunner, Result

from pystac_axelglobe import _save
from pystac_axelglobe.cli import cli
from pystac_axelglobe.emulator import Emulator

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
        mp.setattr(_save, "PARQUET_CHUNK_ITEMS", 100)
        paths = {}
        for fmt in _save.FORMATS:
            paths[fmt] = folder / f"items.{fmt}"
            before = bulk.counters.search_requests
            result = run("search", *BULK, "--limit", "100", "--save", str(paths[fmt]))
            assert result.exit_code == 0, result.stderr
            assert result.stderr == f"Saved {N_BULK} item(s) to {paths[fmt]}\n"
            assert bulk.counters.search_requests - before == N_BULK // 100
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


@pytest.mark.slow
def test_memory_does_not_grow_with_the_items(bulk: Emulator, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    for name, value in bulk.env().items():
        if name != "AXELGLOBE_CACHE_DIR":
            monkeypatch.setenv(name, value)
    peaks = {}
    for size in (200, 1000):
        tracemalloc.start()
        try:
            result = run("search", *BULK, "--limit", "100", "--max-items", str(size), "--save",
                         str(tmp_path / f"{size}.ndjson"))
            peaks[size] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.exit_code == 0, result.stderr
    # Python's allocations at their peak: one page's worth either way. If each item stayed
    # in memory (as pystac.Items do, in their root's cache), 5x the items would give about
    # 2x the peak. bench/save.py measures 1,000 against 10,000 items, RSS included.
    assert peaks[1000] < 1.4 * peaks[200], peaks


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

Page = Callable[["Handler", int], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if not parts.path.endswith("/search"):
            self.json(landing(self.server.url))
            return
        number = int(parse_qs(parts.query).get("page", ["1"])[0])
        with self.server.lock:
            self.server.hits[number] += 1
        try:
            self.server.route(self, number)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def json(self, value: Any) -> None:
        self.answer(200, json.dumps(value).encode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class Scripted(ThreadingHTTPServer):
    """An API on 127.0.0.1 whose search answers page ``n`` with ``route(handler, n)``."""

    daemon_threads = True

    def __init__(self, route: Page) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.route = route
        self.hits: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/stac"

    def __enter__(self) -> Scripted:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def landing(url: str) -> dict[str, Any]:
    return {"type": "Catalog", "id": "scripted", "stac_version": "1.0.0",
            "description": "a scripted API", "links": [
                {"rel": "self", "href": url}, {"rel": "root", "href": url},
                {"rel": "search", "href": f"{url}/search", "method": "GET",
                 "type": "application/geo+json"}]}


def item(n: int, props: dict[str, Any] | None = None,
         assets: dict[str, Any] | None = None) -> dict[str, Any]:
    x, y = 135 + n / 100, 35.0
    return {"type": "Feature", "stac_version": "1.0.0", "id": f"item-{n}",
            "collection": "grus-1",
            "geometry": {"type": "Polygon", "coordinates": [
                [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]},
            "bbox": [x, y, x + 0.01, y + 0.01],
            "properties": {"datetime": f"2021-05-{1 + n % 28:02d}T00:00:00Z", **(props or {})},
            "links": [], "assets": assets or {}}


def serve_pages(pages: list[list[dict[str, Any]]]) -> Page:
    def route(h: Handler, n: int) -> None:
        links = [{"rel": "next", "href": f"{h.server.url}/search?page={n + 1}",
                  "type": "application/geo+json"}] if n < len(pages) else []
        h.json({"type": "FeatureCollection", "features": pages[n - 1], "links": links})
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
    monkeypatch.setattr(_save, "PARQUET_CHUNK_ITEMS", 2)
    with Scripted(serve_pages(DRIFTING)) as server:
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


def test_parquet_says_when_items_cannot_share_a_column(emulator_env: Emulator,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_save, "PARQUET_CHUNK_ITEMS", 1)
    pages = [[item(0, {"platform": "GRUS-1A"})], [item(1, {"platform": 1})]]
    path = tmp_path / "items.parquet"
    with Scripted(serve_pages(pages)) as server:
        result = CliRunner().invoke(cli, ["--api-url", server.url, "search", "--save",
                                          str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: these items cannot share one stac-geoparquet schema")
    assert "platform" in result.stderr and "save them as .ndjson or .json instead" in (
        result.stderr)
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------ nothing half-written


def failing_at_page_3(listing: list[list[str]], folder: Path) -> Page:
    """Two good pages, then an HTML page; what the folder holds by then is recorded."""
    good = serve_pages([[item(n) for n in range(3 * p, 3 * p + 3)] for p in range(3)])

    def route(h: Handler, n: int) -> None:
        if n < 3:
            good(h, n)
            return
        listing.append(sorted(str(p.relative_to(folder)) for p in folder.rglob("*")))
        h.answer(200, b"<html><body>Maintenance</body></html>", "text/html")
    return route


@pytest.mark.parametrize("name", ["items.json", "items.ndjson", "items.parquet"])
def test_a_failure_midway_leaves_the_file_as_it_was(emulator_env: Emulator, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    name: str) -> None:
    monkeypatch.setattr(_save, "PARQUET_CHUNK_ITEMS", 3)
    target = tmp_path / name
    target.write_text("the previous search")
    listing: list[list[str]] = []
    with Scripted(failing_at_page_3(listing, tmp_path)) as server:
        result = CliRunner().invoke(cli, ["--api-url", server.url, "search", "--limit", "3",
                                          "--save", str(target)])
        assert dict(server.hits) == {1: 1, 2: 1, 3: 1}
    assert result.exit_code == 1
    assert "answered HTTP 200 with an HTML page" in result.stderr
    assert target.read_text() == "the previous search"
    assert leftovers(tmp_path) == [name]
    # When page 3 was asked for, the first two pages were already on disk, beside the target
    # (in a private folder), not in memory.
    (staged,) = listing
    (folder,) = {entry.split("/")[0] for entry in staged} - {name}
    assert folder.startswith(f".{name}.") and folder.endswith(".partial")
    if name == "items.ndjson":
        assert f"{folder}/{name}" in staged
    if name == "items.parquet":
        assert {f"{folder}/parts/000000.arrow", f"{folder}/parts/000001.arrow"} <= set(staged)


@pytest.mark.timeout(120)
def test_ctrl_c_midway_leaves_nothing(emulator_env: Emulator, tmp_path: Path) -> None:
    asked = threading.Event()

    def route(h: Handler, n: int) -> None:
        if n == 1:
            serve_pages([[item(0), item(1)], []])(h, n)
            return
        asked.set()
        h.server.release.wait(60)  # page 2 never comes

    target = tmp_path / "items.ndjson"
    with Scripted(route) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pystac_axelglobe.cli", "--api-url", server.url, "search",
             "--save", str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert asked.wait(90), "the search never asked for page 2"
            assert len(list(tmp_path.glob(".items.ndjson.*.partial/items.ndjson"))) == 1
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 1
    assert "Aborted!" in stderr
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
