"""The public API: ``pystac_axelglobe.__all__`` is sorted, complete, and what DESIGN.md promises.

As httpx's ``tests/test_exported_members.py``. The names are imported lazily (see the
package's ``__getattr__``), so "complete" means that the three views of them agree: ``__all__``,
what ``from pystac_axelglobe import *`` and attribute access give, and the re-exports that
type checkers and the API page read (the ``if TYPE_CHECKING:`` block of ``__init__.py``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pystac_axelglobe as ag

ROOT = Path(__file__).resolve().parents[1]

#: The public names as of this test: removing or renaming one breaks users' code.
PUBLIC = [
    "APIRequestError",
    "AssetError",
    "AuthenticationError",
    "AxelGlobeAuth",
    "AxelGlobeError",
    "AxelGlobeExtension",
    "ConfigurationError",
    "DownloadError",
    "InvalidQueryError",
    "RestrictedError",
    "Settings",
    "Token",
    "TokenProvider",
    "download",
    "filters",
    "load",
    "mask_unusable",
    "normalize_item",
    "open",
    "resolve",
    "sign",
    "sign_inplace",
]

#: The names DESIGN.md's "The public API" block uses as ``ag.<name>``...
PROMISED = ["AxelGlobeAuth", "AxelGlobeExtension", "download", "load", "normalize_item", "open",
            "sign", "sign_inplace"]
#: ... and ``from pystac_axelglobe.emulator import ...`` there and in the README.
EMULATOR = ["Emulator", "unless_configured"]


def _type_checking_reexports() -> set[str]:
    """The names that ``__init__.py`` re-exports under ``if TYPE_CHECKING:``."""
    tree = ast.parse((ROOT / "pystac_axelglobe" / "__init__.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_all_is_sorted() -> None:
    assert ag.__all__ == sorted(ag.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(ag.__all__) == len(set(ag.__all__))


@pytest.mark.parametrize("name", ag.__all__)
def test_each_exported_name_resolves(name: str) -> None:
    assert getattr(ag, name) is not None
    assert name in dir(ag)


def test_star_import_gives_exactly_all() -> None:
    # In a fresh interpreter: `import *` resolves every lazy name, and nothing else leaks in.
    code = (
        "ns = {}; exec('from pystac_axelglobe import *', ns); "
        "print(sorted(k for k in ns if k != '__builtins__'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == str(sorted(ag.__all__))


def test_all_matches_the_reexports_type_checkers_see() -> None:
    # A name added to __all__ without its TYPE_CHECKING import is invisible to mypy and to
    # the API page; one imported there but not in __all__ is public by accident.
    assert _type_checking_reexports() == set(ag.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ag.nope  # noqa: B018


def test_public_api_unchanged() -> None:
    missing = sorted(set(PUBLIC) - set(ag.__all__))
    assert not missing, f"public names removed from pystac_axelglobe.__all__: {missing}"


@pytest.mark.parametrize("name", PROMISED)
def test_design_promises(name: str) -> None:
    assert name in ag.__all__
    assert callable(getattr(ag, name))


@pytest.mark.parametrize("name", EMULATOR)
def test_emulator_names(name: str) -> None:
    import pystac_axelglobe.emulator as emulator

    assert name in emulator.__all__
    assert callable(getattr(emulator, name))


def test_this_file_lists_what_design_md_promises(shared_dir: Path) -> None:
    text = (shared_dir / "DESIGN.md").read_text()
    block = re.search(r"## The public API.*?```python\n(.*?)```", text, re.S)
    assert block is not None, "DESIGN.md has no 'The public API' code block"
    used = set(re.findall(r"\bag\.(\w+)", block.group(1)))
    assert used == set(PROMISED)
    imported = set(re.findall(r"from pystac_axelglobe\.emulator import (\w+)", block.group(1)))
    assert imported <= set(EMULATOR)


def test_every_public_name_is_on_the_api_page() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    missing = [n for n in ag.__all__ if f"::: pystac_axelglobe.{n}\n" not in page]
    missing += [n for n in EMULATOR if f"::: pystac_axelglobe.emulator.{n}\n" not in page]
    assert not missing, f"add these to docs/api.md (as '::: pystac_axelglobe.NAME'): {missing}"
