"""What pyrovae ships: every package it imports is declared in pyproject.toml, the torchvision
floor is the release made for the torch floor, ``pyrovae --version`` says the version, and
``import pyrovae`` works where ``fcntl`` does not exist (Windows)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from pyrovae import __version__
from pyrovae.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: import names whose distribution is named otherwise
DISTRIBUTIONS = {"pyro": "pyro-ppl", "PIL": "pillow", "tomli_w": "tomli-w", "yaml": "pyyaml"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower()


def _floor(requirement: str) -> tuple[int, ...]:
    return tuple(int(n) for n in requirement.split(">=")[1].split(",")[0].split("."))


def imported_packages() -> set[str]:
    """The top-level names of the packages that pyrovae's modules import (at any level),
    standard library and pyrovae itself left out."""
    names: set[str] = set()
    for path in (ROOT / "pyrovae").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"pyrovae"}


def test_every_imported_package_is_declared():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    declared |= {_name(r) for extra in PROJECT["optional-dependencies"].values() for r in extra}
    missing = {DISTRIBUTIONS.get(n, n).lower() for n in imported_packages()} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_the_torchvision_floor_is_the_release_for_the_torch_floor():
    """torchvision 0.(N + 15) is the release made for torch 2.N (0.19 for 2.4, 0.29 for
    2.14): a lower floor would allow a pair that does not install together."""
    floors = {_name(r): _floor(r) for r in PROJECT["dependencies"] if ">=" in r}
    torch_major, torch_minor = floors["torch"][:2]
    assert torch_major == 2 and floors["torchvision"][:2] == (0, torch_minor + 15), floors


def test_version_option_prints_the_package_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"pyrovae {__version__}"


def test_import_pyrovae_needs_no_fcntl():
    """With ``fcntl`` made unimportable (as on Windows), the package and its run lock still
    import; the lock is taken and refused as on POSIX."""
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import pyrovae, pyrovae.cli, pyrovae.training.run_guard as g, tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp()) / 'run'\n"
        "with g.hold_run_dir(d, new=True):\n"
        "    try:\n"
        "        g.check_new_run_dir(d)\n"
        "    except pyrovae.RunDirectoryError as e:\n"
        "        print('refused:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "in use by another pyrovae process" in done.stdout, done.stdout
