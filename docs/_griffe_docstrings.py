"""A griffe extension for the API page: the package's docstrings, read as Markdown.

The docstrings are written for ``help()`` and doctest as much as for this site, in two
habits that Markdown does not share, so they are adapted at load time instead of rewritten:

- doctests headed ``Example:`` (the Google style guide's spelling): griffe parses only
  ``Examples:`` into code blocks and would render the rest as prose, where
  ``>>> d["eo:bands"][0]`` reads as a Markdown link;
- Sphinx roles (``:func:`odc.stac.load```, ``:class:`~pystac.Item```): shown as code, the
  ``~`` form by its last name, as Sphinx would.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")


def _role_as_code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def adapt(text: str) -> str:
    """The docstring ``text`` as the API page shows it."""
    return _ROLE.sub(_role_as_code, _EXAMPLE_HEADER.sub(r"\1Examples:", text))


class MarkdownDocstrings(griffe.Extension):
    """Adapt every docstring before griffe parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every object it loads."""
        if obj.docstring is not None:
            obj.docstring.value = adapt(obj.docstring.value)
