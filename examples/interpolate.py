"""Walk through latent space: decode points on straight lines between two test digits.

Each row starts at the posterior mean E[z|x_A] of one test digit and ends at that of another
digit of a different class; the images in between are the decoder means E[x|z] at equally
spaced points on the line. A smooth, digit-like path means the latent space is filled
without holes.

Writes interpolation.png into --out. Trains a VAE first (the defaults, 10,000 training
images for 10 epochs, a small run for a CPU), or uses a trained run with
--run RUN_DIR (e.g. one made by `pyrovae train` or `mnist_vae.py --run-dir`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyrovae.viz import figures, save_figure

from _common import example_parser, load_or_train


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
    vae, data = load_or_train(args)

    figure = figures.interpolation_figure(vae, data.test_images, data.test_labels,
                                          pairs=args.pairs, steps=args.steps, seed=args.seed)
    print(f"wrote {save_figure(figure, args.out / 'interpolation.png')}")


if __name__ == "__main__":
    main()
