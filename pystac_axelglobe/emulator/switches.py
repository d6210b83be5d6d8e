"""The emulator's switches on a command line: one definition for argparse and click.

``python -m pystac_axelglobe.emulator`` builds its argparse parser with
:func:`add_arguments`; a click command gets the same options with :func:`click_options`.
Both give their values to :func:`emulator_kwargs`, which returns ``Emulator(...)``'s
keyword arguments. The defaults are :class:`~pystac_axelglobe.emulator.Emulator`'s own.
:func:`check` is the one validation of a switch's value (constructor, attribute, flag).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> emulator_kwargs(vars(parser.parse_args(["--fault-kinds", "503,drop"])))["fault_kinds"]
    ('503', 'drop')
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .state import ALL_FAULT_KINDS, check_fault_kinds

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line switch: an ``Emulator`` keyword, its flag's type, help and metavar."""

    name: str
    help: str
    type: Callable[[str], Any] = float
    metavar: str | None = "S"
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """``--token-lifetime`` for ``token_lifetime``."""
        return "--" + self.name.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        """A flag pair ``--x/--no-x`` rather than an option with a value."""
        return self.type is bool


def _kinds(text: str) -> tuple[str, ...]:
    return check_fault_kinds(k.strip() for k in text.split(",") if k.strip())


#: Every switch that has a flag, in ``--help`` order.
OPTIONS: tuple[Option, ...] = (
    Option("token_lifetime", "seconds a token lives (expires_in)"),
    Option("presign_lifetime", "seconds a presigned storage URL lives"),
    Option("restrict_after", "restrict a client that asks for more than N tokens within "
           "--restrict-window seconds (default: never)", int, "N"),
    Option("restrict_window", "window of --restrict-after"),
    Option("restrict_period", "how long a restriction lasts"),
    Option("api_fault_rate", "share of API requests that fail (0..1)", metavar="P"),
    Option("storage_fault_rate", "share of storage GETs that fail (0..1)", metavar="P"),
    Option("fault_kinds", f"comma list of faults to draw from, of {','.join(ALL_FAULT_KINDS)}",
           _kinds, "LIST"),
    Option("fault_seed", "seed of the fault generator", int, "N"),
    Option("extra_items", "serve N more metadata-only items (no files), for searches over "
           "thousands of items", int, "N"),
    Option("storage_delay", "seconds slept per 64 KiB served by storage"),
    Option("api_latency", "seconds the API and the token endpoint wait before each answer"),
    Option("storage_latency", "seconds storage waits before each answer"),
    Option("keep_alive", "keep a connection open after answering a GET (as AxelGlobe's load "
           "balancer does); --no-keep-alive closes each after one answer", bool),
    Option("idle_timeout", "seconds a kept-alive connection may sit unused before the server "
           "closes it"),
    Option("handshake_round_trips", "round trips of latency a new connection waits before "
           "its first answer (2: TCP and TLS)", int, "N"),
    Option("allow_post_search", "answer POST /search (AxelGlobe documents only GET)", bool),
    Option("conforms_to", "put conformsTo in the landing page", bool),
    Option("root_links", "add rel=root links to collections, items and item pages "
           "(AxelGlobe has none)", bool),
    Option("capture_ids", "put ag:capture_id in the items (--no-capture-ids: as the guide's "
           "example item; filters on it still work)", bool),
    Option("reject_tokens", "the API refuses every token (a persistent 401)", bool),
    Option("scale", "archive scale", str, None, ("small", "large")),
    Option("data_dir", "where the archive is built and kept (default: the user cache)", str,
           "DIR"),
    Option("client_id", "the client id to accept", str, "ID"),
)


def defaults() -> dict[str, Any]:
    """``Emulator(...)``'s keyword defaults (the one place they are written).

    Example:
        >>> defaults()["token_lifetime"]
        86400
    """
    from . import Emulator

    return {name: p.default for name, p in inspect.signature(Emulator).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _shown(default: Any) -> str | None:
    return ",".join(default) if isinstance(default, tuple) else None if default is None else (
        str(default))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every switch of :data:`OPTIONS` to ``parser`` (bools as ``--x/--no-x``)."""
    values = defaults()
    for option in OPTIONS:
        default = values[option.name]
        if option.is_bool:
            parser.add_argument(option.flag, dest=option.name, default=default,
                                action=argparse.BooleanOptionalAction, help=option.help)
            continue
        shown = _shown(default)
        # Text in, converted and checked by emulator_kwargs: the same errors as click's.
        parser.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                            choices=option.choices,
                            help=option.help + (f" (default {shown})" if shown else ""))


def click_options(command: F) -> F:
    """Decorate a click command with every switch of :data:`OPTIONS`.

    The command receives them as keyword arguments named as ``Emulator``'s; pass them
    through :func:`emulator_kwargs`.

    Example:
        >>> import click
        >>> @click.command()
        ... @click_options
        ... def serve(**switches):
        ...     print(emulator_kwargs(switches)["token_lifetime"])
        >>> serve(["--token-lifetime", "60"], standalone_mode=False)
        60.0
    """
    import click

    values = defaults()
    for option in reversed(OPTIONS):  # decorators apply bottom-up: keep --help's order
        default = values[option.name]
        if option.is_bool:
            flags = f"{option.flag}/--no-{option.flag[2:]}"
            decorator = click.option(flags, option.name, default=default, show_default=True,
                                     help=option.help)
        else:
            kind: Any = click.Choice(option.choices) if option.choices else str
            shown = _shown(default)
            decorator = click.option(option.flag, option.name, type=kind, default=None,
                                     metavar=option.metavar, help=option.help,
                                     show_default=shown if shown is not None else False)
        command = decorator(command)
    return command


def emulator_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``Emulator(...)``'s keyword arguments from parsed flags (argparse or click).

    Text values are converted and checked (a ``ValueError`` names the flag); values left
    ``None`` take ``Emulator``'s defaults.

    Example:
        >>> emulator_kwargs({"api_fault_rate": "0.5", "scale": None})
        {'api_fault_rate': 0.5}
    """
    kwargs: dict[str, Any] = {}
    for option in OPTIONS:
        value = values.get(option.name)
        if value is None:
            continue
        if isinstance(value, str) and not option.is_bool:
            try:
                value = option.type(value)
            except ValueError as err:
                raise ValueError(f"{option.flag}: {err}") from None
        try:
            kwargs[option.name] = check(option.name, value)
        except ValueError as err:
            raise ValueError(f"{option.flag}: {err}") from None
    return kwargs


_AT_LEAST_ZERO = ("storage_delay", "api_latency", "storage_latency")
_POSITIVE = ("token_lifetime", "presign_lifetime", "restrict_window", "restrict_period",
             "idle_timeout")
_SHARES = ("api_fault_rate", "storage_fault_rate")
_WHOLE = ("extra_items", "handshake_round_trips")


def check(name: str, value: Any) -> Any:
    """``value`` if it is valid for switch ``name``, else a ``ValueError`` that says why.

    Example:
        >>> check("api_fault_rate", 1.5)
        Traceback (most recent call last):
        ValueError: api_fault_rate must be a number from 0 to 1, not 1.5
    """
    if name == "fault_kinds":
        return check_fault_kinds(value)
    if name in _SHARES and not (_number(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")
    if name in _POSITIVE and not (_number(value) and value > 0):
        raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
    if name in _AT_LEAST_ZERO and not (_number(value) and value >= 0):
        raise ValueError(f"{name} must be a number of seconds, 0 or more, not {value!r}")
    if name == "restrict_after" and value is not None and not (
        isinstance(value, int) and value >= 0
    ):
        raise ValueError(f"restrict_after must be None or a whole number >= 0, not {value!r}")
    if name in _WHOLE and not (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    ):
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
