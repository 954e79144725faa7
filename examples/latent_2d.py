"""A VAE with a 2-D latent space, drawn: where the test digits go, and what each point decodes to.

Writes into --out:
  latent.png    test-set posterior means E[z|x], coloured by digit (with a colour bar)
  manifold.png  decoder means E[x|z] over a 15x15 grid of latent points placed at the
                standard Normal's quantiles of the probabilities 0.05, ..., 0.95, so each
                cell covers equal prior mass
and prints the test ELBO (nats per example).

The defaults (20,000 training images, 10 epochs) are a small run for a CPU. The
full-size run: --train-limit 0 --test-limit 0 --epochs 50.
"""

from __future__ import annotations

import argparse

import pyrovae
from pyrovae.viz import figures, save_figure

from _common import example_parser, run_config


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "latent_2d", train_limit=20_000, test_limit=5_000)
    p.add_argument("--grid", type=int, default=15,
                   help="the manifold is GRID x GRID decoded points (default: %(default)s)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    config = run_config(args, latent_dim=2)  # two numbers per digit: a plane we can draw
    trainer = pyrovae.train(config, progress=not args.quiet)
    vae, data = trainer.vae, trainer.data
    print(f"test ELBO: {trainer.metrics[-1]['test_elbo']:.2f} nats per example")

    written = {
        "latent.png": figures.latent_figure(vae, data.test_images, data.test_labels),
        "manifold.png": figures.manifold_figure(vae, n=args.grid),
    }
    for name, figure in written.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
