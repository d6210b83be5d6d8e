"""The search flags of ``axelglobe search`` and ``download``: their types and callbacks.

:func:`search_options` declares them (as ``stac-client search`` names them); ``--bbox``
takes the guide's form, one argument ``133,35,137,36``, and stac-client's, four arguments
``133 35 137 36``: click's options take a fixed number of arguments, so :class:`Command`
joins the four into one before click parses them (:func:`join_bbox`).

Example:
    >>> join_bbox(["--bbox", "133", "35", "137", "36", "--table"])
    ['--bbox', '133 35 137 36', '--table']
    >>> split_multi(["grus-1,b", " c "])
    ['grus-1', 'b', 'c']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ._cli_errors import one_line
from .errors import InvalidQueryError
from .settings import COLLECTION_ID

F = TypeVar("F", bound=Callable[..., Any])

#: The collection searched when ``--collections`` is not given.
DEFAULT_COLLECTION = COLLECTION_ID

BBOX = "--bbox"
_BBOX_HINT = " (give MINX,MINY,MAXX,MAXY in lon/lat, e.g. --bbox 133,35,137,36)"
_NUMBERS = re.compile(r"[\s,]+")


def _bbox_numbers(text: str) -> list[str]:
    """The numbers of a ``--bbox`` value, or [] when a part is not a number."""
    parts = [part for part in _NUMBERS.split(text.strip()) if part]
    try:
        [float(part) for part in parts]
    except ValueError:
        return []
    return parts


def _take_bbox(rest: Iterator[str], out: list[str]) -> None:
    """Move the values after ``--bbox`` from ``rest`` to ``out``, its numbers as one argument.

    Takes up to four numbers (negative ones included: ``-50.4`` is a number here, not an
    option); the first value that would not fit is passed on as it is.
    """
    taken: list[str] = []
    count = 0
    for value in rest:
        numbers = _bbox_numbers(value)
        if taken and (not numbers or count + len(numbers) > 4):
            out.append(" ".join(taken))
            out.append(value)  # not part of the bbox: another option, an argument
            return
        taken.append(value)
        count += len(numbers)
        if not numbers or count >= 4:
            break
    if taken:
        out.append(" ".join(taken))


def join_bbox(args: list[str]) -> list[str]:
    """``--bbox 133 35 137 36`` as ``--bbox "133 35 137 36"``: the four numbers, one argument.

    The callback (:func:`_bbox`) then refuses anything but four numbers.

    Example:
        >>> join_bbox(["--bbox", "-50.4", "1", "2", "3"])
        ['--bbox', '-50.4 1 2 3']
    """
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        out.append(arg)
        if arg == "--":
            out.extend(rest)
            break
        if arg == BBOX:
            _take_bbox(rest, out)
    return out


def _bbox(ctx: click.Context, param: click.Parameter,
          value: str | None) -> tuple[float, ...] | None:
    """The ``--bbox`` value as four floats, or a usage error saying the expected form."""
    if value is None:
        return None
    from ._dialect import check_bbox

    numbers = _bbox_numbers(value)
    if len(numbers) != 4:
        got = (f"{len(numbers)} number{'' if len(numbers) == 1 else 's'}" if numbers
               else "something else")
        raise click.BadParameter(f"expected 4 numbers, got {got}: {value!r:.80}" + _BBOX_HINT)
    try:
        return tuple(check_bbox(numbers, hint=_BBOX_HINT))
    except InvalidQueryError as err:
        raise click.BadParameter(one_line(err)) from err


class Command(click.Command):
    """A click command whose ``--bbox`` takes its four numbers as one argument or as four."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """As click's, after joining the numbers of ``--bbox`` (:func:`join_bbox`)."""
        if any(BBOX in param.opts for param in self.params):
            args = join_bbox(args)
        return super().parse_args(ctx, args)


def _not_empty(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an empty value: ``--capture-id "$UNSET"`` must not mean "every item"."""
    values = value if isinstance(value, tuple) else (value,)
    if any(v is not None and not v.replace(",", "").strip() for v in values):
        raise click.BadParameter("is empty; give a value or leave the option out")
    return value


def split_multi(values: Sequence[str]) -> list[str]:
    """The values of a repeatable, comma-separable option, one list (see the example above)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def search_options(func: F) -> F:
    """The search flags shared by ``search`` and ``download`` (as in ``stac-client search``).

    The command receives them as keyword arguments for
    :func:`~pystac_axelglobe._cli_search.search_kwargs`.
    """
    options = [
        click.option("--collections", "-c", multiple=True, metavar="ID", callback=_not_empty,
                     help="Collection ids (repeat or comma-separate; default "
                          f"{DEFAULT_COLLECTION})."),
        click.option("--ids", multiple=True, metavar="ID", callback=_not_empty,
                     help="Item ids."),
        click.option(BBOX, callback=_bbox, metavar="MINX,MINY,MAXX,MAXY",
                     help="Bounding box in lon/lat, e.g. 133,35,137,36 (or 133 35 137 36)."),
        click.option("--datetime", "datetime_", metavar="TEXT", callback=_not_empty,
                     help="A time or an interval, e.g. "
                          "2021-04-10T00:00:00Z/2021-06-30T23:59:59Z."),
        click.option("--intersects", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     metavar="FILE",
                     help="GeoJSON file (geometry, Feature or FeatureCollection): S_INTERSECTS."),
        click.option("--filter", "filter_", metavar="CQL2", callback=_not_empty,
                     help="CQL2 text or JSON, e.g. \"eo:cloud_cover <= 30\"."),
        click.option("--cloud-cover", type=click.FloatRange(0, 100), metavar="PCT",
                     help="Item cloud cover at most PCT (eo:cloud_cover <= PCT)."),
        click.option("--aoi-cloud-cover", type=click.FloatRange(0, 100), metavar="PCT",
                     help="Mean cloud cover of each capture's tiles in the AOI at most PCT."),
        click.option("--capture-id", metavar="ID", callback=_not_empty,
                     help="The tiles of one capture."),
        click.option("--limit", type=click.IntRange(1), metavar="N", help="Page size."),
        click.option("--max-items", type=click.IntRange(1), metavar="N",
                     help="Stop after this many items."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
