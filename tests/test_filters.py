"""The CQL2-text builders and the client-side filter validation (no network)."""

from __future__ import annotations

from typing import Any

import cql2
import pytest
import shapely
import shapely.geometry

from pystac_axelglobe import filters
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
