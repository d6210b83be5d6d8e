"""Packaging: dependencies say what the code imports, extras hold the optional parts, and the
``axelglobe`` console script says which extra to install when one is missing.

The import checks read the package's source (every ``import`` outside ``if TYPE_CHECKING:``)
and pyproject.toml, so a new import without its declaration fails here, not on a user's
machine. The launcher is run in a subprocess with a module hidden (``sys.modules[name] =
None`` makes importing it fail as if it were not installed).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the checks need no more than that

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pystac_axelglobe"
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _declared(*extras: str) -> dict[str, str]:
    """Distribution name -> requirement, for the core and the given extras (followed)."""
    out = {_name(r): r for r in PROJECT["dependencies"]}
    todo = list(extras)
    while todo:
        for req in EXTRAS[todo.pop()]:
            if _name(req) == "pystac-axelglobe":  # "pystac-axelglobe[cli,emulator]"
                todo += re.findall(r"\w+", req.partition("[")[2])
            else:
                out[_name(req)] = req
    return out


def _runtime_imports(path: Path) -> Iterator[str]:
    """The absolute imports of a module, except those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution


def _distributions(module: str) -> set[str]:
    """The distributions that may provide a third-party module; none for ours and stdlib's."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("pystac_axelglobe", "__future__"):
        return set()
    if top == "odc":  # a namespace shared by odc-stac, odc-loader and odc-geo
        return {f"odc-{module.split('.')[1]}"}
    # pystac's modules come from pystac-core and pystac-ext-* under the "pystac" meta package
    return {_name(top), *(_name(d) for d in _providers().get(top, []))}


def _extras_for(path: Path) -> tuple[str, ...]:
    """The extras a module may rely on, besides the core."""
    relative = path.relative_to(PACKAGE).as_posix()
    if relative == "emulator/switches.py":  # click_options() serves `axelglobe emulator`
        return ("emulator", "cli")
    if relative.startswith("emulator/"):
        return ("emulator",)
    if relative.startswith("_cli_"):  # the rooms of cli.py: `axelglobe` and its commands
        return ("cli",)
    return {  # one module per line: each new module that needs an extra adds its own
        "cli.py": ("cli",),
        "demo.py": ("all",),
        "cluster.py": ("distributed",),
        "_cluster_channel.py": ("distributed",),
        "_parquet.py": ("parquet",),
    }.get(relative, ())


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_import_is_declared(path: Path) -> None:
    extras = _extras_for(path)
    declared = _declared(*extras)
    missing = sorted({f"{m} ({'|'.join(sorted(d))})" for m in _runtime_imports(path)
                      if (d := _distributions(m)) and not d & declared.keys()})
    where = "the core dependencies" + "".join(f" or the [{e}] extra" for e in extras)
    assert not missing, f"{path.name} imports what {where} do not declare: {missing}"


def test_private_modules_of_other_packages_are_imported_under_an_upper_bound() -> None:
    declared = _declared("all")
    private = {m for p in MODULES for m in _runtime_imports(p)
               if _distributions(m) and re.search(r"\._", m)}
    assert private >= {"odc.stac._mdtools", "odc.loader._rio"}
    for module in private:
        (dist,) = _distributions(module) & declared.keys()
        assert "<" in declared[dist], f"{module} is private: bound {declared[dist]!r} above"


def test_the_core_leaves_the_command_the_emulator_and_the_plot_to_extras() -> None:
    core = _declared()
    assert {"click", "werkzeug", "matplotlib", "affine", "distributed"}.isdisjoint(core)
    assert "click" in _declared("cli")
    assert "werkzeug" in _declared("emulator")
    assert {"click", "werkzeug", "matplotlib", "distributed"} <= set(_declared("all"))


def test_the_test_and_dev_extras_bring_everything() -> None:
    everything = set(_declared("all")) | {"mkdocs", "mkdocstrings", "mkdocstrings-python"}
    assert everything <= set(_declared("test"))
    assert set(_declared("test", "lint", "type", "docs")) <= set(_declared("dev"))
    assert "tox" in _declared("dev")


def test_the_console_script_is_the_launcher() -> None:
    assert PROJECT["scripts"] == {"axelglobe": "pystac_axelglobe._entry:main"}


def test_tox_has_a_mindeps_env() -> None:
    tox = (ROOT / "tox.ini").read_text()
    assert "[testenv:mindeps]" in tox
    assert "lowest-direct" in tox


def test_readme_set_up_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    # .ci/run greps for this very line
    assert ('python3 -m venv .venv && .venv/bin/pip install -e ".[test]" '
            "&& .venv/bin/python -m pytest") in readme
    assert ('python3 -m venv .venv && .venv/bin/pip install -e ".[all]" '
            "&& .venv/bin/axelglobe demo") in readme
    assert 'pip install -e ".[dev]"' in readme
    assert "tox" in readme


# ------------------------------------------------------------------------------- launcher


def axelglobe(*args: str, hide: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the console script's function in a fresh interpreter, with modules hidden."""
    code = (
        "import sys\n"
        f"for name in {list(hide)!r}: sys.modules[name] = None\n"
        "from pystac_axelglobe._entry import main\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_without_click_the_command_says_to_install_the_cli_extra() -> None:
    proc = axelglobe("--version", hide=("click",))
    assert proc.returncode == 1
    assert proc.stderr == ('Error: the axelglobe command needs the [cli] extra: '
                           'pip install "pystac-axelglobe[cli]"\n')
    assert proc.stdout == ""


def test_without_matplotlib_the_demo_says_to_install_all_before_it_starts(
        tmp_path: Path) -> None:
    proc = axelglobe("demo", "--output", str(tmp_path / "out"), hide=("matplotlib",))
    assert proc.returncode == 1
    assert proc.stderr == ('Error: axelglobe demo needs the [all] extra: '
                           'pip install "pystac-axelglobe[all]"\n')
    assert not (tmp_path / "out").exists()  # nothing ran


def test_without_werkzeug_the_emulator_says_to_install_the_emulator_extra() -> None:
    proc = axelglobe("emulator", hide=("werkzeug",))
    assert proc.returncode == 1
    assert proc.stderr == ('Error: axelglobe emulator needs the [emulator] extra: '
                           'pip install "pystac-axelglobe[emulator]"\n')


def test_an_option_value_is_not_taken_for_a_command() -> None:
    # `--client-id demo` names a client, not the demo: no extra is needed for --version.
    proc = axelglobe("--client-id", "demo", "--version", hide=("matplotlib", "werkzeug"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("axelglobe, version ")


def test_with_everything_installed_the_launcher_runs_the_command() -> None:
    proc = axelglobe("--help")
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "search" in proc.stdout


def test_the_launcher_knows_which_global_options_take_a_value() -> None:
    import click

    from pystac_axelglobe.cli import cli

    takes_value = {opt for p in cli.params if isinstance(p, click.Option)
                   and not p.is_flag and not p.count for opt in p.opts}
    source = (PACKAGE / "_entry.py").read_text()
    for opt in takes_value:
        assert f'"{opt}"' in source, f"_entry._subcommand does not skip the value of {opt}"
