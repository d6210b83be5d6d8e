"""``axelglobe download``: the assets of a saved ItemCollection, or of a search's items.

A thin layer over :func:`pystac_axelglobe.download`: complete files are skipped,
interrupted ones resumed. The file or the search flags are checked before the first token
or API request.

Example:
    $ axelglobe search --capture-id 52eZg9k7rPEyYQGX --save items.json
    $ axelglobe download items.json --assets tci --dir ./out
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._cli_files import read_items
from ._cli_group import State, pass_state
from ._cli_options import Command, search_options, split_multi
from ._cli_search import search_kwargs

if TYPE_CHECKING:
    import pystac

    from .auth import AxelGlobeAuth


def _human(size: int) -> str:
    """A size in bytes as people read it: ``"512 B"``, ``"1.5 MiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _check_source(items_file: Path | None, flags: dict[str, Any]) -> None:
    """Refuse both an ItemCollection file and search flags, or neither."""
    searching = any(value not in (None, (), False) for value in flags.values())
    if items_file is not None and searching:
        raise click.UsageError("give an ItemCollection file or search flags, not both")
    if items_file is None and not searching:
        raise click.UsageError(
            "give an ItemCollection file (from `axelglobe search --save FILE`) or search "
            "flags such as --capture-id or --bbox")


def _items(state: State, items_file: Path | None,
           flags: dict[str, Any]) -> tuple[list[pystac.Item], AxelGlobeAuth]:
    """The items to download (the file's, or the search's) and the auth to download with."""
    # Every flag and the file are checked before the first token or API request.
    items: list[pystac.Item] = []
    kwargs: dict[str, Any] = {}
    if items_file is not None:
        items = read_items(items_file)
    else:
        kwargs = search_kwargs(**flags)
    auth = state.auth()
    if items_file is None:
        from .client import open as ag_open

        client = ag_open(auth.settings.api_url, auth=auth)
        items = list(client.search(**kwargs).item_collection())
    return items, auth


def _report(local: Sequence[pystac.Item], keys: list[str] | None, directory: Path) -> None:
    """Print each file downloaded with its size, then the count and the total (on stderr)."""
    count = total = 0
    for item in local:
        for key, asset in item.assets.items():
            if keys is not None and key not in keys:
                continue
            path = Path(asset.href)
            if path.is_file():
                size = path.stat().st_size
                count, total = count + 1, total + size
                click.echo(f"{path}\t{_human(size)}")
    click.echo(f"{count} file(s), {_human(total)} in {directory}", err=True)


@click.command(cls=Command)
@click.argument("items_file", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@search_options
@click.option("--assets", "-a", multiple=True, metavar="KEY",
              help="Asset keys (repeat or comma-separate, e.g. tci,msi_udm; default: all).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder to write the files into.")
@click.option("--overwrite", is_flag=True, help="Download again files that are complete.")
@pass_state
def download(state: State, /, items_file: Path | None, assets: Sequence[str], directory: Path,
             overwrite: bool, **flags: Any) -> None:
    """Download the assets of an ItemCollection file, or of the items a search finds.

    Complete files are skipped, interrupted ones resumed; each file written is printed with
    its size.
    """
    _check_source(items_file, flags)
    keys = split_multi(assets) or None
    items, auth = _items(state, items_file, flags)
    if not items:
        click.echo("No items: nothing to download.", err=True)
        return
    from .downloads import download as ag_download

    local = ag_download(items, assets=keys, directory=directory, overwrite=overwrite,
                        auth=auth)
    _report(local, keys, directory)
