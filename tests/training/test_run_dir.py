"""The files of a run directory: writes are atomic, and missing, damaged or alien files are
clear CheckpointErrors naming the file."""

from __future__ import annotations

import re

import pytest
import torch

from pyrovae import CheckpointError, resolve_config
from pyrovae.training.run_dir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    atomic_write_bytes,
    load_checkpoint,
    read_config,
    read_metrics,
    save_checkpoint,
    write_config,
    write_metrics,
)

from conftest import tiny_config


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, lambda f: f.write(b"first"))

    def failing(f):
        f.write(b"half of the sec")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, failing)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_checkpoint_round_trip_and_damaged_or_alien_checkpoints(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}}
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))

    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=re.escape(f"'{path}' is damaged or truncated")):
        load_checkpoint(tmp_path)
    torch.save({"epoch": 3}, path)  # a torch file, but not a pyrovae checkpoint
    with pytest.raises(CheckpointError, match="is not a pyrovae checkpoint of format"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"is '.*' a pyrovae run directory"):
        load_checkpoint(tmp_path / "nowhere")


def test_config_and_metrics_files(tmp_path):
    config = resolve_config(tiny_config())
    write_config(tmp_path, config)
    assert read_config(tmp_path) == config
    (tmp_path / CONFIG_FILE).write_text("[train]\nlr = -1.0\n")
    with pytest.raises(CheckpointError, match=r"run config '.*' is invalid: train\.lr = -1\.0"):
        read_config(tmp_path)
    with pytest.raises(CheckpointError, match=f"no {CONFIG_FILE} in"):
        read_config(tmp_path / "nowhere")

    assert read_metrics(tmp_path) == []  # no epoch yet
    rows = [{"epoch": 1, "test_elbo": -100.5}, {"epoch": 2, "test_elbo": -99.25}]
    write_metrics(tmp_path, rows)
    assert read_metrics(tmp_path) == rows
    (tmp_path / METRICS_FILE).write_text('{"epoch": 1}\n{"epoch": \n')
    with pytest.raises(CheckpointError, match="line 2 is not valid JSON"):
        read_metrics(tmp_path)
