"""The ``>>>`` examples in the package's docstrings run, and show what they say.

Every module of the package is found on disk (new modules join by themselves) and each of
its docstring examples runs with :mod:`doctest`; examples marked ``# doctest: +SKIP`` (those
that need credentials, the network or a running emulator) are skipped. pytest-socket blocks
anything beyond loopback here too, and the autouse fixtures give each module a clean
``AXELGLOBE_*`` environment and token cache.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import pystac_axelglobe

PACKAGE = Path(pystac_axelglobe.__file__).parent

#: Docstring examples that fail today, with why. Each entry must still fail (a fixed one is
#: reported, so that its entry goes); fix the docstring rather than add an entry.
KNOWN_FAILURES: dict[str, str] = {}


def _module_names(path: Path, prefix: str) -> Iterator[str]:
    """Every module under ``path``, found on disk without importing any."""
    for info in pkgutil.iter_modules([str(path)], prefix):
        yield info.name
        if info.ispkg:
            yield from _module_names(path / info.name.rpartition(".")[2], info.name + ".")


MODULES = ["pystac_axelglobe", *_module_names(PACKAGE, "pystac_axelglobe.")]


def _run(name: str) -> tuple[list[str], int, dict[str, str]]:
    """Run the examples of module ``name``.

    Returns:
        The docstrings with examples, how many examples ran, and the report of each
        docstring whose examples failed.
    """
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    found: list[str] = []
    ran = 0
    failures: dict[str, str] = {}
    for test in doctest.DocTestFinder().find(module, name):
        if not test.examples:
            continue
        found.append(test.name)
        report = io.StringIO()
        result = runner.run(test, out=report.write)
        ran += result.attempted
        if result.failed:
            failures[test.name] = report.getvalue()
    return found, ran, failures


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    found, _, failures = _run(name)
    unexpected = {k: v for k, v in failures.items() if k not in KNOWN_FAILURES}
    assert not unexpected, (
        f"{len(unexpected)} docstring example(s) of {name} fail. Fix the example (or the "
        "code), or mark a line that needs credentials or the network `# doctest: +SKIP`:\n"
        + "".join(unexpected.values())
    )
    fixed = [k for k in found if k in KNOWN_FAILURES and k not in failures]
    assert not fixed, f"these examples pass now: remove them from KNOWN_FAILURES: {fixed}"


def test_the_package_has_examples_that_run() -> None:
    # Guards the collection above: a finder that silently found nothing would pass.
    assert {"pystac_axelglobe.filters", "pystac_axelglobe.errors"} <= set(MODULES)
    assert _run("pystac_axelglobe.filters")[1] >= 5
    assert _run("pystac_axelglobe.errors")[1] >= 1
