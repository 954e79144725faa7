"""The effect of beta: the same VAE trained to maximise E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))
for a few values of beta (objective.beta; beta = 1 is the ELBO).

A larger beta makes information in z more expensive: the rate KL(q(z|x) || p(z)) falls, the
distortion -E_q log p(x|z) rises, reconstructions blur, and more latent dimensions collapse
to the prior (inactive: KL below --threshold nats). Writes into --out:
  reconstructions.png   test digits and their reconstructions E[x|z], z ~ q(z|x), per beta
  samples.png           samples E[x|z], z ~ p(z), per beta
  rate_distortion.png   distortion against rate, one point per beta
  kl_per_dimension.png  KL(q(z_d|x) || p(z_d)) of each latent dimension d, per beta
and prints rate, distortion, ELBO (all nats per example, on the test set) and active units.

The defaults (4 values of beta, 10,000 training images, 10 epochs each) are a small run for a
CPU. The full-size run: --train-limit 0 --test-limit 0 --epochs 50.
"""

from __future__ import annotations

import argparse

import torch

import pyrovae
from pyrovae.evaluation import mean_and_se
from pyrovae.viz import plots, save_figure

from _common import example_parser, run_config


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "beta_vae", latent_dim=32)
    p.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 4.0, 16.0],
                   help="values of beta to train with (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=0.01,
                   help="a latent dimension is active above this KL, nats (default: %(default)s)")
    return p.parse_args()



def main() -> None:
    args = parse_args()
    show = 16  # test digits in the reconstructions picture
    reconstructions, samples, kl_per_dim, rates, distortions = {}, {}, {}, [], []
    print(f"{'beta':>6} {'rate: KL':>15} {'distortion':>16} {'ELBO':>17}  active units"
          "   (nats per example, test set)")
    for beta in args.betas:
        config = run_config(args, objective={"beta": beta})
        trainer = pyrovae.train(config, progress=not args.quiet)
        vae, x = trainer.vae, trainer.data.test_images
        name = f"beta = {beta:g}"

        rate, distortion = pyrovae.rate_and_distortion(vae, x)
        kl_per_dim[name] = pyrovae.kl_per_dimension(vae, x)
        active = int((kl_per_dim[name] > args.threshold).sum())
        (r, r_se), (d, d_se) = mean_and_se(rate), mean_and_se(distortion)
        elbo, elbo_se = mean_and_se(-(rate + distortion))
        rates.append(r)
        distortions.append(d)
        print(f"{beta:6g} {r:8.2f} \u00b1 {r_se:4.2f} {d:9.2f} \u00b1 {d_se:4.2f} "
              f"{elbo:9.2f} \u00b1 {elbo_se:4.2f}  {active:3d} of {args.latent_dim}")

        torch.manual_seed(args.seed)
        reconstructions[name] = vae.reconstruct(x[:show])
        samples[name] = vae.sample(64)

    shape = vae.image_shape
    figures = {
        "reconstructions.png": plots.plot_grids(
            {"test inputs": x[:show], **reconstructions}, shape, ncols=4,
            title="test digits and their reconstructions E[x|z], z ~ q(z|x)"),
        "samples.png": plots.plot_grids(samples, shape, title="samples E[x|z], z ~ p(z)"),
        "rate_distortion.png": plots.plot_rate_distortion(
            rates, distortions, labels=list(kl_per_dim),
            title="rate and distortion on the test set, per beta"),
        "kl_per_dimension.png": plots.plot_kl_per_dimension(kl_per_dim, threshold=args.threshold),
    }
    for name, figure in figures.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
