"""Runs: train a new VAE from a config, resume a stopped run, load a trained one.

A run directory (:mod:`~pyrovae.training.run_dir`) holds the resolved config, the checkpoint
written at every epoch end and the metrics; on CPU a resumed run ends bitwise where an
uninterrupted one would. In a run of several processes (``torchrun``;
:mod:`pyrovae.distributed`) rank 0 alone takes the run directory's lock and writes it, and
only it shows progress; a checkpoint written by N processes resumes under any number.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pyro
import torch

from .. import distributed
from ..config import Config, resolve_config
from ..data import ImageData, StreamingImageData, load_data
from ..errors import BinarizedColourWarning, CheckpointError, ConfigError
from ..infer.objectives import OBJECTIVES
from ..models.factory import build_model
from ..models.program import Program
from ..models.size import check_training_step_fits
from ..registry import PositiveInt, check_value
from .callbacks import check_callbacks
from .loggers import loggers_from_config
from .run_dir import (
    BEST_FILE,
    CHECKPOINT_FILE,
    PROGRAM_FILE,
    load_checkpoint,
    read_config,
    read_metrics,
    write_config,
    write_metrics,
    write_program_source,
)
from .run_guard import check_new_run_dir, hold_run_dir
from .trainer import Trainer

__all__ = ["Checkpoint", "load_program", "load_run", "resume", "select_device", "train"]

#: which state of a run to load: ``"best"`` (``best.pt``, the epoch with the best validation
#: ELBO), ``"last"`` (``checkpoint.pt``), or ``None``: the best where the run has one
Checkpoint = Literal["best", "last"] | None


def select_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` fails clearly without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA GPU is available; use 'cpu' or 'auto'")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device = {name!r} is not valid; expected 'auto', 'cpu' or 'cuda'")
    return torch.device(name)


def _trainer(
    config: Config,
    data_root: str | Path | None,
    progress: bool,
    run_dir: Path | None,
    model: Any = None,
    data: tuple[Any, Any] = (None, None),
    program_source: Path | None = None,
) -> Trainer:
    """A Trainer for the resolved ``config``: a freshly initialised VAE (or the program
    ``model``, or the one ``model.program`` builds; see :func:`build_model`) and its data (the
    config's source, or ``data = (train_data, test_data)`` given in Python). The config's
    ``data`` section is completed with the record of the data (:meth:`ImageData.record`).
    ``program_source``: a run's copy of its ``model.program`` module (see
    :func:`build_model`)."""
    device = select_device(config["train"]["device"])
    distributed.check_global_batch(config["train"]["batch_size"])
    progress = progress and distributed.is_main()
    run_dir = run_dir if distributed.is_main() else None
    train = config["train"]
    loaded = load_data(
        config["data"],
        device=device,
        root=data_root,
        train_data=data[0],
        test_data=data[1],
        validation=train["validation"],
        validation_seed=train["validation_seed"],
    )
    config["data"].update(loaded.record())  # the run's model is rebuilt from this record
    pyro.set_rng_seed(config["train"]["seed"])  # initial weights and Monte Carlo draws
    # a built-in model is measured on the meta device before a single parameter is allocated
    vae = build_model(
        config, model, training=True, device=device, program_source=program_source
    ).to(device)
    _check_training_step(vae, config, loaded)
    return Trainer(vae.module, loaded, config, device, run_dir=run_dir, progress=progress)


def _check_training_step(program: Program, config: Config, loaded: Any) -> None:
    """Refuse a training step that cannot fit in memory: the forward and backward of one
    process's share of a batch, ``objective.num_particles x train.batch_size`` (particle,
    example) pairs, measured on fake tensors (:func:`check_training_step_fits`)."""
    objective = OBJECTIVES.build(config["objective"], "objective")
    batch = min(config["train"]["batch_size"] // distributed.world_size(), loaded.num_train)
    x, labels = loaded.train_preview
    y = program.model_labels(labels)
    x = x[:1].expand(batch, *x.shape[1:])  # the batch's shape: no copy
    y = None if y is None else y[:1].expand(batch)
    what = (
        "objective.num_particles x train.batch_size = "
        f"{objective.num_particles:,} x {config['train']['batch_size']:,}"
    )
    check_training_step_fits(program, objective.elbo(), x, y, what)


def _warn_binarized_colour(data: ImageData | StreamingImageData) -> None:
    """Say, in one line, that a new run binarizes colour images (the default
    ``data.binarize = "dynamic"``, made for the Bernoulli likelihood of binary MNIST)."""
    shape = data.image_shape
    if data.binarize != "none" and len(shape) == 3 and shape[0] == 3:
        warnings.warn(
            BinarizedColourWarning(
                f"data.binarize = {data.binarize!r} binarizes the colour images of {data.name} "
                "(each channel's 8-bit levels become 0 or 1); to model their colours set "
                "model.likelihood = 'discretized_logistic' and data.binarize = 'none' (as "
                "configs/cifar10.toml does)"
            ),
            stacklevel=3,
        )


def train(
    config: Mapping[str, Any],
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
    model: Any = None,
    *,
    train_data: Any = None,
    test_data: Any = None,
    callbacks: Sequence[Any] | None = None,
) -> Trainer:
    """Train a new VAE as ``config`` says; with ``out``, write a run directory there.

    ``model``: your own program module to train instead (see :mod:`pyrovae.models.program`),
    with its weights as they are; the Monte Carlo draws still start from ``train.seed``. Its
    run directory records its class; :func:`load_run` and :func:`resume` then take the module
    again (``model=``). A config with ``model.program = "package.module:factory"`` builds the
    module itself, and so do its run directories.

    The data is the config's ``[data]`` source, or ``train_data`` (and ``test_data``) given in
    Python: tensors or NumPy arrays ``(N, ...)``, pairs ``(x, labels)`` of them, or
    ``torch.utils.data.Dataset`` s yielding ``x`` or ``(x, label)`` (see
    :func:`pyrovae.load_data`). The run's config records where the data came from, its shape
    and a hash, so that ``evaluate`` and ``resume`` find it again (or, for data given in
    Python, say that it must be passed in).

    The config is validated and the data loaded before ``out`` is created, so bad input
    leaves no half-made run directory. ``out`` must be new, empty, or a run that never finished
    an epoch (:func:`~pyrovae.training.run_guard.check_new_run_dir`); it is locked while the
    run trains (:func:`~pyrovae.training.run_guard.hold_run_dir`).

    ``callbacks``: objects called around the epochs (:mod:`~pyrovae.training.callbacks`;
    one may stop training), after the loggers that ``[log]`` chooses
    (:mod:`~pyrovae.training.loggers`).

    Returns:
        the :class:`Trainer`, whose ``vae`` is trained and ``metrics`` filled in.

    Example::

        trainer = pyrovae.train({"train": {"epochs": 1}}, out="runs/first")
        print(trainer.metrics[-1]["test_elbo"])
    """
    config = resolve_config(config)
    data = (train_data, test_data)
    hooks = _callbacks(config, callbacks, out is not None)
    if out is None:
        trainer = _trainer(config, data_root, progress, None, model, data)
        trainer.callbacks = hooks
        _warn_binarized_colour(trainer.data)
        trainer.fit()
        return trainer
    run_dir = Path(out)
    main = distributed.is_main()  # the one process that writes the run directory
    if main:
        check_new_run_dir(run_dir)  # refuse before the data is loaded; again under the lock
    trainer = _trainer(config, data_root, progress, None, model, data)
    _warn_binarized_colour(trainer.data)
    with hold_run_dir(run_dir, new=True) if main else contextlib.nullcontext():
        if main:
            write_metrics(run_dir, [])
            write_config(run_dir, config)  # the run's marker files, metrics first
            if config["model"]["program"]:
                write_program_source(run_dir, config["model"]["program"])
            trainer.run_dir = run_dir
        trainer.callbacks = hooks
        trainer.fit()
    return trainer


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
    model: Any = None,
    *,
    train_data: Any = None,
    test_data: Any = None,
    callbacks: Sequence[Any] | None = None,
) -> Trainer:
    """Continue the run in ``run_dir`` from its last checkpoint, up to ``epochs`` in total
    (default: the run's configured epochs). On CPU the result equals an uninterrupted run.
    ``callbacks`` as for :func:`train` (the loggers of the run's ``[log]`` come first).

    ``model``: the program module of a run trained with ``train(config, model=...)`` (its
    weights are replaced by the checkpoint's). A run trained on data given in Python needs it
    again: ``train_data`` (and ``test_data``) as given to :func:`train`; its hash must be the
    one the run recorded."""
    run_dir = Path(run_dir)
    if epochs is not None:
        check_value(epochs, PositiveInt, "--epochs")
    main = distributed.is_main()  # reads the run and shares it; the one that writes it
    if main and not run_dir.is_dir():
        raise CheckpointError(
            f"'{run_dir}' is not a folder; give a run directory made by `pyrovae train --out`"
        )
    with hold_run_dir(run_dir, new=False) if main else contextlib.nullcontext():
        config, state, metrics = distributed.broadcast_object(
            (
                read_config(run_dir),
                load_checkpoint(run_dir),
                read_metrics(run_dir),
            )
            if main
            else None
        )
        if epochs is not None:
            if epochs < state["epoch"]:
                raise ConfigError(
                    f"--epochs {epochs} is fewer than the {state['epoch']} epochs '{run_dir}' "
                    "has run"
                )
            config["train"]["epochs"] = epochs
        trainer = _trainer(
            config,
            data_root,
            progress,
            run_dir,
            _run_model(run_dir, state, model),
            (train_data, test_data),
            run_dir / PROGRAM_FILE,
        )
        trainer.load_state_dict(state)
        trainer.metrics = [r for r in metrics if r["epoch"] <= trainer.epoch]
        if epochs is not None and main:
            write_config(run_dir, config)
        trainer.callbacks = _callbacks(config, callbacks, True)
        trainer.fit()
    return trainer


def _callbacks(config: Config, callbacks: Sequence[Any] | None, run_dir: bool) -> list[Any]:
    """The loggers of ``[log]`` (on rank 0 alone), then ``callbacks``; a :class:`ConfigError`
    for a logger without a run directory (``run_dir`` false) to write in."""
    hooks = check_callbacks(callbacks)
    loggers = loggers_from_config(config) if distributed.is_main() else []
    if loggers and not run_dir:
        chosen = [k for k in ("csv", "tensorboard", "mlflow") if config["log"][k]]
        raise ConfigError(
            f"log.{chosen[0]} = true writes into the run directory; give one "
            "(pyrovae.train(config, out=...), pyrovae train --out)"
        )
    return [*loggers, *hooks]


def _run_model(run_dir: Path, state: dict[str, Any], model: Any) -> Any:
    """``model``, or ``None`` when the run's config can rebuild its module; a
    :class:`CheckpointError` when the run was trained with a module given in Python and
    ``model`` is not given."""
    program = state.get("program")
    if model is None and program:
        raise CheckpointError(
            f"'{run_dir}' was trained with a module of class {program} given in Python "
            "(pyrovae.train(config, model=...)): pass that module again (load_run(run, "
            "model=module), resume(run, model=module)), or train with model.program = "
            "'package.module:factory' (train --program) so that run directories rebuild it"
        )
    return model


def load_run(
    run_dir: str | Path, device: str = "auto", model: Any = None, checkpoint: Checkpoint = None
) -> tuple[Any, Config, dict[str, Any]]:
    """The trained model of a run directory (in eval mode, on ``device``), its config and
    checkpoint state: a built-in :class:`~pyrovae.VAE` (or hierarchical VAE) rebuilt from the
    config; for a program run, its module (rebuilt from ``model.program``, or ``model`` with
    the checkpoint's weights loaded into it).

    ``checkpoint``: ``"best"`` (``best.pt``: the epoch with the best validation ELBO, in runs
    with ``train.validation``), ``"last"`` (``checkpoint.pt``: the last epoch), or ``None``:
    the best where the run has one, else the last. ``state["checkpoint"]`` says which.

    Example::

        vae, config, state = pyrovae.load_run("runs/first", device="cpu")
    """
    program, config, state = load_program(run_dir, device, model, checkpoint)
    return program.module, config, state


def checkpoint_file(run_dir: Path, checkpoint: Checkpoint) -> str:
    """The file of the state ``checkpoint`` names (see :func:`load_run`); a
    :class:`CheckpointError` for ``"best"`` in a run without one."""
    if checkpoint is None:
        return BEST_FILE if (run_dir / BEST_FILE).is_file() else CHECKPOINT_FILE
    if checkpoint == "last":
        return CHECKPOINT_FILE
    if checkpoint != "best":
        raise ConfigError(f"checkpoint = {checkpoint!r} is not 'best' or 'last'")
    if not (run_dir / BEST_FILE).is_file() and (run_dir / CHECKPOINT_FILE).is_file():
        raise CheckpointError(
            f"'{run_dir}' has no {BEST_FILE}: it was trained without a validation split "
            "(train.validation = 0); use its last state (--checkpoint last)"
        )
    return BEST_FILE


def load_program(
    run_dir: str | Path, device: str = "auto", model: Any = None, checkpoint: Checkpoint = None
) -> tuple[Program, Config, dict[str, Any]]:
    """:func:`load_run`, the model as the contract sees it
    (:class:`~pyrovae.models.program.Program`): what the commands work with."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    dev = select_device(device)
    name = checkpoint_file(run_dir, checkpoint)
    state = load_checkpoint(run_dir, map_location=dev, name=name)
    state["checkpoint"] = "best" if name == BEST_FILE else "last"
    program = build_model(
        config, _run_model(run_dir, state, model), program_source=run_dir / PROGRAM_FILE
    ).to(dev)
    try:
        program.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint in '{run_dir}' does not match its config.toml ({str(exc).splitlines()[0]})"
        ) from None
    program.eval()
    return program, config, state
