"""Runs: train a new VAE from a config, resume a stopped run, load a trained one.

A run directory (:mod:`~pyrovae.training.run_dir`) holds the resolved config, the checkpoint
written at every epoch end and the metrics; on CPU a resumed run ends bitwise where an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyro
import torch

from ..config import resolve_config
from ..data import load_data
from ..errors import CheckpointError, ConfigError
from ..models.vae import VAE
from ..registry import PositiveInt, check_value
from ..resources import check_batch_fits, check_model_fits, example_bytes
from . import run_dir as files
from .run_guard import check_new_run_dir, hold_run_dir
from .trainer import Trainer

__all__ = ["load_run", "resume", "select_device", "train"]


def select_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` fails clearly without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA GPU is available; use 'cpu' or 'auto'")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device = {name!r} is not valid; expected 'auto', 'cpu' or 'cuda'")
    return torch.device(name)


def _trainer(
    config: dict[str, Any], data_root: str | Path | None, progress: bool, run_dir: Path | None
) -> Trainer:
    """A Trainer for the resolved ``config``: a freshly initialised VAE and its data."""
    device = select_device(config["train"]["device"])
    check_model_fits(config, training=True)  # before a single parameter is allocated
    pyro.set_rng_seed(config["train"]["seed"])  # initial weights and Monte Carlo draws
    vae = VAE.from_resolved_config(config).to(device)
    data = load_data(config["data"], device=device, root=data_root)
    # one training step's activations: particles x batch (the largest pass of a run)
    particles = config["objective"].get("num_particles", 1)
    batch = min(config["train"]["batch_size"], data.train_images.shape[0])
    check_batch_fits(
        particles * batch, example_bytes(vae), "objective.num_particles x train.batch_size ="
    )
    return Trainer(vae, data, config, device, run_dir=run_dir, progress=progress)


def train(
    config: Mapping[str, Any],
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
) -> Trainer:
    """Train a new VAE as ``config`` says; with ``out``, write a run directory there.

    The config is validated and the data loaded before ``out`` is created, so bad input
    leaves no half-made run directory. ``out`` must be new, empty, or a run that never finished
    an epoch (:func:`~pyrovae.training.run_guard.check_new_run_dir`); it is locked while the
    run trains (:func:`~pyrovae.training.run_guard.hold_run_dir`).

    Returns:
        the :class:`Trainer`, whose ``vae`` is trained and ``metrics`` filled in.

    Example::

        trainer = pyrovae.train({"train": {"epochs": 1}}, out="runs/first")
        print(trainer.metrics[-1]["test_elbo"])
    """
    config = resolve_config(config)
    if out is None:
        trainer = _trainer(config, data_root, progress, None)
        trainer.fit()
        return trainer
    run_dir = Path(out)
    check_new_run_dir(run_dir)  # refuse before the data is loaded; checked again under the lock
    trainer = _trainer(config, data_root, progress, None)
    with hold_run_dir(run_dir, new=True):
        files.write_metrics(run_dir, [])
        files.write_config(run_dir, config)  # the run's marker files, metrics first
        trainer.run_dir = run_dir
        trainer.fit()
    return trainer


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
) -> Trainer:
    """Continue the run in ``run_dir`` from its last checkpoint, up to ``epochs`` in total
    (default: the run's configured epochs). On CPU the result equals an uninterrupted run."""
    run_dir = Path(run_dir)
    if epochs is not None:
        check_value(epochs, PositiveInt, "--epochs")
    if not run_dir.is_dir():
        raise CheckpointError(
            f"'{run_dir}' is not a folder; give a run directory made by `pyrovae train --out`"
        )
    with hold_run_dir(run_dir, new=False):
        config = files.read_config(run_dir)
        state = files.load_checkpoint(run_dir)
        if epochs is not None:
            if epochs < state["epoch"]:
                raise ConfigError(
                    f"--epochs {epochs} is fewer than the {state['epoch']} epochs '{run_dir}' "
                    "has run"
                )
            config["train"]["epochs"] = epochs
        trainer = _trainer(config, data_root, progress, run_dir)
        trainer.load_state_dict(state)
        trainer.metrics = [r for r in files.read_metrics(run_dir) if r["epoch"] <= trainer.epoch]
        if epochs is not None:
            files.write_config(run_dir, config)
        trainer.fit()
    return trainer


def load_run(
    run_dir: str | Path, device: str = "auto"
) -> tuple[VAE, dict[str, Any], dict[str, Any]]:
    """The trained VAE of a run directory (in eval mode, on ``device``), its config and
    checkpoint state.

    Example::

        vae, config, state = pyrovae.load_run("runs/first", device="cpu")
    """
    run_dir = Path(run_dir)
    config = files.read_config(run_dir)
    dev = select_device(device)
    state = files.load_checkpoint(run_dir, map_location=dev)
    vae = VAE.from_resolved_config(config).to(dev)
    try:
        vae.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint in '{run_dir}' does not match its config.toml ({str(exc).splitlines()[0]})"
        ) from None
    vae.eval()
    return vae, config, state
