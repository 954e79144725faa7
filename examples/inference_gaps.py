"""Where the nats go: the inference gaps of a VAE with a diagonal-Normal guide against one with
an IAF guide (Cremer, Li and Duvenaud 2018, "Inference Suboptimality in Variational
Autoencoders").

For each test image, log p(x) - ELBO splits into the approximation gap, log p(x) - local ELBO
(what the guide's family cannot reach), and the amortization gap, local ELBO - ELBO (what the
encoder misses within the family); the local ELBO optimizes the guide's parameters for the one
image with Pyro's SVI, from the encoder's output. Writes into --out:
  gaps.png   the mean approximation and amortization gaps of each guide, with standard errors
and prints log p(x), the local ELBO, the ELBO and both gaps (nats per example, mean ± SE over
the --gap-examples test images).

The defaults (10,000 training images, 10 epochs, 50 test images, log p(x) by importance
sampling with K = 1000) are a small run for a CPU; docs/insight.md has AIS numbers.
"""

from __future__ import annotations

import argparse

import numpy as np
from matplotlib.figure import Figure

import pyrovae
from pyrovae.viz import save_figure

from _common import example_parser, run_config

GUIDES = {
    "diag_normal": {"type": "diag_normal"},
    "iaf": {"type": "iaf", "num_flows": 2, "hidden": [128], "context_dim": 16},
}


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "inference_gaps", latent_dim=16)
    p.add_argument("--gap-examples", type=int, default=50,
                   help="test images whose gaps are measured (default: %(default)s)")
    p.add_argument("--num-samples", type=int, default=1000,
                   help="K, importance samples of log p(x) (default: %(default)s)")
    p.add_argument("--max-local-steps", type=int, default=5000,
                   help="the most SVI steps of the local ELBO (default: %(default)s)")
    return p.parse_args()


def gaps_figure(summaries: dict[str, dict]) -> Figure:
    """Stacked bars: each guide's mean amortization gap on its approximation gap."""
    fig = Figure(figsize=(4.5, 3.5), layout="constrained")
    ax = fig.subplots()
    names = list(summaries)
    at = np.arange(len(names))
    approx = [summaries[n]["approximation_gap"] for n in names]
    amort = [summaries[n]["amortization_gap"] for n in names]
    ax.bar(at, approx, 0.6, yerr=[summaries[n]["approximation_gap_se"] for n in names],
           label="approximation gap", color="tab:blue", capsize=4)
    ax.bar(at, amort, 0.6, bottom=approx, label="amortization gap", color="tab:orange",
           yerr=[summaries[n]["amortization_gap_se"] for n in names], capsize=4)
    ax.set_xticks(at, names)
    ax.set_ylabel("log p(x) - ELBO (nats per example)")
    ax.legend(fontsize=8)
    return fig


def main() -> None:
    args = parse_args()
    local = pyrovae.LocalOptimization(max_steps=args.max_local_steps)
    summaries = {}
    print(f"{'guide':>12} {'log p(x)':>16} {'local ELBO':>16} {'ELBO':>16} "
          f"{'approximation':>15} {'amortization':>15}   (nats per example, test set)")
    for name, guide in GUIDES.items():
        trainer = pyrovae.train(run_config(args, guide=guide), progress=not args.quiet)
        x = trainer.data.test_images[: args.gap_examples]
        gaps = pyrovae.inference_gaps(trainer.vae, x, method="is", num_samples=args.num_samples,
                                      local=local, progress=not args.quiet)
        s = summaries[name] = gaps.summary()
        row = " ".join(f"{s[k]:8.2f} \u00b1 {s[k + '_se']:5.2f}" for k in
                       ("log_likelihood", "local_elbo", "elbo", "approximation_gap",
                        "amortization_gap"))
        print(f"{name:>12} {row}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {save_figure(gaps_figure(summaries), args.out / 'gaps.png')}")


if __name__ == "__main__":
    main()
