"""Swap the prior p(z): the same networks trained with a standard Normal, a mixture of
Gaussians, a VampPrior and a flow prior, on the same data and budget.

Only `model.prior` changes. A learned prior can match the aggregate posterior (the spread
of q(z|x) over the data) better than N(0, I), which lowers the KL term and raises the
bound, and samples come from where the data's codes are. Writes into --out:
  comparison.png  test ELBO and importance-sampled log p(x), each +-1 standard error
                  over test images, one row per prior, with the numbers as a table
  samples.png     samples E[x|z], z ~ p(z), one panel per prior
and prints the same table (nats per example).

The defaults (10,000 training images, 10 epochs, four models, K = 100 samples on 1,000 test
images) are a small run for a CPU. The full-size run: --train-limit 0
--test-limit 0 --epochs 50 --num-samples 5000 (use a GPU).
"""

from __future__ import annotations

import argparse

import torch

import pyrovae
from pyrovae.evaluation import mean_and_se
from pyrovae.viz import plots, save_figure

from _common import example_parser, run_config

#: prior name -> its config (everything else is the same for every model)
PRIORS = {
    "standard_normal": {"type": "standard_normal"},
    "mog": {"type": "mog", "components": 10},
    "vamp": {"type": "vamp", "components": 500},
    "flow": {"type": "flow", "num_flows": 2},
}


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "swap_priors", test_limit=1_000, latent_dim=32)
    p.add_argument("--priors", nargs="+", choices=list(PRIORS), default=list(PRIORS),
                   help="which to train (default: all)")
    p.add_argument("--num-samples", type=int, default=100,
                   help="importance samples K per test image for log p(x) (default: %(default)s)")
    return p.parse_args()



def main() -> None:
    args = parse_args()
    elbos, log_pxs, ess, samples = {}, {}, {}, {}
    for name in args.priors:
        config = run_config(args, prior=PRIORS[name])
        print(f"training with model.prior = {name!r}")
        trainer = pyrovae.train(config, progress=not args.quiet)
        vae, x = trainer.vae, trainer.data.test_images
        # per test image: the ELBO, and log p(x) from K importance samples
        elbos[name] = pyrovae.elbo_per_example(vae, x, seed=args.seed)
        log_pxs[name], diagnostics = pyrovae.log_likelihood(
            vae, x, num_samples=args.num_samples, seed=args.seed, progress=not args.quiet,
            return_diagnostics=True,
        )
        ess[name] = diagnostics.ess.mean().item()
        torch.manual_seed(args.seed)
        samples[name] = vae.sample(64)

    first = args.priors[0]
    print(f"\n{len(x)} test images, K = {args.num_samples} importance samples; nats per "
          "example, \u00b1 standard error over the test images")
    print(f"{'prior':<17}{'test ELBO':>17}{'log p^(x)':>19}{f'log p^(x) - {first}':>30}"
          f"{'mean ESS':>10}")
    for name in args.priors:
        (e, e_se), (ll, ll_se) = mean_and_se(elbos[name]), mean_and_se(log_pxs[name])
        (d, d_se) = mean_and_se(log_pxs[name] - log_pxs[first])
        print(f"{name:<17}{e:9.2f} \u00b1 {e_se:5.2f}{ll:11.2f} \u00b1 {ll_se:5.2f}"
              f"{d:22.2f} \u00b1 {d_se:5.2f}{ess[name]:10.1f}")
    print("(Every model scores the same test images, so the difference to the first prior is "
          "taken image by image,\n with the standard error of those differences.)")

    elbo, elbo_se = zip(*(mean_and_se(elbos[name]) for name in args.priors))
    log_px, log_px_se = zip(*(mean_and_se(log_pxs[name]) for name in args.priors))
    figures = {
        "comparison.png": plots.plot_model_comparison(
            args.priors, elbo, elbo_se, log_likelihood=log_px, log_likelihood_se=log_px_se,
            title=f"test-set bounds per prior ({len(x)} test images, K = {args.num_samples})",
        ),
        "samples.png": plots.plot_grids(samples, vae.image_shape,
                                        title="samples E[x|z], z ~ p(z), per prior"),
    }
    for name, figure in figures.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
