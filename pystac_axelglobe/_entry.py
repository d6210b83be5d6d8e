"""The ``axelglobe`` console script: says which extra to install when one is missing.

The library installs without the command's own dependencies (click for the command line,
werkzeug for the emulator, matplotlib for the demo's plot), so the console script points
here, not at :mod:`pystac_axelglobe.cli`: a plain ``pip install pystac-axelglobe`` followed
by ``axelglobe`` then prints what to install instead of a traceback.

Example:
    $ axelglobe demo        # with only the library installed
    Error: axelglobe demo needs the [all] extra: pip install "pystac-axelglobe[all]"
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import NoReturn

#: Subcommands that need more than the [cli] extra: (the modules they import, the extra).
_NEEDS = {
    "demo": (("werkzeug", "matplotlib"), "all"),
    "emulator": (("werkzeug",), "emulator"),
}
#: The optional modules, and the extra that brings each.
_EXTRA_OF = {"click": "cli", "werkzeug": "emulator", "matplotlib": "all"}


def _subcommand(argv: Sequence[str]) -> str | None:
    """The first word that is neither an option nor an option's value (``--api-url URL``)."""
    args = iter(argv)
    for arg in args:
        if arg in ("--api-url", "--client-id"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _missing(modules: Sequence[str]) -> bool:
    # find_spec answers None for a module absent (or hidden as None in sys.modules).
    return any(importlib.util.find_spec(name) is None for name in modules)


def _fail(what: str, extra: str) -> NoReturn:
    print(f'Error: {what} needs the [{extra}] extra: pip install "pystac-axelglobe[{extra}]"',
          file=sys.stderr)
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``axelglobe``, or say which extra it needs; exit status 1 then.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        axelglobe, version 0.1.0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = _subcommand(args)
    if command in _NEEDS:
        # Checked up front: the demo would otherwise fail on its plot, after all its work.
        modules, extra = _NEEDS[command]
        if _missing(modules):
            _fail(f"axelglobe {command}", extra)
    try:
        from .cli import main as cli_main
    except ModuleNotFoundError as err:
        if err.name != "click":
            raise
        _fail("the axelglobe command", "cli")
    try:
        cli_main(args)
    except ModuleNotFoundError as err:
        # A command importing an extra that is missing (a check above not kept up to date).
        root = (err.name or "").partition(".")[0]
        if root not in _EXTRA_OF:
            raise
        _fail("axelglobe" if command is None else f"axelglobe {command}", _EXTRA_OF[root])
