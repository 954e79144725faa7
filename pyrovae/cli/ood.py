"""``pyrovae ood``: how well scores built on a trained run's log p(x) tell its data from other
data (:mod:`pyrovae.evaluation.ood`).

The run scores the examples of ``--in`` (in-distribution: ``test``, the run's test set, by
default) and ``--out``; each score's AUROC, AUPR and FPR at 95% TPR
(:mod:`pyrovae.evaluation.detection`) is printed, and the per-example scores (with the PSIS
flag of each log-likelihood) and a picture of their histograms are written to ``--results``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DataError
from ..registry import PositiveInt, Seed
from . import report
from .options import check_options, choose_estimator

if TYPE_CHECKING:
    import torch

    from ..config import Config
    from ..evaluation.ood import OODScores
    from ..models.program import Program
    from ..training.run import Checkpoint
    from .options import Estimator

#: PSIS k above which an importance-sampled estimate is flagged
PSIS_THRESHOLD = 0.7


def ood(
    run_dir: str,
    *,
    in_source: str,
    out_source: str,
    background: str | None,
    method: Literal["is", "ais"],
    num_samples: int | None,
    num_steps: int | None,
    limit: int | None,
    num_train: int,
    compressor: str,
    results: str | None,
    seed: int | None,
    max_batch_elements: int | None,
    as_json: bool,
    quiet: bool,
    device: str,
    data_root: str | None,
    checkpoint: Checkpoint = None,
) -> None:
    """Score ``--in`` and ``--out`` with the run ``run_dir`` (and ``--background``), each at
    its state ``checkpoint`` (best, last; ``None``: the best where there is one), print the
    detection table and write ``scores.csv`` and ``histograms.png`` to ``results`` (default
    ``RUN_DIR/ood``)."""
    from .. import distributed
    from ..evaluation.complexity import describe_compressor
    from ..evaluation.ood import detection_table
    from ..training import EVAL_SEED
    from ..training.run import load_program

    check_options(("--limit", limit, PositiveInt), ("--num-train", num_train, PositiveInt))
    check_options(("--max-batch-elements", max_batch_elements, PositiveInt), ("--seed", seed, Seed))
    summary: dict[str, Any] = {"compressor": describe_compressor(compressor)}
    program, config, state = load_program(run_dir, device=device, checkpoint=checkpoint)
    back = None if background is None else _background(background, config, device, checkpoint)
    estimator = choose_estimator(method, num_samples, num_steps, config["eval"]["num_samples"])
    seed = EVAL_SEED if seed is None else seed
    sets = {
        flag: _examples(config, source, program, limit, data_root, flag)
        for flag, source in (("--in", in_source), ("--out", out_source))
    }
    settings = _settings(estimator, seed, quiet, max_batch_elements)
    train_nll = _train_nll(program, config, num_train, data_root, settings)
    scores = {
        flag: _score(program, x, config, train_nll, back, compressor, settings)
        for flag, x in sets.items()
    }
    table = detection_table(scores["--in"], scores["--out"])
    folder = Path(results) if results else Path(run_dir) / "ood"
    if distributed.is_main():
        _write(folder, scores, table, (in_source, out_source))
    summary |= {"run": run_dir, "epoch": int(state["epoch"]), "checkpoint": state["checkpoint"]}
    summary |= {"in": in_source, "out": out_source}
    summary |= {"background": background, "method": method, "seed": seed}
    summary |= {"num_in": sets["--in"].shape[0], "num_out": sets["--out"].shape[0]}
    summary |= {"num_samples": estimator.num_samples, "num_steps": estimator.num_steps}
    summary |= {"train_nll": train_nll, "num_train": num_train, "metrics": table}
    summary |= {"csv": str(folder / "scores.csv"), "figure": str(folder / "histograms.png")}
    summary["psis_flagged"] = {flag: _flagged(s) for flag, s in scores.items()}
    print(report.ood(summary, estimator=estimator, as_json=as_json))


def _settings(
    estimator: Estimator, seed: int, quiet: bool, max_batch_elements: int | None
) -> dict[str, Any]:
    """The log-likelihood estimator's settings, as :func:`pyrovae.log_likelihood` takes them."""
    settings: dict[str, Any] = {"method": estimator.method, "seed": seed}
    settings["num_samples"] = estimator.num_samples
    settings |= {"num_steps": estimator.num_steps, "progress": not quiet}
    if max_batch_elements is not None:
        settings["max_batch_elements"] = max_batch_elements
    return settings


def _score(
    program: Program,
    x: torch.Tensor,
    config: Config,
    train_nll: float,
    background: Program | None,
    compressor: str,
    settings: dict[str, Any],
) -> OODScores:
    """The scores of the examples ``x`` (:func:`pyrovae.evaluation.ood.ood_scores`)."""
    from ..evaluation.ood import ood_scores

    shape = tuple(config["data"]["shape"])
    return ood_scores(
        program,
        x,
        train_nll=train_nll,
        image_shape=shape,
        background=background,
        compressor=compressor,
        **settings,
    )


def _background(
    run_dir: str, config: Config, device: str, checkpoint: Checkpoint = None
) -> Program:
    """The background run's model (its state ``checkpoint``), refused in one line when its
    data's shape is not the run's."""
    from ..training.run import load_program

    program, background_config, _ = load_program(run_dir, device=device, checkpoint=checkpoint)
    shape, own = background_config["data"]["shape"], config["data"]["shape"]
    if list(shape) != list(own):
        raise DataError(
            f"--background {run_dir} was trained on examples of shape {tuple(shape)}, but the "
            f"run on {tuple(own)}; give a background run of the same data"
        )
    return program


def _examples(
    config: Config, source: str, program: Program, limit: int | None, root: str | None, flag: str
) -> torch.Tensor:
    """The first ``limit`` examples of ``source`` (the option ``flag``), prepared as the run's
    test set."""
    from ..data.run_source import load_run_source

    x, _ = load_run_source(config, source, device=program.device, root=root, flag=flag)
    return x[:limit] if limit else x


def _train_nll(
    program: Program, config: Config, num_train: int, root: str | None, settings: dict[str, Any]
) -> float:
    """The mean -log p(x) of the run's first ``num_train`` training examples (binarized once
    with ``data.binarization_seed`` where the run binarized them per batch): the centre of the
    typicality score."""
    from ..data import binarize_once, load_data
    from ..evaluation.ood import score_log_likelihood

    data = load_data(config["data"], device=program.device, root=root)
    x = data.train_preview[0][:num_train]
    if data.binarize == "dynamic":
        x = binarize_once(x, config["data"]["binarization_seed"])
    ll, _ = score_log_likelihood(program, x, None, **settings)
    return float(-ll.double().mean())


def _flagged(scores: OODScores) -> int:
    return int((scores.columns["pareto_k"] > PSIS_THRESHOLD).sum())


def _write(
    folder: Path,
    scores: dict[str, OODScores],
    table: dict[str, dict[str, float]],
    sources: tuple[str, str],
) -> None:
    """``scores.csv`` (one row per example: its set, ``in`` or ``out``, its index there, the
    columns of :class:`~pyrovae.evaluation.ood.OODScores`, each score as ``score_NAME`` and
    the PSIS flag, 1 where k > 0.7) and ``histograms.png`` in ``folder``."""
    from ..atomic import atomic_write_bytes
    from ..viz.histograms import plot_score_histograms
    from ..viz.plots import save_figure

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    first = scores["--in"]
    header = [*first.columns, *(f"score_{name}" for name in first.scores)]
    writer.writerow(["set", "index", *header, "psis_flag"])
    for flag, s in scores.items():
        columns = [*s.columns.values(), *s.scores.values()]
        flags = (s.columns["pareto_k"] > PSIS_THRESHOLD).tolist()
        rows = zip(*(column.tolist() for column in columns), strict=True)
        for index, (row, flagged) in enumerate(zip(rows, flags, strict=True)):
            writer.writerow([flag[2:], index, *(f"{v:.6g}" for v in row), int(flagged)])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "scores.csv", lambda f: f.write(buffer.getvalue().encode()))
    aurocs = {name: metrics["auroc"] for name, metrics in table.items()}
    labels = (f"in: {Path(sources[0]).name}", f"out: {Path(sources[1]).name}")
    save_figure(
        plot_score_histograms(scores["--in"].scores, scores["--out"].scores, aurocs, labels),
        folder / "histograms.png",
    )
