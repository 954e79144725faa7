"""configs/papers/: the literature's MNIST table as ready configs. Each resolves and builds,
names its paper, table row and number in a header comment with the ways it differs from the
paper's recipe, and has its row in docs/reproductions.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pyrovae
from pyrovae import load_config, resolve_config
from pyrovae.models.factory import build_model

from conftest import ROOT

PAPER_CONFIGS = sorted((ROOT / "configs" / "papers").glob("*.toml"))
REPRODUCTIONS = (ROOT / "docs" / "reproductions.md").read_text(encoding="utf-8")


def test_the_papers_rows_are_all_there():
    names = {p.stem for p in PAPER_CONFIGS}
    burda = {
        f"burda2016_{layers}_layer_{objective}_k{k}"
        for layers in ("one", "two")
        for objective in ("vae", "iwae")
        for k in (1, 5, 50)
    }
    tomczak = {
        f"tomczak2018_{layers}_layer_{prior}"
        for layers, prior in (("one", "standard"), ("one", "vamp"), ("two", "standard"))
    }
    assert names == burda | tomczak


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=[p.stem for p in PAPER_CONFIGS])
def test_every_paper_config_resolves_builds_and_says_where_it_differs(path: Path):
    config = load_config(path)
    assert resolve_config(config) == config
    program = build_model(config)  # no data needed: the shape is MNIST's
    assert program.data_dim == 784
    assert pyrovae.describe(config).splitlines()[-2].startswith("  training: adam (")
    header = path.read_text(encoding="utf-8").split("\n[", 1)[0]
    paper = (
        "Burda, Grosse and Salakhutdinov (2016)"
        if path.stem.startswith("burda")
        else ("Tomczak and Welling (2018)")
    )
    assert header.startswith(f"# {paper}, ") and "Table 1" in header
    number = re.search(r"test log p\(x\) = (-\d+\.\d\d) nats", header)
    assert number, "the header names the row's number"
    assert "# Where this config differs from the paper's recipe:\n#   - " in header
    # its row in docs/reproductions.md, with the same number
    row = next(line for line in REPRODUCTIONS.splitlines() if f"`{path.name}`" in line)
    assert number.group(1) in row
    train = config["train"]
    if path.stem.startswith("burda"):  # the paper's recipe
        assert (train["batch_size"], train["lr"], train["epochs"]) == (20, 1e-3, 3280)
        assert train["optimizer"]["eps"] == 1e-4 and train["lr_schedule"]["type"] == "burda"
    else:
        assert (train["batch_size"], train["lr"], train["validation"]) == (100, 5e-4, 10000)
        assert train["early_stopping"]["patience"] == 50
        assert config["objective"]["kl_warmup_epochs"] == 100
