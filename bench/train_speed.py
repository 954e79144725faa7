"""Training speed of pyrovae's Pyro programs against a hand-written PyTorch VAE.

All contenders train the same network (the default MNIST VAE: 784-400-50 MLPs, Bernoulli
pixels, diagonal-Normal guide, standard-Normal prior), from the same initial weights, on the
same dynamically binarized MNIST batches of 128, with the same torch Adam (fused):

(a) ``hand``: a hand-written PyTorch VAE computing each objective's estimator directly
    (single-sample ELBO, analytic-KL ELBO, IWAE bound);
(b) ``pyro SVI``: plain ``SVI(vae.model, vae.guide, pyro.optim.Adam, Trace_ELBO())`` as users
    write it (``pyro.module`` registration, one optimizer per parameter, ``.item()`` per step),
    with Pyro's default validation and with validation off;
(c) ``pyrovae``: :meth:`pyrovae.Trainer.train_step` with each registered objective
    (``trace_elbo``, ``analytic_kl``, ``iwae`` with K=5; objectives this checkout does not
    register are skipped, with a message), as it trains by default (replaying the recorded
    loss-and-gradient graph, :mod:`pyrovae.infer.replay`) and with ``train.replay_steps = false``
    (running the Pyro programs at every step; rows marked "replay off").

Step time: after warm-up, each contender runs ``--steps`` steps on a fixed pool of device
batches per repeat; contenders alternate within each repeat (in rotating order) so that load
from other processes hits them alike, and the median over ``--repeats`` is reported, as wall
time and as this process's CPU time (less sensitive to other processes on a shared machine).
Ratios are to the hand-written loop computing the same estimator.

End to end: whole epochs (``Trainer.train_epoch`` against a hand-written epoch loop over the
same shuffled, binarized batches), then the test ELBO of both models after the same budget,
both measured by :func:`pyrovae.elbo_per_example` with the same seed.

    PYROVAE_DATA=/path/to/data python bench/train_speed.py
    PYROVAE_DATA=/path/to/data python bench/train_speed.py --device cuda
    python bench/train_speed.py --threads 1 --train-limit 12800 --epochs 2   # quick look
    python bench/train_speed.py --profile --no-svi --epochs 0    # where the time goes

On CUDA the script also counts host synchronisations per pyrovae step
(``torch.cuda.set_sync_debug_mode``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn
from torch.nn import functional as F

import pyrovae
from pyrovae.evaluation import elbo_per_example
from pyrovae.training import EVAL_SEED

from measure import start_run

#: (objective name, its config parameters, the hand-written estimator that matches it)
OBJECTIVES = (
    ("trace_elbo", {}, "mc_elbo"),
    ("analytic_kl", {}, "analytic_kl"),
    ("iwae", {"num_particles": 5}, "iwae"),
)
LOG_2PI = math.log(2 * math.pi)


def bench_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run config of the benchmarked model (objective filled in per contender)."""
    return {
        "data": {"dataset": "mnist", "binarize": "dynamic", "train_limit": args.train_limit,
                 "test_limit": args.test_limit},
        "model": {
            "latent_dim": args.latent_dim,
            "prior": {"type": "standard_normal"},
            "likelihood": {"type": "bernoulli"},
            "encoder": {"type": "mlp", "hidden": [args.hidden]},
            "decoder": {"type": "mlp", "hidden": [args.hidden]},
            "guide": {"type": "diag_normal"},
        },
        "train": {"epochs": 1, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                  "device": args.device},
    }


# ---------------------------------------------------------------------- (a) hand-written
class HandEstimators:
    """The estimators of a hand-written VAE with ``p(z) = N(0, I)`` and a diagonal-Normal
    guide, given its ``posterior(x) -> (loc, scale)`` and ``log_px(z, x) -> (*, N)``.

    Each returns the negative bound summed over the batch (nats per batch), like a Pyro
    ELBO's ``differentiable_loss``."""

    posterior: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    log_px: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def mc_elbo(self, x: torch.Tensor) -> torch.Tensor:
        loc, scale = self.posterior(x)
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.square() + LOG_2PI).sum(-1) - scale.log().sum(-1)
        return -(self.log_px(z, x) + log_pz - log_qz).sum()

    def analytic_kl(self, x: torch.Tensor) -> torch.Tensor:
        loc, scale = self.posterior(x)
        z = loc + scale * torch.randn_like(loc)
        kl = 0.5 * (loc.square() + scale.square() - 1).sum(-1) - scale.log().sum(-1)
        return -(self.log_px(z, x) - kl).sum()

    def iwae(self, x: torch.Tensor, num_particles: int = 5) -> torch.Tensor:
        loc, scale = self.posterior(x)
        eps = torch.randn((num_particles, *loc.shape), dtype=loc.dtype, device=loc.device)
        z = loc + scale * eps
        log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.square() + LOG_2PI).sum(-1) - scale.log().sum(-1)
        log_w = self.log_px(z, x) + log_pz - log_qz
        return -(torch.logsumexp(log_w, 0) - math.log(num_particles)).sum()


class HandVAE(HandEstimators, nn.Module):
    """The benchmarked VAE written directly in PyTorch (no Pyro): MLP encoder and decoder,
    ``q(z|x) = N(loc, softplus(raw) + min_scale)``, ``p(z) = N(0, I)``, Bernoulli pixels."""

    def __init__(self, data_dim: int, hidden: int, latent_dim: int, min_scale: float) -> None:
        super().__init__()
        self.latent_dim, self.min_scale = latent_dim, min_scale
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim)
        )

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.encoder(x).split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    def log_px(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)


def hand_from_vae(vae: pyrovae.VAE) -> HandVAE:
    """A :class:`HandVAE` with ``vae``'s architecture and current weights."""
    hand = HandVAE(vae.data_dim, vae.encoder.net[0].out_features, vae.latent_dim,
                   vae.guide_family.min_scale)
    hand.load_state_dict({k.replace(".net.", "."): v for k, v in vae.state_dict().items()
                          if k.startswith(("encoder.", "decoder."))})
    return hand.to(next(vae.parameters()).device)


def vae_from_hand(hand: HandVAE, config: dict[str, Any]) -> pyrovae.VAE:
    """A pyrovae VAE holding ``hand``'s weights (to evaluate both the same way)."""
    vae = pyrovae.VAE.from_config(config).to(next(hand.parameters()).device)
    state = vae.state_dict()  # the prior's buffers, and the networks' weights replaced:
    state.update({k.replace("coder.", "coder.net."): v for k, v in hand.state_dict().items()})
    vae.load_state_dict(state)
    return vae


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """The optimizer every contender but plain SVI uses: the Trainer's (fused Adam)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


# ---------------------------------------------------------------------- contenders
@dataclass
class Contender:
    """One training loop: ``step(x, y)`` does one optimizer step and returns the batch loss
    (a detached device tensor or a float); ``epoch()`` runs one whole epoch."""

    name: str
    group: str
    reference: str | None
    step: Callable[[torch.Tensor, torch.Tensor], Any]
    epoch: Callable[[], float] | None = None
    evaluate: Callable[[], float] | None = None
    step_wall: list[float] = field(default_factory=list)
    step_cpu: list[float] = field(default_factory=list)
    epoch_wall: list[float] = field(default_factory=list)
    syncs_per_step: float | None = None
    test_elbo: float | None = None


def hand_contender(estimator: str, vae: pyrovae.VAE, data: pyrovae.ImageData,
                   config: dict[str, Any], device: torch.device, **kwargs: Any) -> Contender:
    hand = hand_from_vae(vae)
    opt = adam(hand.parameters(), config["train"]["lr"])
    loss_fn = getattr(hand, estimator)
    generator = torch.Generator(device=device).manual_seed(config["train"]["seed"])
    batch_size = config["train"]["batch_size"]

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(x, **kwargs)
        opt.zero_grad(set_to_none=True)
        (loss / x.shape[0]).backward()
        opt.step()
        return loss.detach()

    def epoch() -> float:
        total, seen = torch.zeros((), device=device), 0
        for x, y in data.train_batches(batch_size, generator):
            total += step(x, y)
            seen += x.shape[0]
        return -total.item() / seen

    def evaluate() -> float:
        trained = vae_from_hand(hand, config).eval()
        return elbo_per_example(trained, data.test_images, seed=EVAL_SEED,
                                batch_size=config["train"]["eval_batch_size"]).mean().item()

    return Contender(f"hand {estimator}", "(a) hand-written", None, step, epoch, evaluate)


def svi_contender(vae: pyrovae.VAE, config: dict[str, Any], validate: bool) -> Contender:
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": config["train"]["lr"]}),
              loss=Trace_ELBO(max_plate_nesting=1))

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with pyro.validation_enabled(validate):
            # SVI.step returns the summed loss; scaling it to a per-example mean as the others
            # do would change the Adam steps only by Adam's epsilon
            return svi.step(x)

    label = "validation on (Pyro default)" if validate else "validation off"
    return Contender(f"pyro SVI, {label}", "(b) plain Pyro SVI", "hand mc_elbo", step)


def pyrovae_contender(objective: str, params: dict[str, Any], estimator: str,
                      vae: pyrovae.VAE, data: pyrovae.ImageData, config: dict[str, Any],
                      device: torch.device, replay: bool = True) -> Contender:
    config = pyrovae.resolve_config({**config, "objective": {"type": objective, **params},
                                     "train": {**config["train"], "replay_steps": replay}})
    trainer = pyrovae.Trainer(vae, data, config, device, progress=False)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with pyro.validation_enabled(False):  # as in Trainer.train_epoch after its first step
            return trainer.train_step(x, y)

    label = objective + (f" K={params['num_particles']}" if "num_particles" in params else "")
    if not replay:  # step times only: the end-to-end epochs are timed as the Trainer trains
        return Contender(f"pyrovae {label}, replay off", "(c) pyrovae Trainer",
                         f"hand {estimator}", step)
    return Contender(f"pyrovae {label}", "(c) pyrovae Trainer", f"hand {estimator}", step,
                     trainer.train_epoch, trainer.test_elbo)


# ---------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(contender: Contender, pool: list[tuple[torch.Tensor, torch.Tensor]],
              steps: int, device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds per step of ``steps`` steps over the batch pool; the losses are
    summed on the device and read once at the end, as a training loop reads them."""
    total: Any = 0.0
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        total = total + contender.step(*pool[i % len(pool)])
    synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not math.isfinite(float(total)):
        raise FloatingPointError(f"{contender.name}: the loss became {float(total)}")
    return wall / steps, cpu / steps


def count_syncs(contender: Contender, pool: list, steps: int) -> float:
    """Host synchronisations per step on CUDA, as reported by torch's sync debug mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for i in range(steps):
                contender.step(*pool[i % len(pool)])
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def time_steps(contenders: list[Contender], pool: list, args: argparse.Namespace,
               device: torch.device) -> None:
    for c in contenders:
        with pyro.validation_enabled(True):  # a first, validated step, as the Trainer does
            c.step(*pool[0])
        run_steps(c, pool, args.warmup, device)
    for r in range(args.repeats):
        shift = r % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            wall, cpu = run_steps(c, pool, args.steps, device)
            c.step_wall.append(wall)
            c.step_cpu.append(cpu)
    if device.type == "cuda":
        for c in contenders:
            c.syncs_per_step = count_syncs(c, pool, min(args.steps, 20))


def profile_steps(contenders: list[Contender], pool: list, args: argparse.Namespace,
                  device: torch.device) -> None:
    """Print where the time of each contender's steps goes: the Python functions (cProfile,
    by cumulative time) and the torch operators (torch.profiler, by self time)."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for c in contenders:
        print(f"\n===== {c.name}: cProfile of {args.steps} steps (cumulative time)")
        profiler = cProfile.Profile()
        profiler.runcall(run_steps, c, pool, args.steps, device)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        with profile(activities=activities) as prof:
            run_steps(c, pool, args.steps, device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"===== {c.name}: torch.profiler of {args.steps} steps ({sort})")
        print(prof.key_averages().table(sort_by=sort, row_limit=25))


def time_epochs(contenders: list[Contender], args: argparse.Namespace,
                device: torch.device) -> None:
    runnable = [c for c in contenders if c.epoch is not None]
    for r in range(args.epochs):
        order = runnable if r % 2 == 0 else runnable[::-1]
        for c in order:
            synchronize(device)
            start = time.perf_counter()
            c.epoch()
            synchronize(device)
            c.epoch_wall.append(time.perf_counter() - start)
    for c in runnable:
        c.test_elbo = c.evaluate()


# ---------------------------------------------------------------------- report
def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"


def report(contenders: list[Contender], args: argparse.Namespace, device: torch.device,
           skipped: list[str], load_before: tuple[float, ...]) -> dict[str, Any]:
    """Print the table of step (and epoch) times and ratios; return it as a mapping, also
    written to ``args.json`` when given."""
    by_name = {c.name: c for c in contenders}
    rows = []
    for c in contenders:
        wall, cpu = statistics.median(c.step_wall), statistics.median(c.step_cpu)
        ref = by_name.get(c.reference) if c.reference else None
        row = {
            "contender": c.name, "group": c.group, "reference": c.reference,
            "ms_per_step": 1e3 * wall, "steps_per_s": 1 / wall, "cpu_ms_per_step": 1e3 * cpu,
            "ratio_wall": wall / statistics.median(ref.step_wall) if ref else 1.0,
            # per repeat, this contender's time over the reference's, measured moments apart:
            # robust to load that drifts during the run
            "ratio_paired": statistics.median(
                a / b for a, b in zip(c.step_wall, ref.step_wall)) if ref else 1.0,
            "ratio_cpu": cpu / statistics.median(ref.step_cpu) if ref else 1.0,
            "epoch_s": statistics.median(c.epoch_wall) if c.epoch_wall else None,
            "test_elbo": c.test_elbo, "syncs_per_step": c.syncs_per_step,
        }
        if ref and c.epoch_wall and ref.epoch_wall:
            row["epoch_ratio"] = row["epoch_s"] / statistics.median(ref.epoch_wall)
        rows.append(row)
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "device": str(device), "machine": machine_description(device),
        "torch": torch.__version__, "pyro": pyro.__version__,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "skipped": skipped, "args": vars(args),
    }
    print(f"\n{meta['date']}  {meta['machine']}  torch {meta['torch']}  pyro {meta['pyro']}")
    print(f"command: {meta['command']}")
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}"
          .format(*load_before, *meta["load_average_after"]))
    print(f"step time: median of {args.repeats} repeats x {args.steps} steps, batch "
          f"{args.batch_size}; ratio = time / time of the hand-written loop with the same "
          "estimator (wall; median of the per-repeat ratios; CPU time of this process)")
    head = (f"{'contender':<40} {'ms/step':>8} {'steps/s':>8} {'ratio':>6} {'paired':>6} "
            f"{'cpu ratio':>9} "
            f"{'epoch s':>8} {'ep ratio':>8} {'test ELBO':>9}")
    if device.type == "cuda":
        head += f" {'syncs/step':>10}"
    print(head)
    for row in rows:
        line = (f"{row['contender']:<40} {row['ms_per_step']:8.2f} {row['steps_per_s']:8.1f} "
                f"{row['ratio_wall']:6.3f} {row['ratio_paired']:6.3f} {row['ratio_cpu']:9.3f} "
                + (f"{row['epoch_s']:8.2f} " if row["epoch_s"] is not None else f"{'-':>8} ")
                + (f"{row['epoch_ratio']:8.3f} " if "epoch_ratio" in row else f"{'-':>8} ")
                + (f"{row['test_elbo']:9.2f}" if row["test_elbo"] is not None else f"{'-':>9}"))
        if device.type == "cuda":
            line += f" {row['syncs_per_step']:10.2f}"
        print(line)
    if args.epochs:
        print(f"epoch: median of {args.epochs} epochs of {args.train_limit or 60000} examples, "
              "including shuffling, slicing and binarization on the device; test ELBO (nats per "
              f"example, single-sample, seed {EVAL_SEED}) after those {args.epochs} epochs")
    for line in skipped:
        print(line)
    results = {"meta": meta, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def timing_arguments(doc: str, *, batch_size: int, latent_dim: int, steps: int, repeats: int,
                     warmup: int, pool: int) -> argparse.ArgumentParser:
    """The options of a training-speed benchmark (this script's and ``cifar_speed.py``'s),
    with its defaults; the script adds its own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--latent-dim", type=int, default=latent_dim)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=steps, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--warmup", type=int, default=warmup, help="untimed steps per contender")
    p.add_argument("--pool", type=int, default=pool, help="distinct batches the steps cycle over")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = timing_arguments(__doc__, batch_size=128, latent_dim=50, steps=20, repeats=15,
                         warmup=20, pool=16)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--epochs", type=int, default=2,
                   help="timed whole epochs per contender (0: skip the end-to-end part)")
    p.add_argument("--train-limit", type=int, default=0, help="training examples (0: all)")
    p.add_argument("--test-limit", type=int, default=0, help="test examples (0: all)")
    p.add_argument("--no-svi", action="store_true", help="leave out the plain-SVI contenders")
    p.add_argument("--profile", action="store_true",
                   help="after warm-up, profile --steps steps of each contender and stop")
    p.add_argument("--data-root", help="data folder (default: $PYROVAE_DATA or the cache)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, load_before = start_run(args, "train_speed.py")
    pyro.set_rng_seed(args.seed)
    config = pyrovae.resolve_config(bench_config(args))
    data = pyrovae.load_data(config["data"], device=device, root=args.data_root)
    initial = pyrovae.VAE.from_config(config).state_dict()

    def fresh_vae() -> pyrovae.VAE:
        vae = pyrovae.VAE.from_config(config).to(device)
        vae.load_state_dict(initial)
        return vae

    generator = torch.Generator(device=device).manual_seed(args.seed)
    batches = data.train_batches(args.batch_size, generator)
    pool = [batch for _, batch in zip(range(args.pool), batches)]
    contenders: list[Contender] = []
    skipped: list[str] = []
    for objective, params, estimator in OBJECTIVES:
        if objective not in pyrovae.OBJECTIVES:
            skipped.append(f"skipped: objective {objective!r} is not registered in this pyrovae "
                           f"(registered: {', '.join(pyrovae.OBJECTIVES.names())})")
            continue
        kwargs = {"num_particles": params["num_particles"]} if estimator == "iwae" else {}
        contenders.append(hand_contender(estimator, fresh_vae(), data, config, device, **kwargs))
        for replay in (True, False):
            contenders.append(pyrovae_contender(objective, params, estimator, fresh_vae(),
                                                data, config, device, replay))
    if not args.no_svi:
        contenders.insert(1, svi_contender(fresh_vae(), config, validate=True))
        contenders.insert(2, svi_contender(fresh_vae(), config, validate=False))
    for line in skipped:
        print(line, file=sys.stderr)
    if args.profile:
        for c in contenders:
            run_steps(c, pool, args.warmup, device)
        profile_steps(contenders, pool, args, device)
        return {}
    time_steps(contenders, pool, args, device)
    if args.epochs:
        time_epochs(contenders, args, device)
    return report(contenders, args, device, skipped, load_before)


if __name__ == "__main__":
    main()
