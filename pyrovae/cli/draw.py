"""``pyrovae sample`` and ``pyrovae plot``: pictures of a trained run, written as PNGs."""

from __future__ import annotations

from pathlib import Path

from ..errors import PyrovaeError
from ..registry import Seed
from .options import SampleCount, check_options


def class_index(label: str, class_names: list[str]) -> int:
    """The class ``label`` names: one of the run's ``class_names`` (its data's class
    subfolders), or a class number."""
    if label in class_names:
        return class_names.index(label)
    try:
        return int(label)
    except ValueError:
        known = f"its classes are {', '.join(class_names)}" if class_names else "give a number"
        raise PyrovaeError(f"--label {label!r} is not a class of this run; {known}") from None


def sample(run_dir: str, *, num: int, out: str, seed: int, label: str | None, device: str) -> None:
    """Draw ``num`` samples E[x|z], z ~ p(z) (with ``label``, a class name or number: z ~ p(z
    | y = label)), of the run ``run_dir``'s model with the seed ``seed`` and write them as a
    grid to ``out``."""
    import torch

    from ..training.run import load_program
    from ..viz.plots import plot_samples, save_figure

    check_options(("--num", num, SampleCount), ("--seed", seed, Seed))
    program, config, _ = load_program(run_dir, device=device)
    y = None if label is None else class_index(label, config["data"]["class_names"])
    torch.manual_seed(seed)
    samples = program.sample(num, y=y)
    image_shape = program.example_shape()
    if label is None:
        figure = plot_samples(samples, image_shape)
    else:
        figure = plot_samples(samples, image_shape, title=f"samples E[x|z], z ~ p(z | y = {label})")
    path = save_figure(figure, out)
    print(f"wrote {num} samples to {path}")


def plot(
    run_dir: str, *, kind: str, out: str | None, seed: int, device: str, data_root: str | None
) -> None:
    """Draw the figure ``kind`` (one of :data:`~pyrovae.viz.FIGURE_KINDS`) of the run
    ``run_dir`` with the seed ``seed`` and write it to ``out`` (default:
    ``RUN_DIR/KIND.png``); the model is asked whether it has that figure before any data is
    read."""
    from ..data import load_data
    from ..training.run import load_program
    from ..training.run_dir import read_metrics
    from ..viz import NEEDS_DATA, figures
    from ..viz.plots import require_2d_latent, save_figure

    check_options(("--seed", seed, Seed))
    program, config, _ = load_program(run_dir, device=device)
    figures.check_kind(kind, program)  # refuse before loading any data
    if kind in ("latent", "manifold"):
        space = program.latent_space(f"the {kind!r} figure")
        require_2d_latent(space.latent_dim, f"{kind} figure")
    metrics = read_metrics(Path(run_dir)) if kind == "curves" else []
    if kind == "curves" and not metrics:
        raise PyrovaeError(f"'{run_dir}' has no metrics yet: no epoch has finished")
    data = None
    if kind in NEEDS_DATA:
        data = load_data(config["data"], device=program.device, root=data_root)
    figure = figures.draw(
        kind,
        program,
        data=data,
        metrics=metrics,
        seed=seed,
        class_names=config["data"]["class_names"],
    )
    path = save_figure(figure, Path(out) if out else Path(run_dir) / f"{kind}.png")
    print(f"wrote the {kind} figure to {path}")
