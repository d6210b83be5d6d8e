"""stac-api-validator (core, collections, features, item-search) against the emulator.

The validator fetches JSON schemas from the web, which is closed here: a small wrapper run in
a subprocess maps them to the copies in ``../shared/schemas`` and pystac's bundled ones, and
refuses any other remote schema, so that a pass really means the schemas were checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pystac_axelglobe.emulator import Emulator

WRAPPER = r"""
import os, re, sys
from pathlib import Path

import jsonschema_specifications
import pystac.validation
import stac_validator.utilities as utilities

SCHEMAS = Path(sys.argv.pop(1))
PYSTAC = Path(pystac.validation.__file__).parent / "jsonschemas"
META = Path(jsonschema_specifications.__file__).parent / "schemas"
RULES = [
    (r"https?://schemas\.stacspec\.org/(v1\.0\.0/.*)", lambda m: SCHEMAS / "stac-spec" / m[1]),
    (r"https?://stac-extensions\.github\.io/([^/]+)/v([^/]+)/schema\.json",
     lambda m: SCHEMAS / "extensions" / f"{m[1]}-v{m[2]}.json"),
    (r"https?://geojson\.org/schema/(\w+)\.json", lambda m: PYSTAC / "geojson" / f"{m[1]}.json"),
    (r"https?://json-schema\.org/draft-07/schema#?",
     lambda m: META / "draft7" / "metaschema.json"),
]
original = utilities.fetch_and_parse_file
USED = []


def fetch_locally(input_path, headers=None):
    for pattern, local in RULES:
        if m := re.fullmatch(pattern, input_path):
            path = local(m)
            if path.is_file():
                USED.append(input_path)
                return original(str(path), headers)
    local = input_path.startswith(("http://127.", "http://localhost"))
    if local or not input_path.startswith("http"):
        return original(input_path, headers)
    raise RuntimeError(f"no local copy of schema {input_path}")


utilities.fetch_and_parse_file = fetch_locally

# pystac validates with its own validator: preload its schema cache from the same copies.
import json
from pystac.validation import JsonSchemaSTACValidator, set_validator

validator = JsonSchemaSTACValidator()
for path in SCHEMAS.rglob("*.json"):
    schema = json.loads(path.read_text())
    if "$id" in schema:
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
        USED.append(schema["$id"])
set_validator(validator)

from stac_api_validator.__main__ import main

try:
    main(prog_name="stac-api-validator")
finally:
    print(f"LOCAL SCHEMAS USED: {len(set(USED))}", flush=True)
"""


def run_validator(emu: Emulator, schemas: Path, tmp_path: Path) -> tuple[int, str]:
    wrapper = tmp_path / "run_validator.py"
    wrapper.write_text(WRAPPER)
    point = '{"type": "Point", "coordinates": [135.51, 35.5]}'
    cmd = [
        sys.executable,
        str(wrapper),
        str(schemas),
        "--root-url",
        emu.api_url,
        "--collection",
        "grus-1",
        "--geometry",
        point,
        "-H",
        f"Authorization: Bearer {emu.token()}",
    ]
    for cc in ("core", "collections", "features", "item-search"):
        cmd += ["--conformance", cc]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    return run.returncode, run.stdout + run.stderr[-3000:]


@pytest.fixture
def schemas(shared_dir: Path) -> Path:
    path = shared_dir / "schemas"
    if not (path / "stac-spec").is_dir():
        pytest.skip("../shared/schemas is not there")
    return path


def test_stac_api_validator_passes(schemas: Path, tmp_path: Path) -> None:
    # AxelGlobe's collection and items carry no rel=root link; the validator requires one.
    with Emulator(root_links=True) as emu:
        code, out = run_validator(emu, schemas, tmp_path)
        searches = emu.counters.search_requests
    report = out[out.find("Warnings") :]
    print(report)  # the warnings, for the record (pytest -s shows them)
    assert "Errors: none" in out, report
    assert code == 0
    assert "LOCAL SCHEMAS USED: 0" not in out
    assert searches > 20  # it really exercised item search


def test_stac_api_validator_sees_the_missing_root_links(schemas: Path, tmp_path: Path) -> None:
    with Emulator() as emu:  # as AxelGlobe: no rel=root in collections and items
        code, out = run_validator(emu, schemas, tmp_path)
    errors = out[out.find("Errors:") :].splitlines()[1:]
    errors = [e for e in errors if e.startswith("- ")]
    assert code == 1
    assert errors and all("does not have root link" in e for e in errors), errors
