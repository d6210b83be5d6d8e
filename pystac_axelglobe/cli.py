"""The ``axelglobe`` command: search, download, tokens, the emulator and a demo.

Every command is a thin layer over the library (``ag.open()``, ``filters``, ``ag.download()``,
``TokenProvider``, ``Emulator``). Errors of the package print one line, ``Error: ...``, and
exit with status 1; usage errors exit with status 2 (click's convention). ``--verbose`` logs
what the package does and shows the traceback.

Example:
    $ axelglobe demo --output ./axelglobe-demo
    $ axelglobe search --bbox 133 35 137 36 --cloud-cover 30 --table
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import stat
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from ._redact import redact
from ._save import FORMATS, format_of, require
from .emulator.switches import click_options, emulator_kwargs
from .errors import AxelGlobeError, InvalidQueryError
from .settings import ENV_CLIENT_SECRET, Settings

if TYPE_CHECKING:
    import pystac
    import pystac_client

    from .auth import AxelGlobeAuth
    from .tokens import TokenProvider

F = TypeVar("F", bound=Callable[..., Any])

#: The collection searched when ``--collections`` is not given.
DEFAULT_COLLECTION = "grus-1"


#: An error line longer than this is cut (an HTML error page can be megabytes long).
MAX_ERROR_LENGTH = 500
_TAG = re.compile(r"<[^>]{0,200}>")


def _one_line(err: BaseException) -> str:
    """The error's message on one line, without markup or secrets, of a readable length.

    DownloadError's message spans several lines; a server's HTML error page ends up in
    some messages: its text is kept, its tags are not.
    """
    text = redact(str(err))
    if "<" in text and re.search(r"<(html|body|head|title|!doctype|h1|p)\b", text, re.I):
        text = _TAG.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_LENGTH:
        text = text[:MAX_ERROR_LENGTH - 3].rstrip() + "..."
    return text or type(err).__name__


def _unexpected(err: Exception) -> str:
    """One line for an exception the package did not wrap: still no traceback."""
    if isinstance(err, ValueError) and "JSON" in type(err).__name__:
        # pystac-client parses every answer as JSON; an HTML page or a proxy's error page
        # ends up here.
        return ("the server answered something that is not JSON (an HTML page, or a "
                f"proxy's error page?): {_one_line(err)}. Check --api-url / "
                "AXELGLOBE_API_URL; --verbose shows the traceback")
    return (f"unexpected {type(err).__name__}: {_one_line(err)} (--verbose shows the "
            "traceback; please report it)")


def _reportable() -> tuple[type[BaseException], ...]:
    """Exceptions shown as one ``Error:`` line: ours, and what the stack under us raises."""
    import requests
    from pystac_client.exceptions import APIError

    # OSError: a file that cannot be written (--save, --dir) is the user's to fix, not a bug.
    return (AxelGlobeError, APIError, requests.RequestException, OSError)


# --bbox takes the guide's form, one argument "133,35,137,36", and stac-client's, four
# arguments "133 35 137 36"; click's options take a fixed number of arguments, so the four
# are joined into one before click parses them (_Command.parse_args).
_BBOX = "--bbox"
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


def _join_bbox(args: list[str]) -> list[str]:
    """``--bbox 133 35 137 36`` as ``--bbox "133 35 137 36"``: the four numbers, one argument.

    Takes the numbers after ``--bbox`` up to four (negative ones included: ``-50.4`` is a
    number here, not an option); the callback (:func:`_bbox`) then refuses anything but four.
    """
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        out.append(arg)
        if arg == "--":
            out.extend(rest)
            break
        if arg != _BBOX:
            continue
        taken: list[str] = []
        count = 0
        for value in rest:
            numbers = _bbox_numbers(value)
            if taken and (not numbers or count + len(numbers) > 4):
                out.append(" ".join(taken))
                taken = []
                out.append(value)  # not part of the bbox: another option, an argument
                break
            taken.append(value)
            count += len(numbers)
            if not numbers or count >= 4:
                break
        if taken:
            out.append(" ".join(taken))
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
        raise click.BadParameter(_one_line(err)) from err


class _Command(click.Command):
    """A click command whose ``--bbox`` takes its four numbers as one argument or as four."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """As click's, after joining the numbers of ``--bbox`` (:func:`_join_bbox`)."""
        if any(_BBOX in param.opts for param in self.params):
            args = _join_bbox(args)
        return super().parse_args(ctx, args)


class _Group(click.Group):
    """A click group that turns the package's errors into one ``Error: ...`` line."""

    command_class = _Command  # its commands' --bbox takes both forms

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            state = ctx.find_object(_State)
            if state is not None and state.verbose:
                traceback.print_exc(file=sys.stderr)
            # ClickException prints "Error: <message>" on stderr and exits with status 1:
            # one line for every failure, foreseen (ours, the stack's) or not.
            message = _one_line(err) if isinstance(err, _reportable()) else _unexpected(err)
            raise click.ClickException(message) from err


@dataclasses.dataclass
class _State:
    """The global options, shared by the subcommands."""

    api_url: str | None = None
    client_id: str | None = None
    verbose: bool = False

    def settings(self, *, need_credentials: bool = False) -> Settings:
        """Settings from the global options over the environment.

        The secret is never a flag: with ``--client-id`` and no ``AXELGLOBE_CLIENT_SECRET``,
        it is asked for with a hidden prompt (flags end up in shell history and ``ps``).
        """
        secret: str | None = None
        if need_credentials and self.client_id and not os.environ.get(ENV_CLIENT_SECRET):
            secret = click.prompt(f"Client secret for {self.client_id}", hide_input=True,
                                  err=True)
        settings = Settings.from_env(client_id=self.client_id, client_secret=secret,
                                     api_url=self.api_url)
        if need_credentials:
            settings.require_credentials()
        return settings

    def auth(self) -> AxelGlobeAuth:
        """An :class:`AxelGlobeAuth` for these settings (credentials required)."""
        from .auth import AxelGlobeAuth

        return AxelGlobeAuth(settings=self.settings(need_credentials=True))

    def client(self) -> tuple[pystac_client.Client, AxelGlobeAuth]:
        """An opened client and its auth."""
        from .client import open as ag_open

        auth = self.auth()
        return ag_open(auth.settings.api_url, auth=auth), auth


pass_state = click.make_pass_decorator(_State, ensure=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = _State(api_url=api_url, client_id=client_id, verbose=verbose)
    if verbose:
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


# --------------------------------------------------------------------------------- demo


@cli.command()
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("axelglobe-demo"), show_default=True,
              help="Folder for the quick-look PNG, the summary and the downloads.")
@pass_state
def demo(state: _State, /, output: Path) -> None:
    """Run the provider guide's scenarios end to end on the built-in emulator.

    Searches, downloads a capture's true-colour images, loads an NDVI datacube of a time
    series of captures and writes a quick-look PNG and a summary. No credentials needed.
    """
    from .demo import run_demo

    run_demo(output, echo=click.echo)


# --------------------------------------------------------------------------------- auth


@cli.group()
def auth() -> None:
    """Show, get or forget the cached access token."""


def _provider(state: _State, *, need_credentials: bool) -> tuple[TokenProvider, Settings]:
    from .tokens import TokenProvider

    settings = state.settings(need_credentials=need_credentials)
    return TokenProvider.shared(settings), settings


def _describe_expiry(expires_at: float) -> str:
    when = dt.datetime.fromtimestamp(expires_at, tz=dt.timezone.utc)
    left = expires_at - dt.datetime.now(tz=dt.timezone.utc).timestamp()
    if left <= 0:
        return f"expired at {when:%Y-%m-%d %H:%M:%S} UTC"
    hours, rest = divmod(int(left), 3600)
    return f"valid until {when:%Y-%m-%d %H:%M:%S} UTC ({hours} h {rest // 60} min left)"


def _echo_settings(settings: Settings) -> None:
    click.echo(f"API:          {settings.api_url}")
    click.echo(f"Token URL:    {settings.token_url}")
    click.echo(f"Client id:    {settings.client_id or '(not set: export AXELGLOBE_CLIENT_ID)'}")
    click.echo("Secret:       " + ("set" if settings.client_secret
                                   else "(not set: export AXELGLOBE_CLIENT_SECRET)"))


@auth.command("status")
@click.option("--show-token", is_flag=True, help="Also print the cached token itself.")
@pass_state
def auth_status(state: _State, /, show_token: bool) -> None:
    """Show the credential, the token cache and the cached token's expiry (no request)."""
    settings = state.settings()
    _echo_settings(settings)
    if not settings.client_id:
        click.echo(f"Token cache:  {settings.cache_dir}")
        click.echo("Token:        none (no client id)")
        return
    provider, _ = _provider(state, need_credentials=False)
    click.echo(f"Token cache:  {provider.cache_path}")
    # The provider's own reading (no lock, no request): a damaged file reads as empty, the
    # way token() sees it, instead of crashing on values datetime cannot represent.
    token, restricted = provider.cached()
    if restricted:
        when = dt.datetime.fromtimestamp(restricted, tz=dt.timezone.utc)
        click.echo(f"Restricted:   until {when:%Y-%m-%d %H:%M:%S} UTC (AxelGlobe refuses this "
                   "client until then; requests now would prolong it)")
    if token is None:
        click.echo("Token:        none cached (`axelglobe auth login` gets one)")
        return
    click.echo(f"Token:        {_describe_expiry(token.expires_at)}")
    if show_token:
        click.echo(token.access_token)


@auth.command("login")
@click.option("--show-token", is_flag=True, help="Print the token (for curl, say).")
@pass_state
def auth_login(state: _State, /, show_token: bool) -> None:
    """Get a token now, reusing a valid cached one (AxelGlobe restricts frequent requests)."""
    provider, settings = _provider(state, need_credentials=True)
    token = provider.token()
    click.echo(f"Logged in as {settings.client_id}; token "
               f"{_describe_expiry(token.expires_at)}")
    click.echo(f"Token cache: {provider.cache_path}")
    if show_token:
        click.echo(token.access_token)


@auth.command("logout")
@pass_state
def auth_logout(state: _State) -> None:
    """Forget the cached token (memory and file)."""
    provider, _ = _provider(state, need_credentials=False)
    existed = Path(provider.cache_path).exists()
    provider.clear()
    click.echo(("Removed the cached token " if existed else "No cached token at ")
               + str(provider.cache_path))


# ------------------------------------------------------------------------------ collections


@cli.command()
@pass_state
def collections(state: _State) -> None:
    """List the catalog's collections."""
    client, _ = state.client()
    for collection in client.get_collections():
        interval = collection.extent.temporal.intervals[0]
        start, end = (d.date().isoformat() if d else ".." for d in interval)
        click.echo(f"{collection.id}\t{collection.title or ''}\t{start}/{end}")


# ----------------------------------------------------------------------------------- search


def _not_empty(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an empty value: ``--capture-id "$UNSET"`` must not mean "every item"."""
    values = value if isinstance(value, tuple) else (value,)
    if any(v is not None and not v.replace(",", "").strip() for v in values):
        raise click.BadParameter("is empty; give a value or leave the option out")
    return value


@contextlib.contextmanager
def _flag(name: str) -> Iterator[None]:
    """The library's verdict on one flag's value as a usage error (exit 2), before any request."""
    try:
        yield
    except InvalidQueryError as err:
        raise click.BadParameter(_one_line(err), param_hint=f"'{name}'") from err


def _search_options(func: F) -> F:
    """The search flags shared by ``search`` and ``download`` (as in ``stac-client search``)."""
    options = [
        click.option("--collections", "-c", multiple=True, metavar="ID", callback=_not_empty,
                     help="Collection ids (repeat or comma-separate; default "
                          f"{DEFAULT_COLLECTION})."),
        click.option("--ids", multiple=True, metavar="ID", callback=_not_empty,
                     help="Item ids."),
        click.option(_BBOX, callback=_bbox, metavar="MINX,MINY,MAXX,MAXY",
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


def _split_multi(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


#: The largest GeoJSON or ItemCollection file read (a mistaken path could name a disk image).
MAX_JSON_FILE = 256 * 1024 * 1024
#: Deeper JSON is refused: GeoJSON needs about 8 levels, a STAC ItemCollection a few more;
#: a pathologically nested file would exhaust the recursion of the parsers behind us.
MAX_JSON_DEPTH = 64


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists/dicts more than ``limit`` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else ())
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _read_json_file(path: Path, hint: str) -> Any:
    """The JSON in ``path``, or a usage error saying what is wrong with the file.

    Refused before parsing: anything but a regular file (a FIFO would block forever, a
    device never end), more than :data:`MAX_JSON_FILE` bytes; then text that is not UTF-8,
    HTML, invalid JSON, and nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    def bad(reason: str) -> click.BadParameter:
        return click.BadParameter(f"{path} {reason}", param_hint=hint)

    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise bad(f"cannot be opened: {err.strerror or err}") from err
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise bad("is not a regular file (a FIFO, a device or a socket?); give a file")
        raw = handle.read(MAX_JSON_FILE + 1)
    if len(raw) > MAX_JSON_FILE:
        raise bad(f"is larger than {MAX_JSON_FILE // 2**20} MiB; give a smaller file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise bad(f"is not UTF-8 text (a binary file?): byte {err.start} cannot be "
                  "decoded") from err
    if re.match(r"\s*<(!doctype|html|head|body|\?xml)", text, re.I):
        raise bad("is an HTML or XML page, not JSON (saved from a browser?); give a GeoJSON "
                  "or STAC JSON file")
    try:
        data = json.loads(text)
    except RecursionError:
        raise bad(f"is nested more than {MAX_JSON_DEPTH} levels deep; that is no GeoJSON or "
                  "STAC file") from None
    except ValueError as err:
        raise bad(f"is not valid JSON: {err}") from err
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise bad(f"is nested more than {MAX_JSON_DEPTH} levels deep; that is no GeoJSON or "
                  "STAC file")
    return data


def _read_geometry(path: Path) -> dict[str, Any]:
    """The geometry of a GeoJSON file: a geometry, a Feature or a FeatureCollection (union)."""
    data = _read_json_file(path, "'--intersects'")
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        import shapely.geometry
        from shapely import unary_union

        try:
            geoms = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])
                     if f.get("geometry")]
        except Exception as err:  # shapely raises several types for broken GeoJSON
            raise click.BadParameter(f"{path} holds a feature that is not valid GeoJSON: "
                                     f"{err!r}", param_hint="'--intersects'") from err
        if not geoms:
            raise click.BadParameter(f"{path} holds no geometry", param_hint="'--intersects'")
        data = shapely.geometry.mapping(unary_union(geoms))
    if not isinstance(data, dict) or "type" not in data:
        raise click.BadParameter(f"{path} is not GeoJSON", param_hint="'--intersects'")
    return dict(data)


def _read_items(path: Path) -> list[pystac.Item]:
    """The items of a saved ItemCollection (``axelglobe search --save FILE``)."""
    import pystac

    data = _read_json_file(path, "'ITEMS_FILE'")
    try:
        return list(pystac.ItemCollection.from_dict(data))
    except Exception as err:  # pystac raises many types for a file that is not STAC
        raise click.BadParameter(f"{path} is not a STAC ItemCollection: {_one_line(err)}",
                                 param_hint="'ITEMS_FILE'") from err


def _search_kwargs(*, collections: Sequence[str], ids: Sequence[str],
                   bbox: tuple[float, float, float, float] | None, datetime_: str | None,
                   intersects: Path | None, filter_: str | None, cloud_cover: float | None,
                   aoi_cloud_cover: float | None, capture_id: str | None, limit: int | None,
                   max_items: int | None) -> dict[str, Any]:
    """pystac-client ``search()`` arguments from the flags; filter flags joined with AND."""
    import pystac_axelglobe.filters as filters

    from .client import check_bbox, check_datetime, to_axelglobe_params

    # Every value is checked here, before ag.open() sends its first request: a bad flag is a
    # usage error (exit 2) that costs no token and no API request.
    clauses: list[Any] = []
    if filter_:
        with _flag("--filter"):
            clauses.append(filters.validate_filter(filter_))
    if cloud_cover is not None:
        with _flag("--cloud-cover"):
            clauses.append(filters.cloud_cover(cloud_cover))
    if aoi_cloud_cover is not None:
        with _flag("--aoi-cloud-cover"):
            clauses.append(filters.aoi_cloud_cover(aoi_cloud_cover))
    if capture_id:
        with _flag("--capture-id"):
            clauses.append(filters.capture_id(capture_id))
    if intersects is not None:
        geometry = _read_geometry(intersects)
        with _flag("--intersects"):
            clauses.append(filters.intersects(geometry))
    kwargs: dict[str, Any] = {"collections": _split_multi(collections) or [DEFAULT_COLLECTION]}
    if ids:
        kwargs["ids"] = _split_multi(ids)
    if bbox:
        with _flag("--bbox"):
            kwargs["bbox"] = check_bbox(bbox)
    if datetime_:
        with _flag("--datetime"):
            check_datetime(datetime_)
        kwargs["datetime"] = datetime_
    if clauses:
        with _flag("--filter"):
            kwargs["filter"] = clauses[0] if len(clauses) == 1 else filters.all_of(*clauses)
    if limit is not None:
        # AxelGlobe's page size is 1..10000; pystac-client sends min(limit, max_items).
        if min(limit, max_items or limit) > 10000:
            raise click.BadParameter("must be at most 10000 (items per page; --max-items caps "
                                     "the total)", param_hint="'--limit'")
        kwargs["limit"] = limit
    if max_items is not None:
        kwargs["max_items"] = max_items
    try:  # the client's own translation, as a last check of the whole query
        to_axelglobe_params({k: v for k, v in kwargs.items() if k in ("bbox", "filter")})
    except InvalidQueryError as err:
        raise click.UsageError(_one_line(err)) from err
    return kwargs


def _row(item_id: str, props: dict[str, Any]) -> tuple[str, ...]:
    """One item's row of :func:`_table`: id, date, platform, cloud cover, capture id."""
    cloud = props.get("eo:cloud_cover")
    return (item_id, props.get("datetime") or "", str(props.get("platform", "")),
            "" if cloud is None else f"{float(cloud):.1f}", str(props.get("ag:capture_id", "")))


def _table(items: Sequence[tuple[str, ...]]) -> str:
    """A readable table of items' :func:`_row`: id, date, platform, cloud cover, capture id."""
    rows = [("id", "datetime", "platform", "cloud %", "capture id"), *items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(items)} item(s)")
    return "\n".join(lines)


def _save(state: _State, kwargs: dict[str, Any], save: Path, fmt: str,
          table: bool) -> None:
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
            if table:
                rows += [_row(f["id"], f.get("properties") or {}) for f in features]
    click.echo(f"Saved {writer.count} item(s) to {save}", err=True)
    for note in writer.notes:  # fields parquet stored as text, say
        click.echo(f"Note: {note}", err=True)
    if table:
        click.echo(_table(rows))


@cli.command()
@_search_options
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the items to FILE as the pages arrive, instead of stdout: GeoJSON "
                   "(.json or any other suffix), one item a line (.ndjson, .jsonl) or "
                   "stac-geoparquet (.parquet; needs the [parquet] extra).")
@click.option("--format", "format_", type=click.Choice(FORMATS), default=None,
              help="The format of --save FILE, whatever its suffix.")
@click.option("--table", is_flag=True, help="Print a readable table instead of GeoJSON.")
@pass_state
def search(state: _State, /, save: Path | None, format_: str | None, table: bool,
           **flags: Any) -> None:
    """Search items; print a GeoJSON FeatureCollection (or a table, or save it).

    Filter flags (--filter, --cloud-cover, --aoi-cloud-cover, --capture-id, --intersects)
    are combined with AND. --save writes FILE whole or not at all: a failure or Ctrl-C
    leaves FILE as it was.
    """
    kwargs = _search_kwargs(**flags)  # checked before anything is sent
    if save is None:
        if format_ is not None:
            raise click.UsageError("--format needs --save FILE")
        client, _ = state.client()
        items = client.search(**kwargs).item_collection()
        if table:
            click.echo(_table([_row(i.id, i.properties) for i in items]))
        else:
            click.echo(json.dumps(items.to_dict(transform_hrefs=False), indent=2))
        return
    if not save.parent.is_dir():
        raise click.BadParameter(f"the folder {save.parent} does not exist",
                                 param_hint="'--save'")
    fmt = format_of(save, format_)
    require(fmt, f"axelglobe search --save {save.name}")  # the extra, before any request
    _save(state, kwargs, save, fmt, table)


# --------------------------------------------------------------------------------- download


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@cli.command()
@click.argument("items_file", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_search_options
@click.option("--assets", "-a", multiple=True, metavar="KEY",
              help="Asset keys (repeat or comma-separate, e.g. tci,msi_udm; default: all).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder to write the files into.")
@click.option("--overwrite", is_flag=True, help="Download again files that are complete.")
@pass_state
def download(state: _State, /, items_file: Path | None, assets: Sequence[str], directory: Path,
             overwrite: bool, **flags: Any) -> None:
    """Download the assets of an ItemCollection file, or of the items a search finds.

    Complete files are skipped, interrupted ones resumed; each file written is printed with
    its size.
    """
    searching = any(value not in (None, (), False) for value in flags.values())
    if items_file is not None and searching:
        raise click.UsageError("give an ItemCollection file or search flags, not both")
    if items_file is None and not searching:
        raise click.UsageError(
            "give an ItemCollection file (from `axelglobe search --save FILE`) or search "
            "flags such as --capture-id or --bbox")
    keys = _split_multi(assets) or None
    # Every flag and the file are checked before the first token or API request.
    items: list[pystac.Item] = []
    kwargs: dict[str, Any] = {}
    if items_file is not None:
        items = _read_items(items_file)
    else:
        kwargs = _search_kwargs(**flags)
    auth_ = state.auth()
    if items_file is None:
        from .client import open as ag_open

        client = ag_open(auth_.settings.api_url, auth=auth_)
        items = list(client.search(**kwargs).item_collection())
    if not items:
        click.echo("No items: nothing to download.", err=True)
        return
    from .downloads import download as ag_download

    local = ag_download(items, assets=keys, directory=directory, overwrite=overwrite,
                        auth=auth_)
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


# --------------------------------------------------------------------------------- emulator


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


if __name__ == "__main__":
    main()
