"""``pyrovae train``: train a model as a config says, or resume a run; then report its test
ELBO and (where ``eval.num_samples`` > 0) its importance-sampled test log-likelihood."""

from __future__ import annotations

import contextlib
import json
import shlex
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import PyrovaeError, UnreliableEstimateWarning
from ..registry import PositiveInt, Seed
from . import report
from .options import Estimator, check_options


def train(
    *,
    config: str | None,
    resume: str | None,
    out: str | None,
    program: str | None,
    epochs: int | None,
    seed: int | None,
    overrides: list[str],
    quiet: bool,
    device: str | None,
    data_root: str | None,
) -> None:
    """Train the model of the TOML file ``config`` into the new run directory ``out`` (with
    the ``KEY=VALUE`` ``overrides`` and the options that override config values: ``epochs``,
    ``seed``, ``device``, ``program``), or continue the run ``resume`` up to ``epochs``."""
    from ..config import apply_overrides, read_config_file
    from ..evaluation import evaluate_test_set
    from ..training import EVAL_SEED, run

    check_options(("--epochs", epochs, PositiveInt), ("--seed", seed, Seed))
    if resume:
        if out or overrides or seed is not None or device or program:
            raise PyrovaeError(
                "--resume continues a run as it was configured; only --epochs and --data-root "
                "may be given with it"
            )
        with _how_to_go_on(Path(resume)):
            trainer = run.resume(resume, epochs=epochs, data_root=data_root, progress=not quiet)
        run_dir = Path(resume)
    else:
        if not out:
            raise PyrovaeError("train --config needs --out RUN_DIR (the run directory to create)")
        assert config is not None  # the parser asks for --config or --resume
        overrides = _with_options(
            overrides, epochs=epochs, seed=seed, device=device, program=program
        )
        # validated and completed once, by train(), with the overrides applied
        resolved = apply_overrides(read_config_file(config), overrides)
        with _how_to_go_on(Path(out)):
            trainer = run.train(resolved, out=out, data_root=data_root, progress=not quiet)
        run_dir = Path(out)
    print(report.training_elbo(trainer.metrics[-1]))
    if trainer.selection.best_epoch:
        print(report.best_epoch(trainer.selection, run_dir))
    num_samples = trainer.config["eval"]["num_samples"]
    if not num_samples:
        print(report.training_end(run_dir))
        return
    with warnings.catch_warnings():
        # said once, with what to do, in the summary line (report.training_end)
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        result = evaluate_test_set(
            trainer.program,
            trainer.data,
            trainer.config,
            num_samples=num_samples,
            seed=EVAL_SEED,
            progress=not quiet,
        )
    print(report.training_end(run_dir, result, Estimator("is", num_samples)))


@contextlib.contextmanager
def _how_to_go_on(run_dir: Path) -> Iterator[None]:
    """An interrupt (Ctrl-C, SIGTERM) of the training of ``run_dir`` carries a note of how to
    go on: resume from the checkpoint of its last finished epoch, or start again."""
    from ..training.run_dir import CHECKPOINT_FILE, load_checkpoint

    try:
        yield
    except KeyboardInterrupt as exc:
        quoted = shlex.quote(str(run_dir))
        try:
            epoch = f" of epoch {load_checkpoint(run_dir)['epoch']}"
        except PyrovaeError:
            epoch = ""  # no checkpoint: no epoch finished
        if (run_dir / CHECKPOINT_FILE).is_file():
            exc.add_note(
                f"'{run_dir}' keeps its checkpoint{epoch}: continue it with `pyrovae train "
                f"--resume {quoted}`"
            )
        else:
            exc.add_note("no epoch finished: start again (the same command)")
        raise


def _with_options(
    overrides: list[str],
    *,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    program: str | None,
) -> list[str]:
    """``overrides`` followed by the config overrides of the options that were given."""
    overrides = list(overrides)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if device:
        overrides.append(f'train.device="{device}"')
    if program:
        overrides.append(f"model.program={json.dumps(program)}")
    return overrides
