"""``axelglobe search``: the search flags checked and sent, the items printed or saved.

:func:`search_kwargs` turns the flags of :func:`~._cli_options.search_options` into
pystac-client ``search()`` arguments (``download`` uses it too); every value is checked
there, before ``ag.open()`` sends its first request: a bad flag is a usage error (exit 2)
that costs no token and no API request.

Example:
    >>> props = {"datetime": "2021-05-01T00:00:00Z", "eo:cloud_cover": 3}
    >>> print(format_table([table_row("x", props)]))
    id  datetime              platform  cloud %  capture id
    --  --------------------  --------  -------  ----------
    x   2021-05-01T00:00:00Z            3.0
    1 item(s)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ._cli_errors import flag, one_line
from ._cli_files import read_geometry
from ._cli_group import State, pass_state
from ._cli_options import DEFAULT_COLLECTION, Command, search_options, split_multi
from ._save import FORMATS, format_of, require
from .errors import InvalidQueryError
from .settings import MAX_PAGE_LIMIT

#: AxelGlobe's largest page (``limit``).


def _filter_clauses(*, filter_: str | None, cloud_cover: float | None,
                    aoi_cloud_cover: float | None, capture_id: str | None,
                    intersects: Path | None) -> list[Any]:
    """The CQL2 clauses of the filter flags, each checked under its flag's name."""
    import pystac_axelglobe.filters as filters

    # (flag, its value, the filters builder): the flags' order is the clauses' order.
    builders: list[tuple[str, Any, Callable[[Any], Any]]] = [
        ("--filter", filter_ or None, filters.validate_filter),
        ("--cloud-cover", cloud_cover, filters.cloud_cover),
        ("--aoi-cloud-cover", aoi_cloud_cover, filters.aoi_cloud_cover),
        ("--capture-id", capture_id or None, filters.capture_id),
    ]
    clauses: list[Any] = []
    for name, value, build in builders:
        if value is not None:
            with flag(name):
                clauses.append(build(value))
    if intersects is not None:
        geometry = read_geometry(intersects)  # a usage error of its own: the file is wrong
        with flag("--intersects"):
            clauses.append(filters.intersects(geometry))
    return clauses


def _limit(limit: int, max_items: int | None) -> int:
    """``--limit``, refused above AxelGlobe's page size (pystac-client sends min(limit, max))."""
    if min(limit, max_items or limit) > MAX_PAGE_LIMIT:
        raise click.BadParameter(f"must be at most {MAX_PAGE_LIMIT} (items per page; --max-items "
                                 "caps the total)", param_hint="'--limit'")
    return limit


def _where(*, bbox: tuple[float, float, float, float] | None,
           datetime_: str | None) -> dict[str, Any]:
    """The ``bbox`` and ``datetime`` arguments, each checked under its flag's name."""
    from .client import check_bbox, check_datetime

    kwargs: dict[str, Any] = {}
    if bbox:
        with flag("--bbox"):
            kwargs["bbox"] = check_bbox(bbox)
    if datetime_:
        with flag("--datetime"):
            check_datetime(datetime_)
        kwargs["datetime"] = datetime_
    return kwargs


def search_kwargs(*, collections: Sequence[str], ids: Sequence[str],
                  bbox: tuple[float, float, float, float] | None, datetime_: str | None,
                  intersects: Path | None, filter_: str | None, cloud_cover: float | None,
                  aoi_cloud_cover: float | None, capture_id: str | None, limit: int | None,
                  max_items: int | None) -> dict[str, Any]:
    """pystac-client ``search()`` arguments from the flags; filter flags joined with AND."""
    import pystac_axelglobe.filters as filters

    from .client import to_axelglobe_params

    clauses = _filter_clauses(filter_=filter_, cloud_cover=cloud_cover,
                              aoi_cloud_cover=aoi_cloud_cover, capture_id=capture_id,
                              intersects=intersects)
    kwargs: dict[str, Any] = {"collections": split_multi(collections) or [DEFAULT_COLLECTION]}
    if ids:
        kwargs["ids"] = split_multi(ids)
    kwargs.update(_where(bbox=bbox, datetime_=datetime_))
    if clauses:
        with flag("--filter"):
            kwargs["filter"] = clauses[0] if len(clauses) == 1 else filters.all_of(*clauses)
    if limit is not None:
        kwargs["limit"] = _limit(limit, max_items)
    if max_items is not None:
        kwargs["max_items"] = max_items
    try:  # the client's own translation, as a last check of the whole query
        to_axelglobe_params({k: v for k, v in kwargs.items() if k in ("bbox", "filter")})
    except InvalidQueryError as err:
        raise click.UsageError(one_line(err)) from err
    return kwargs


def table_row(item_id: str, props: dict[str, Any]) -> tuple[str, ...]:
    """One item's row of :func:`format_table`: id, date, platform, cloud cover, capture id."""
    cloud = props.get("eo:cloud_cover")
    return (item_id, props.get("datetime") or "", str(props.get("platform", "")),
            "" if cloud is None else f"{float(cloud):.1f}", str(props.get("ag:capture_id", "")))


def format_table(items: Sequence[tuple[str, ...]]) -> str:
    """A readable table of :func:`table_row` rows: id, date, platform, cloud cover, capture."""
    rows = [("id", "datetime", "platform", "cloud %", "capture id"), *items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(items)} item(s)")
    return "\n".join(lines)


def _save(state: State, kwargs: dict[str, Any], save: Path, fmt: str,
          as_table: bool) -> None:
    """Write the search's items to ``save`` page by page (:mod:`._save`), then report."""
    from ._save import save_items

    rows: list[tuple[str, ...]] = []
    # The private folder beside FILE is made before any request: a folder that cannot be
    # written fails here, having cost nothing.
    with save_items(save, fmt) as writer:
        client, _ = state.client()
        # The items as the API gives them (the client's modifier applied), one page at a
        # time, as pystac-client's `stac-client search --save` writes them. No pystac.Item:
        # pystac caches every item whose root is the client in the client, and an item's
        # links refer back to it, so memory would grow with the items after all.
        for page in client.search(**kwargs).pages_as_dicts():
            features = page.get("features") or []
            writer.write(features)
            if as_table:
                rows += [table_row(f["id"], f.get("properties") or {}) for f in features]
    click.echo(f"Saved {writer.count} item(s) to {save}", err=True)
    for note in writer.notes:  # fields parquet stored as text, say
        click.echo(f"Note: {note}", err=True)
    if as_table:
        click.echo(format_table(rows))


def _print(state: State, kwargs: dict[str, Any], as_table: bool) -> None:
    """Print the search's items: a GeoJSON FeatureCollection, or a table."""
    client, _ = state.client()
    items = client.search(**kwargs).item_collection()
    if as_table:
        click.echo(format_table([table_row(i.id, i.properties) for i in items]))
    else:
        click.echo(json.dumps(items.to_dict(transform_hrefs=False), indent=2))


@click.command(cls=Command)
@search_options
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the items to FILE as the pages arrive, instead of stdout: GeoJSON "
                   "(.json or any other suffix), one item a line (.ndjson, .jsonl) or "
                   "stac-geoparquet (.parquet; needs the [parquet] extra).")
@click.option("--format", "format_", type=click.Choice(FORMATS), default=None,
              help="The format of --save FILE, whatever its suffix.")
@click.option("--table", is_flag=True, help="Print a readable table instead of GeoJSON.")
@pass_state
def search(state: State, /, save: Path | None, format_: str | None, table: bool,
           **flags: Any) -> None:
    """Search items; print a GeoJSON FeatureCollection (or a table, or save it).

    Filter flags (--filter, --cloud-cover, --aoi-cloud-cover, --capture-id, --intersects)
    are combined with AND. --save writes FILE whole or not at all: a failure or Ctrl-C
    leaves FILE as it was.
    """
    kwargs = search_kwargs(**flags)  # checked before anything is sent
    if save is None:
        if format_ is not None:
            raise click.UsageError("--format needs --save FILE")
        _print(state, kwargs, table)
        return
    if not save.parent.is_dir():
        raise click.BadParameter(f"the folder {save.parent} does not exist",
                                 param_hint="'--save'")
    fmt = format_of(save, format_)
    require(fmt, f"axelglobe search --save {save.name}")  # the extra, before any request
    _save(state, kwargs, save, fmt, table)
