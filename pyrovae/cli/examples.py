"""``pyrovae encode`` and ``pyrovae score``: a trained run turned into one row per example.

Both read ``--data SOURCE`` (``test``, a folder of images or an array file, prepared as the
run's test set is: :func:`~pyrovae.data.run_source.load_run_source`) and write ``--out FILE``
atomically (:mod:`pyrovae.tables`: ``.npy``, ``.pt`` or ``.csv``). Under ``torchrun``,
``score`` shares the examples' blocks among the processes as ``evaluate`` does, and rank 0
alone writes the file; ``encode`` runs on rank 0 alone (the other processes have nothing to
do).
"""

from __future__ import annotations

from typing import Literal

from ..registry import PositiveInt, Seed
from ..tables import COLUMN_SUFFIXES, check_suffix
from .options import check_options


def encode(
    run_dir: str,
    *,
    data: str,
    out: str,
    batch_size: int,
    quiet: bool,
    device: str,
    data_root: str | None,
) -> None:
    """Write the posterior mean and scale of each example of ``data`` under the run
    ``run_dir``'s guide (``mean``, ``scale``: ``(N, latent_dim)``; ``label`` when the examples
    have labels) to ``out``."""
    from .. import distributed
    from ..data.run_source import load_run_source
    from ..evaluation.encode import encode as encode_examples
    from ..tables import write_columns
    from ..training.run import load_program

    check_suffix(out, COLUMN_SUFFIXES)
    check_options(("--batch-size", batch_size, PositiveInt))
    if not distributed.is_main():  # one process encodes and writes
        return
    program, config, _ = load_program(run_dir, device=device)
    program.latent_space("encode")  # refuse before reading any data
    x, labels = load_run_source(config, data, device=program.device, root=data_root)
    mean, scale = encode_examples(program, x, batch_size, progress=not quiet)
    columns = {"mean": mean, "scale": scale}
    if labels is not None:
        columns["label"] = labels
    path = write_columns(out, columns)
    print(f"wrote the posterior mean and scale of {x.shape[0]} examples to {path}")


def score(
    run_dir: str,
    *,
    data: str,
    out: str,
    method: Literal["is", "ais"],
    num_samples: int | None,
    num_steps: int | None,
    seed: int | None,
    max_batch_elements: int | None,
    quiet: bool,
    device: str,
    data_root: str | None,
) -> None:
    """Write one row per example of ``data`` (``index``, ``log_likelihood`` in nats, ``se``,
    ``pareto_k``, ``ess``, and ``label``: :func:`~pyrovae.evaluation.example_scores.example_scores`)
    to ``out``, with the estimator the options choose and the seed ``seed`` (default: the one
    ``train`` and ``evaluate`` use)."""
    from .. import distributed
    from ..data.run_source import load_run_source
    from ..evaluation.example_scores import example_scores
    from ..evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS
    from ..tables import write_columns
    from ..training import EVAL_SEED
    from ..training.run import load_program
    from .options import choose_estimator

    check_suffix(out, COLUMN_SUFFIXES)
    check_options(("--max-batch-elements", max_batch_elements, PositiveInt), ("--seed", seed, Seed))
    program, config, _ = load_program(run_dir, device=device)
    estimator = choose_estimator(method, num_samples, num_steps, config["eval"]["num_samples"])
    x, labels = load_run_source(config, data, device=program.device, root=data_root)
    table = example_scores(
        program,
        x,
        labels,
        method=method,
        num_samples=estimator.num_samples,
        num_steps=estimator.num_steps,
        seed=EVAL_SEED if seed is None else seed,
        max_batch_elements=max_batch_elements or DEFAULT_MAX_BATCH_ELEMENTS,
        progress=not quiet,
    )
    if distributed.is_main():  # every process holds the gathered table; one writes it
        path = write_columns(out, table)
        mean = float(table["log_likelihood"].mean())
        print(
            f"wrote log p(x) of {x.shape[0]} examples ({method}, {estimator.num_samples} "
            f"samples; mean {mean:.2f} nats) to {path}"
        )
