"""The documentation builds with warnings as errors (as the tox ``docs`` env does)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pystac_axelglobe.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]


def _mkdocs() -> str:
    exe = Path(sys.executable).with_name("mkdocs")
    found = str(exe) if exe.exists() else shutil.which("mkdocs")
    if not found:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    return found


# Any attempt to reach the network during the build (an inventory, a web font) goes to a
# closed loopback port and fails the build: the docs build offline.
NO_NETWORK = {f"{name}_proxy": "http://127.0.0.1:9" for name in ("http", "https", "HTTP", "HTTPS")}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run([_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1",
                               **NO_NETWORK})
    assert proc.returncode == 0, proc.stderr
    for page in ("index", "getting-started", "authentication", "searching", "items",
                 "downloads", "datacubes", "emulator", "cli", "security", "benchmarks",
                 "internals", "api",
                 "design", "design/get-dialect", "design/read-time-signing",
                 "design/token-cache", "design/emulator-fidelity"):
        path = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert path.is_file(), page
    # The API page is rendered from the docstrings: each public name has its entry.
    import pystac_axelglobe as ag

    api = (tmp_path / "site" / "api" / "index.html").read_text()
    missing = [n for n in ag.__all__ if f'id="pystac_axelglobe.{n}"' not in api]
    assert not missing, f"the API page renders no entry for {missing}"
    assert 'id="pystac_axelglobe.emulator.Emulator"' in api
    # doctests shown as code (griffe's Examples sections), not as Markdown prose
    assert api.count('<span class="doc-section-title">Examples:') >= 10


def test_every_doc_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        name = page.relative_to(ROOT / "docs").as_posix()
        assert f" {name}" in nav, f"{name} is missing from mkdocs.yml's nav"


def test_docs_fetch_nothing_at_build_time() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert not re.search(r"^\s*inventories:", config, re.M)  # mkdocstrings would fetch them
    assert "font: false" in config


def test_cli_page_names_every_command() -> None:
    from pystac_axelglobe.cli import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"## `axelglobe {name}`" in text


def test_readme_first_example_runs_against_the_emulator(
    emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # as a reader would paste it, with the emulator's env
    items = namespace["items"]
    assert len(items) >= 1
    assert {p.name for p in (tmp_path / "out").iterdir()} == {i.id for i in items}
    ndvi = namespace["ndvi"].compute()
    assert -1 <= float(ndvi.min()) <= float(ndvi.max()) <= 1

