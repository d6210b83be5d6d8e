"""The ``axelglobe`` command: search, download, tokens, the emulator and a demo.

Every command is a thin layer over the library (``ag.open()``, ``filters``, ``ag.download()``,
``TokenProvider``, ``Emulator``). Errors of the package print one line, ``Error: ...``, and
exit with status 1; usage errors exit with status 2 (click's convention). ``--verbose`` logs
what the package does and shows the traceback.

This module is the command's front door: the group and its global options, the small
commands and :func:`main`. The rest is one room each: ``_cli_group.py`` (the group class:
one ``Error:`` line per failure; the global options' state), ``_cli_errors.py`` (that line),
``_cli_options.py`` (the search flags, ``--bbox`` in both forms), ``_cli_files.py`` (the
GeoJSON and ItemCollection files read), ``_cli_search.py``, ``_cli_download.py`` and
``_cli_auth.py`` (those commands).

Example:
    $ axelglobe demo --output ./axelglobe-demo
    $ axelglobe search --bbox 133 35 137 36 --cloud-cover 30 --table
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from ._cli_auth import auth
from ._cli_download import download
from ._cli_errors import MAX_ERROR_LENGTH
from ._cli_group import Group, State, pass_state
from ._cli_options import DEFAULT_COLLECTION
from ._cli_search import search
from .emulator.switches import click_options, emulator_kwargs


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-url", metavar="URL", envvar=None,
              help="Catalog root (default: $AXELGLOBE_API_URL, else production).")
@click.option("--client-id", metavar="ID",
              help="Credential to use (default: $AXELGLOBE_CLIENT_ID). The secret comes from "
                   "$AXELGLOBE_CLIENT_SECRET or a hidden prompt, never from a flag.")
@click.option("--verbose", "-v", is_flag=True, help="Log progress and show tracebacks.")
@click.version_option(__version__, prog_name="axelglobe")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, client_id: str | None, verbose: bool) -> None:
    """Search, download and analyse AxelGlobe imagery with the standard STAC tools.

    Credentials come from AXELGLOBE_CLIENT_ID and AXELGLOBE_CLIENT_SECRET. No credentials?
    `axelglobe demo` runs everything against the built-in emulator.
    """
    ctx.obj = State(api_url=api_url, client_id=client_id, verbose=verbose)
    if verbose:
        _log_to_stderr(ctx)


def _log_to_stderr(ctx: click.Context) -> None:
    """Log the package's records at DEBUG on stderr until the command ends."""
    # Our loggers only: pystac-client logs request headers (the token) at DEBUG.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("pystac_axelglobe")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def restore() -> None:
        # In-process callers (tests, scripts calling main() again) must not collect one
        # handler per run, each writing to a stream that is gone.
        logger.removeHandler(handler)
        logger.setLevel(level)

    ctx.call_on_close(restore)


cli.add_command(auth)
cli.add_command(search)
cli.add_command(download)


@cli.command()
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("axelglobe-demo"), show_default=True,
              help="Folder for the quick-look PNG, the summary and the downloads.")
@pass_state
def demo(state: State, /, output: Path) -> None:
    """Run the provider guide's scenarios end to end on the built-in emulator.

    Searches, downloads a capture's true-colour images, loads an NDVI datacube of a time
    series of captures and writes a quick-look PNG and a summary. No credentials needed.
    """
    from .demo import run_demo

    run_demo(output, echo=click.echo)


@cli.command()
@pass_state
def collections(state: State) -> None:
    """List the catalog's collections."""
    client, _ = state.client()
    for collection in client.get_collections():
        interval = collection.extent.temporal.intervals[0]
        start, end = (d.date().isoformat() if d else ".." for d in interval)
        click.echo(f"{collection.id}\t{collection.title or ''}\t{start}/{end}")


@cli.command()
@click_options
def emulator(**switches: Any) -> None:
    """Serve the AxelGlobe emulator in the foreground; print the variables to export.

    Takes the same switches as ``python -m pystac_axelglobe.emulator`` (one definition:
    ``pystac_axelglobe.emulator.switches``).
    """
    from .emulator import Emulator

    try:
        kwargs = emulator_kwargs(switches)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    click.echo("Starting the AxelGlobe emulator (the first run builds its archive)...",
               err=True)
    # in_process: nothing else runs in this process, so no client contends for its GIL
    with Emulator(**kwargs, in_process=True) as emu:
        click.echo("# The AxelGlobe emulator is running. In another shell:")
        emu.serve_forever(click.echo)
    click.echo("Stopped.", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``axelglobe`` command (the console script's entry point).

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        axelglobe, version 0.1.0
    """
    # Without --verbose the package's warnings stay quiet (the error line says it all);
    # otherwise Python's last-resort handler would print them beside "Error: ...".
    logging.getLogger("pystac_axelglobe").addHandler(logging.NullHandler())
    cli.main(args=None if argv is None else list(argv), prog_name="axelglobe")


__all__ = ["DEFAULT_COLLECTION", "MAX_ERROR_LENGTH", "cli", "main"]

if __name__ == "__main__":
    main()
