"""The ``pyrovae`` command line: train, describe, evaluate, sample and plot VAEs.

:func:`main` is the one error boundary: errors in user input (a bad config, a missing data
set, a damaged checkpoint: every :class:`~pyrovae.errors.PyrovaeError`) end the program with
exit code 2 and a one-line reason on stderr, never a traceback. So do the failures of the
machine that the library does not turn into its own errors where they happen: an
:class:`OSError` (a full disk, a read-only folder) and running out of memory. Anything else
is a bug in pyrovae and keeps its traceback. It is also the one place that shows pyrovae's
warnings (every :class:`~pyrovae.errors.PyrovaeWarning`), each as one line
``pyrovae COMMAND: warning: MESSAGE`` on stderr; other warnings are shown as Python shows
them. The commands import the library lazily, so ``pyrovae --help`` and ``describe`` start
quickly.

Launched by ``torchrun`` (several processes), every command runs in the run's process group
(:mod:`pyrovae.distributed`): ``train`` and ``evaluate`` share their work, rank 0 alone prints
results, progress and warnings, and an error is printed once, by the first process that
meets it, every process then exiting with a non-zero code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

from .errors import PyrovaeError, PyrovaeWarning
from .registry import PositiveInt, Range, Seed, check_value
from .viz import FIGURE_KINDS

#: ``sample --num``: a picture of at most 100 x 100 images
SampleCount = Annotated[int, Range(min=1, max=10_000, note="a grid of at most 100x100 images")]


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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors (an unknown option, ``--num abc``) are one line
    and exit code 2, like every other error of the command line; ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_estimator(p: argparse.ArgumentParser, bdmc: bool = True) -> None:
    methods = ["is", "ais", "bdmc"] if bdmc else ["is", "ais"]
    annealed = "ais/bdmc" if bdmc else "ais"
    p.add_argument(
        "--method",
        choices=methods,
        default="is",
        help="how to estimate log p(x): is (importance sampling from the guide, the default), "
        "ais (annealed importance sampling)" + (", bdmc (AIS's error bound)" if bdmc else ""),
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


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that score a run's test set (evaluate, compare)."""
    p.add_argument(
        "--max-batch-elements",
        type=int,
        metavar="M",
        help="most (sample or chain, example) pairs per vectorized pass; bounds memory "
        "(default 16384)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p, "auto")
    _add_data_root(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pyrovae",
        description="Variational autoencoders as Pyro programs: train, evaluate, sample.",
    )
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
        help="draw samples from a trained run's model into a PNG",
        description="Draw N samples E[x|z], z ~ p(z), from a trained run and save them as a grid.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--num", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the grid")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--label",
        type=int,
        metavar="CLASS",
        help="draw every sample of this class (needs model.prior.type = 'conditional')",
    )
    _add_device(p, "auto")

    p = sub.add_parser(
        "plot",
        help="draw a figure of a trained run into a PNG",
        description="Draw one figure of a trained run: samples (a grid of E[x|z], z ~ p(z)), "
        "reconstructions (test inputs above their reconstructions), curves (train/test ELBO "
        "per epoch), latent (test-set posterior means coloured by class; 2-D latents only), "
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
    _add_device(p, "auto")
    _add_data_root(p)
    return parser


def cmd_train(args: argparse.Namespace) -> None:
    from .config import apply_overrides, read_config_file
    from .evaluation import evaluate_test_set
    from .training import EVAL_SEED, resume, train

    progress = not args.quiet
    _check(args, ("--epochs", PositiveInt), ("--seed", Seed))
    if args.resume:
        if args.out or args.overrides or args.seed is not None or args.device or args.program:
            raise PyrovaeError(
                "--resume continues a run as it was configured; only --epochs and --data-root "
                "may be given with it"
            )
        trainer = resume(
            args.resume, epochs=args.epochs, data_root=args.data_root, progress=progress
        )
        out = Path(args.resume)
    else:
        if not args.out:
            raise PyrovaeError("train --config needs --out RUN_DIR (the run directory to create)")
        overrides = list(args.overrides)
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        if args.seed is not None:
            overrides.append(f"train.seed={args.seed}")
        if args.device:
            overrides.append(f'train.device="{args.device}"')
        if args.program:
            overrides.append(f"model.program={json.dumps(args.program)}")
        # validated and completed once, by train(), with the overrides applied
        config = apply_overrides(read_config_file(args.config), overrides)
        trainer = train(config, out=args.out, data_root=args.data_root, progress=progress)
        out = Path(args.out)
    last = trainer.metrics[-1]
    print(f"test ELBO after {last['epoch']} epochs: {last['test_elbo']:.2f} nats/example")
    num_samples = trainer.config["eval"]["num_samples"]
    if num_samples:
        result = evaluate_test_set(
            trainer.program,
            trainer.data,
            trainer.config,
            num_samples=num_samples,
            seed=EVAL_SEED,
            progress=progress,
        )
        print(
            f"test log-likelihood: {result['log_likelihood']:.2f}"
            f"{_format_se(result['log_likelihood_se'])} nats/example (importance sampling, "
            f"K={num_samples}; `pyrovae evaluate {shlex.quote(str(out))} --num-samples 5000` "
            "for K=5000)"
        )
        print(f"test bits/dim: {_format_bits_per_dim(result)}")
    print(f"run directory: {out}")


def cmd_describe(args: argparse.Namespace) -> None:
    from .config import apply_overrides, dumps_toml, read_config_file, resolve_config
    from .describe import describe
    from .training.run_dir import CONFIG_FILE

    path = Path(args.config)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise PyrovaeError(
                f"'{path}' is a folder but not a run directory (it holds no {CONFIG_FILE}); "
                "give a TOML config file or a run directory"
            )
        path = path / CONFIG_FILE
    config = resolve_config(apply_overrides(read_config_file(path), args.overrides))
    print(describe(config))
    if args.toml:
        print()
        print(dumps_toml(config), end="")


def _json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259, which has no infinities or NaN): non-finite numbers,
    such as a Pareto k of ``inf`` where a few draws carry all the weight, become the strings
    ``"inf"``, ``"-inf"`` and ``"nan"``."""

    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {k: strict(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [strict(item) for item in v]
        return v

    return json.dumps(strict(value), allow_nan=False)


def _format_se(se: float | None) -> str:
    return f" ± {se:.2f}" if se is not None else ""


def _format_bits_per_dim(result: dict[str, Any]) -> str:
    """The bits per dimension of an evaluation's mapping and what they are, or why there are
    none (:mod:`pyrovae.evaluation.bits_per_dim`)."""
    bpd, note = result["bits_per_dim"], result["bits_per_dim_note"]
    if bpd is None:
        return note
    se = result["bits_per_dim_se"]
    return f"{bpd:.4f}{f' ± {se:.4f}' if se is not None else ''} ({note})"


def _check(args: argparse.Namespace, *options: tuple[str, object]) -> None:
    """Check each given option ``(flag, annotation)``, e.g. ``("--seed", Seed)``, against its
    declared range (:func:`~pyrovae.registry.check_value`)."""
    for flag, annotation in options:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            check_value(value, annotation, flag)


def _check_positive(args: argparse.Namespace, *flags: str) -> None:
    """Check the integer options ``flags`` (e.g. ``"--num-samples"``) that were given."""
    _check(args, *((flag, PositiveInt) for flag in flags))


def _estimator_settings(
    args: argparse.Namespace, config_num_samples: int
) -> tuple[int, int | None]:
    """``(num_samples, num_steps)`` of ``--method``, ``--num-samples`` and ``--num-steps``, with
    each method's defaults (IS: the run's ``eval.num_samples``)."""
    from .evaluation.ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS

    _check_positive(args, "--num-samples", "--num-steps")
    if args.method == "is":
        if args.num_steps is not None:
            raise PyrovaeError(
                f"--num-steps {args.num_steps} sets AIS's annealing steps, but --method is "
                "(importance sampling) has none: drop --num-steps or use --method ais"
            )
        num_samples = args.num_samples or config_num_samples
        if num_samples < 1:
            raise PyrovaeError(
                f"the run's eval.num_samples is {num_samples}; give --num-samples K (e.g. 5000)"
            )
        return num_samples, None
    return args.num_samples or DEFAULT_NUM_CHAINS, args.num_steps or DEFAULT_NUM_STEPS


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .data import load_data
    from .evaluation import evaluate_test_set
    from .evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS
    from .training import EVAL_SEED
    from .training.run import load_program

    _check_positive(args, "--limit", "--max-batch-elements")
    _check(args, ("--seed", Seed))
    vae, config, state = load_program(args.run_dir, device=args.device)
    num_samples, num_steps = _estimator_settings(args, config["eval"]["num_samples"])
    data = load_data(config["data"], device=vae.device, root=args.data_root)
    seed = EVAL_SEED if args.seed is None else args.seed
    max_batch_elements = args.max_batch_elements or DEFAULT_MAX_BATCH_ELEMENTS
    if args.method == "bdmc":
        _evaluate_bdmc(args, vae, data, state, num_samples, num_steps, seed, max_batch_elements)
        return
    result = {
        **evaluate_test_set(
            vae,
            data,
            config,
            num_samples=num_samples,
            method=args.method,
            num_steps=num_steps,
            seed=seed,
            limit=args.limit or 0,
            max_batch_elements=max_batch_elements,
            progress=not args.quiet,
        ),
        "epoch": int(state["epoch"]),
    }
    if args.json:
        print(_json(result))
        return
    print(
        f"run {args.run_dir} (epoch {result['epoch']}), {result['num_examples']} test "
        f"examples of {data.name} (binarization: {result['binarize']}), seed {seed}:"
    )
    print(
        f"  test ELBO:           {result['elbo']:.2f}{_format_se(result['elbo_se'])} nats/example"
    )
    how = (
        f"importance sampling, K={num_samples}"
        if args.method == "is"
        else f"AIS, S={num_samples} chains of T={num_steps} steps"
    )
    print(
        f"  test log-likelihood: {result['log_likelihood']:.2f}"
        f"{_format_se(result['log_likelihood_se'])} nats/example ({how})"
    )
    print(f"  test bits/dim:       {_format_bits_per_dim(result)}")
    if args.method == "ais":
        print(
            f"  HMC acceptance rate {result['acceptance_rate']:.2f}; spread of the chains' "
            f"log-weights {result['chain_log_weight_std']:.2f} nats per example "
            f"(`--method bdmc --num-steps {num_steps}` bounds AIS's error)"
        )
        return
    print(
        f"  effective sample size per example: mean {result['ess_mean']:.1f}, median "
        f"{result['ess_median']:.1f}, min {result['ess_min']:.1f} (of K={num_samples})"
    )
    pareto_k = _format_pareto_k(
        result["pareto_k_max"], result["num_pareto_k_above_0_7"], result["num_examples"]
    )
    print(f"  {pareto_k}")


def _evaluate_bdmc(
    args: argparse.Namespace,
    vae: Any,
    data: Any,
    state: dict[str, Any],
    num_chains: int,
    num_steps: int | None,
    seed: int,
    max_batch_elements: int,
) -> None:
    from .evaluation.ais import DEFAULT_NUM_STEPS
    from .evaluation.bdmc import DEFAULT_NUM_EXAMPLES, bdmc

    limit = args.limit or DEFAULT_NUM_EXAMPLES
    x, y = data.test_images[:limit], vae.model_labels(data.test_labels)
    result = bdmc(
        vae,
        x,
        None if y is None else y[:limit],
        num_chains,
        num_steps or DEFAULT_NUM_STEPS,
        seed=seed,
        max_batch_elements=max_batch_elements,
        progress=not args.quiet,
    )
    summary = {**result.summary(), "seed": seed, "dataset": data.name, "epoch": int(state["epoch"])}
    if args.json:
        print(_json(summary))
        return
    print(
        f"run {args.run_dir} (epoch {summary['epoch']}), BDMC on {summary['num_examples']} "
        f"examples simulated from the model, S={num_chains} chains of T={summary['num_steps']} "
        f"steps, seed {seed}:"
    )
    print(
        f"  forward AIS (stochastic lower bound): {summary['bdmc_lower']:.2f}"
        f"{_format_se(summary['bdmc_lower_se'])} nats/example"
    )
    print(
        f"  reverse AIS (stochastic upper bound): {summary['bdmc_upper']:.2f}"
        f"{_format_se(summary['bdmc_upper_se'])} nats/example"
    )
    print(
        f"  gap: {summary['bdmc_gap']:.3f}{_format_se(summary['bdmc_gap_se'])} nats/example "
        f"(max {summary['bdmc_gap_max']:.3f}): on data like the model's own, AIS with "
        f"T={summary['num_steps']} is within about this much of log p(x); raise --num-steps "
        "until it is below the differences you measure"
    )


def cmd_compare(args: argparse.Namespace) -> None:
    from .data import load_data
    from .evaluation.compare import check_same_test_set, compare
    from .evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS
    from .training import EVAL_SEED
    from .training.run import load_program

    _check_positive(args, "--limit", "--max-batch-elements", "--num-repeats")
    _check(args, ("--seed", Seed))
    if len(args.run_dirs) < 2:
        raise PyrovaeError(f"compare needs at least two run directories; got {len(args.run_dirs)}")
    if len(set(args.run_dirs)) < len(args.run_dirs):
        raise PyrovaeError(f"a run directory is given twice: {args.run_dirs}")
    runs = {name: load_program(name, device=args.device) for name in args.run_dirs}
    configs = {name: config for name, (_, config, _) in runs.items()}
    check_same_test_set(configs)
    reference = configs[args.run_dirs[0]]
    num_samples, num_steps = _estimator_settings(args, reference["eval"]["num_samples"])
    vaes = {name: vae for name, (vae, _, _) in runs.items()}
    device = vaes[args.run_dirs[0]].device
    data = load_data(reference["data"], device=device, root=args.data_root)
    x, y = data.test_images, data.test_labels
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    seed = EVAL_SEED if args.seed is None else args.seed
    result = compare(
        vaes,
        x,
        y,
        method=args.method,
        num_samples=num_samples,
        num_steps=num_steps,
        num_repeats=args.num_repeats,
        seed=seed,
        max_batch_elements=args.max_batch_elements or DEFAULT_MAX_BATCH_ELEMENTS,
        progress=not args.quiet,
    )
    if args.json:
        print(_json({**result.as_dict(), "dataset": data.name}))
        return
    how = (
        f"importance sampling, K={num_samples}"
        if args.method == "is"
        else f"AIS, S={num_samples} chains of T={num_steps} steps"
    )
    print(
        f"{result.num_examples} test examples of {data.name}, log p(x) in nats/example "
        f"({how}; seed {seed}; MC: Monte Carlo error from {args.num_repeats} repeats):"
    )
    print(result.table())


def _format_pareto_k(pareto_k_max: float | None, num_above: int, num_examples: int) -> str:
    if pareto_k_max is None:
        return "PSIS Pareto k: not estimated (K < 46 leaves too few tail samples to fit)"
    return (
        f"PSIS Pareto k per example: max {pareto_k_max:.2f}, above 0.7 (unreliable) for "
        f"{num_above} of {num_examples}"
    )


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from .training.run import load_program
    from .viz.plots import plot_samples, save_figure

    _check(args, ("--num", SampleCount), ("--seed", Seed))
    vae, _, _ = load_program(args.run_dir, device=args.device)
    torch.manual_seed(args.seed)
    samples = vae.sample(args.num, y=args.label)
    image_shape = vae.example_shape()
    if args.label is None:
        figure = plot_samples(samples, image_shape)
    else:
        figure = plot_samples(
            samples, image_shape, title=f"samples from p(x|z), z ~ p(z | y = {args.label})"
        )
    path = save_figure(figure, args.out)
    print(f"wrote {args.num} samples to {path}")


def cmd_plot(args: argparse.Namespace) -> None:
    from .data import load_data
    from .training.run import load_program
    from .training.run_dir import read_metrics
    from .viz import NEEDS_DATA, figures
    from .viz.plots import require_2d_latent, save_figure

    _check(args, ("--seed", Seed))
    vae, config, _ = load_program(args.run_dir, device=args.device)
    figures.check_kind(args.kind, vae)  # refuse before loading any data
    if args.kind in ("latent", "manifold"):
        space = vae.latent_space(f"the {args.kind!r} figure")
        require_2d_latent(space.latent_dim, f"{args.kind} figure")
    metrics = read_metrics(Path(args.run_dir)) if args.kind == "curves" else []
    if args.kind == "curves" and not metrics:
        raise PyrovaeError(f"'{args.run_dir}' has no metrics yet: no epoch has finished")
    data = None
    if args.kind in NEEDS_DATA:
        data = load_data(config["data"], device=vae.device, root=args.data_root)
    out = Path(args.out) if args.out else Path(args.run_dir) / f"{args.kind}.png"
    path = save_figure(
        figures.draw(
            args.kind,
            vae,
            data=data,
            metrics=metrics,
            seed=args.seed,
        ),
        out,
    )
    print(f"wrote the {args.kind} figure to {path}")


COMMANDS = {
    "train": cmd_train,
    "describe": cmd_describe,
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
    "sample": cmd_sample,
    "plot": cmd_plot,
}


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Show each :class:`~pyrovae.errors.PyrovaeWarning` as one line on stderr, ``pyrovae
    COMMAND: warning: MESSAGE``, while the block runs; other warnings as before."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, PyrovaeWarning):
                print(f"pyrovae {command}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        yield


@contextlib.contextmanager
def _processes(args: argparse.Namespace) -> Iterator[None]:
    """Under torchrun: the command runs in the run's process group, and the processes other
    than rank 0 print nothing (no results, progress bars or warnings)."""
    if "WORLD_SIZE" not in os.environ:  # not launched by torchrun: torch is not imported yet
        yield
        return
    from . import distributed

    with distributed.process_group():
        if distributed.is_main():
            yield
            return
        args.quiet = True
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", PyrovaeWarning)
            yield


def _fail(command: str, message: str) -> int:
    """Print the one-line error of ``command`` (under torchrun: only if this process met an
    error first) and return exit code 2."""
    if "WORLD_SIZE" in os.environ:
        from . import distributed

        if not distributed.first_to_fail():
            return 2
    line = " ".join(message.splitlines())  # one line, whatever the message holds
    print(f"pyrovae {command}: error: {line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _one_line_warnings(args.command), _processes(args):
            COMMANDS[args.command](args)
    except PyrovaeError as exc:
        return _fail(args.command, str(exc))
    except OSError as exc:  # the machine's: a full disk, a read-only folder, a lost device
        where = f"'{exc.filename}': " if exc.filename else ""
        return _fail(args.command, f"{where}{exc.strerror or exc}")
    except MemoryError:
        return _fail(
            args.command,
            "out of memory; use a smaller model or batch (e.g. --max-batch-elements)",
        )
    except KeyboardInterrupt:
        print(f"pyrovae {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
