"""The switches: one definition for the constructor, the attributes and both command lines."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from typing import Any

import click
import pytest
import requests

import pystac_axelglobe as ag
from pystac_axelglobe.emulator import Emulator
from pystac_axelglobe.emulator.state import RUNTIME_SWITCHES
from pystac_axelglobe.emulator.switches import (
    OPTIONS,
    add_arguments,
    click_options,
    emulator_kwargs,
)

FLAGS = [
    "--token-lifetime", "120", "--presign-lifetime", "30", "--restrict-after", "2",
    "--restrict-window", "5", "--restrict-period", "7", "--api-fault-rate", "0.25",
    "--storage-fault-rate", "0.5", "--fault-kinds", "503,drop", "--fault-seed", "3",
    "--extra-items", "8",
    "--storage-delay", "0.01", "--api-latency", "0.05", "--storage-latency", "0.02",
    "--no-keep-alive", "--idle-timeout", "30", "--handshake-round-trips", "2",
    "--allow-post-search", "--no-conforms-to", "--root-links",
    "--no-capture-ids",
    "--scale", "small", "--data-dir", "/tmp/x", "--client-id", "someone",
]


def _argparse(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return emulator_kwargs(vars(parser.parse_args(argv)))


def _click(argv: list[str]) -> dict[str, Any]:
    got: dict[str, Any] = {}

    @click.command()
    @click_options
    def command(**switches: Any) -> None:
        got.update(emulator_kwargs(switches))

    command(argv, standalone_mode=False)
    return got


def test_every_flag_is_a_constructor_switch_and_every_runtime_switch_an_attribute() -> None:
    keywords = set(inspect.signature(Emulator).parameters)
    assert {option.name for option in OPTIONS} <= keywords
    assert RUNTIME_SWITCHES <= keywords
    emu = Emulator()
    for name in RUNTIME_SWITCHES:
        assert isinstance(inspect.getattr_static(Emulator, name), property), name
        assert getattr(emu, name) == inspect.signature(Emulator).parameters[name].default


def test_argparse_and_click_read_the_same_flags_the_same_way() -> None:
    expected = {
        "token_lifetime": 120.0, "presign_lifetime": 30.0, "restrict_after": 2,
        "restrict_window": 5.0, "restrict_period": 7.0, "api_fault_rate": 0.25,
        "storage_fault_rate": 0.5, "fault_kinds": ("503", "drop"), "fault_seed": 3,
        "extra_items": 8,
        "storage_delay": 0.01, "api_latency": 0.05, "storage_latency": 0.02,
        "keep_alive": False, "idle_timeout": 30.0, "handshake_round_trips": 2,
        "allow_post_search": True, "conforms_to": False, "root_links": True,
        "capture_ids": False, "reject_tokens": False, "scale": "small", "data_dir": "/tmp/x",
        "client_id": "someone",
    }
    assert _argparse(FLAGS) == expected
    assert _click(FLAGS) == expected
    # no flags: the constructor's defaults, whichever command line
    defaults = {"keep_alive": True, "allow_post_search": False, "conforms_to": True,
                "root_links": False, "capture_ids": True, "reject_tokens": False}
    assert _argparse([]) == _click([]) == defaults
    Emulator(**_argparse(FLAGS))  # accepted as they are


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--api-fault-rate", "2"], "--api-fault-rate: api_fault_rate must be a number from 0"),
        (["--fault-kinds", "500"], "--fault-kinds: fault_kinds must be a non-empty subset"),
        (["--token-lifetime", "0"], "--token-lifetime: token_lifetime must be a number"),
        (["--api-latency", "-1"], "--api-latency: api_latency must be a number of seconds"),
        (["--restrict-after", "x"], "--restrict-after: invalid literal for int()"),
        (["--handshake-round-trips", "-1"],
         "--handshake-round-trips: handshake_round_trips must be a whole number >= 0"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv: list[str], words: str) -> None:
    for parse in (_argparse, _click):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse(argv)


def test_bad_values_are_refused_by_the_constructor_and_the_attributes() -> None:
    with pytest.raises(ValueError, match="storage_fault_rate must be a number from 0 to 1"):
        Emulator(storage_fault_rate=-0.1)
    emu = Emulator()
    with pytest.raises(ValueError, match="presign_lifetime must be a number of seconds"):
        emu.presign_lifetime = 0
    assert emu.presign_lifetime == 900


def test_python_m_emulator_refuses_a_bad_flag_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pystac_axelglobe.emulator", "--storage-fault-rate", "1.5"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: --storage-fault-rate: storage_fault_rate must be a number from 0 to 1, not 1.5"
    ]


def test_a_switch_set_while_serving_reaches_the_servers() -> None:
    with Emulator() as emu:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        assert requests.get(emu.api_url, headers=headers, timeout=10).status_code == 200
        emu.api_fault_rate, emu.fault_kinds = 1.0, ("502",)
        assert requests.get(emu.api_url, headers=headers, timeout=10).status_code == 502
        emu.api_fault_rate = 0.0
        assert requests.get(emu.api_url, headers=headers, timeout=10).status_code == 200
        assert emu.counters.faults == 1


def test_settings_point_the_client_at_the_emulator(emulator: Emulator) -> None:
    settings = emulator.settings()
    assert (settings.api_url, settings.client_id) == (emulator.api_url, emulator.client_id)
    before = emulator.counters.token_requests
    auth = ag.AxelGlobeAuth(settings=settings)
    assert requests.get(emulator.api_url, auth=auth, timeout=10).status_code == 200
    assert emulator.counters.token_requests == before + 1
    with pytest.raises(RuntimeError, match="start the emulator first"):
        Emulator().settings()
