"""What every example shares: the command-line flags of its training run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pyrovae


def example_parser(
    doc: str | None,
    name: str,
    *,
    epochs: int = 10,
    train_limit: int = 10_000,
    test_limit: int = 2_000,
    latent_dim: int | None = None,
) -> argparse.ArgumentParser:
    """An argument parser with the flags every example takes (``--out``, ``--epochs``,
    ``--train-limit``, ``--test-limit``, ``--latent-dim`` when ``latent_dim`` is given,
    ``--seed``, ``--device``, ``--quiet``), defaulting to this example's small CPU run;
    the example adds its own flags to it."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("examples_out") / name,
                   help="folder for the PNGs (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=epochs,
                   help="training epochs (default: %(default)s)")
    p.add_argument("--train-limit", type=int, default=train_limit,
                   help="use the first N training images, 0 = all 60,000 (default: %(default)s)")
    p.add_argument("--test-limit", type=int, default=test_limit,
                   help="use the first N test images, 0 = all 10,000 (default: %(default)s)")
    if latent_dim is not None:
        p.add_argument("--latent-dim", type=int, default=latent_dim,
                       help="size of z (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to compute (default: %(default)s, CUDA when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def run_config(args: argparse.Namespace, *, data: dict[str, Any] | None = None,
               objective: dict[str, Any] | None = None, **model: Any) -> dict[str, Any]:
    """The config of an example's training run from the shared flags, with ``model`` keys
    (``latent_dim`` from ``--latent-dim`` unless given), extra ``data`` keys and an
    ``objective`` section when given."""
    if "latent_dim" not in model:  # examples with a fixed latent size have no --latent-dim
        model["latent_dim"] = args.latent_dim
    config = {
        "data": {"train_limit": args.train_limit, "test_limit": args.test_limit, **(data or {})},
        "model": model,
        "train": {"epochs": args.epochs, "seed": args.seed, "device": args.device},
    }
    if objective is not None:
        config["objective"] = objective
    return config


def load_or_train(args: argparse.Namespace) -> tuple[pyrovae.VAE, pyrovae.ImageData]:
    """The trained run in ``--run RUN_DIR`` with the first ``--test-limit`` test images, or a
    default VAE trained from the shared flags: ``(vae, data)``."""
    if args.run:
        vae, config, _ = pyrovae.load_run(args.run, device=args.device)
        config["data"]["test_limit"] = args.test_limit
        return vae, pyrovae.load_data(config["data"], device=next(vae.parameters()).device)
    trainer = pyrovae.train(run_config(args), progress=not args.quiet)
    return trainer.vae, trainer.data
