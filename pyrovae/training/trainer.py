"""The training loop: an ELBO minimised with a torch Adam optimizer, checkpointed each epoch.

The objective is a Pyro :class:`~pyro.infer.ELBO`; its ``differentiable_loss(model, guide,
x, y)`` is the negative bound for a batch, which torch's Adam minimises over
``vae.parameters()`` (the same objective and update as ``pyro.infer.SVI`` with
``pyro.optim.Adam``, with one fused optimizer for all parameters). The KL weight of the
objective (beta, warm-up) is applied to the programs' latent sites from outside them
(:func:`~pyrovae.infer.scale_latents`).

The hot loop (:meth:`Trainer.train_step`) is kept free of per-step overhead that the model does
not need: the VAE's parameters are not re-registered in Pyro's param store each step (the
optimizer holds them), Pyro's validation runs on the first step of each epoch only, the other
steps replay the loss-and-gradient graph recorded from the Pyro programs
(:class:`~pyrovae.infer.replay.ELBOGradient`; same numbers, without Pyro's per-step Python), the
data batches are sliced from tensors already on the device, and the loss is summed on the
device and read back once per epoch (or when a progress bar shows it), so that on a GPU no
step waits for the host.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pyro
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..config import Config
from ..data import ImageData, StreamingImageData
from ..errors import CheckpointError, ConfigError, DivergenceError, WriteError
from ..evaluation.metrics import elbo_per_example
from ..infer.objectives import OBJECTIVES, Objective
from ..infer.program_check import check_program_sites
from ..infer.replay import ELBOGradient
from ..models.program import Program, as_program
from ..rng import derived_seed, fixed_rng
from .run_dir import PICTURE_FILE, save_checkpoint, write_metrics

__all__ = ["EVAL_SEED", "PICTURE_FILE", "Trainer"]

#: seed of the draws used for the per-epoch test ELBO (same for every epoch and run)
EVAL_SEED = 1234
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
        objective: the objective of the config's ``[objective]`` section (built here).
        program: ``vae`` as the contract sees it (:func:`~pyrovae.models.program.as_program`).
    """

    vae: nn.Module
    data: ImageData | StreamingImageData
    config: Config
    device: torch.device
    run_dir: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
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
        # one fused Adam kernel over all parameters, on CPU as on CUDA (faster than foreach:
        # see docs/performance.md)
        self.optimizer = torch.optim.Adam(self.program.parameters(), lr=train["lr"], fused=True)
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
        }
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
            self.epoch = int(state["epoch"])
            torch.set_rng_state(state["torch_rng"].cpu())
            self.data_generator.set_state(state["data_rng"].cpu())
            if self.device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(
                f"checkpoint does not match this model/config ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]})"
            ) from None

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
        device tensor: nothing here waits for the device. Runs under the caller's Pyro
        validation setting: with validation on, the Pyro programs run (and are checked);
        with it off, the recorded graph is replayed (see :class:`~pyrovae.infer.ELBOGradient`).
        The optimizer updates ``vae.parameters()`` directly; nothing is registered in Pyro's
        param store."""
        labels = self.program.model_labels(y)
        if self.gradient_all_reduce is None:
            loss = self.elbo_gradient(x, labels, self.kl_scale)
        else:
            local = x.shape[0]
            part = self.elbo_gradient(x, labels, self.kl_scale) if local else None
            loss = self.gradient_all_reduce(part, local, self.global_batch)
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
        for x, y in itertools.islice(batches, 1):
            self._update_kl_scale(0, num_batches)
            seen = first_size = self.global_batch = min(batch_size, num_train)
            with pyro.validation_enabled(True):
                first = self.train_step(x, y)
                total += first
        with pyro.validation_enabled(False):
            for step, (x, y) in enumerate(batches, start=1):
                self._update_kl_scale(step, num_batches)
                size = self.global_batch = min(batch_size, num_train - step * batch_size)
                batch_loss = self.train_step(x, y)
                total += batch_loss
                seen += size
                if self.progress and step % 50 == 0:
                    # a host sync, only when a progress bar shows it
                    bar.set_postfix(loss=f"{batch_loss.item() / size:.2f}")
        # one read of the epoch's numbers: the loss sum, the first batch's loss, and whether
        # every parameter is finite
        finite = torch.stack([p.detach().isfinite().all() for p in self.program.parameters()]).all()
        loss_sum, first_loss, params_finite = torch.stack(
            [total, first.to(total.dtype), finite.to(total.dtype)]
        ).tolist()
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
        self.program.eval()
        mean = torch.zeros((), dtype=self.data.test_images.dtype, device=self.device)
        if distributed.is_main():
            elbo = elbo_per_example(
                self.program,
                self.data.test_images,
                self.program.model_labels(self.data.test_labels),
                batch_size=self.config["train"]["eval_batch_size"],
                seed=EVAL_SEED,
            )
            mean = elbo.mean()
        return distributed.broadcast_tensor(mean).item()

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``config["train"]["epochs"]``, checkpointing and logging each epoch."""
        epochs = self.config["train"]["epochs"]
        while self.epoch < epochs:
            start = time.perf_counter()
            train_elbo = self.train_epoch()
            test_elbo = self.test_elbo()
            if not math.isfinite(test_elbo) or -test_elbo > DIVERGENCE_FACTOR * (
                abs(train_elbo) + self.data_dim
            ):
                self._diverged(
                    f"the test ELBO is {test_elbo:.4g} nats/example (training: {train_elbo:.4g})"
                )
            self.epoch += 1
            row = {
                "epoch": self.epoch,
                "train_elbo": train_elbo,
                "test_elbo": test_elbo,
                "world_size": self.world_size,
            }
            self.metrics.append(row)
            if self.run_dir is not None:
                self._write_epoch(self.run_dir)
            if self.progress:
                tqdm.write(
                    f"epoch {self.epoch}/{epochs}: train ELBO {train_elbo:.2f}, "
                    f"test ELBO {test_elbo:.2f} nats/example "
                    f"({time.perf_counter() - start:.1f} s)",
                    file=sys.stderr,
                )
        if self.run_dir is not None and len(self.data.image_shape) == 3:  # not of vectors
            self.write_picture(self.run_dir / PICTURE_FILE)
        return self.metrics

    def _write_epoch(self, run_dir: Path) -> None:
        """Write the metrics, then the checkpoint (resume drops metrics rows newer than the
        checkpoint); a failed write keeps the previous checkpoint and says how to go on."""
        try:
            write_metrics(run_dir, self.metrics)
            save_checkpoint(run_dir, self.state_dict())
        except WriteError as exc:
            kept = f"epoch {self.epoch - 1}" if self.epoch > 1 else "none yet"
            raise WriteError(
                f"{exc} (the run's checkpoint is kept: {kept}; then `pyrovae train --resume "
                f"{shlex.quote(str(run_dir))}`)"
            ) from None

    def write_picture(self, path: Path) -> Path:
        """Samples from the model and reconstructions of the first test images, as a PNG."""
        from ..viz.plots import plot_samples_and_reconstructions, save_figure

        self.program.eval()
        x = self.data.test_images[:32]
        with fixed_rng(EVAL_SEED, self.device):
            samples = self.program.sample(64)
            recon = self.program.reconstruct(x)
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
            samples, x, recon, self.program.example_shape(), title=title
        )
        return save_figure(figure, path, run_file=True)
