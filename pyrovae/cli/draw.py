"""``pyrovae sample`` and ``pyrovae plot``: pictures of a trained run, written as PNGs (and
samples as data: ``sample --out FILE.npy``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PyrovaeError
from ..registry import Seed
from .options import SampleCount, check_options

if TYPE_CHECKING:
    from ..training.run import Checkpoint


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


def sample(
    run_dir: str,
    *,
    num: int,
    out: str,
    seed: int,
    label: str | None,
    checkpoint: Checkpoint = None,
    draw: bool,
    device: str,
) -> None:
    """Draw ``num`` samples of the run ``run_dir``'s model (its state ``checkpoint``) with the
    seed ``seed``: E[x|z], z ~ p(z) (with ``label``, a class name or number: z ~ p(z | y =
    label)), or x ~ p(x|z) with ``draw``; write them to ``out``: a ``.png`` grid, or the
    samples as data, ``(num, *example_shape)`` in a ``.npy`` array or ``.pt`` tensor."""
    import torch

    from ..tables import check_suffix, write_array
    from ..training.run import load_program
    from ..viz.plots import plot_samples, save_figure

    suffix = check_suffix(out, (".png", ".npy", ".pt"))
    check_options(("--num", num, SampleCount), ("--seed", seed, Seed))
    program, config, state = load_program(run_dir, device=device, checkpoint=checkpoint)
    y = None if label is None else class_index(label, config["data"]["class_names"])
    torch.manual_seed(seed)
    what = "draws x ~ p(x|z)" if draw else "samples"
    if draw:
        labels = None
        if y is not None:
            program.classes("sample --label")
            labels = torch.full((num,), y, dtype=torch.int64, device=program.device)
        samples = program.draw(num, labels)
    else:
        samples = program.sample(num, y=y)
    image_shape = program.example_shape()
    if suffix != ".png":
        path = write_array(out, samples.reshape(num, *image_shape))
        print(f"wrote {num} {what} of shape {tuple(image_shape)} to {path}{_of_best(state)}")
        return
    prior = "p(z)" if label is None else f"p(z | y = {label})"
    if draw:
        figure = plot_samples(samples, image_shape, title=f"draws x ~ p(x|z), z ~ {prior}")
    elif label is None:
        figure = plot_samples(samples, image_shape)
    else:
        figure = plot_samples(samples, image_shape, title=f"samples E[x|z], z ~ {prior}")
    path = save_figure(figure, out)
    print(f"wrote {num} {what} to {path}{_of_best(state)}")


def plot(
    run_dir: str,
    *,
    kind: str,
    out: str | None,
    seed: int,
    checkpoint: Checkpoint = None,
    device: str,
    data_root: str | None,
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
    program, config, state = load_program(run_dir, device=device, checkpoint=checkpoint)
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
    print(f"wrote the {kind} figure to {path}{_of_best(state)}")


def _of_best(state: dict[str, Any]) -> str:
    """Which state a picture shows, when it is the best (not the last) epoch's."""
    if state["checkpoint"] != "best":
        return ""
    return f" (best.pt: epoch {state['epoch']}, the best validation ELBO)"
