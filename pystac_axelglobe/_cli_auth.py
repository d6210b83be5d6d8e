"""``axelglobe auth``: show, get or forget the cached access token.

Each command works on the credential's :class:`~pystac_axelglobe.tokens.TokenProvider`;
``status`` sends no request, ``login`` reuses a valid cached token (AxelGlobe restricts
clients that ask for tokens often).

Example:
    $ axelglobe auth status
    $ axelglobe auth login --show-token
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._cli_group import State, pass_state
from .settings import Settings

if TYPE_CHECKING:
    from .tokens import TokenProvider


@click.group()
def auth() -> None:
    """Show, get or forget the cached access token."""


def _provider(state: State, *, need_credentials: bool) -> tuple[TokenProvider, Settings]:
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
def auth_status(state: State, /, show_token: bool) -> None:
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
def auth_login(state: State, /, show_token: bool) -> None:
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
def auth_logout(state: State) -> None:
    """Forget the cached token (memory and file)."""
    provider, _ = _provider(state, need_credentials=False)
    existed = Path(provider.cache_path).exists()
    provider.clear()
    click.echo(("Removed the cached token " if existed else "No cached token at ")
               + str(provider.cache_path))
