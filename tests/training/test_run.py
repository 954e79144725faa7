"""Runs: training lowers the loss, resumes exactly, is reproducible, and never corrupts a run
directory; a trained run loads back."""

import math

import pytest
import torch

import pyrovae
from pyrovae import CheckpointError, ConfigError
from pyrovae.training import load_run, select_device
from pyrovae.training.run_dir import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, read_metrics
from pyrovae.training.run_guard import LOCK_FILE
from pyrovae.training.trainer import PICTURE_FILE

from conftest import numbers, tiny_config


def test_training_lowers_test_negative_elbo():
    # 2048 examples, batch 64, 8 epochs = 256 SVI steps.
    config = tiny_config(data={"train_limit": 2048, "test_limit": 512}, train={"epochs": 8})
    resolved = pyrovae.resolve_config(config)
    untrained = pyrovae.Trainer(
        pyrovae.VAE.from_resolved_config(resolved), pyrovae.load_data(resolved["data"]),
        resolved, torch.device("cpu"), progress=False,
    )
    initial = -untrained.test_elbo()
    # At initialisation the decoder's logits are near 0, so -ELBO ~ 784 ln 2 = 543 nats.
    assert initial > 784 * math.log(2) - 10
    trainer = pyrovae.train(config, progress=False)
    final = -trainer.metrics[-1]["test_elbo"]
    # The best model without latent structure (independent pixels with the training
    # frequencies) scores `baseline` nats on this test set; a VAE that has learned anything
    # about digit shapes must beat it. Its test -ELBO is a mean over 512 examples with a
    # standard error of ~2 nats, far below the margin we see (~15 nats).
    p = trainer.data.train_images.mean(0).clamp(1e-3, 1 - 1e-3)
    x = trainer.data.test_images
    baseline = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1).mean().item()
    assert final < baseline
    assert final < initial - 300
    # the curve goes down on the whole
    elbos = [r["test_elbo"] for r in trainer.metrics]
    assert elbos[-1] > elbos[0] + 50


def test_resume_equals_uninterrupted_run(tmp_path):
    config = tiny_config(train={"epochs": 3})
    full = pyrovae.train(config, out=tmp_path / "full", progress=False)
    partial_config = tiny_config(train={"epochs": 1})
    pyrovae.train(partial_config, out=tmp_path / "split", progress=False)
    torch.rand(3)  # resuming must not depend on the global RNG state in between
    resumed = pyrovae.resume(tmp_path / "split", epochs=3, progress=False)
    assert resumed.epoch == 3
    for key, value in full.vae.state_dict().items():
        assert torch.equal(value, resumed.vae.state_dict()[key]), key
    assert numbers(read_metrics(tmp_path / "split")) == numbers(read_metrics(tmp_path / "full"))
    assert [r["epoch"] for r in read_metrics(tmp_path / "split")] == [1, 2, 3]


def test_a_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path):
    """A CUDA generator's state (16 bytes: seed and offset) is not a CPU generator's: a run
    moved between the two continues with the new device's data draws, seeded from the run's
    seed and epoch, instead of failing to load. (The CUDA side: tests/test_cuda.py.)"""
    from pyrovae.training.run_dir import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    pyrovae.train(tiny_config(train={"epochs": 1}), out=run, progress=False)
    state = load_checkpoint(run)
    state.pop("format")
    # what a checkpoint written on CUDA holds: the CUDA generators' states
    state["data_rng"] = state["cuda_rng"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(run, state)
    first = pyrovae.resume(run, epochs=2, progress=False)
    assert [r["epoch"] for r in first.metrics] == [1, 2]
    save_checkpoint(run, state)  # back to the end of epoch 1: the reseeded draws repeat
    again = pyrovae.resume(run, epochs=2, progress=False)
    assert numbers(again.metrics) == numbers(first.metrics)


def test_same_seed_same_metrics_and_other_seed_differs():
    a = pyrovae.train(tiny_config(train={"epochs": 2}), progress=False).metrics
    b = pyrovae.train(tiny_config(train={"epochs": 2}), progress=False).metrics
    c = pyrovae.train(tiny_config(train={"epochs": 2, "seed": 1}), progress=False).metrics
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(c)


def test_bad_config_creates_no_run_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"valid choices: .*standard_normal"):
        pyrovae.train(tiny_config(model={"prior": {"type": "nope"}}), out=out, progress=False)
    assert not out.exists()


def test_existing_run_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "run"
    pyrovae.train(tiny_config(), out=out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(CheckpointError, match="--resume"):
        pyrovae.train(tiny_config(train={"seed": 5}), out=out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    out = tmp_path / "run"
    pyrovae.train(tiny_config(), out=out, progress=False)
    ckpt = out / CHECKPOINT_FILE
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        pyrovae.load_run(out, device="cpu")
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        pyrovae.resume(out, epochs=2, progress=False)


def test_resume_to_fewer_epochs_is_refused(tmp_path):
    pyrovae.train(tiny_config(train={"epochs": 2}), out=tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="fewer than the 2 epochs"):
        pyrovae.resume(tmp_path / "run", epochs=1, progress=False)


def test_a_run_directory_holds_config_metrics_checkpoint_and_picture(tmp_path):
    out = tmp_path / "run"
    trainer = pyrovae.train(tiny_config(train={"epochs": 2}), out=out, progress=False)
    assert {p.name for p in out.iterdir()} == {CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE,
                                               PICTURE_FILE, LOCK_FILE}
    assert PICTURE_FILE == "samples_reconstructions.png"  # the name the README shows
    assert read_metrics(out) == trainer.metrics
    vae, config, state = load_run(out, device="cpu")
    assert config == trainer.config and state["epoch"] == 2 and not vae.training
    for key, value in trainer.vae.state_dict().items():
        assert torch.equal(value, vae.state_dict()[key]), key


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device = 'tpu' is not valid"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            select_device("cuda")
