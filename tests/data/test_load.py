"""What ``load_data`` and ``data_shape`` (pyrovae.data) make of a run's data: a run records
its data's source, shape and hash so that ``evaluate`` finds the data again (and refuses
changed files), data given in Python must be given again, and the model of one's own data is
known before training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_files import H, W, own_config, write_png_folder, write_source

import pyrovae
from pyrovae.cli import main
from pyrovae.config import dumps_toml


@pytest.mark.parametrize("kind", ["folder", "array"])
def test_a_run_records_its_data_and_evaluate_finds_it(kind, tmp_path, capsys):
    """pyrovae train --config on a folder or array, then pyrovae evaluate RUN, end to end."""
    path = write_source(kind, tmp_path, 0)
    config_file = tmp_path / "own.toml"
    config_file.write_text(dumps_toml(own_config(dataset=kind, path=str(path))))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run), "--quiet"]) == 0
    recorded = pyrovae.config.load_config(run / "config.toml")["data"]
    assert recorded["shape"] == [1, H, W] and recorded["num_classes"] == (2 if kind == "folder"
                                                                           else 0)
    assert recorded["path"] == str(path.resolve()) and len(recorded["sha256"]) == 64
    vae, _, _ = pyrovae.load_run(run, device="cpu")  # rebuilt without reading the data
    assert vae.image_shape == (1, H, W)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 2  # 10% of 24
    # changed data is refused, naming the change
    write_source(kind, tmp_path, 1)
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet"]) == 2
    assert "has changed since the run recorded it" in capsys.readouterr().err


def test_a_run_on_python_data_must_be_given_it_again(tmp_path, capsys):
    x = torch.bernoulli(torch.full((20, 12), 0.3), generator=torch.Generator().manual_seed(0))
    config = own_config(binarize="static")  # binary already: static binarization keeps it
    run = tmp_path / "run"
    pyrovae.train(config, out=run, progress=False, train_data=x[:16], test_data=x[16:])
    recorded = pyrovae.config.load_config(run / "config.toml")["data"]
    assert recorded["dataset"] == "tensors" and recorded["shape"] == [12]
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet"]) == 2
    assert "pass it in again" in capsys.readouterr().err
    with pytest.raises(pyrovae.DataError, match="has changed"):
        pyrovae.resume(run, epochs=2, progress=False, train_data=1 - x[:16], test_data=x[16:])
    trainer = pyrovae.resume(run, epochs=2, progress=False, train_data=x[:16], test_data=x[16:])
    assert [row["epoch"] for row in trainer.metrics] == [1, 2]


def test_the_model_of_own_data_is_known_before_training(tmp_path):
    """describe / VAE.from_config read the shape from the files' headers; vectors refuse a
    conv network and unlabelled data a conditional prior, naming the fix."""
    folder = write_png_folder(tmp_path / "images", mode="RGB")
    vae = pyrovae.VAE.from_config(own_config(dataset="folder", path=str(folder)))
    assert vae.image_shape == (3, H, W) and vae.prior.latent_dim == 2
    np.save(tmp_path / "v.npy", np.zeros((10, 7), np.float32))
    vectors = own_config(dataset="array", path=str(tmp_path / "v.npy"))
    assert pyrovae.VAE.from_config(vectors).data_dim == 7
    vectors["model"]["encoder"] = {"type": "conv"}
    with pytest.raises(pyrovae.ConfigError, match="needs images"):
        pyrovae.VAE.from_config(vectors)
    vectors["model"].update(encoder={"type": "mlp"}, prior={"type": "conditional"})
    with pytest.raises(pyrovae.ConfigError, match="needs labelled data"):
        pyrovae.VAE.from_config(vectors)
