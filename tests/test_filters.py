"""The CQL2-text builders and the client-side filter validation (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import cql2
import pytest
import shapely
import shapely.geometry

from pystac_axelglobe import filters
from pystac_axelglobe._filter_limits import text_shape
from pystac_axelglobe.errors import InvalidQueryError

GUIDE_MULTIPOLYGON = (
    "MULTIPOLYGON (((-50.377998355519196 -21.25571182037737, -50.39389773429008 "
    "-21.306903229767897, -50.33831203728997 -21.326928577662557, -50.30119747112292 "
    "-21.30514840932203, -50.30233752991262 -21.265344869483116, -50.377998355519196 "
    "-21.25571182037737)), ((-50.30307167289692 -21.33556537511332, -50.29675481118801 "
    "-21.352508108156158, -50.320483483126424 -21.37151690592809, -50.33829784306903 "
    "-21.37531838541942, -50.32083308423938 -21.415381832666043, -50.27781101074311 "
    "-21.39743120280255, -50.26742062143981 -21.40399484490206, -50.24515788837763 "
    "-21.3798116216757, -50.20469383948901 -21.389847864440497, -50.19355419558164 "
    "-21.371524192627504, -50.249239808424704 -21.337647270055186, -50.30307167289692 "
    "-21.33556537511332)))"
)


class GeoThing:
    """Not shapely, not a dict: only the __geo_interface__ protocol."""

    def __init__(self, geom: dict[str, Any]) -> None:
        self.__geo_interface__ = geom


def _parses(text: str) -> dict[str, Any]:
    tree = cql2.parse_text(text).to_json()
    assert isinstance(tree, dict)
    return tree


def test_cloud_cover_text_is_the_guides() -> None:
    assert filters.cloud_cover(30) == "eo:cloud_cover <= 30"
    assert filters.cloud_cover(12.5, min=2) == "eo:cloud_cover >= 2 AND eo:cloud_cover <= 12.5"
    assert filters.aoi_cloud_cover(30) == "avg(eo:cloud_cover) <= 30"
    _parses(filters.cloud_cover(12.5, min=2))


def test_builders_keep_every_digit_of_a_threshold() -> None:
    # rounded to 6 significant digits, 12.3456789 would become 12.3457 and let more through
    assert filters.cloud_cover(12.3456789) == "eo:cloud_cover <= 12.3456789"
    assert filters.cloud_cover(0.00001) == "eo:cloud_cover <= 0.00001"
    assert filters.aoi_cloud_cover(33.333333333) == "avg(eo:cloud_cover) <= 33.333333333"
    _parses(filters.cloud_cover(0.00001))


def test_intersects_drops_z_coordinates() -> None:
    # footprints are 2D; AxelGlobe's literals are 2D (the guide has no POINT Z)
    assert filters.intersects({"type": "Point", "coordinates": [1.5, 2, 30]}) == (
        "S_INTERSECTS(geometry, POINT (1.5 2))")
    assert " Z " not in filters.intersects(shapely.from_wkt("LINESTRING Z (0 0 1, 1 1 2)"))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: filters.cloud_cover(101), "between 0 and 100"),
        (lambda: filters.cloud_cover(-1), "between 0 and 100"),
        (lambda: filters.cloud_cover(10, min=20), r"min \(20\) is above max \(10\); swap them"),
        (lambda: filters.cloud_cover("30"), "must be a number"),  # type: ignore[arg-type]
        (lambda: filters.cloud_cover(True), "must be a number"),
        (lambda: filters.aoi_cloud_cover(150), "between 0 and 100"),
        (lambda: filters.capture_id(""), "non-empty string"),
    ],
)
def test_builders_refuse_bad_values(call: Any, words: str) -> None:
    with pytest.raises(InvalidQueryError, match=words):
        call()


def test_capture_id_escapes_quotes_by_doubling() -> None:
    text = filters.capture_id("it's")
    assert text == "ag:capture_id = 'it''s'"
    assert _parses(text)["args"][1] == "it's"
    assert filters.capture_id("52eZg9k7rPEyYQGX") == "ag:capture_id = '52eZg9k7rPEyYQGX'"


@pytest.mark.parametrize(
    "wkt",
    [
        "POINT (-50.38 -21.5)",
        "LINESTRING (-50.38 -21.5, -50.09 -21.22)",
        "MULTIPOINT ((-50.38 -21.5), (-50.21 -21.35), (-50.09 -21.22))",
        "MULTILINESTRING ((-50.38 -21.5, -50.09 -21.22), (-50.4 -21.5, -50.2 -21.22))",
        "POLYGON ((-50.38 -21.5, -50.09 -21.5, -50.09 -21.22, -50.38 -21.5))",
        GUIDE_MULTIPOLYGON,
    ],
)
def test_intersects_accepts_every_supported_type_in_every_form(wkt: str) -> None:
    shape = shapely.from_wkt(wkt)
    geojson = shapely.geometry.mapping(shape)
    forms: list[Any] = [wkt, shape, dict(geojson), GeoThing(dict(geojson)),
                        {"type": "Feature", "properties": {}, "geometry": dict(geojson)}]
    for form in forms:
        text = filters.intersects(form)
        assert text.startswith("S_INTERSECTS(geometry, ")
        tree = _parses(text)
        assert tree["op"] == "s_intersects"
        # the geometry survives the round trip exactly
        assert shapely.geometry.shape(tree["args"][1]).equals_exact(shape, 1e-12)


@pytest.mark.parametrize(
    "geom",
    [
        "GEOMETRYCOLLECTION (POINT (1 2), POINT (3 4))",
        {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]}]},
        shapely.from_wkt("GEOMETRYCOLLECTION (POINT (1 2))"),
    ],
)
def test_intersects_refuses_geometry_collections(geom: Any) -> None:
    with pytest.raises(InvalidQueryError, match="GEOMETRYCOLLECTION"):
        filters.intersects(geom)


@pytest.mark.parametrize(
    ("geom", "words"),
    [
        ("not wkt at all", "cannot read"),
        (42, "cannot read"),
        ("POINT EMPTY", "empty"),
        ({"type": "Point", "coordinates": [10, 95]}, "latitudes must be within -90..90"),
        ({"type": "Point", "coordinates": [190, 5]}, "longitudes must be within -180..180"),
        ("LINEARRING (0 0, 1 0, 1 1, 0 0)", "cannot search with a LinearRing"),
    ],
)
def test_intersects_refuses_what_is_not_a_supported_geometry(geom: Any, words: str) -> None:
    with pytest.raises(InvalidQueryError, match=words):
        filters.intersects(geom)


def test_all_of_and_any_of_combine_with_parentheses() -> None:
    text = filters.all_of(filters.any_of(filters.capture_id("a"), filters.capture_id("b")),
                          filters.cloud_cover(30))
    assert text == "((ag:capture_id = 'a') OR (ag:capture_id = 'b')) AND (eo:cloud_cover <= 30)"
    tree = _parses(text)
    assert tree["op"] == "and" and tree["args"][0]["op"] == "or"
    assert filters.all_of(filters.cloud_cover(5)) == "eo:cloud_cover <= 5"
    with pytest.raises(InvalidQueryError, match="at least one clause"):
        filters.all_of()
    with pytest.raises(InvalidQueryError, match="CQL2 text clauses"):
        filters.any_of("", "x = 1")


def test_validate_filter_sends_text_as_written_and_converts_json() -> None:
    text = "avg(eo:cloud_cover) <= 20 AND S_INTERSECTS(geometry, " + GUIDE_MULTIPOLYGON + ")"
    assert filters.validate_filter(text) == text
    as_json = cql2.parse_text(text).to_json()
    converted = filters.validate_filter(as_json)
    # upper-case S_INTERSECTS as in the guide, and the same expression
    assert "S_INTERSECTS(geometry, MULTIPOLYGON" in converted
    assert cql2.parse_text(converted).to_json() == as_json
    assert filters.validate_filter('{"op": "=", "args": [{"property": "ag:capture_id"}, '
                                   '"s_intersects"]}') == "ag:capture_id = 's_intersects'"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("eo:cloud_cover <<= 3", "not valid CQL2"),
        ("S_INTERSECTS(geometry, POINT(1 2)", "not valid CQL2"),
        ("S_INTERSECTS(geometry, GEOMETRYCOLLECTION(POINT(1 2)))", "GEOMETRYCOLLECTION"),
        ("S_INTERSECTS(geometry, ENVELOPE(-50.38, -21.5, -50.09, -21.22))",
         "ENVELOPE .*BBOX\\(minx, miny, maxx, maxy\\)"),
        ("max(eo:cloud_cover) <= 3", "does not support max"),
        ("avg(view:off_nadir) <= 3", "only as avg\\(eo:cloud_cover\\)"),
        ("S_WITHIN(geometry, POINT(1 2))", "spatial operator S_WITHIN"),
        ("S_INTERSECTS(footprint, POINT(1 2))", "'geometry' queryable"),
        ("   ", "empty"),
        ({"op": "zz"}, "not valid CQL2"),
    ],
)
def test_validate_filter_refuses_what_axelglobe_cannot_do(bad: Any, words: str) -> None:
    with pytest.raises(InvalidQueryError, match=words):
        filters.validate_filter(bad)


def test_validate_filter_accepts_the_guides_filters_and_bbox_literals() -> None:
    for text in ("eo:cloud_cover <= 30", "avg(eo:cloud_cover) <= 30",
                 "ag:capture_id = '52eZg9k7rPEyYQGX'",
                 "S_INTERSECTS(geometry, BBOX(-50.38, -21.5, -50.09, -21.22))",
                 "NOT (eo:cloud_cover > 30) OR platform = 'GRUS-1A'"):
        assert filters.validate_filter(text) == text


def test_validate_filter_refuses_unknown_filter_lang() -> None:
    with pytest.raises(InvalidQueryError, match="filter-lang 'cql-text'"):
        filters.validate_filter("eo:cloud_cover <= 3", "cql-text")


# --- bounds: no filter crashes the interpreter ------------------------------------------------

# Each of these overflowed the C stack in cql2's parser (SIGSEGV, the interpreter dies) or
# raised a raw RecursionError; they run in a subprocess so that a crash fails the test.
CRASHERS = {
    "NOT ( x 5000": ('"NOT (" * 5000 + "a = 1" + ")" * 5000',
                     "nests 10000 levels deep (parentheses and NOTs); the limit is 32"),
    "( x 3000": ('"(" * 3000 + "a = 1" + ")" * 3000', "nests 3000 levels deep"),
    "NOT x 3000": ('"NOT " * 3000 + "a = 1"', "nests 3000 levels deep"),
    "50,000 ANDs": ('" AND ".join(f"a{i} = {i}" for i in range(50_000))',
                    "has 50,000 AND/OR clauses; the limit is 500; match many values with IN"),
    "any_of 20,000 ids": (
        'filters.any_of(*[filters.capture_id(f"id{i:05}") for i in range(20_000)])',
        "any_of() got 20,000 clauses; the limit is 500"),
    "JSON dict nested 100,000": ("nested(100_000)", "nests operators more than 32 levels"),
    "JSON dict nested 5,000": ("nested(5_000)", "nests operators more than 32 levels"),
    "JSON text nested 5,000": ("'{\"op\": \"not\", \"args\": [' * 5000 + '{}' + ']}' * 5000",
                               "the CQL2-JSON filter nests too deeply"),
}
CRASH_SCRIPT = textwrap.dedent("""
    import json, sys
    from pystac_axelglobe import filters
    from pystac_axelglobe.errors import InvalidQueryError

    def nested(n):
        tree = {"op": "=", "args": [{"property": "eo:cloud_cover"}, 1]}
        for _ in range(n):
            tree = {"op": "not", "args": [tree]}
        return tree

    try:
        filters.validate_filter(EXPR)
    except InvalidQueryError as err:
        print("InvalidQueryError:", err)
    else:
        print("accepted")
""")


@pytest.mark.parametrize(("expr", "words"), list(CRASHERS.values()), ids=list(CRASHERS))
def test_filters_that_crashed_the_interpreter_are_refused(expr: str, words: str) -> None:
    script = CRASH_SCRIPT.replace("EXPR", expr)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"crashed ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith("InvalidQueryError:"), done.stdout[:300]
    assert words in done.stdout


LIMIT_SCRIPT = textwrap.dedent("""
    import threading
    from pystac_axelglobe import filters, queryables

    queryables.set_property_check(False)  # parse limits, not property names, are tested here
    D, C = filters.MAX_FILTER_DEPTH, filters.MAX_FILTER_CLAUSES
    chain = " AND ".join(f"a{i} = {i}" for i in range(C))
    mixed = " ".join(f"a{i} = {i} " + ("AND" if i % 2 else "OR") for i in range(C - 1))
    nested = {"op": "=", "args": [{"property": "a"}, 1]}
    for _ in range(D):
        nested = {"op": "not", "args": [nested]}
    AT_THE_LIMITS = [
        "NOT (" * (D // 2) + "a = 1" + ")" * (D // 2),
        "(" * D + "a = 1" + ")" * D,
        "NOT " * D + "a = 1",
        chain,
        "(" * (D - 1) + mixed + " z = 1" + ")" * (D - 1),
        filters.any_of(*[filters.capture_id(f"id{i}") for i in range(C)]),
        nested,
        {"op": "and", "args": [{"op": "=", "args": [{"property": "a"}, i]} for i in range(C)]},
    ]

    def run():
        for value in AT_THE_LIMITS:
            filters.validate_filter(value)
        print("ok", len(AT_THE_LIMITS))

    threading.stack_size(512 * 1024)  # macOS' default for threads; some dask workers'
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
""")


def test_filters_at_the_limits_parse_in_a_small_thread_stack() -> None:
    # The limits leave a margin below where cql2 overflows a 512 KiB thread stack.
    done = subprocess.run([sys.executable, "-c", LIMIT_SCRIPT], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"crashed ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.strip() == "ok 8"


@pytest.mark.parametrize(
    ("text", "depth", "clauses"),
    [
        ("eo:cloud_cover <= 30", 0, 1),
        ("NOT (a = 1) AND b = 2", 2, 2),
        ("a = '((((((' OR b = 'it''s (NOT'", 0, 2),  # nothing inside literals counts
        ("\"o'b\" = 1 AND " + "(" * 40 + "a = 1" + ")" * 40, 40, 2),  # nor in "identifiers"
        ("'unclosed " + "(" * 40, 40, 1),  # an unclosed quote hides nothing
        ("a BETWEEN 1 AND 2 OR NOT NOT b = 1", 2, 3),
        ("S_INTERSECTS(geometry, MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0))))", 4, 1),
    ],
)
def test_the_filter_scan_counts_nesting_and_clauses_outside_literals(
        text: str, depth: int, clauses: int) -> None:
    assert text_shape(text) == (depth, clauses)


def test_the_builders_respect_the_bounds() -> None:
    ids = [filters.capture_id(f"id{i}") for i in range(filters.MAX_FILTER_CLAUSES + 1)]
    with pytest.raises(InvalidQueryError, match="any_of\\(\\) got 501 clauses; the limit is 500"):
        filters.any_of(*ids)
    with pytest.raises(InvalidQueryError, match="all_of\\(\\) got 501 clauses"):
        filters.all_of(*ids)
    assert filters.any_of(*ids[:500]).count(" OR ") == 499
    text = filters.cloud_cover(30)
    with pytest.raises(InvalidQueryError, match="nests 33 levels deep"):
        for _ in range(40):  # each call parenthesises the clauses once more
            text = filters.all_of(text, filters.aoi_cloud_cover(20))
    # the way to match many captures: IN, which has no clause limit
    many = "ag:capture_id IN (" + ", ".join(f"'id{i}'" for i in range(5000)) + ")"
    assert filters.validate_filter(many) == many


def test_a_filter_too_long_is_refused() -> None:
    ring = [f"{135 + i * 1e-6:.6f} {35 + (i % 7) * 1e-6:.6f}" for i in range(50_000)]
    polygon = "POLYGON ((" + ", ".join([*ring, ring[0]]) + "))"
    text = f"S_INTERSECTS(geometry, {polygon})"
    assert len(text) > filters.MAX_FILTER_LENGTH
    with pytest.raises(InvalidQueryError, match="characters long; the limit is 1,000,000"):
        filters.validate_filter(text)
    geometry = shapely.geometry.mapping(shapely.from_wkt(polygon))
    as_json = json.dumps({"op": "s_intersects", "args": [{"property": "geometry"}, geometry]})
    assert len(as_json) > filters.MAX_FILTER_LENGTH
    with pytest.raises(InvalidQueryError, match="characters long"):
        filters.validate_filter(as_json)


def test_an_unreadable_geometry_inside_a_wrapper_is_the_part_quoted() -> None:
    # A Feature or __geo_interface__ is unwrapped first: the error quotes the part that
    # could not be read, not the whole wrapper (the user sees which geometry is bad).
    bad = {"type": "Point", "coordinates": "x"}
    for wrapped in ({"type": "Feature", "properties": {"name": "somewhere"}, "geometry": bad},
                    GeoThing(bad)):
        with pytest.raises(InvalidQueryError, match="cannot read") as caught:
            filters.intersects(wrapped)
        assert repr(bad) in str(caught.value) and "somewhere" not in str(caught.value)
    with pytest.raises(InvalidQueryError, match="cannot read 'POINT \\(1' as a geometry"):
        filters.to_shapely("POINT (1")


def test_the_names_of_the_one_module_layout_still_import() -> None:
    # filters.py was split into rooms (issue 13); ag.filters.* must keep working.
    from pystac_axelglobe import _filter_check, _filter_limits, _geometry

    assert filters.__all__ == [
        "MAX_FILTER_CLAUSES", "MAX_FILTER_DEPTH", "MAX_FILTER_LENGTH",
        "SUPPORTED_GEOMETRY_TYPES", "all_of", "any_of", "aoi_cloud_cover", "capture_id",
        "check_filter_size", "cloud_cover", "format_number", "intersects", "to_shapely",
        "validate_filter"]
    assert filters.validate_filter is _filter_check.validate_filter
    assert filters.check_filter_size is _filter_limits.check_filter_size
    assert filters.to_shapely is _geometry.to_shapely
    with pytest.raises(InvalidQueryError, match="coordinates are \\(lon, lat\\)"):
        _geometry.check_lonlat((-21.5, -50.38, -21.4, 91))
