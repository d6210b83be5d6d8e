"""The ``axelglobe`` command's errors as one line: no markup, no secrets, a readable length.

:class:`~pystac_axelglobe._cli_group.Group` prints every failure through :func:`message`;
:func:`flag` turns the library's verdict on one flag's value into a usage error (exit 2).

Example:
    >>> one_line(ValueError("<html><body><h1>Bad gateway</h1></body></html>"))
    'Bad gateway'
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import click

from ._redact import redact
from .errors import AxelGlobeError, InvalidQueryError

#: An error line longer than this is cut (an HTML error page can be megabytes long).
MAX_ERROR_LENGTH = 500
_TAG = re.compile(r"<[^>]{0,200}>")


def one_line(err: BaseException) -> str:
    r"""The error's message on one line, without markup or secrets, of a readable length.

    DownloadError's message spans several lines; a server's HTML error page ends up in
    some messages: its text is kept, its tags are not.

    Example:
        >>> one_line(OSError("disk\nfull"))
        'disk full'
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
                f"proxy's error page?): {one_line(err)}. Check --api-url / "
                "AXELGLOBE_API_URL; --verbose shows the traceback")
    return (f"unexpected {type(err).__name__}: {one_line(err)} (--verbose shows the "
            "traceback; please report it)")


def _reportable() -> tuple[type[BaseException], ...]:
    """Exceptions shown as one ``Error:`` line: ours, and what the stack under us raises."""
    import requests
    from pystac_client.exceptions import APIError

    # OSError: a file that cannot be written (--save, --dir) is the user's to fix, not a bug.
    return (AxelGlobeError, APIError, requests.RequestException, OSError)


def message(err: Exception) -> str:
    """The ``Error:`` line of any failure, foreseen (ours, the stack's) or not.

    Example:
        >>> message(KeyError("x"))
        "unexpected KeyError: 'x' (--verbose shows the traceback; please report it)"
    """
    return one_line(err) if isinstance(err, _reportable()) else _unexpected(err)


@contextlib.contextmanager
def flag(name: str) -> Iterator[None]:
    """The library's verdict on one flag's value as a usage error (exit 2), before any request.

    Example:
        >>> with flag("--limit"):
        ...     pass
    """
    try:
        yield
    except InvalidQueryError as err:
        raise click.BadParameter(one_line(err), param_hint=f"'{name}'") from err
