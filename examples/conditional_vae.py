"""A class-conditional VAE: ask for a digit, get that digit.

The prior is p(z|y) = N(mu_y, I), with a learned mean mu_y per class y (model.prior.type =
"conditional"); training passes each image's label to the model. The encoder never sees the
label, so the KL term pulls the posteriors of each class towards its own mu_y, and the
decoder learns to draw class y from the region around mu_y.

Writes into --out:
  classes.png  one row of samples E[x|z], z ~ p(z|y), for each class y = 0..9
and prints the test ELBO (nats per example, with the labels).

The defaults (10,000 training images, 10 epochs) are a small run for a CPU. The
full-size run: --train-limit 0 --test-limit 0 --epochs 50.
"""

from __future__ import annotations

import argparse

import pyrovae
from pyrovae.viz import figures, save_figure

from _common import example_parser, run_config


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "conditional_vae", latent_dim=16)
    p.add_argument("--per-class", type=int, default=10,
                   help="samples in each class's row (default: %(default)s)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    config = run_config(args, prior={"type": "conditional"})
    trainer = pyrovae.train(config, progress=not args.quiet)
    vae, data = trainer.vae, trainer.data

    elbo = pyrovae.elbo_per_example(vae, data.test_images, data.test_labels)
    print(f"test ELBO: {elbo.mean():.2f} \u00b1 {elbo.std() / len(elbo) ** 0.5:.2f} "
          f"nats per example, log p(x|y) bound ({len(elbo)} labelled test images)")

    figure = figures.classes_figure(vae, per_class=args.per_class, seed=args.seed)
    print(f"wrote {save_figure(figure, args.out / 'classes.png')}")


if __name__ == "__main__":
    main()
