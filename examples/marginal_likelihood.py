"""How many importance samples does log p(x) need? The estimate log p^(x) against K.

For each test image and K draws z_k ~ q(z|x), log p^(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x)
(pyrovae.log_likelihood). At K = 1 it is the ELBO in expectation; it rises with K towards
log p(x). The effective sample size (ESS) of the K importance weights says how well q(z|x)
covers the posterior: K when q(z|x) = p(z|x), near 1 when one draw dominates.

Writes into --out:
  log_likelihood_vs_k.png  log p^(x) (mean over test images, +-1 standard error) against K
                           on a log axis, with the ELBO as the K = 1 reference
  ess_vs_k.png             mean effective sample size against K, beside ESS = K
and prints the numbers (nats per example).

Trains a VAE first (10,000 training images for 10 epochs) or uses a trained run with
--run RUN_DIR; the defaults (200 test images, K up to 5,000) are a small run for a
CPU. The full-size run: --train-limit 0 --epochs 50 --test-limit 0 (use a GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyrovae
from pyrovae.evaluation import mean_and_se
from pyrovae.viz import plots, save_figure

from _common import example_parser, load_or_train


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "marginal_likelihood", test_limit=200, latent_dim=50)
    p.add_argument("--run", type=Path, metavar="RUN_DIR",
                   help="use this trained run instead of training a new VAE")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000, 5000],
                   help="numbers of importance samples K (default: %(default)s)")
    return p.parse_args()



def main() -> None:
    args = parse_args()
    vae, data = load_or_train(args)
    x = data.test_images
    y = vae.model_labels(data.test_labels)

    elbo = pyrovae.elbo_per_example(vae, x, y, seed=args.seed)
    elbo_mean, elbo_se = mean_and_se(elbo)
    print(f"{len(elbo)} test images; ELBO {elbo_mean:.2f} \u00b1 {elbo_se:.2f} nats per example")
    print(f"{'K':>6} {'log p^(x)':>17} {'gain over ELBO':>17} {'mean ESS':>16}")
    estimates, errors, ess, ess_errors = [], [], [], []
    for k in args.ks:
        log_px, diagnostics = pyrovae.log_likelihood(
            vae, x, y, num_samples=k, seed=args.seed, progress=not args.quiet,
            return_diagnostics=True,
        )
        (ll, ll_se), (gain, gain_se) = mean_and_se(log_px), mean_and_se(log_px - elbo)
        (e, e_se) = mean_and_se(diagnostics.ess)
        estimates.append(ll)
        errors.append(ll_se)
        ess.append(e)
        ess_errors.append(e_se)
        print(f"{k:6d} {ll:9.2f} \u00b1 {ll_se:5.2f} {gain:9.2f} \u00b1 {gain_se:5.2f} "
              f"{e:8.1f} \u00b1 {e_se:5.1f}")
    print("(\u00b1: standard errors over the test images. Every K scores the same images, so "
          "the gain over the ELBO\n is measured image by image; with the same seed, K = 1 makes "
          "the ELBO's own draws.)")

    figures = {
        "log_likelihood_vs_k.png": plots.plot_log_likelihood_vs_k(
            args.ks, estimates, errors, elbo=elbo_mean, elbo_se=elbo_se),
        "ess_vs_k.png": plots.plot_ess_vs_k(args.ks, ess, standard_errors=ess_errors),
    }
    for name, figure in figures.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
