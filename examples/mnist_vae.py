"""Train the default VAE on binarized MNIST and show what it learned.

Writes into --out:
  samples.png          a grid of samples E[x|z], z ~ p(z)
  reconstructions.png  test digits, each above its reconstruction
  curves.png           training and test ELBO per epoch
and prints the test ELBO and the importance-sampled log-likelihood log p(x), each with its
standard error over test images (nats per example).

The defaults (10,000 training images, 10 epochs) are a small run for a CPU. The
full-size run: --train-limit 0 --test-limit 0 --epochs 50 --num-samples 5000 (use a GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyrovae
from pyrovae.viz import figures, save_figure

from _common import example_parser, run_config


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "mnist_vae", latent_dim=50)
    p.add_argument("--num-samples", type=int, default=100,
                   help="importance samples K per test image for log p(x) (default: %(default)s)")
    p.add_argument("--run-dir", type=Path,
                   help="also keep the trained run here, for `pyrovae evaluate/plot RUN_DIR`")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    # Everything not named here takes the library's defaults: binarized MNIST, a 784-400-z
    # MLP encoder and decoder, a diagonal Normal guide, a N(0, I) prior, a Bernoulli likelihood.
    config = run_config(args)
    trainer = pyrovae.train(config, out=args.run_dir, progress=not args.quiet)
    vae, data = trainer.vae, trainer.data

    # the single-sample ELBO and the K-sample importance-sampled log p(x) of each test image
    result = pyrovae.evaluate(vae, data.test_images, num_samples=args.num_samples,
                              seed=args.seed, progress=not args.quiet)
    print(f"test ELBO: {result.elbo:.2f} \u00b1 {result.elbo_se:.2f} nats per example "
          f"({result.num_examples} test images)")
    print(f"IS log-likelihood (K = {args.num_samples}): {result.log_likelihood:.2f} \u00b1 "
          f"{result.log_likelihood_se:.2f} nats per example (mean effective sample size "
          f"{result.ess_mean:.1f} of {args.num_samples})")

    written = {
        "samples.png": figures.samples_figure(vae, seed=args.seed),
        "reconstructions.png": figures.reconstructions_figure(vae, data.test_images),
        "curves.png": figures.curves_figure(trainer.metrics),
    }
    for name, figure in written.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
