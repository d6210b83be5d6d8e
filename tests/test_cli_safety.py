"""The ``axelglobe`` command on bad input and bad servers: one ``Error:`` line, nothing sent.

Every flag and file is checked before the first token or API request (counted at the
emulator); a failure prints exactly one line starting with ``Error:`` (after click's usage
lines for a usage error, exit 2; alone otherwise, exit 1), never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pystac_axelglobe.cli import MAX_ERROR_LENGTH, cli
from pystac_axelglobe.emulator import Emulator
from tests.fake_api import FakeAPI

NOTHING_SENT = {"token_requests": 0, "api_requests": 0, "storage_requests": 0}


def error_lines(text: str) -> list[str]:
    assert "Traceback" not in text, text
    return [line for line in text.splitlines() if line.startswith("Error:")]


def invoke_counting(emu: Emulator, args: list[str]) -> tuple[Result, dict[str, int]]:
    """Run the command in-process; the requests the emulator received meanwhile."""
    before = emu.counters.as_dict()
    result = CliRunner().invoke(cli, args)
    after = emu.counters.as_dict()
    sent = {name: after[name] - before[name] for name in NOTHING_SENT}
    return result, sent


# ---------------------------------------------------------------------------- bad flags


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--bbox", "nan", "35", "137", "36"],
         "Error: Invalid value for '--bbox': bbox contains NaN"),
        (["--bbox", "133", "35", "inf", "36"], "Error: Invalid value for '--bbox': bbox"),
        (["--datetime", "yesterday"],
         "Error: Invalid value for '--datetime': datetime 'yesterday' is not valid"),
        (["--limit", "20000", "--capture-id", "x"],
         "Error: Invalid value for '--limit': must be at most 10000"),
        (["--limit", "0", "--capture-id", "x"],
         "Error: Invalid value for '--limit': 0 is not in the range x>=1."),
        (["--filter", "eo:cloud_cover <==", "--capture-id", "x"],
         "Error: Invalid value for '--filter': the filter is not valid CQL2"),
        (["--cloud-cover", "nan", "--capture-id", "x"],
         "Error: Invalid value for '--cloud-cover'"),
    ],
    ids=["bbox-nan", "bbox-inf", "datetime", "limit-big", "limit-0", "filter", "cloud-nan"],
)
def test_download_checks_every_flag_before_the_first_request(
        emulator_env: Emulator, tmp_path: Path, args: list[str], line: str) -> None:
    result, sent = invoke_counting(emulator_env, ["download", *args, "--dir", str(tmp_path)])

    assert result.exit_code == 2, result.output
    [error] = error_lines(result.stderr)
    assert error.startswith(line), error
    assert sent == NOTHING_SENT  # before: a token and the landing page for --bbox nan
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bad files


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error line says about it, after the path)."""
    deep = tmp / "deep.geojson"  # a RecursionError in json.loads
    deep.write_text('{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}")
    nested = tmp / "nested.geojson"  # parses, but no GeoJSON is 100 levels deep
    nested.write_text('{"type": "FeatureCollection", "features": ' + "[" * 100 + "]" * 100
                      + "}")
    html = tmp / "aoi.geojson.html"
    html.write_text("<!DOCTYPE html>\n<html><head><title>geojson.io</title></head></html>\n")
    broken = tmp / "broken.json"
    broken.write_text('{"type": "Polygon", ')
    binary = tmp / "aoi.gpkg"
    binary.write_bytes(bytes(range(256)) * 64)
    empty = tmp / "empty.json"
    empty.write_text("")
    fifo = tmp / "fifo.geojson"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    return {
        "deep": (deep, "is nested more than 64 levels deep; that is no GeoJSON or STAC file"),
        "nested": (nested, "is nested more than 64 levels deep; that is no GeoJSON or STAC "
                           "file"),
        "html": (html, "is an HTML or XML page, not JSON (saved from a browser?); give a "
                       "GeoJSON or STAC JSON file"),
        "broken": (broken, "is not valid JSON: Expecting property name enclosed in double "
                           "quotes: line 1 column 21 (char 20)"),
        "binary": (binary, "is not UTF-8 text (a binary file?): byte 128 cannot be decoded"),
        "empty": (empty, "is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        "fifo": (fifo, "is not a regular file (a FIFO, a device or a socket?); give a file"),
        "device": (Path(os.devnull), "is not a regular file (a FIFO, a device or a socket?); "
                                     "give a file"),
    }


@pytest.mark.timeout(60)  # a FIFO must not block
@pytest.mark.parametrize("how", ["search --intersects", "download --intersects",
                                 "download ITEMS_FILE"])
@pytest.mark.parametrize("bad", ["deep", "nested", "html", "broken", "binary", "empty", "fifo",
                                 "device"])
def test_a_bad_file_is_one_error_line_and_nothing_is_sent(
        emulator_env: Emulator, tmp_path: Path, how: str, bad: str) -> None:
    path, reason = _bad_files(tmp_path)[bad]
    command, flag = how.split()
    args = [command, str(path)] if flag == "ITEMS_FILE" else [command, flag, str(path)]
    hint = "'ITEMS_FILE'" if flag == "ITEMS_FILE" else f"'{flag}'"

    result, sent = invoke_counting(emulator_env, args)

    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"Error: Invalid value for {hint}: {path} {reason}"]
    assert sent == NOTHING_SENT


def test_a_missing_file_is_one_error_line(emulator_env: Emulator, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.geojson"
    result, sent = invoke_counting(emulator_env, ["download", "--intersects", str(missing)])
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"Error: Invalid value for '--intersects': File '{missing}' does not exist."]
    assert sent == NOTHING_SENT


def test_a_deeply_nested_items_file_as_a_subprocess(tmp_path: Path) -> None:
    path, reason = _bad_files(tmp_path)["deep"]
    proc = subprocess.run([sys.executable, "-m", "pystac_axelglobe.cli", "download", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [f"Error: Invalid value for 'ITEMS_FILE': {path} {reason}"]
    assert proc.stdout == ""


# ------------------------------------------------------------------------- bad servers


@pytest.fixture
def bad_api(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    """AXELGLOBE_API_URL on a server whose landing page the test routes; tokens: the emulator's."""
    with FakeAPI() as server:
        monkeypatch.setenv("AXELGLOBE_API_URL", server.url)
        yield server


@pytest.mark.parametrize("command", [["collections"], ["search", "--capture-id", "x"],
                                     ["download", "--capture-id", "x"]])
def test_an_html_landing_page_is_one_error_line(bad_api: FakeAPI, emulator_env: Emulator,
                                                tmp_path: Path, command: list[str]) -> None:
    html = b"<!DOCTYPE html><html><body><h1>Sign in to Wi-Fi</h1></body></html>"
    bad_api.routes[""] = lambda h, n: h.answer(200, html, "text/html")
    args = [*command, "--dir", str(tmp_path)] if command[0] == "download" else command

    result, sent = invoke_counting(emulator_env, args)

    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()  # one line, nothing else
    assert line.startswith("Error: ") and "<" not in line
    assert bad_api.hits.total() == 1  # the landing page, once: nothing more was tried
    assert sent["token_requests"] <= 1 and sent["storage_requests"] == 0


@pytest.mark.parametrize(("status", "content_type", "body"), [
    # 404: not retried (a 502 would be, with backoff, for long)
    (404, "text/html", b"<html><head><title>404 Not Found</title></head><body><h1>Not "
                       b"Found</h1><p>" + b"The proxy knows no such page. " * 500
                       + b"</p></body></html>"),
    (200, "application/json", b'{"type": "Catalog", "id": '),
])
def test_a_server_error_page_is_one_short_error_line(
        bad_api: FakeAPI, status: int, content_type: str, body: bytes) -> None:
    bad_api.routes[""] = lambda h, n: h.answer(status, body, content_type)

    result = CliRunner().invoke(cli, ["collections"])

    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "<" not in line
    assert len(line) <= len("Error: ") + MAX_ERROR_LENGTH
