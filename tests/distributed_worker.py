"""The program that ``tests/test_distributed.py`` starts with torchrun (2 processes, gloo).

``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py
MODE OUT ...``:

* ``all OUT CONFIG HALF1``: in one process group, (1) the averaged gradients of three batches
  (even, uneven and with an empty part) with per-rank seeded draws, saved to
  ``OUT/gradients.pt``; (2) ``pyrovae train`` of CONFIG into ``OUT/run2`` and, for 1 epoch,
  into ``OUT/half2``; (3) ``pyrovae train --resume HALF1 --epochs 2`` (a run of one process
  resumed by two); (3b) ``OUT/random.toml`` (a guide that draws) trained into
  ``OUT/random2`` and, 1 epoch then resumed, into ``OUT/random_half``; (4) ``pyrovae
  evaluate OUT/run2 --json`` with IS, AIS and BDMC, rank 0's output saved to
  ``OUT/evaluate_{is,ais,bdmc}.json``, and ``evaluate --gaps`` (IS) into
  ``OUT/evaluate_gaps.json``; (5) ``pyrovae ood OUT/run2 --out test`` into ``OUT/ood.json``
  (and ``OUT/ood/``).
* ``leaves-no-group``: joins and leaves the process group around the first optimizer this
  interpreter builds; exits 0 when the group is freed once left.
* ``bad-data-on-rank-1 CONFIG RUN``: ``pyrovae train`` where rank 1's training images hold a
  NaN (its own error, which the other rank does not meet).

The ``delta`` guide registered here is a stand-in that makes training draw no random numbers
(q(z|x) is a point mass at the encoder's output), so that a run of two processes and a run of
one make the same steps whatever the per-process random streams are.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import pyro.distributions as dist
import torch

from pyrovae import GUIDES, Trace_ELBO, cli, distributed
from pyrovae.infer import ELBOGradient
from pyrovae.models.guides import GuideFamily
from pyrovae.rng import derived_seed

#: the batches of the gradient check: an even split, an uneven one and one with an empty part
GRADIENT_BATCHES = (8, 7, 1)
GRADIENT_SEED = 5


class DeltaGuide(GuideFamily):
    """q(z|x) = delta(z - e(x)): no draws (a stand-in for the equivalence tests only)."""

    def __init__(self, *, latent_dim: int) -> None:
        super().__init__(latent_dim)

    @property
    def num_params(self) -> int:
        return self.latent_dim

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        return dist.Delta(params, event_dim=1)


def register_delta_guide() -> None:
    if "delta" not in GUIDES:
        GUIDES.register("delta")(DeltaGuide)


def gradient_vae() -> torch.nn.Module:
    """The tiny VAE of the gradient check (diagonal Normal guide: real draws)."""
    from pyrovae import VAE, resolve_config

    from conftest import tiny_config

    torch.manual_seed(0)
    config = resolve_config(tiny_config(model={"latent_dim": 3, "encoder": {"type": "mlp",
                                        "hidden": [8]}, "decoder": {"type": "mlp",
                                        "hidden": [8]}}))
    return VAE.from_resolved_config(config)


def gradient_batch(n: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 784), 0.3), generator=torch.Generator().manual_seed(n))


def part_seed(n: int, rank: int) -> int:
    """The seed of rank ``rank``'s draws for the batch of ``n`` examples."""
    return derived_seed(GRADIENT_SEED, "batch", n, "rank", rank)


def gradients(out: Path) -> None:
    vae = gradient_vae()
    step = ELBOGradient(Trace_ELBO(), vae, replay=False)
    reduce = distributed.GradientAllReduce(list(step.params.values()))
    rank, size = distributed.rank(), distributed.world_size()
    results = {}
    for n in GRADIENT_BATCHES:
        x = torch.tensor_split(gradient_batch(n), size)[rank]
        torch.manual_seed(part_seed(n, rank))
        loss = step(x) if x.shape[0] else None
        total = reduce(loss, x.shape[0], n)
        results[n] = {
            "loss": total.clone(),
            "grads": {name: p.grad.clone() for name, p in step.params.items()},
        }
    if distributed.is_main():
        torch.save(results, out / "gradients.pt")


#: ``evaluate --gaps``' options in the launch: 10 examples in local-ELBO blocks of
#: 60 // 16 = 3 (two blocks per process), 10 SVI steps, 8 draws per ELBO
GAPS_OPTIONS = ["--num-elbo-samples", "8", "--max-local-steps", "10"]


#: ``ood``'s options in the launch (the run's test set against itself: the scores are what
#: matter): 10 examples, IS blocks of 5
OOD_OPTIONS = ["--limit", "10", "--num-samples", "12", "--max-batch-elements", "60",
               "--num-train", "10", "--json", "--quiet"]


def run_all(out: Path, config: str, half1: str) -> int:
    with distributed.process_group():
        gradients(out)
        codes = [
            cli.main(["train", "--config", config, "--out", str(out / "run2"), "--quiet"]),
            cli.main(["train", "--config", config, "--out", str(out / "half2"), "--epochs", "1",
                      "--quiet"]),
            cli.main(["train", "--resume", half1, "--epochs", "2", "--quiet"]),
            # a research recipe: schedule, clipping, validation split, early stopping
            cli.main(["train", "--config", str(out / "recipe.toml"), "--out",
                      str(out / "recipe2"), "--quiet"]),
        ]
        # a guide that draws: two epochs, and one epoch resumed for a second
        random = str(out / "random.toml")
        for argv in (
            ["--config", random, "--out", str(out / "random2")],
            ["--config", random, "--out", str(out / "random_half"), "--epochs", "1"],
            ["--resume", str(out / "random_half"), "--epochs", "2"],
        ):
            codes.append(cli.main(["train", *argv, "--quiet"]))
        for method, extra in (
            ("is", []),
            ("ais", ["--num-steps", "4"]),
            ("bdmc", ["--num-steps", "3", "--limit", "10"]),
            ("gaps", ["--gaps", "--method", "is", "--limit", "10", *GAPS_OPTIONS]),
        ):
            with open(out / f"evaluate_{method}.json", "w") if distributed.is_main() else (
                contextlib.nullcontext(sys.stdout)
            ) as f, contextlib.redirect_stdout(f):
                codes.append(cli.main(["evaluate", str(out / "run2"), "--json", "--quiet",
                                       *(["--method", method] if method != "gaps" else []),
                                       "--num-samples", "12", "--max-batch-elements", "60",
                                       *extra]))
        with open(out / "ood.json", "w") if distributed.is_main() else (
            contextlib.nullcontext(sys.stdout)
        ) as f, contextlib.redirect_stdout(f):
            codes.append(cli.main(["ood", str(out / "run2"), "--out", "test", *OOD_OPTIONS,
                                   "--results", str(out / "ood")]))
    return max(codes)


def bad_data_on_rank_1(config: str, run: str) -> int:
    import pyrovae.training.run as run_module

    load_data = run_module.load_data

    def load_with_a_nan(*args, **kwargs):
        data = load_data(*args, **kwargs)
        if distributed.rank() == 1:
            data.train_images[3, 5] = math.nan
        return data

    run_module.load_data = load_with_a_nan
    return cli.main(["train", "--config", config, "--out", run, "--quiet"])


def leaves_no_group() -> int:
    """0 when the default process group is freed once :func:`distributed.process_group` is
    left, though the first optimizer of the process (which imports torch's lazily imported
    modules) was built inside it."""
    import gc
    import weakref

    import torch.distributed

    with distributed.process_group():
        world = weakref.ref(torch.distributed.group.WORLD)
        torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    gc.collect()
    return 0 if world() is None else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    register_delta_guide()
    mode, *rest = sys.argv[1:]
    if mode == "all":
        sys.exit(run_all(Path(rest[0]), rest[1], rest[2]))
    if mode == "leaves-no-group":
        sys.exit(leaves_no_group())
    sys.exit(bad_data_on_rank_1(*rest))
