"""Out-of-distribution detection with a VAE's log p(x), and the scores that repair it: a VAE
trained on digits 0-4 (data.classes) scores test digits 0-4 against digits 5-9 and against
all-black images.

Raw log p(x) ranks the black images as the most likely of all (Nalisnick et al. 2019); a
likelihood ratio against a background model trained with data.mutation_rate (Ren et al.
2019), the input-complexity score with PNG's code length (Serrà et al. 2020) and typicality
(Nalisnick et al. 2019b) each repair part of it. Writes into --out:
  histograms_digits_5_9.png   the histograms of every score, digits 0-4 against 5-9
  histograms_black.png        the same against all-black images
and prints the AUROC, AUPR and FPR at 95% TPR of every score (out-of-distribution: positive).

The defaults (10,000 training images of digits 0-4, 10 epochs for each of the two models,
500 images per set, log p(x) by importance sampling with K = 100) are a small run for a CPU.
"""

from __future__ import annotations

import argparse

import torch

import pyrovae
from pyrovae.data import binarize_once
from pyrovae.evaluation.ood import detection_table, ood_scores
from pyrovae.viz import save_figure
from pyrovae.viz.histograms import plot_score_histograms

from _common import example_parser, run_config

IN_CLASSES = [0, 1, 2, 3, 4]


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "ood_detection", latent_dim=16)
    p.add_argument("--mutation-rate", type=float, default=0.2,
                   help="data.mutation_rate of the background model (default: %(default)s)")
    p.add_argument("--num-samples", type=int, default=100,
                   help="K, importance samples of each log p(x) (default: %(default)s)")
    p.add_argument("--per-set", type=int, default=500,
                   help="images of each set scored (default: %(default)s)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    trained = {}
    for name, data in (("model", {"classes": IN_CLASSES}),
                       ("background", {"classes": IN_CLASSES,
                                       "mutation_rate": args.mutation_rate})):
        trained[name] = pyrovae.train(run_config(args, data=data), progress=not args.quiet)
    vae, data = trained["model"].vae, trained["model"].data
    # the other digits, binarized as the test set is (pyrovae.data.load_data's rule)
    others = pyrovae.load_data({**trained["model"].config["data"], "classes": [5, 6, 7, 8, 9],
                                "binarize": "none"}, device=data.test_images.device)
    seed = trained["model"].config["data"]["binarization_seed"] + 1
    n = args.per_set
    x_in = data.test_images[:n]
    sets = {"digits_5_9": binarize_once(others.test_images[:n], seed),
            "black": torch.zeros_like(x_in)}
    train_x = binarize_once(data.train_images[:1000], seed - 1)
    train_nll = float(-pyrovae.log_likelihood(vae, train_x, num_samples=args.num_samples).mean())
    settings = {"train_nll": train_nll, "image_shape": data.image_shape,
                "background": trained["background"].vae, "num_samples": args.num_samples}
    scores_in = ood_scores(vae, x_in, **settings)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, x_out in sets.items():
        scores_out = ood_scores(vae, x_out, **settings)
        table = detection_table(scores_in, scores_out)
        print(f"digits 0-4 ({x_in.shape[0]}) against {name} ({x_out.shape[0]}):")
        print(f"  {'score':<16}{'AUROC':>8}{'AUPR':>8}{'FPR@95%TPR':>12}")
        for score, m in table.items():
            print(f"  {score:<16}{m['auroc']:8.3f}{m['aupr']:8.3f}{m['fpr95']:12.3f}")
        figure = plot_score_histograms(scores_in.scores, scores_out.scores,
                                       {s: m["auroc"] for s, m in table.items()},
                                       labels=("digits 0-4", name))
        print(f"wrote {save_figure(figure, args.out / f'histograms_{name}.png')}")


if __name__ == "__main__":
    main()
