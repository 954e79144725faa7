"""The parser of the ``pyrovae`` command line, one declarative table: its commands, their
options, their help texts.

Each option's ``dest`` is the name of the keyword argument that the command's function takes
(:mod:`pyrovae.cli.boundary` calls it with the parsed options as keywords): ``--data-root``
is ``data_root``, ``--set`` is ``overrides`` and ``--json`` is ``as_json``.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from ..version import __version__
from ..viz import FIGURE_KINDS


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors (an unknown option, ``--num abc``) are one line
    and exit code 2, like every other error of the command line; ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root",
        metavar="PATH",
        help="folder holding the data sets in torchvision's layout (default: $PYROVAE_DATA, "
        "else ~/.cache/pyrovae/data, downloading there when online)",
    )


def _add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def _add_device(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=default,
        help="where to compute (auto: CUDA when available)",
    )


def _add_estimator(p: argparse.ArgumentParser, bdmc: bool = True) -> None:
    methods = ["is", "ais", "bdmc"] if bdmc else ["is", "ais"]
    annealed = "ais/bdmc" if bdmc else "ais"
    p.add_argument(
        "--method",
        choices=methods,
        # evaluate chooses by --gaps (is, or ais with --gaps)
        default=None if bdmc else "is",
        help="how to estimate log p(x): is (importance sampling from the guide, the default"
        + ("; with --gaps: ais" if bdmc else "")
        + "), ais (annealed importance sampling)"
        + (", bdmc (AIS's error bound)" if bdmc else ""),
    )
    p.add_argument(
        "--num-samples",
        type=int,
        metavar="K",
        help="is: importance samples per example (default: the run's eval.num_samples, 100 "
        f"unless configured; papers use 5000); {annealed}: chains per example (default 16)",
    )
    p.add_argument(
        "--num-steps",
        type=int,
        metavar="T",
        help=f"{annealed}: annealing steps (default 500); more is slower and more accurate",
    )


def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        choices=["best", "last"],
        help="which state of a run: best (best.pt, the epoch with the best validation ELBO of "
        "a run with train.validation) or last (checkpoint.pt); default: best where it exists",
    )


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that score a run's test set (evaluate, compare)."""
    _add_checkpoint(p)
    p.add_argument(
        "--max-batch-elements",
        type=int,
        metavar="M",
        help="most (sample or chain, example) pairs per vectorized pass; bounds memory "
        "(default 16384)",
    )
    p.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p, "auto")
    _add_data_root(p)


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="test (the run's test set), a folder of PNG/JPEG images, or a .npy/.npz file, "
        "prepared as the run's test set is (see docs/using_a_trained_model.md)",
    )


def _add_use_commands(sub: Any) -> None:
    """encode, score and export: a trained run turned into files."""
    p = sub.add_parser(
        "encode",
        help="write the posterior mean and scale of each example",
        description="Write the mean and scale of q(z|x) of each example of SOURCE under a "
        "trained run's guide (and its label, when there is one) to FILE.npy, FILE.pt or "
        "FILE.csv.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_source(p)
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.npy, FILE.pt or FILE.csv")
    p.add_argument(
        "--batch-size", type=int, default=1000, metavar="B", help="examples per pass (1000)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p, "auto")
    _add_data_root(p)

    p = sub.add_parser(
        "score",
        help="write the log-likelihood of each example, with its diagnostics",
        description="Write one row per example of SOURCE: index, log_likelihood (nats), se "
        "(its Monte Carlo standard error), pareto_k (PSIS, importance sampling only; above "
        "0.7: unreliable), ess (effective sample size) and label, to FILE.csv (or .npy, "
        ".pt). The numbers are pyrovae.log_likelihood's for the same seed; under torchrun "
        "the processes share the work as for evaluate.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_source(p)
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.csv, FILE.npy or FILE.pt")
    _add_estimator(p, bdmc=False)
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the random draws (default: the one evaluate uses)",
    )
    p.add_argument(
        "--max-batch-elements",
        type=int,
        metavar="M",
        help="most (sample or chain, example) pairs per vectorized pass (default 16384)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p, "auto")
    _add_data_root(p)

    p = sub.add_parser(
        "export",
        help="export a trained run's encoder and decoder for plain PyTorch",
        description="Write the encoder (x -> loc, scale of q(z|x)) and the decoder (z -> "
        "E[x|z]) of a trained run as torch.export programs (TorchScript where export cannot "
        "trace them) into a new folder, with model.json describing their shapes and meaning.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    _add_device(p, "cpu")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pyrovae COMMAND [OPTIONS]``; its usage errors are one line and exit
    code 2."""
    parser = _Parser(
        prog="pyrovae",
        description="Variational autoencoders as Pyro programs: train, evaluate, sample.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a VAE from a config, or resume a run",
        description="Train a VAE as a config file says, writing a run directory with "
        "config.toml, checkpoint.pt (each epoch), metrics.jsonl and a picture of samples and "
        "reconstructions. Or continue a stopped run with --resume.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="TOML config (see configs/mnist.toml)")
    src.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create (with --config)")
    p.add_argument(
        "--program",
        metavar="PACKAGE.MODULE:FACTORY",
        help="train your own Pyro program module: FACTORY(config) returns it (sets "
        "model.program; imports and runs that module's code; see docs/programs.md)",
    )
    p.add_argument("--epochs", type=int, help="total number of epochs (overrides the config)")
    p.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    _add_overrides(p, "train.lr=3e-4")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(p, None)
    _add_data_root(p)

    p = sub.add_parser(
        "describe",
        help="show the model a config (or run directory) defines, in words and math",
        description="Validate a config and print the model it defines: p(x, z) = p(x|z) p(z) "
        "with each factor's family and parameters, the guide q(z|x) and the objective. "
        "Nothing is trained and no data is read.",
    )
    p.add_argument(
        "config", metavar="CONFIG", help="TOML config file, or a run directory (its config.toml)"
    )
    _add_overrides(p, "model.prior.type=vamp")
    p.add_argument(
        "--toml",
        action="store_true",
        help="also print the complete config, every default filled in",
    )

    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run on the test set",
        description="Report a trained run's test-set ELBO and log-likelihood log p(x), as means "
        "per example with standard errors across examples, in nats. --method is (importance "
        "sampling, K samples per example) also reports the effective sample size and the PSIS "
        "Pareto k of each example's weights, with a one-line warning when some k > 0.7 "
        "(unreliable estimates); --method ais (annealed importance sampling, S chains of T "
        "steps) stays accurate where the guide is poor; --method bdmc runs AIS forward and "
        "in reverse on data simulated from the model, whose gap bounds AIS's error at T steps.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_estimator(p)
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="evaluate only the first N test examples (default: all; bdmc: 100, simulated "
        "with the first N test examples' labels)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the random draws (default: the one used during training)",
    )
    p.add_argument(
        "--gaps",
        action="store_true",
        help="report the inference gaps of each example instead (Cremer et al. 2018): "
        "log p(x) (AIS by default), the ELBO of the amortized guide, the ELBO of the guide's "
        "family optimized per example (local ELBO), approximation gap = log p(x) - local "
        "ELBO and amortization gap = local ELBO - ELBO",
    )
    p.add_argument(
        "--num-elbo-samples",
        type=int,
        metavar="K",
        help="--gaps: draws per example of each ELBO estimate (default 1000)",
    )
    p.add_argument(
        "--max-local-steps",
        type=int,
        metavar="N",
        help="--gaps: the most SVI steps of each block's per-example optimization (default "
        "5000; it stops earlier once converged)",
    )
    _add_scoring_options(p)

    p = sub.add_parser(
        "ood",
        help="score in- and out-of-distribution data with a run's log p(x) and scores on it",
        description="Score the examples of --in and --out with the run's log p(x) and the "
        "out-of-distribution scores built on it: log_likelihood (-log p(x)), llr (against "
        "--background, a run trained on perturbed data, data.mutation_rate; Ren et al. "
        "2019), complexity (-log2 p(x) minus a lossless compressor's code length; Serra et "
        "al. 2020) and typicality (distance of -log p(x) from its training mean; Nalisnick "
        "et al. 2019). Prints each score's AUROC, AUPR and FPR at 95%% TPR (out-of-"
        "distribution examples as positives) and writes scores.csv (with the PSIS flag of "
        "each estimate) and histograms.png. A SOURCE is 'test' (the run's test set), a "
        "folder of images or a .npy/.npz file, prepared as the run's test set is.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument(
        "--in",
        dest="in_source",
        default="test",
        metavar="SOURCE",
        help="the in-distribution examples (default: test)",
    )
    p.add_argument(
        "--out",
        dest="out_source",
        required=True,
        metavar="SOURCE",
        help="the out-of-distribution examples",
    )
    p.add_argument(
        "--background",
        metavar="RUN_B",
        help="a run trained on perturbed data (data.mutation_rate): adds llr",
    )
    _add_estimator(p, bdmc=False)
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="score only the first N examples of each set (default: all)",
    )
    p.add_argument(
        "--num-train",
        type=int,
        default=1000,
        metavar="N",
        help="training examples whose mean -log p(x) centres typicality (default 1000)",
    )
    p.add_argument(
        "--compressor",
        choices=["png", "zlib"],
        default="png",
        help="the lossless compressor of complexity (default png)",
    )
    p.add_argument(
        "--results",
        metavar="DIR",
        help="where scores.csv and histograms.png go (default: RUN_DIR/ood)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the random draws (default: the one used during training)",
    )
    _add_scoring_options(p)

    p = sub.add_parser(
        "compare",
        help="compare trained runs by log-likelihood on the same test examples",
        description="Score two or more runs trained on the same data on the same test "
        "examples (same binarization) and report each run's mean log p(x) and, for every run "
        "after the first, the mean per-example difference from the first with the standard "
        "error of the paired difference (far smaller than either run's own standard error), "
        "plus each estimate's Monte Carlo error from --num-repeats independent repeats.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the first is the reference")
    _add_estimator(p, bdmc=False)
    p.add_argument(
        "--num-repeats",
        type=int,
        default=2,
        metavar="R",
        help="independent estimates per run, for the Monte Carlo errors (default 2)",
    )
    p.add_argument(
        "--limit", type=int, metavar="N", help="use only the first N test examples (default: all)"
    )
    p.add_argument(
        "--seed", type=int, metavar="S", help="seed of the random draws, the same for every run"
    )
    _add_scoring_options(p)

    p = sub.add_parser(
        "sample",
        help="draw samples from a trained run's model into a PNG or a data file",
        description="Draw N samples E[x|z], z ~ p(z) (or draws x ~ p(x|z) with --draw), from "
        "a trained run and save them as a grid (--out FILE.png) or as data (--out FILE.npy or "
        "FILE.pt: an array (N, C, H, W), or (N, D) for vectors).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--num", type=int, default=64, help="number of samples (default 64)")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="where to write them: FILE.png (a grid), FILE.npy or FILE.pt (the samples as data)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--label",
        metavar="CLASS",
        help="draw every sample of this class, a name of the run's classes (a folder's class "
        "subfolders) or a number (needs model.prior.type = 'conditional')",
    )
    _add_checkpoint(p)
    p.add_argument(
        "--draw",
        action="store_true",
        help="draw x ~ p(x|z) (e.g. binary pixels) instead of the likelihood's mean E[x|z]",
    )
    _add_device(p, "auto")

    _add_use_commands(sub)

    p = sub.add_parser(
        "plot",
        help="draw a figure of a trained run into a PNG",
        description="Draw one figure of a trained run: samples (a grid of E[x|z], z ~ p(z)), "
        "reconstructions (test inputs above their reconstructions), curves (train, "
        "validation and test ELBO and the learning rate per epoch), latent (test-set "
        "posterior means coloured by class; 2-D latents only), "
        "manifold (decoder means over a 15x15 grid of standard-Normal quantiles; 2-D latents "
        "only), interpolation (between pairs of test digits), classes (one row of samples per "
        "class; class-conditional priors only) or kl_per_dimension (KL of each latent "
        "dimension over the test set: the active units).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--kind", required=True, choices=FIGURE_KINDS, help="which figure to draw")
    p.add_argument(
        "--out", metavar="FILE.png", help="where to write the figure (default: RUN_DIR/KIND.png)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws (default 0)")
    _add_checkpoint(p)
    _add_device(p, "auto")
    _add_data_root(p)
    return parser
