"""Serve the loopback AxelGlobe in the foreground: ``python -m pystac_axelglobe.emulator``.

It prints the ``export AXELGLOBE_...=...`` lines that point the client (and the
``axelglobe`` command) at it, then serves until interrupted (Ctrl-C).

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
from .server import FAULT_KINDS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pystac_axelglobe.emulator",
        description="Serve a loopback AxelGlobe (token endpoint, STAC API, S3-like storage) "
        "over a synthetic grus-1 archive, print the AXELGLOBE_* variables that point the "
        "client at it, and serve until Ctrl-C.",
        epilog="Example: python -m pystac_axelglobe.emulator --presign-lifetime 60 "
        "--storage-fault-rate 0.1",
    )
    p.add_argument("--token-lifetime", type=float, default=86400, metavar="S",
                   help="seconds a token lives (expires_in; default 86400)")
    p.add_argument("--presign-lifetime", type=float, default=900, metavar="S",
                   help="seconds a presigned storage URL lives (default 900)")
    p.add_argument("--restrict-after", type=int, default=None, metavar="N",
                   help="restrict a client that asks for more than N tokens within "
                   "--restrict-window seconds (default: never)")
    p.add_argument("--restrict-window", type=float, default=60, metavar="S",
                   help="window for --restrict-after (default 60)")
    p.add_argument("--restrict-period", type=float, default=60, metavar="S",
                   help="how long a restriction lasts (default 60)")
    p.add_argument("--api-fault-rate", type=float, default=0.0, metavar="P",
                   help="share of API requests that fail (0..1; default 0)")
    p.add_argument("--storage-fault-rate", type=float, default=0.0, metavar="P",
                   help="share of storage GETs that fail (0..1; default 0)")
    p.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), metavar="LIST",
                   help=f"comma list of faults to draw from (default {','.join(FAULT_KINDS)})")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault generator")
    p.add_argument("--storage-delay", type=float, default=0.0, metavar="S",
                   help="seconds slept per 64 KiB served by storage (default 0)")
    p.add_argument("--allow-post-search", action="store_true",
                   help="answer POST /search (AxelGlobe documents only GET; default 405)")
    p.add_argument("--no-conforms-to", action="store_true",
                   help="leave conformsTo out of the landing page")
    p.add_argument("--root-links", action="store_true",
                   help="add rel=root links to collections, items and item pages "
                   "(AxelGlobe has none)")
    p.add_argument("--scale", choices=("small", "large"), default="small",
                   help="archive scale (default small)")
    p.add_argument("--data-dir", default=None, help="where the archive is built and kept")
    p.add_argument("--client-id", default="emulator-client", help="the client id to accept")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    args = _parser().parse_args(argv)
    kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
    try:
        emu = Emulator(
            token_lifetime=args.token_lifetime,
            presign_lifetime=args.presign_lifetime,
            restrict_after=args.restrict_after,
            restrict_window=args.restrict_window,
            restrict_period=args.restrict_period,
            api_fault_rate=args.api_fault_rate,
            storage_fault_rate=args.storage_fault_rate,
            fault_kinds=kinds,
            fault_seed=args.fault_seed,
            storage_delay=args.storage_delay,
            allow_post_search=args.allow_post_search,
            conforms_to=not args.no_conforms_to,
            root_links=args.root_links,
            scale=args.scale,
            data_dir=args.data_dir,
            client_id=args.client_id,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with emu:
        print(f"# storage: {emu.storage_url}", file=sys.stderr, flush=True)
        emu.serve_forever(lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
