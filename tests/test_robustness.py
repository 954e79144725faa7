"""The second robustness probe: users' own files, damaged runs, absurd command lines, signals,
a full disk and wrong user programs. Each attack ends with exit code 2 (143 for SIGTERM) and
one line of at most a few hundred characters on stderr, no traceback, nothing lost and
nothing half-made (:mod:`test_faults` holds the first probe's attacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pyrovae
from pyrovae.cli import main
from pyrovae.errors import MAX_MESSAGE

from conftest import tiny_config
from test_faults import snapshot

#: "pyrovae COMMAND: error: " and a message of at most MAX_MESSAGE characters
MAX_LINE = MAX_MESSAGE + 40


def fails(capsys, argv: list[str], *fragments: str, root: Path | None = None) -> str:
    """``main(argv)`` exits 2 with one short line on stderr naming ``fragments``, no
    traceback, and every file under ``root`` as it was."""
    before = snapshot(root) if root else None
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert len(err) <= MAX_LINE, err
    for fragment in fragments:
        assert fragment in err, err
    if root:
        assert snapshot(root) == before, "the attack changed or left files"
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 1-epoch tiny run (copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("robust") / "run"
    pyrovae.train(tiny_config(), out=out, progress=False)
    return out


def copy_run(run: Path, to: Path) -> Path:
    to.mkdir()
    for path in run.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


# ------------------------------------------------------------------ command line, config
DIGITS_5000 = "9" * 5000


@pytest.mark.parametrize(
    "override, fragment",
    [
        (f"train.seed={DIGITS_5000}", "5,000 digits"),  # Python refuses to read it
        (f"train.lr={'9' * 4000}", "finite"),  # read, but no float holds it
        (f"train.seed={'9' * 4000}", "64 bits"),
    ],
)
def test_huge_number_in_set(capsys, tmp_path, tiny_toml, override, fragment):
    fails(capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"),
                   "--set", override], fragment, root=tmp_path)


def test_huge_number_in_config(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\nseed = {DIGITS_5000}\n")
    fails(capsys, ["train", "--config", str(config), "--out", str(tmp_path / "r")], "digits",
          root=tmp_path)


def test_message_quotes_are_capped(capsys, tmp_path, tiny_toml):
    """A value of a megabyte is quoted in a few hundred characters."""
    value = "x" * (1 << 20)  # no "=": the message quotes the whole option
    fails(capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"),
                   "--set", value], "key.path=value", root=tmp_path)


@pytest.mark.parametrize("number", [DIGITS_5000, "9" * 4000, "1e999"])
def test_huge_number_in_metrics(capsys, run, tmp_path, number):
    damaged = copy_run(run, tmp_path / "run")
    (damaged / "metrics.jsonl").write_text(
        f'{{"epoch": 1, "train_elbo": {number}, "test_elbo": -100.0}}\n')
    fails(capsys, ["plot", str(damaged), "--kind", "curves", "--out",
                   str(tmp_path / "c.png")], "metrics.jsonl", root=tmp_path)
