"""The training loop: an ELBO minimised with a torch optimizer, checkpointed each epoch.

The objective is a Pyro :class:`~pyro.infer.ELBO`; its ``differentiable_loss(model, guide,
x, y)`` is the negative bound for a batch, which the optimizer of ``train.optimizer`` (torch's
Adam by default) minimises over ``vae.parameters()`` (the same objective and update as
``pyro.infer.SVI`` with ``pyro.optim.Adam``, with one fused optimizer for all parameters), at
the learning rate of ``train.lr_schedule`` (stepped once per epoch), the gradient's norm
clipped to ``train.grad_clip`` (:mod:`pyrovae.training.optim`). The KL weight of the
objective (beta, warm-up) is applied to the programs' latent sites from outside them
(:func:`~pyrovae.infer.scale_latents`).

The hot loop (:meth:`Trainer.train_step`) is kept free of per-step overhead that the model does
not need: the VAE's parameters are not re-registered in Pyro's param store each step (the
optimizer holds them), Pyro's validation runs on the first step of each epoch only, the other
steps replay the loss-and-gradient graph recorded from the Pyro programs
(:class:`~pyrovae.infer.replay.ELBOGradient`; same numbers, without Pyro's per-step Python), the
data batches are sliced from tensors already on the device, and the loss, with its rate and
distortion (read from the step's own draws: :mod:`~pyrovae.infer.elbo_terms`), is summed on
the device and read back once per epoch (or when a progress bar shows it), so that on a GPU no
step waits for the host. The optimizer step, the clipping
(:func:`torch.nn.utils.clip_grad_norm_`, ``foreach``, no read-back) and the learning rate are
outside the recorded graph: a schedule never forces a new record.

With a validation split (``train.validation``) the validation ELBO is computed once per epoch
(with the test ELBO's fixed draws); the best epoch's state is kept as ``best.pt`` and
``train.early_stopping`` stops training when it stops improving
(:class:`~pyrovae.training.selection.Selection`). The schedule's and the selection's state are
in the checkpoint, so a resumed run ends bitwise as an uninterrupted one.

Under ``torchrun`` (:mod:`pyrovae.distributed`) each process trains on its part of every
global batch of ``train.batch_size`` examples and the gradients are averaged in one all-reduce
per step (:class:`~pyrovae.distributed.GradientAllReduce`), so every process takes the step
one process would take on the whole batch; rank 0's random stream is that of a one-process
run, rank ``r > 0`` draws its own (seeded per epoch), and the per-epoch test ELBO is computed
by rank 0 and shared.

Divergence is detected once per epoch, from numbers read back then anyway: a non-finite loss
or parameter, or an epoch loss :data:`DIVERGENCE_FACTOR` times larger than the epoch's first
batch loss (plus one nat per data element), stops training with a
:class:`~pyrovae.errors.DivergenceError` before that epoch's checkpoint is written, so the run
directory keeps the last good one.
"""

from __future__ import annotations

import itertools
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pyro
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..config import Config, TrainConfig
from ..data import ImageData, StreamingImageData
from ..errors import CheckpointError, ConfigError, DivergenceError, WriteError
from ..evaluation.metrics import elbo_per_example
from ..infer.objectives import OBJECTIVES, Objective
from ..infer.program_check import check_program_sites
from ..infer.replay import ELBOGradient
from ..models.program import Program, as_program
from ..rng import derived_seed, fixed_rng
from .callbacks import Callback, Pictures, check_callbacks
from .optim import LR_SCHEDULES, OPTIMIZERS
from .run_dir import BEST_FILE, CHECKPOINT_FILE, PICTURE_FILE, save_checkpoint, write_metrics
from .selection import Selection

__all__ = ["EVAL_SEED", "PICTURE_FILE", "TIMING_KEYS", "Trainer"]

#: seed of the draws used for the per-epoch test ELBO (same for every epoch and run)
EVAL_SEED = 1234
#: the keys of a metrics row that time the run (they differ between two runs of the same
#: numbers): the training examples per second of the epoch, and the seconds since the run
#: started (resumes included)
TIMING_KEYS = ("examples_per_second", "wall_time")
#: an epoch's mean loss per example more than this many times its first batch's (plus one
#: nat per data element) means training diverged; a learning model shrinks its loss, and
#: a too large learning rate multiplies it by 10^7 and more within an epoch
DIVERGENCE_FACTOR = 1e4


@dataclass
class Trainer:
    """Trains ``vae`` on ``data`` as the resolved ``config`` says, writing to ``run_dir``.

    Attributes:
        vae: the model (on ``device``): a :class:`~pyrovae.models.program.Program` such as
            :class:`~pyrovae.VAE`, or a module of one's own (adapted once, as
            :attr:`program`).
        data: train/test tensors on ``device``, or the training set streamed to it.
        config: the resolved run config.
        device: where the model and data are.
        run_dir: where the checkpoint, metrics and pictures go (``None``: nowhere).
        progress: show tqdm progress bars.
        callbacks: called around the epochs (:mod:`~pyrovae.training.callbacks`); one may
            set :attr:`should_stop` to end training after the current epoch.
        pictures: the samples and reconstructions last drawn (every ``log.images_every``
            epochs), or ``None``.
        objective: the objective of the config's ``[objective]`` section (built here).
        program: ``vae`` as the contract sees it (:func:`~pyrovae.models.program.as_program`).
    """

    vae: nn.Module
    data: ImageData | StreamingImageData
    config: Config
    device: torch.device
    run_dir: Path | None = None
    progress: bool = True
    callbacks: list[Callback] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.callbacks = check_callbacks(self.callbacks)
        self._init_observation()
        train = self.config["train"]
        self.objective: Objective = OBJECTIVES.build(self.config["objective"], "objective")
        self.elbo = self.objective.elbo()
        self.program: Program = as_program(self.vae, self.data.image_shape)
        if not any(p.requires_grad for p in self.program.parameters()):
            raise ConfigError(
                f"the model ({type(self.vae).__name__}) has no parameters to train: a program's "
                "learned state is its nn.Module parameters (nn.Parameter, submodules)"
            )
        #: the loss and its gradient per batch: recorded once, then replayed (unless
        #: train.replay_steps = false or Pyro validation is on)
        self.elbo_gradient = ELBOGradient(self.elbo, self.program, replay=train["replay_steps"])
        self._build_recipe(train)
        #: weight of the latent sites (beta x KL warm-up), refilled in place every step so
        #: the loop never syncs with the device; None when it is always 1
        self.kl_scale = torch.ones((), device=self.device) if self.objective.scales_kl else None
        self.data_generator = torch.Generator(device=self.device)
        self.data_generator.manual_seed(train["seed"])
        #: the process's place in a run of several (torchrun): its part of every global
        #: batch, and the one all-reduce of the gradients per step
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        #: the size of the global batch whose part the next step gets (set by train_epoch)
        self.global_batch = train["batch_size"]
        self.gradient_all_reduce = None
        if self.world_size > 1:
            distributed.check_global_batch(train["batch_size"])
            self.gradient_all_reduce = distributed.GradientAllReduce(
                list(self.elbo_gradient.params.values())
            )
            for tensor in self.program.state_dict().values():  # every process starts from rank 0's
                distributed.broadcast_tensor(tensor)
        self.epoch = 0
        self.metrics: list[dict[str, Any]] = []
        # the data, once: shapes, dtype, device and support (dynamically binarized training
        # images are probabilities, binarized per batch)
        data = self.data
        #: elements per example (the divergence test's scale)
        self.data_dim: int = self.program.data_dim or data.data_dim
        train_x, train_y = data.train_preview
        self.program.check_data(
            train_x,
            self.program.model_labels(train_y),
            name="the training images",
            grey_levels=data.binarize == "dynamic",
        )
        self.program.check_data(
            data.test_images, self.program.model_labels(data.test_labels), name="the test images"
        )
        check_program_sites(
            self.program, data.test_images[:2], self.program.model_labels(data.test_labels[:2])
        )
        if not self.program.trains_with_any_objective:
            self.objective.check_program(self.program, data.test_images[:2], data.test_labels[:2])

    def _build_recipe(self, train: TrainConfig) -> None:
        """The optimizer, the learning-rate schedule, the clipped parameters and the model
        selection of ``[train]`` (:mod:`pyrovae.training.optim`)."""
        # by default one fused Adam kernel over all parameters, on CPU as on CUDA (faster than
        # foreach: see docs/performance.md)
        self.optimizer = OPTIMIZERS.build(train["optimizer"], "train.optimizer").build(
            self.program.parameters(), train["lr"]
        )
        #: the learning-rate scheduler, stepped at each epoch's end (None: the rate stays)
        self.lr_schedule = LR_SCHEDULES.build(
            train["lr_schedule"], "train.lr_schedule", epochs=train["epochs"]
        ).build(self.optimizer)
        #: the parameters whose gradient norm train.grad_clip bounds (empty: no clipping)
        self.clipped = list(self.elbo_gradient.params.values()) if train["grad_clip"] else []
        #: the best validation epoch and the early-stopping counter
        self.selection = Selection(**train["early_stopping"])

    def _init_observation(self) -> None:
        """What the callbacks and loggers read besides :attr:`metrics`."""
        #: set by a callback to end training after the current epoch
        self.should_stop = False
        #: the last step's ``(distortion, rate)`` (see :meth:`train_step`) and the last
        #: epoch's ``train_rate`` and ``train_distortion`` (nats per example)
        self.step_terms: tuple[torch.Tensor, torch.Tensor] | None = None
        self.epoch_terms: dict[str, float] = {}
        #: the step rows of this call's training (``log.every_steps``), and the running sums
        #: (loss, distortion, rate, examples, time) when the last one was read
        self.step_metrics: list[dict[str, Any]] = []
        self._interval_start: tuple[float, float, float, int, float] = (0.0, 0.0, 0.0, 0, 0.0)
        self.pictures: Pictures | None = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {
            "epoch": self.epoch,
            "config": self.config,
            "model": self.program.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": self.data_generator.get_state(),
            "world_size": self.world_size,
            "selection": self.selection.state_dict(),
        }
        if self.lr_schedule is not None:
            state["lr_schedule"] = self.lr_schedule.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if not self.program.rebuilt_from_config and not self.config["model"]["program"]:
            # a module given in Python: the run directory cannot rebuild it (see load_run)
            cls = type(self.program.module)
            state["program"] = f"{cls.__module__}.{cls.__qualname__}"
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.program.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self._check_optimizer_state()
            if self.lr_schedule is not None:
                self.lr_schedule.load_state_dict(state["lr_schedule"])
            if "selection" in state:
                self.selection.load_state_dict(state["selection"])
            self.epoch = int(state["epoch"])
            torch.set_rng_state(state["torch_rng"].cpu())
            self._load_device_rng_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(
                f"checkpoint does not match this model/config ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]})"
            ) from None

    def _load_device_rng_state(self, state: dict[str, Any]) -> None:
        """Restore the generators on the device: the data generator (shuffling, dynamic
        binarization) and, on CUDA, the global CUDA generator (Monte Carlo draws).

        A checkpoint written on the other kind of device (it holds ``cuda_rng`` exactly when
        written on CUDA) cannot continue their streams: a CPU generator's state is not a CUDA
        generator's. The run then continues with this device's draws, seeded from
        ``train.seed`` and the epoch (as a run of another number of processes continues with
        its own draws)."""
        written_on_cuda = "cuda_rng" in state
        if written_on_cuda == (self.device.type == "cuda"):
            self.data_generator.set_state(state["data_rng"].cpu())
            if written_on_cuda:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
            return
        seed = self.config["train"]["seed"]
        self.data_generator.manual_seed(derived_seed(seed, "data", self.epoch))
        if self.device.type == "cuda":
            torch.cuda.manual_seed(derived_seed(seed, "cuda", self.epoch))

    def _check_optimizer_state(self) -> None:
        """Adam's moments must have their parameter's shape (a mismatch would fail only at the
        next step)."""
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                for name, value in self.optimizer.state.get(p, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() and value.shape != p.shape:
                        raise ValueError(
                            f"optimizer state {name!r} has shape {tuple(value.shape)}, its "
                            f"parameter {tuple(p.shape)}"
                        )

    # ------------------------------------------------------------------ loop
    def train_step(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """One optimizer step on the batch ``x`` (``(N, data_dim)``, labels ``y``).

        In a run of several processes ``x`` is this process's part (possibly empty) of a
        global batch of :attr:`global_batch` examples; the returned loss and the step are
        then those of the global batch.

        Returns the batch's loss (negative ELBO summed over the batch, nats) as a detached
        device tensor: nothing here waits for the device. :attr:`step_terms` is then the
        ``(distortion, rate)`` of this process's part of the batch (nats per batch, device
        tensors read from the step's own draws: :mod:`~pyrovae.infer.elbo_terms`), or
        ``None``. Runs under the caller's Pyro
        validation setting: with validation on, the Pyro programs run (and are checked);
        with it off, the recorded graph is replayed (see :class:`~pyrovae.infer.ELBOGradient`).
        The optimizer updates ``vae.parameters()`` directly; nothing is registered in Pyro's
        param store."""
        labels = self.program.model_labels(y)
        if self.gradient_all_reduce is None:
            loss = self.elbo_gradient(x, labels, self.kl_scale)
            self.step_terms = self.elbo_gradient.terms
        else:
            local = x.shape[0]
            part = self.elbo_gradient(x, labels, self.kl_scale) if local else None
            self.step_terms = self.elbo_gradient.terms if local else None
            loss = self.gradient_all_reduce(part, local, self.global_batch)
        if self.clipped:  # on the device, no read-back (foreach kernels)
            torch.nn.utils.clip_grad_norm_(
                self.clipped, self.config["train"]["grad_clip"], foreach=True
            )
        self.optimizer.step()
        return loss

    def _update_kl_scale(self, step: int, num_batches: int) -> None:
        """Set the latent-site weight for ``step`` of the current epoch (in place: no host
        sync)."""
        if self.kl_scale is not None:
            self.kl_scale.fill_(self.objective.kl_scale(self.epoch, step, num_batches))

    def train_epoch(self) -> float:
        """One pass over the training set; returns the mean training ELBO (nats/example), or
        the bound with the KL weighted by beta and warm-up when the objective asks for it."""
        batch_size = self.config["train"]["batch_size"]
        self.program.train()
        total = torch.zeros((), device=self.device)
        seen = 0
        num_batches = self.data.num_train_batches(batch_size)
        num_train = self.data.num_train
        if self.rank:  # rank 0 draws a one-process run's numbers; the others their own
            seed = derived_seed(self.config["train"]["seed"], "rank", self.rank, self.epoch)
            torch.manual_seed(seed)
        bar = tqdm(
            self.data.train_batches(
                batch_size, self.data_generator, rank=self.rank, world_size=self.world_size
            ),
            total=num_batches,
            desc=f"epoch {self.epoch + 1}/{self.config['train']['epochs']}",
            disable=not self.progress,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        batches = iter(bar)
        # validate distributions, shapes and the loss on the first step only: it costs time
        # and reads values back from the device
        first = torch.zeros((), device=self.device)
        first_size = 1
        #: the epoch's distortion and rate sums (nats), added up on the device
        terms = torch.zeros(2, device=self.device)
        self._interval_start = (0.0, 0.0, 0.0, 0, time.perf_counter())
        for x, y in itertools.islice(batches, 1):
            self._update_kl_scale(0, num_batches)
            seen = first_size = self.global_batch = min(batch_size, num_train)
            with pyro.validation_enabled(True):
                first = self.train_step(x, y)
                total += first
                self._add_terms(terms)
            self._step_row(0, num_batches, total, terms, seen)
        with pyro.validation_enabled(False):
            for step, (x, y) in enumerate(batches, start=1):
                self._update_kl_scale(step, num_batches)
                size = self.global_batch = min(batch_size, num_train - step * batch_size)
                batch_loss = self.train_step(x, y)
                total += batch_loss
                self._add_terms(terms)
                seen += size
                self._step_row(step, num_batches, total, terms, seen)
                if self.progress and step % 50 == 0:
                    # a host sync, only when a progress bar shows it
                    bar.set_postfix(loss=f"{batch_loss.item() / size:.2f}")
        return self._end_epoch(total, first, first_size, terms, seen)

    def _end_epoch(
        self,
        total: torch.Tensor,
        first: torch.Tensor,
        first_size: int,
        terms: torch.Tensor,
        seen: int,
    ) -> float:
        """The epoch's mean training ELBO from its sums (see :meth:`train_epoch`), its rate
        and distortion in :attr:`epoch_terms`; a :class:`DivergenceError` when it diverged."""
        # one read of the epoch's numbers: the loss sum, the first batch's loss, whether
        # every parameter is finite, and the distortion and rate sums
        finite = torch.stack([p.detach().isfinite().all() for p in self.program.parameters()]).all()
        if self.world_size > 1 and self.elbo_gradient.loss.with_terms:
            distributed.all_reduce_sum(terms)  # every process's parts of the batches
        loss_sum, first_loss, params_finite, distortion, rate = torch.cat(
            [torch.stack([total, first.to(total.dtype), finite.to(total.dtype)]), terms]
        ).tolist()
        self.epoch_terms = (
            {"train_rate": rate / seen, "train_distortion": distortion / seen}
            if self.elbo_gradient.loss.with_terms
            else {}
        )
        mean_loss = loss_sum / seen
        if not params_finite:
            self._diverged("a parameter of the model became NaN or infinite")
        reference = abs(first_loss / first_size) + self.data_dim
        if not math.isfinite(mean_loss) or mean_loss > DIVERGENCE_FACTOR * reference:
            self._diverged(
                f"the training ELBO is {-mean_loss:.4g} nats/example (the epoch's first batch: "
                f"{-first_loss / first_size:.4g})"
            )
        return -mean_loss

    def _step_row(
        self, step: int, num_batches: int, total: torch.Tensor, terms: torch.Tensor, seen: int
    ) -> None:
        """After batch ``step`` (from 0) of the epoch, every ``log.every_steps`` batches: the
        step row of the batches since the last one (one read of the running sums, between two
        steps), appended to :attr:`step_metrics` and given to the callbacks' ``on_step_end``."""
        every = self.config["log"]["every_steps"]
        if not every or (step + 1) % every:
            return
        loss_sum, distortion, rate = torch.cat([total.reshape(1), terms]).tolist()
        last_loss, last_distortion, last_rate, last_seen, last_time = self._interval_start
        now = time.perf_counter()
        n = seen - last_seen
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.epoch * num_batches + step + 1,
            "train_elbo": -(loss_sum - last_loss) / n,
        }
        if self.elbo_gradient.loss.with_terms and self.world_size == 1:  # terms: this process's
            row["train_rate"] = (rate - last_rate) / n
            row["train_distortion"] = (distortion - last_distortion) / n
        row["examples_per_second"] = n / (now - last_time)
        self._interval_start = (loss_sum, distortion, rate, seen, now)
        self.step_metrics.append(row)
        for callback in self.callbacks:
            callback.on_step_end(self, row)

    def _add_terms(self, sums: torch.Tensor) -> None:
        """Add the last step's ``(distortion, rate)`` to ``sums`` on the device (no read)."""
        if self.step_terms is not None:
            sums[0] += self.step_terms[0]
            sums[1] += self.step_terms[1]

    def _diverged(self, what: str) -> NoReturn:
        """Raise the :class:`~pyrovae.errors.DivergenceError` of the current epoch."""
        if self.run_dir is None:
            kept = ""
        elif self.epoch:
            kept = f"; '{self.run_dir}' keeps the checkpoint of epoch {self.epoch}"
        else:
            kept = f"; '{self.run_dir}' has no checkpoint (no epoch finished)"
        lr = self.config["train"]["lr"]
        raise DivergenceError(
            f"training diverged in epoch {self.epoch + 1}: {what}{kept}; lower train.lr "
            f"(now {lr:g}) and start a new run"
        )

    def test_elbo(self) -> float:
        """Mean test-set ELBO (nats per example), with fixed draws (computed by rank 0 and
        shared with the other processes of a run of several)."""
        return self._mean_elbo(self.data.test_images, self.data.test_labels)

    def validation_elbo(self) -> float | None:
        """Mean ELBO of the validation split (nats per example; the test ELBO's fixed
        draws), or ``None`` without one (``train.validation = 0``)."""
        images, labels = self.data.validation_images, self.data.validation_labels
        if images is None or labels is None:
            return None
        return self._mean_elbo(images, labels)

    def _mean_elbo(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.program.eval()
        mean = torch.zeros((), dtype=images.dtype, device=self.device)
        if distributed.is_main():
            elbo = elbo_per_example(
                self.program,
                images,
                self.program.model_labels(labels),
                batch_size=self.config["train"]["eval_batch_size"],
                seed=EVAL_SEED,
            )
            mean = elbo.mean()
        return distributed.broadcast_tensor(mean).item()

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``config["train"]["epochs"]``, until early stopping
        (``train.early_stopping``) or until a callback sets :attr:`should_stop`, checkpointing
        and logging each epoch; the callbacks (:mod:`~pyrovae.training.callbacks`) are called
        around it."""
        epochs = self.config["train"]["epochs"]
        self.should_stop = False
        for callback in self.callbacks:
            callback.on_train_start(self)
        try:
            while self.epoch < epochs and not self.should_stop and not self.selection.stopped:
                self._fit_epoch(epochs)
            drawn = self.pictures is not None and self.pictures.epoch == self.epoch
            if self.run_dir is not None and self._images and not drawn:
                self.write_picture(self.run_dir / PICTURE_FILE)
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
        return self.metrics

    @property
    def _images(self) -> bool:
        """Whether the examples are images (pictures are drawn of images, not of vectors)."""
        return len(self.data.image_shape) == 3

    def _fit_epoch(self, epochs: int) -> None:
        """One epoch: train, test, validate, step the schedule and the selection, the metrics
        row (ELBOs in nats per example, the epoch's ``lr``), the checkpoint (and ``best.pt``),
        the pictures every ``log.images_every`` epochs, and the callbacks."""
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        train_elbo = self.train_epoch()  # ends with one read from the device: timed right
        train_seconds = time.perf_counter() - start
        test_elbo = self.test_elbo()
        if not math.isfinite(test_elbo) or -test_elbo > DIVERGENCE_FACTOR * (
            abs(train_elbo) + self.data_dim
        ):
            self._diverged(
                f"the test ELBO is {test_elbo:.4g} nats/example (training: {train_elbo:.4g})"
            )
        validation_elbo = self.validation_elbo()
        self.epoch += 1
        if self.lr_schedule is not None:
            self.lr_schedule.step()
        seconds = time.perf_counter() - start
        before = self.metrics[-1].get("wall_time", 0.0) if self.metrics else 0.0
        row = {
            "epoch": self.epoch,
            "train_elbo": train_elbo,
            "test_elbo": test_elbo,
            "world_size": self.world_size,
            "lr": float(lr),
            **({} if validation_elbo is None else {"validation_elbo": validation_elbo}),
            **self.epoch_terms,
            "examples_per_second": self.data.num_train / train_seconds,
            "wall_time": before + seconds,
        }
        best = validation_elbo is not None and self.selection.update(self.epoch, validation_elbo)
        self.metrics.append(row)
        if self.run_dir is not None:
            self._write_epoch(self.run_dir, best)
        every = self.config["log"]["images_every"]
        if self._images and every and (self.epoch % every == 0 or self.epoch == epochs):
            self.pictures = self.draw_pictures()
            if self.run_dir is not None:
                self.write_picture(self.run_dir / PICTURE_FILE, self.pictures)
        if self.progress:
            self._report_epoch(row, epochs, seconds)
        for callback in self.callbacks:
            callback.on_epoch_end(self, row)
        if self.world_size > 1:  # rank 0's callbacks decide for every process
            self.should_stop = bool(distributed.broadcast_object(self.should_stop))

    def _report_epoch(self, row: dict[str, Any], epochs: int, seconds: float) -> None:
        """The epoch's progress line (and early stopping's one line when it stops)."""
        validation = row.get("validation_elbo")
        tqdm.write(
            f"epoch {self.epoch}/{epochs}: train ELBO {row['train_elbo']:.2f}, "
            + ("" if validation is None else f"validation ELBO {validation:.2f}, ")
            + f"test ELBO {row['test_elbo']:.2f} nats/example, lr {row['lr']:.3g} "
            f"({seconds:.1f} s)",
            file=sys.stderr,
        )
        if self.selection.stopped:
            tqdm.write(self.selection.summary(), file=sys.stderr)

    def _write_epoch(self, run_dir: Path, best: bool = False) -> None:
        """Write the metrics, the best state (when this epoch is the best on the validation
        split), then the checkpoint (resume drops metrics rows newer than the checkpoint, and
        redoes the epoch); a failed write keeps the previous checkpoint and says how to go
        on."""
        try:
            write_metrics(run_dir, self.metrics)
            state = self.state_dict()
            if best:
                save_checkpoint(run_dir, state, BEST_FILE)
            save_checkpoint(run_dir, state, CHECKPOINT_FILE)
        except WriteError as exc:
            kept = f"epoch {self.epoch - 1}" if self.epoch > 1 else "none yet"
            raise WriteError(
                f"{exc} (the run's checkpoint is kept: {kept}; then `pyrovae train --resume "
                f"{shlex.quote(str(run_dir))}`)"
            ) from None

    def draw_pictures(self) -> Pictures:
        """Samples from the model (64, fixed draws) and reconstructions of the first 32 test
        examples: the draws are made with their own seed, and the training stream is left as
        it was (:func:`~pyrovae.rng.fixed_rng`)."""
        self.program.eval()
        x = self.data.test_images[:32]
        with fixed_rng(EVAL_SEED, self.device):
            samples = self.program.sample(64)
            recon = self.program.reconstruct(x)
        return Pictures(self.epoch, samples, x, recon)

    def write_picture(self, path: Path, pictures: Pictures | None = None) -> Path:
        """``pictures`` (default: drawn now, :meth:`draw_pictures`) as a PNG at ``path``,
        written atomically."""
        from ..viz.plots import plot_samples_and_reconstructions, save_figure

        pictures = pictures if pictures is not None else self.draw_pictures()
        last = self.metrics[-1] if self.metrics else None
        title = (
            (
                f"{self.data.name}, epoch {last['epoch']}: test ELBO {last['test_elbo']:.2f} "
                "nats/example"
            )
            if last
            else self.data.name
        )
        figure = plot_samples_and_reconstructions(
            pictures.samples,
            pictures.originals,
            pictures.reconstructions,
            self.program.example_shape(),
            title=title,
        )
        return save_figure(figure, path, run_file=True)
