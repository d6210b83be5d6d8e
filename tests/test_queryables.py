"""A filter naming a property AxelGlobe items don't carry is refused before any request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

import pystac_axelglobe as ag
from pystac_axelglobe import queryables
from pystac_axelglobe.cli import cli
from pystac_axelglobe.errors import InvalidQueryError

if TYPE_CHECKING:
    from pystac_axelglobe.emulator import Emulator


@pytest.fixture(autouse=True)
def default_check() -> Iterator[None]:
    yield
    queryables.set_property_check(True)
    queryables._allowed.clear()


@pytest.mark.parametrize(("typo", "meant"), [
    ("eo:cloudcover", "eo:cloud_cover"),
    ("cloud_cover", "eo:cloud_cover"),
    ("capture_id", "ag:capture_id"),
    ("ag:captureid", "ag:capture_id"),
    ("platfrom", "platform"),
])
def test_typo_names_the_closest_property_and_sends_nothing(
    emulator: Emulator, typo: str, meant: str
) -> None:
    client = ag.open(**emulator.settings_kwargs())
    before = emulator.counters.search_requests
    with pytest.raises(InvalidQueryError, match=f"did you mean '{meant}'"):
        client.search(filter=f"{typo} <= 30", max_items=1).item_collection()
    assert emulator.counters.search_requests == before


def test_cql2_json_filters_are_checked_too() -> None:
    tree = {"op": "and", "args": [
        {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]},
        {"op": "=", "args": [{"property": "ag:captur_id"}, "x"]},
    ]}
    with pytest.raises(InvalidQueryError, match="'ag:captur_id'.*did you mean 'ag:capture_id'"):
        ag.filters.validate_filter(tree)


def test_every_property_the_served_items_carry_is_known(emulator: Emulator) -> None:
    carried = {k for item in emulator.items() for k in item.properties if k != "eo:bands"}
    assert carried <= queryables.known_properties()


def test_allowed_names_and_the_opt_out(emulator: Emulator) -> None:
    client = ag.open(**emulator.settings_kwargs())
    with pytest.raises(InvalidQueryError):
        ag.filters.validate_filter("ag:tasking_id = 'x'")
    queryables.allow_properties("ag:tasking_id")
    # Accepted now, and sent: AxelGlobe answers it (with nothing, as it does not know it).
    before = emulator.counters.search_requests
    assert client.search(filter="ag:tasking_id = 'x'").item_collection().items == []
    assert emulator.counters.search_requests == before + 1
    queryables.set_property_check(False)
    assert ag.filters.validate_filter("eo:cloudcover <= 3") == "eo:cloudcover <= 3"


def test_cli_prints_one_error_line(emulator: Emulator) -> None:
    before = emulator.counters.as_dict()
    result = CliRunner().invoke(cli, ["search", "--filter", "eo:cloudcover <= 30"],
                                env=emulator.env())
    assert result.exit_code != 0
    # a usage error, as click gives for every bad flag: one Error: line, no traceback
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "'--filter'" in lines[0] and "did you mean 'eo:cloud_cover'" in lines[0]
    after = emulator.counters.as_dict()
    assert (after["token_requests"], after["search_requests"]) == (
        before["token_requests"], before["search_requests"])
