"""Walk through latent space: decode points on straight lines between two test digits.

Each row starts at the posterior mean E[z|x_A] of one test digit and ends at that of another
digit of a different class; the images in between are the decoder means E[x|z] at equally
spaced points on the line. A smooth, digit-like path means the latent space is filled
without holes.

Writes interpolation.png into --out. Trains a VAE first (the defaults, 10,000 training
images for 10 epochs, run in a few minutes on 2 CPU cores), or uses a trained run with
--run RUN_DIR (e.g. one made by `pyrovae train` or `mnist_vae.py --run-dir`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyrovae
from pyrovae import figures

from _common import example_parser


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "interpolate", test_limit=1_000, latent_dim=16)
    p.add_argument("--run", type=Path, metavar="RUN_DIR",
                   help="use this trained run instead of training a new VAE")
    p.add_argument("--pairs", type=int, default=8,
                   help="rows of the picture (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10,
                   help="decoded points per row, ends included (default: %(default)s)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.run:
        vae, config, _ = pyrovae.load_run(args.run, device=args.device)
        data = pyrovae.load_data(config["data"], device=next(vae.parameters()).device)
    else:
        config = {
            "data": {"train_limit": args.train_limit, "test_limit": args.test_limit},
            "model": {"latent_dim": args.latent_dim},
            "train": {"epochs": args.epochs, "seed": args.seed, "device": args.device},
        }
        trainer = pyrovae.train(config, progress=not args.quiet)
        vae, data = trainer.vae, trainer.data

    path = figures.interpolation(vae, data.test_images, data.test_labels,
                                 args.out / "interpolation.png",
                                 pairs=args.pairs, steps=args.steps, seed=args.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
