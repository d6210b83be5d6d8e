"""The ``axelglobe`` command, in-process (CliRunner) and as a subprocess, on the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import shapely.geometry
from click.testing import CliRunner, Result

from pystac_axelglobe.cli import cli
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.archive import GUIDE_MULTIPOLYGON, Archive

CAPTURE = "52eZg9k7rPEyYQGX"
PYTHON = sys.executable


def run(*args: str, input: str | None = None) -> Result:
    # mix_stderr is gone in click 8.2+: result.stdout / result.stderr are separate.
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def run_subprocess(*args: str, env: dict[str, str] | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "pystac_axelglobe.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env if env is not None else None,
                          check=False)


def archive(emu: Emulator) -> Archive:
    assert emu.archive is not None  # the emulator is running
    return emu.archive


def capture_items(emu: Emulator, capture: str = CAPTURE) -> list[dict[str, Any]]:
    return [i for i in archive(emu).items(emu.api_url)
            if i["properties"].get("ag:capture_id") == capture]


def cache_token(cache_dir: Path) -> str | None:
    files = list((cache_dir / "tokens").glob("*.json"))
    if not files:
        return None
    return str(json.loads(files[0].read_text())["access_token"])


# ------------------------------------------------------------------------- usage, errors


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("demo", "auth", "collections", "search", "download", "emulator"):
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--bbox", "133", "35", "137"],
         "Invalid value for '--bbox': expected 4 numbers, got 3 numbers"),
        (["search", "--cloud-cover", "120"], "120.0 is not in the range 0<=x<=100"),
        (["search", "--limit", "0"], "0 is not in the range x>=1"),
        (["search", "--nope"], "No such option '--nope'"),
        (["download"], "give an ItemCollection file (from `axelglobe search --save FILE`)"),
        (["auth", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_usage_exits_2_with_the_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_bad_usage_as_a_subprocess() -> None:
    proc = run_subprocess("search", "--bbox", "133", "35")
    assert proc.returncode == 2
    assert "Error: Invalid value for '--bbox': expected 4 numbers, got 2 numbers" in proc.stderr
    assert proc.stdout == ""


def test_version_as_a_subprocess() -> None:
    proc = run_subprocess("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "axelglobe, version 0.1.0"


def test_missing_credentials_is_one_line_and_exit_1() -> None:
    proc = run_subprocess("auth", "login")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: AxelGlobe credentials are missing: set "
                               "AXELGLOBE_CLIENT_ID and AXELGLOBE_CLIENT_SECRET")


def test_verbose_shows_the_traceback() -> None:
    proc = run_subprocess("--verbose", "auth", "login")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ConfigurationError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: AxelGlobe credentials")


def test_invalid_filter_fails_before_any_request(emulator_env: Emulator) -> None:
    before = emulator_env.counters.api_requests
    result = CliRunner().invoke(cli, ["search", "--filter", "eo:cloud_cover <=="])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: Invalid value for '--filter': the filter is not valid CQL2")
    assert emulator_env.counters.api_requests == before


def test_unsupported_geometry_fails_before_any_request(emulator_env: Emulator,
                                                       tmp_path: Path) -> None:
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [135.5, 35.5]}]}))
    before = emulator_env.counters.api_requests
    result = CliRunner().invoke(cli, ["search", "--intersects", str(aoi)])
    assert result.exit_code == 2
    assert "GEOMETRYCOLLECTION" in result.stderr
    assert emulator_env.counters.api_requests == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "200", "0", "210", "10"],
         "Invalid value for '--bbox': bbox: longitudes must be within -180..180"),
        (["--datetime", "yesterday"], "Invalid value for '--datetime': datetime 'yesterday' is "
                                      "not valid"),
        (["--datetime", "2021-06-30/2021-01-01"], "the start is after the end; swap them"),
        (["--limit", "20000"], "Invalid value for '--limit': must be at most 10000"),
        # An unset shell variable must not widen the search to every item.
        (["--capture-id", ""], "Invalid value for '--capture-id': is empty"),
        (["--ids", " "], "Invalid value for '--ids': is empty"),
        (["-c", ","], "Invalid value for '--collections' / '-c': is empty"),
        (["--datetime", ""], "Invalid value for '--datetime': is empty"),
        (["--filter", ""], "Invalid value for '--filter': is empty"),
        (["--save", "/nonexistent-folder/items.json"],
         "Invalid value for '--save': the folder /nonexistent-folder does not exist"),
    ],
)
def test_bad_flag_values_exit_2_before_any_request(emulator_env: Emulator, args: list[str],
                                                   message: str) -> None:
    counters = emulator_env.counters
    before = (counters.token_requests, counters.api_requests)
    result = CliRunner().invoke(cli, ["search", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert (counters.token_requests, counters.api_requests) == before


def test_download_with_an_empty_capture_id_downloads_nothing(emulator_env: Emulator,
                                                            tmp_path: Path) -> None:
    before = emulator_env.counters.storage_requests
    result = CliRunner().invoke(cli, ["download", "--capture-id", "", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Invalid value for '--capture-id': is empty" in result.stderr
    assert emulator_env.counters.storage_requests == before
    assert list(tmp_path.iterdir()) == []


def test_broken_feature_in_an_intersects_file_is_a_usage_error(tmp_path: Path) -> None:
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon"}}]}))
    result = CliRunner().invoke(cli, ["search", "--intersects", str(aoi)])
    assert result.exit_code == 2
    assert "holds a feature that is not valid GeoJSON" in result.stderr


def test_verbose_in_process_leaves_no_handler_behind() -> None:
    import logging

    logger = logging.getLogger("pystac_axelglobe")
    handlers, level = list(logger.handlers), logger.level
    for _ in range(2):
        CliRunner().invoke(cli, ["--verbose", "auth", "status"])
    assert logger.handlers == handlers and logger.level == level


def test_unreachable_api_is_one_line(emulator_env: Emulator) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    result = CliRunner().invoke(
        cli, ["--api-url", "http://127.0.0.1:9/stac/v1/catalogs/axelglobe", "collections"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------------- auth


def test_auth_login_status_logout(emulator_env: Emulator) -> None:
    cache_dir = Path(os.environ["AXELGLOBE_CACHE_DIR"])
    before = emulator_env.counters.token_requests

    status = run("auth", "status")
    assert status.exit_code == 0
    assert "none cached" in status.stdout
    assert emulator_env.counters.token_requests == before  # status never fetches

    login = run("auth", "login")
    assert login.exit_code == 0
    assert "Logged in as emulator-client; token valid until" in login.stdout
    token = cache_token(cache_dir)
    assert token is not None and token not in login.stdout
    assert emulator_env.counters.token_requests == before + 1

    again = run("auth", "login")  # reuses the cached token: no new token request
    assert again.exit_code == 0
    assert emulator_env.counters.token_requests == before + 1

    status = run("auth", "status")
    assert "Token:        valid until" in status.stdout
    assert "23 h 59 min left" in status.stdout or "23 h 58 min left" in status.stdout
    assert token not in status.stdout
    shown = run("auth", "status", "--show-token")
    assert shown.stdout.strip().splitlines()[-1] == token

    logout = run("auth", "logout")
    assert logout.exit_code == 0
    assert logout.stdout.startswith("Removed the cached token ")
    assert cache_token(cache_dir) is None
    assert "none cached" in run("auth", "status").stdout


def test_client_id_flag_prompts_for_the_secret(emulator_env: Emulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    secret = emulator_env.client_secret
    monkeypatch.delenv("AXELGLOBE_CLIENT_SECRET")
    monkeypatch.delenv("AXELGLOBE_CLIENT_ID")
    result = CliRunner().invoke(cli, ["--client-id", emulator_env.client_id, "auth", "login",
                                      "--show-token"], input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert "Client secret for emulator-client" in result.stderr
    assert secret not in result.output  # the prompt hides what is typed
    token = cache_token(Path(os.environ["AXELGLOBE_CACHE_DIR"]))
    assert result.stdout.strip().splitlines()[-1] == token


def test_wrong_secret_is_one_line_without_the_secret(emulator_env: Emulator,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXELGLOBE_CLIENT_SECRET", "not-the-secret-xyz")
    proc = run_subprocess("auth", "login")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("Error: ")
    assert "not-the-secret-xyz" not in proc.stderr


# ------------------------------------------------------------------------------- emulator


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = subprocess.Popen([PYTHON, "-m", "pystac_axelglobe.cli", "emulator"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exports: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                exports[name] = value
            if "Ctrl-C" in line:
                break
        yield proc, exports
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_emulator_serves_and_stops_on_ctrl_c(
        served: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    proc, exports = served
    assert set(exports) == {"AXELGLOBE_CLIENT_ID", "AXELGLOBE_CLIENT_SECRET",
                            "AXELGLOBE_API_URL", "AXELGLOBE_TOKEN_URL", "AXELGLOBE_AUDIENCE"}
    env = {**os.environ, **exports}
    login = run_subprocess("auth", "login", env=env)  # another process uses the exports
    assert login.returncode == 0, login.stderr
    assert "Logged in as emulator-client" in login.stdout
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Stopped." in err


def test_emulator_stops_on_sigterm(
        served: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    proc, _ = served
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Stopped." in err


# ------------------------------------------------------------------ collections, search


def test_collections(emulator_env: Emulator) -> None:
    result = run("collections")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["grus-1\tGRUS 1\t2019-10-15/.."]


def test_search_capture_id_table(emulator_env: Emulator) -> None:
    expected = sorted(i["id"] for i in capture_items(emulator_env))
    assert expected  # the archive has the guide's capture
    result = run("search", "--capture-id", CAPTURE, "--table")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["id", "datetime", "platform", "cloud", "%", "capture", "id"]
    rows = lines[2:-1]
    assert sorted(row.split()[0] for row in rows) == expected
    assert all(row.split()[-1] == CAPTURE for row in rows)
    assert lines[-1] == f"{len(expected)} item(s)"


def test_search_geojson_to_stdout_and_save(emulator_env: Emulator, tmp_path: Path) -> None:
    result = run("search", "--bbox", "133", "35", "137", "36", "--datetime",
                 "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z", "--cloud-cover", "30",
                 "--limit", "1")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["type"] == "FeatureCollection"
    box = shapely.geometry.box(133, 35, 137, 36)
    expected = sorted(
        i["id"] for i in archive(emulator_env).items(emulator_env.api_url)
        if i["properties"]["eo:cloud_cover"] <= 30
        and "2021-04-10" <= i["properties"]["datetime"][:10] <= "2021-06-30"
        and shapely.geometry.shape(i["geometry"]).intersects(box))
    assert expected
    # --limit 1 is a page size: every page is followed, with the filter kept.
    assert sorted(f["id"] for f in data["features"]) == expected

    saved = tmp_path / "items.json"
    result = run("search", "--capture-id", CAPTURE, "--save", str(saved))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert f"Saved {len(capture_items(emulator_env))} item(s) to {saved}" in result.stderr
    features = json.loads(saved.read_text())["features"]
    assert sorted(f["id"] for f in features) == sorted(i["id"] for i in capture_items(
        emulator_env))


def test_search_intersects_file_with_aoi_cloud_cover(emulator_env: Emulator,
                                                     tmp_path: Path) -> None:
    aoi = shapely.geometry.MultiPolygon([(ring, []) for ring in GUIDE_MULTIPOLYGON])
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(aoi)}]}))
    # Independently: group each capture's tiles touching the AOI, keep groups averaging <= 20.
    items = archive(emulator_env).items(emulator_env.api_url)
    groups: dict[str, list[float]] = {}
    for i in items:
        if shapely.geometry.shape(i["geometry"]).intersects(aoi):
            groups.setdefault(i["properties"]["ag:capture_id"], []).append(
                i["properties"]["eo:cloud_cover"])
    expected = sorted(
        i["id"] for i in items
        if shapely.geometry.shape(i["geometry"]).intersects(aoi)
        and "2021-04-10" <= i["properties"]["datetime"][:10] <= "2021-06-30"
        and sum(groups[i["properties"]["ag:capture_id"]])
        / len(groups[i["properties"]["ag:capture_id"]]) <= 20)
    assert expected
    result = run("search", "--intersects", str(path), "--aoi-cloud-cover", "20", "--datetime",
                 "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z", "--table")
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.strip().splitlines()[2:-1]
    assert sorted(row.split()[0] for row in rows) == expected


def test_search_as_a_subprocess(emulator_env: Emulator) -> None:
    proc = run_subprocess("search", "--capture-id", CAPTURE, "--max-items", "2")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["features"]) == 2


# ------------------------------------------------------------------------------- download


def _archive_size(emu: Emulator, item_id: str, name: str) -> int:
    return archive(emu).asset_path(item_id, name).stat().st_size


def test_download_from_a_saved_search(emulator_env: Emulator, tmp_path: Path) -> None:
    saved = tmp_path / "items.json"
    assert run("search", "--capture-id", CAPTURE, "--save", str(saved)).exit_code == 0
    out = tmp_path / "out"
    result = run("download", str(saved), "--assets", "tci", "--dir", str(out))
    assert result.exit_code == 0, result.stderr
    files = sorted(out.rglob("*_tci.tif"))
    items = capture_items(emulator_env)
    assert len(files) == len(items)
    for path in files:
        item_id = path.name.split("_")[1]
        assert path.stat().st_size == _archive_size(emulator_env, item_id, path.name)
        assert str(path) in result.stdout
    assert f"{len(items)} file(s)" in result.stderr

    # Run again: complete files are skipped, nothing is fetched from storage.
    before = emulator_env.counters.storage_requests
    again = run("download", str(saved), "--assets", "tci", "--dir", str(out))
    assert again.exit_code == 0
    assert emulator_env.counters.storage_requests == before


def test_download_from_search_flags_as_a_subprocess(emulator_env: Emulator,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_subprocess("download", "--capture-id", CAPTURE, "--max-items", "1",
                          "--assets", "thumbnail,msi_udm", "--dir", str(out))
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name.split("_", 2)[2] for p in out.rglob("*") if p.is_file())
    assert names == ["msi_udm.tif", "thumbnail.jpg"]


def test_download_refuses_file_and_flags_together(tmp_path: Path) -> None:
    saved = tmp_path / "items.json"
    saved.write_text('{"type": "FeatureCollection", "features": []}')
    result = CliRunner().invoke(cli, ["download", str(saved), "--capture-id", CAPTURE])
    assert result.exit_code == 2
    assert "give an ItemCollection file or search flags, not both" in result.stderr


def test_download_refuses_a_file_that_is_not_stac(tmp_path: Path,
                                                  emulator_env: Emulator) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]")
    result = CliRunner().invoke(cli, ["download", str(bad)])
    assert result.exit_code == 2
    assert "is not a STAC ItemCollection" in result.stderr


def test_unknown_asset_is_one_line(emulator_env: Emulator, tmp_path: Path) -> None:
    before = emulator_env.counters.storage_requests
    result = CliRunner().invoke(cli, ["download", "--capture-id", CAPTURE, "--assets", "nope",
                                      "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "nope" in result.stderr
    assert emulator_env.counters.storage_requests == before


def test_restricted_client_is_one_line_and_status_shows_until(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(restrict_after=0, restrict_period=600) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        login = CliRunner().invoke(cli, ["auth", "login"])
        assert login.exit_code == 1
        assert login.stderr.startswith("Error: ")
        assert len(login.stderr.strip().splitlines()) == 1
        assert emu.counters.token_requests == 1
        status = run("auth", "status")
        assert status.exit_code == 0
        assert "Restricted:   until " in status.stdout
        again = run_subprocess("search", "--capture-id", CAPTURE)
        assert again.returncode == 1
        assert len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert again.stderr.startswith("Error: AxelGlobe restricts client 'emulator-client'")
        assert emu.counters.token_requests == 1  # the cooldown is kept: nothing sent
        assert emu.counters.api_requests == 0


@pytest.mark.parametrize("damage", [
    {"access_token": "t", "expires_at": 1e300, "restricted_until": 1e300},
    {"access_token": 5, "expires_at": True, "restricted_until": "x"},
])
def test_status_with_a_damaged_cache_file(emulator_env: Emulator,
                                          damage: dict[str, Any]) -> None:
    from pystac_axelglobe.settings import Settings
    from pystac_axelglobe.tokens import TokenProvider

    path = TokenProvider(Settings.from_env()).cache_path
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text(json.dumps({"version": 1, **damage}))
    status = CliRunner().invoke(cli, ["auth", "status"])
    assert status.exit_code == 0, status.output
    assert "Token:        none cached" in status.stdout  # as token() sees it: nothing usable
    assert "Restricted" not in status.stdout


def test_negative_bbox_values_and_a_reversed_bbox(emulator_env: Emulator) -> None:
    box = shapely.geometry.box(-50.4, -21.5, -50.1, -21.2)
    expected = sorted(i["id"] for i in archive(emulator_env).items(emulator_env.api_url)
                      if shapely.geometry.shape(i["geometry"]).intersects(box))
    assert expected
    result = run("search", "--bbox", "-50.4", "-21.5", "-50.1", "-21.2", "--table")
    assert result.exit_code == 0, result.stderr
    assert sorted(r.split()[0] for r in result.stdout.strip().splitlines()[2:-1]) == expected

    before = emulator_env.counters.api_requests
    reversed_ = CliRunner().invoke(cli, ["search", "--bbox", "137", "35", "133", "36"])
    assert reversed_.exit_code == 2
    assert "Error: Invalid value for '--bbox': bbox minX/maxX are reversed" in reversed_.stderr
    assert emulator_env.counters.api_requests == before


def _searched_bboxes(emu: Emulator, before: int) -> list[list[str]]:
    return [parse_qs(e[2])["bbox"] for e in emu.requests[before:] if e[1].endswith("/search")]


def test_bbox_as_the_guide_writes_it(emulator_env: Emulator) -> None:
    # The guide's form, one argument; the same search as four arguments and as --bbox=.
    before = len(emulator_env.requests)
    tables = [run("search", *form, "--table") for form in (
        ["--bbox", "133,35,137,36"], ["--bbox", "133", "35", "137", "36"],
        ["--bbox=133,35,137,36"], ["--bbox", "133, 35, 137, 36"])]
    assert [t.exit_code for t in tables] == [0, 0, 0, 0], [t.stderr for t in tables]
    assert len({t.stdout for t in tables}) == 1
    assert int(tables[0].stdout.strip().splitlines()[-1].split()[0]) > 0
    sent = _searched_bboxes(emulator_env, before)
    assert sent and all(bbox == ["133,35,137,36"] for bbox in sent)
    # the numbers of --bbox end where the numbers end: the next option is read as one
    result = run("search", "--bbox", "-50.4", "-21.5", "-50.1", "-21.2", "--limit", "1",
                 "--max-items", "1")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["features"]) == 1


@pytest.mark.parametrize(("bbox", "reason"), [
    (["133,35,137"], "expected 4 numbers, got 3 numbers: '133,35,137'"),
    (["137,35,133,36"], "bbox minX/maxX are reversed: 137.0 > 133.0"),
    (["133,35,137,36,1"], "expected 4 numbers, got 5 numbers"),
    (["133", "35", "137", "--limit", "5"], "expected 4 numbers, got 3 numbers: '133 35 137'"),
    (["east"], "expected 4 numbers, got something else: 'east'"),
])
def test_a_malformed_bbox_is_one_error_line_with_the_form(
        emulator_env: Emulator, bbox: list[str], reason: str) -> None:
    before = emulator_env.counters.as_dict()
    for command in ("search", "download"):
        result = CliRunner().invoke(cli, [command, "--bbox", *bbox])
        assert result.exit_code == 2
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith(f"Error: Invalid value for '--bbox': {reason}")
        assert errors[0].endswith("(give MINX,MINY,MAXX,MAXY in lon/lat, e.g. "
                                  "--bbox 133,35,137,36)")
    assert emulator_env.counters.as_dict() == before  # no token, no request


def test_collections_as_a_subprocess(emulator_env: Emulator) -> None:
    proc = run_subprocess("collections")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["grus-1\tGRUS 1\t2019-10-15/.."]
