"""Serve the loopback AxelGlobe in the foreground: ``python -m pystac_axelglobe.emulator``.

It prints the ``export AXELGLOBE_...=...`` lines that point the client (and the
``axelglobe`` command) at it, then serves until interrupted (Ctrl-C). It takes every
switch of :mod:`.switches` as a flag (see ``--help``).

Example (in one shell; paste the printed lines into another)::

    $ python -m pystac_axelglobe.emulator --token-lifetime 300 --restrict-after 5
    export AXELGLOBE_CLIENT_ID=emulator-client
    ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import Emulator
from .switches import add_arguments, emulator_kwargs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pystac_axelglobe.emulator",
        description="Serve a loopback AxelGlobe (token endpoint, STAC API, S3-like storage) "
        "over a synthetic grus-1 archive, print the AXELGLOBE_* variables that point the "
        "client at it, and serve until Ctrl-C.",
        epilog="Example: python -m pystac_axelglobe.emulator --presign-lifetime 60 "
        "--storage-fault-rate 0.1",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    args = _parser().parse_args(argv)
    try:
        # No client shares this process: the servers need no process of their own.
        emu = Emulator(**emulator_kwargs(vars(args)), in_process=True)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with emu:
        print(f"# storage: {emu.storage_url}", file=sys.stderr, flush=True)
        emu.serve_forever(lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
