"""The built-in loggers: callbacks (:mod:`~pyrovae.training.callbacks`) chosen in ``[log]``.

* ``csv = true``: ``RUN/metrics.csv``, every metrics row (rewritten atomically each epoch);
* ``tensorboard = true``: TensorBoard event files in ``RUN/tensorboard`` (torch's
  :class:`~torch.utils.tensorboard.SummaryWriter`; ``pip install 'pyrovae[tensorboard]'``);
* ``mlflow = true``: an MLflow run (``pip install 'pyrovae[mlflow]'``) in ``log.mlflow_uri``
  (default: a local store in the run directory, ``RUN/mlflow.db`` with the artifacts in
  ``RUN/mlartifacts``), experiment ``log.mlflow_experiment``; a resumed
  run directory goes on in the MLflow run it started.

TensorBoard and MLflow get every number of each epoch's metrics row as a scalar
(``train_elbo``, ``test_elbo`` in nats per example, ``examples_per_second``, ``wall_time``, and
whatever else the run reports, such as a learning rate or a validation ELBO), the resolved
config as hyper-parameters, and, every ``log.images_every`` epochs, the samples and
reconstructions (in the examples' own channels: grey or colour) and the KL of each latent
dimension (:func:`~pyrovae.evaluation.kl_per_dimension`, in nats per example, on the first
:data:`KL_EXAMPLES` test examples) as a histogram, where the model has a single latent space of
Normal factors. Step rows (``log.every_steps``) are logged as the scalars
``step/train_elbo``... at their step. Only rank 0 of a ``torchrun`` run logs (the loggers are
made there alone).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..atomic import atomic_write_bytes
from ..config import Config, dumps_toml
from ..errors import ConfigError, PyrovaeError
from .callbacks import Callback, Pictures
from .run_dir import CSV_FILE, MLFLOW_ARTIFACTS, MLFLOW_DB, STEPS_CSV_FILE, TENSORBOARD_DIR

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = [
    "CSV_FILE",
    "KL_EXAMPLES",
    "TENSORBOARD_DIR",
    "CSVLogger",
    "MLflowLogger",
    "TensorBoardLogger",
    "flat_config",
    "loggers_from_config",
]

#: test examples the KL per latent dimension is averaged over
KL_EXAMPLES = 1000
#: the row keys that are not measurements (the step, the process count)
NOT_SCALARS = ("epoch", "step", "world_size")


def _missing_extra(key: str, package: str, extra: str) -> ConfigError:
    return ConfigError(
        f"log.{key} = true needs the {package} package, which is not installed: "
        f"pip install 'pyrovae[{extra}]'"
    )


def loggers_from_config(config: Config) -> list[Callback]:
    """The loggers the resolved ``[log]`` section asks for (their packages imported now, so a
    missing optional extra is refused before training starts)."""
    log = config["log"]
    loggers: list[Callback] = []
    if log["csv"]:
        loggers.append(CSVLogger())
    if log["tensorboard"]:
        loggers.append(TensorBoardLogger())
    if log["mlflow"]:
        loggers.append(MLflowLogger(log["mlflow_uri"], log["mlflow_experiment"]))
    return loggers


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config's keys as ``"section.key": value`` (nested tables joined with dots; lists
    as their text), the hyper-parameters the loggers record."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row that are measurements (not ``epoch``, ``world_size``)."""
    return {
        k: float(v)
        for k, v in row.items()
        if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _run_dir(trainer: Trainer, logger: str) -> Path:
    if trainer.run_dir is None:
        raise ConfigError(
            f"log.{logger} = true writes into the run directory; give one (pyrovae.train(config, "
            "out=...), pyrovae train --out)"
        )
    return trainer.run_dir


def images(pictures: Pictures, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """``samples`` and ``reconstructions`` (originals above their reconstructions) as
    ``(N, C, H, W)`` float images in [0, 1] on the CPU, in the examples' own channels."""
    as_images = lambda t: t.detach().float().cpu().reshape(-1, *shape).clamp(0, 1)  # noqa: E731
    pairs = torch.cat([as_images(pictures.originals), as_images(pictures.reconstructions)])
    return {"samples": as_images(pictures.samples), "reconstructions": pairs}


def kl_dimensions(trainer: Trainer) -> torch.Tensor | None:
    """KL(q(z_d|x) || p(z_d)) per latent dimension d on the first test examples, ``(L,)`` in
    nats per example; ``None`` where the model has no single latent space of Normal factors."""
    from ..evaluation.metrics import kl_per_dimension

    x = trainer.data.test_images[:KL_EXAMPLES]
    y = trainer.program.model_labels(trainer.data.test_labels[:KL_EXAMPLES])
    try:
        return kl_per_dimension(trainer.program, x, y).cpu()
    except ConfigError:  # no single latent space, or not one Normal per dimension
        return None


class CSVLogger(Callback):
    """``RUN/metrics.csv``: one row per epoch, a column per key of the metrics rows (in the
    order they first appear); with ``log.every_steps``, ``RUN/steps.csv`` likewise holds this
    call's step rows. Rewritten atomically at each epoch end."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        run_dir = _run_dir(trainer, "csv")
        _write_csv(run_dir / CSV_FILE, trainer.metrics)
        if trainer.step_metrics:
            _write_csv(run_dir / STEPS_CSV_FILE, trainer.step_metrics)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    atomic_write_bytes(path, lambda f: f.write(data), run_file=True)


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``RUN/tensorboard``: scalars per epoch, images and the KL
    histogram every ``log.images_every`` epochs, the config as text at the start and as
    hyper-parameters (with the last epoch's ELBOs) at the end."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing_extra("tensorboard", "tensorboard", "tensorboard") from None
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        logdir = _run_dir(trainer, "tensorboard") / TENSORBOARD_DIR
        self.writer = self._writer_class(log_dir=str(logdir))
        toml = dumps_toml(trainer.config).replace("\n", "  \n")  # Markdown line breaks
        self.writer.add_text("config", toml, global_step=trainer.epoch)

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        for name, value in scalars(row).items():
            self.writer.add_scalar(f"step/{name}", value, row["step"])

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        epoch = row["epoch"]
        for name, value in scalars(row).items():
            self.writer.add_scalar(name, value, epoch)
        pictures = trainer.pictures
        if pictures is not None and pictures.epoch == epoch:
            for name, batch in images(pictures, trainer.program.example_shape()).items():
                self.writer.add_images(name, batch, epoch)
            kl = kl_dimensions(trainer)
            if kl is not None:
                self.writer.add_histogram("kl_per_dimension", kl, epoch)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        if trainer.metrics:
            final = {f"hparam/{k}": v for k, v in scalars(trainer.metrics[-1]).items()}
            self.writer.add_hparams(flat_config(trainer.config), final, run_name=".")
        self.writer.close()


class MLflowLogger(Callback):
    """An MLflow run, through :class:`mlflow.MlflowClient`: the config as parameters, the
    metrics rows as metrics (step = epoch), the pictures as image artifacts and the KL per
    latent dimension as a JSON artifact every ``log.images_every`` epochs. The MLflow run is
    tagged with the run directory, so that a resumed run goes on in it."""

    #: the tag that names the run directory of an MLflow run
    TAG = "pyrovae.run_dir"

    def __init__(self, uri: str, experiment: str) -> None:
        try:
            import mlflow
        except ImportError:
            raise _missing_extra("mlflow", "mlflow", "mlflow") from None
        self._mlflow = mlflow
        self.uri, self.experiment = uri, experiment
        self.client: Any = None
        self.run_id = ""

    def on_train_start(self, trainer: Trainer) -> None:
        run_dir = _run_dir(trainer, "mlflow").resolve()
        uri = self.uri or f"sqlite:///{run_dir / MLFLOW_DB}"
        # a local store keeps its artifacts in the run directory too
        artifacts = None if self.uri else (run_dir / MLFLOW_ARTIFACTS).as_uri()
        try:
            self.client = self._mlflow.MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(self.experiment)
            exp_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(self.experiment, artifact_location=artifacts)
            )
            runs = self.client.search_runs(
                [exp_id], filter_string=f"tags.`{self.TAG}` = '{run_dir}'", max_results=1
            )
            if runs:
                self.run_id = runs[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                return
            self.run_id = self.client.create_run(exp_id, tags={self.TAG: str(run_dir)}).info.run_id
            params = [
                self._mlflow.entities.Param(k, str(v)[:6000])
                for k, v in flat_config(trainer.config).items()
            ]
            self.client.log_batch(self.run_id, params=params)
        except self._mlflow.exceptions.MlflowException as exc:
            raise PyrovaeError(f"MLflow at {uri!r}: {str(exc).splitlines()[0]}") from None

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        Metric = self._mlflow.entities.Metric
        metrics = [Metric(f"step/{k}", v, now, row["step"]) for k, v in scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        epoch = row["epoch"]
        Metric = self._mlflow.entities.Metric
        metrics = [Metric(k, v, now, epoch) for k, v in scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        pictures = trainer.pictures
        if pictures is not None and pictures.epoch == epoch:
            for name, batch in images(pictures, trainer.program.example_shape()).items():
                grid = _grid(batch)
                self.client.log_image(self.run_id, grid, f"{name}/epoch_{epoch:04d}.png")
            kl = kl_dimensions(trainer)
            if kl is not None:
                self.client.log_dict(
                    self.run_id,
                    {"epoch": epoch, "kl_per_dimension": kl.tolist()},
                    f"kl_per_dimension/epoch_{epoch:04d}.json",
                )

    def on_train_end(self, trainer: Trainer) -> None:
        if self.client is not None and self.run_id:
            self.client.set_terminated(self.run_id)


def _grid(batch: torch.Tensor) -> Any:
    """``(N, C, H, W)`` images in [0, 1] as one ``(H', W', C)`` uint8 array (torchvision's
    grid), the layout image artifacts take."""
    from torchvision.utils import make_grid

    grid = make_grid(batch, nrow=8, padding=1, pad_value=1.0)
    if batch.shape[1] == 1:
        grid = grid[:1]
    return (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
