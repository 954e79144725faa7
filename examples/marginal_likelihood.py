"""How many importance samples does log p(x) need, and when is the estimate trustworthy?

For each test image and K draws z_k ~ q(z|x), log p^(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x)
(pyrovae.log_likelihood). At K = 1 it is the ELBO in expectation; it rises with K towards
log p(x). The effective sample size (ESS) of the K importance weights says how well q(z|x)
covers the posterior: K when q(z|x) = p(z|x), near 1 when one draw dominates; the PSIS
Pareto k of the largest weights flags estimates that cannot be trusted (k > 0.7).

Annealed importance sampling (method="ais": S = 16 chains per image, T annealing steps of
HMC with L = 2 leapfrog steps) is a lower bound too, but one that reaches log p(x) as T grows
however poor the guide; bidirectional Monte Carlo (BDMC) on images simulated from the model
bounds its error at each T. Finally two priors (the standard Normal and a second one, trained
with the same settings) are compared image by image with IS and with AIS
(pyrovae.evaluation.compare).

Writes into --out:
  log_likelihood_vs_k.png        log p^(x) (mean over test images, +-1 standard error)
                                 against K on a log axis, with the ELBO as the K = 1 reference
  ess_vs_k.png                   mean effective sample size against K, beside ESS = K
  log_likelihood_vs_compute.png  mean log p^(x) of IS (K forward passes) and AIS
                                 (S T (L + 1) gradient evaluations) against that count per
                                 image on a log axis, with the BDMC gap at each T
and prints the numbers (nats per example) and the two comparison tables.

Trains two VAEs first (10,000 training images for 10 epochs each) or uses trained runs with
--run RUN_DIR (and --run-b RUN_DIR for the comparison); the defaults (100 test images, K up
to 5,000, T up to 200, BDMC on 100 simulated images) are a small run for a CPU (14 minutes
of CPU time on 2 cores, most of it AIS and BDMC at T = 200). The full-size run:
--train-limit 0 --epochs 50 --test-limit 1000 --ts 10 50 200 500 1000 --bdmc-examples 1000
--compare-num-samples 5000 --compare-num-steps 500 (use a GPU).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pyrovae
from pyrovae.evaluation import bdmc, compare, mean_and_se
from pyrovae.evaluation.ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_LEAPFROG_STEPS
from pyrovae.viz import plots, save_figure

from _common import example_parser, load_or_train, run_config

#: the second prior of the comparison (the first is the default standard Normal)
SECOND_PRIORS = {
    "vamp": ("vamp, 10 pseudo-inputs", {"type": "vamp", "components": 10}),
    "mog": ("mog, 10 components", {"type": "mog", "components": 10}),
    "flow": ("flow, 2 layers", {"type": "flow", "num_flows": 2}),
}


def parse_args() -> argparse.Namespace:
    p = example_parser(__doc__, "marginal_likelihood", test_limit=100, latent_dim=50)
    p.add_argument("--run", type=Path, metavar="RUN_DIR",
                   help="use this trained run instead of training a new VAE")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000, 5000],
                   help="numbers of importance samples K (default: %(default)s)")
    p.add_argument("--ts", type=int, nargs="+", default=[10, 50, 200],
                   help="numbers of AIS annealing steps T, each with S = "
                        f"{DEFAULT_NUM_CHAINS} chains (default: %(default)s)")
    p.add_argument("--bdmc-examples", type=int, default=100, metavar="N",
                   help="images simulated from the model for BDMC at each T, 0 = no BDMC "
                        "(default: %(default)s)")
    p.add_argument("--second-prior", choices=list(SECOND_PRIORS), default="vamp",
                   help="the prior compared with the standard Normal: "
                        + "; ".join(label for label, _ in SECOND_PRIORS.values())
                        + " (default: %(default)s)")
    p.add_argument("--run-b", type=Path, metavar="RUN_DIR",
                   help="with --run: the trained run to compare it with (default: no "
                        "comparison)")
    p.add_argument("--compare-num-samples", type=int, default=1000, metavar="K",
                   help="importance samples of the IS comparison (default: %(default)s)")
    p.add_argument("--compare-num-steps", type=int, default=50, metavar="T",
                   help="annealing steps of the AIS comparison (default: %(default)s)")
    return p.parse_args()


def ais_cost(num_steps: int) -> int:
    """Gradient evaluations of log p(x, z) per example: S chains x T steps x (L + 1)."""
    return DEFAULT_NUM_CHAINS * num_steps * (DEFAULT_NUM_LEAPFROG_STEPS + 1)


def fmt_k(value: float) -> str:
    """A Pareto k for the table: '-' when undefined (K < 46), 'inf' when a few draws carry
    all the weight."""
    return "-" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}"


def main() -> None:
    args = parse_args()
    vae, data = load_or_train(args)
    x = data.test_images
    y = vae.model_labels(data.test_labels)

    elbo = pyrovae.elbo_per_example(vae, x, y, seed=args.seed)
    elbo_mean, elbo_se = mean_and_se(elbo)
    print(f"{len(elbo)} test images; ELBO {elbo_mean:.2f} \u00b1 {elbo_se:.2f} nats per example")

    # ---- importance sampling against K
    print("\nImportance sampling (IS): K draws z ~ q(z|x) per image")
    print(f"{'K':>6} {'log p^(x)':>17} {'gain over ELBO':>17} {'mean ESS':>16} "
          f"{'Pareto k: median':>17} {'max':>5} {'> 0.7':>9} {'seconds':>8}")
    estimates, errors, ess, ess_errors, is_runs = [], [], [], [], {}
    for k in args.ks:
        start = time.perf_counter()
        log_px, diagnostics = pyrovae.log_likelihood(
            vae, x, y, num_samples=k, seed=args.seed, progress=not args.quiet,
            return_diagnostics=True,
        )
        seconds = time.perf_counter() - start
        is_runs[k] = log_px
        (ll, ll_se), (gain, gain_se) = mean_and_se(log_px), mean_and_se(log_px - elbo)
        (e, e_se) = mean_and_se(diagnostics.ess)
        estimates.append(ll)
        errors.append(ll_se)
        ess.append(e)
        ess_errors.append(e_se)
        pareto_k = diagnostics.pareto_k
        above = int((pareto_k > 0.7).sum())
        median_k = pareto_k.median().item()
        max_k = pareto_k.max().item()  # nan when K < 46 (no tail to fit)
        print(f"{k:6d} {ll:9.2f} \u00b1 {ll_se:5.2f} {gain:9.2f} \u00b1 {gain_se:5.2f} "
              f"{e:8.1f} \u00b1 {e_se:5.1f} {fmt_k(median_k):>17} {fmt_k(max_k):>5} "
              f"{f'{above}/{len(x)}' if not math.isnan(max_k) else '-':>9} {seconds:8.1f}")
    print("(\u00b1: standard errors over the test images. Every K scores the same images, so "
          "the gain over the ELBO\n is measured image by image. Pareto k: PSIS shape of the "
          "largest importance weights per\n image; above 0.7 the image's estimate is unreliable, "
          "'-' for K < 46, too few draws to fit\n a tail.)")
    best_is = is_runs[args.ks[-1]]

    # ---- AIS against T, on the same images
    print(f"\nAnnealed importance sampling (AIS): S = {DEFAULT_NUM_CHAINS} chains of T steps "
          f"per image, L = {DEFAULT_NUM_LEAPFROG_STEPS} leapfrog steps")
    print(f"{'T':>6} {'gradients':>10} {'log p^(x)':>17} {'gain over ELBO':>17} "
          f"{f'- IS (K = {args.ks[-1]})':>18} {'accept':>7} {'chain spread':>13} {'seconds':>8}")
    ais_estimates = []
    for t in args.ts:
        start = time.perf_counter()
        log_px, diagnostics = pyrovae.log_likelihood(
            vae, x, y, method="ais", num_steps=t, seed=args.seed, progress=not args.quiet,
            return_diagnostics=True,
        )
        seconds = time.perf_counter() - start
        (ll, ll_se), (gain, gain_se) = mean_and_se(log_px), mean_and_se(log_px - elbo)
        (over_is, over_is_se) = mean_and_se(log_px - best_is)
        ais_estimates.append(ll)
        print(f"{t:6d} {ais_cost(t):10d} {ll:9.2f} \u00b1 {ll_se:5.2f} {gain:9.2f} \u00b1 "
              f"{gain_se:5.2f} {over_is:+10.2f} \u00b1 {over_is_se:5.2f} "
              f"{diagnostics.acceptance_rate.mean().item():7.2f} "
              f"{diagnostics.log_weight_std.mean().item():13.2f} {seconds:8.1f}")
    print("(gradients: evaluations of the gradient of log p(x, z) per image, S T (L + 1); IS "
          "costs K forward passes.\n accept: mean HMC acceptance rate; chain spread: mean "
          "standard deviation of the chains' log-weights, nats.)")

    # ---- BDMC: AIS's error at each T, on images simulated from the model
    gaps, gap_errors = None, None
    if args.bdmc_examples:
        n = args.bdmc_examples
        template = x.new_zeros(n, x.shape[1])  # only its shape is used
        labels = None if y is None else y[:n]
        print(f"\nBDMC on {n} images simulated from the model: forward AIS (lower bound) and "
              "reverse AIS from the exact posterior draw (upper bound)")
        print(f"{'T':>6} {'lower bound':>17} {'upper bound':>17} {'gap':>16} {'max gap':>8} "
              f"{'seconds':>8}")
        gaps, gap_errors = [], []
        for t in args.ts:
            start = time.perf_counter()
            result = bdmc(vae, template, labels, num_steps=t, seed=args.seed,
                          progress=not args.quiet)
            seconds = time.perf_counter() - start
            s = result.summary()
            gaps.append(s["bdmc_gap"])
            gap_errors.append(s["bdmc_gap_se"] or 0.0)
            print(f"{t:6d} {s['bdmc_lower']:9.2f} \u00b1 {s['bdmc_lower_se'] or 0:5.2f} "
                  f"{s['bdmc_upper']:9.2f} \u00b1 {s['bdmc_upper_se'] or 0:5.2f} "
                  f"{s['bdmc_gap']:8.3f} \u00b1 {s['bdmc_gap_se'] or 0:5.3f} "
                  f"{s['bdmc_gap_max']:8.3f} {seconds:8.1f}")
        print("(gap = upper - lower bound: how far AIS with that T can be below log p(x), on "
              "data like the model's own.)")

    figures = {
        "log_likelihood_vs_k.png": plots.plot_log_likelihood_vs_k(
            args.ks, estimates, errors, elbo=elbo_mean, elbo_se=elbo_se),
        "ess_vs_k.png": plots.plot_ess_vs_k(args.ks, ess, standard_errors=ess_errors),
        "log_likelihood_vs_compute.png": plots.plot_log_likelihood_vs_compute(
            args.ks, estimates, [ais_cost(t) for t in args.ts], ais_estimates,
            is_labels=[f"K = {k}" for k in args.ks], ais_labels=[f"T = {t}" for t in args.ts],
            bdmc_gap=gaps, bdmc_gap_se=gap_errors, elbo=elbo_mean,
            compute_label="forward passes (IS) or gradient evaluations (AIS) per image, "
                          "log scale",
            note=f"all points: the same {len(x)} test images\n"
                 f"(their standard error, {elbo_se:.1f} nats, moves all together)"
                 + (f"\nBDMC on {args.bdmc_examples} simulated images" if gaps else ""),
        ),
    }

    # ---- paired comparison of two priors, with IS and with AIS
    models = None
    name_b, prior_b = SECOND_PRIORS[args.second_prior]
    if args.run and args.run_b:
        vae_b, _, _ = pyrovae.load_run(args.run_b, device=args.device)
        models = {str(args.run): vae, str(args.run_b): vae_b}
    elif not args.run:
        print(f"\ntraining the same VAE with model.prior = {args.second_prior!r}")
        config = run_config(args, prior=prior_b)
        vae_b = pyrovae.train(config, progress=not args.quiet).vae
        models = {"standard_normal": vae, name_b: vae_b}
    else:
        print("\n(no comparison: --run-b RUN_DIR names the run to compare --run with)")
    if models is not None:
        for method, settings in (
            ("is", {"num_samples": args.compare_num_samples}),
            ("ais", {"num_steps": args.compare_num_steps}),
        ):
            start = time.perf_counter()
            result = compare(models, x, data.test_labels, method=method, seed=args.seed,
                             progress=not args.quiet, **settings)
            seconds = time.perf_counter() - start
            what = (f"IS, K = {result.settings['num_samples']}" if method == "is" else
                    f"AIS, S = {result.settings['num_samples']} chains of "
                    f"T = {result.settings['num_steps']} steps")
            print(f"\nPaired comparison, {what}, {result.num_examples} test images, "
                  f"{result.num_repeats} repeats ({seconds:.0f} s):")
            print(result.table())
        print("(difference: mean over images of log p^(x) minus the reference's, \u00b1 the "
              "standard error of the\n per-image differences; \u00b1 MC: the estimator's own "
              "noise, from the repeats.)")

    print()
    for name, figure in figures.items():
        print(f"wrote {save_figure(figure, args.out / name)}")


if __name__ == "__main__":
    main()
