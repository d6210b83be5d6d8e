"""The ``axelglobe`` group's machinery: one ``Error:`` line per failure, the global options.

:class:`Group` is the click group class of :data:`pystac_axelglobe.cli.cli`: its commands'
``--bbox`` takes both forms (:class:`~._cli_options.Command`) and any exception a command
raises becomes one line (:func:`~._cli_errors.message`), exit status 1. :class:`State`
holds the global options; a command receives it through :data:`pass_state`.

Example:
    >>> State(client_id="me").verbose
    False
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

import click

from ._cli_errors import message
from ._cli_options import Command
from .settings import ENV_CLIENT_SECRET, Settings

if TYPE_CHECKING:
    import pystac_client

    from .auth import AxelGlobeAuth


class Group(click.Group):
    """A click group that turns the package's errors into one ``Error: ...`` line."""

    command_class = Command  # its commands' --bbox takes both forms

    def invoke(self, ctx: click.Context) -> Any:
        """As click's; an exception that is not click's own becomes one ``Error:`` line."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            state = ctx.find_object(State)
            if state is not None and state.verbose:
                traceback.print_exc(file=sys.stderr)
            # ClickException prints "Error: <message>" on stderr and exits with status 1:
            # one line for every failure, foreseen (ours, the stack's) or not.
            raise click.ClickException(message(err)) from err


@dataclasses.dataclass
class State:
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


#: Decorates a command to receive the :class:`State` as its first argument.
pass_state = click.make_pass_decorator(State, ensure=True)
