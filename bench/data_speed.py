"""Training throughput of the streaming data path against the in-memory one, same run.

Both train the same VAE (MNIST-sized batches: 784 pixels, dynamically binarized) from the same
seed for the same epochs: in memory (the data set sliced from tensors on the device) and
streamed (``data.in_memory = false``: each batch read by a ``torch.utils.data.DataLoader``
with ``--workers`` worker processes, binarized on the device). Each contender, warmed up
by one epoch, trains ``--repeats`` more, interleaved with the others' (load from other
processes falls on all alike); its best epoch time counts. Printed: examples per second of each, the
ratio streamed / in memory (the target is >= 0.8 on CPU) and whether both took the same steps
(equal ELBOs: the streaming path feeds the batches of the in-memory one).

    python bench/data_speed.py                       # 10,000 MNIST images, batch 128
    python bench/data_speed.py --workers 0 2 4 --train-limit 60000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import pyro
import torch

import pyrovae

from measure import timed

DEFAULTS = {"train_limit": 10_000, "test_limit": 1_000, "batch_size": 128, "hidden": 256}


def config(args: argparse.Namespace, in_memory: bool, workers: int) -> dict[str, Any]:
    return {
        "data": {"dataset": "mnist", "train_limit": args.train_limit,
                 "test_limit": args.test_limit, "in_memory": in_memory, "workers": workers},
        "model": {"latent_dim": 16, "encoder": {"type": "mlp", "hidden": [args.hidden]},
                  "decoder": {"type": "mlp", "hidden": [args.hidden]}},
        "train": {"epochs": 1, "batch_size": args.batch_size, "device": args.device, "seed": 0},
        "eval": {"num_samples": 0},
    }


def make_trainer(args: argparse.Namespace, in_memory: bool, workers: int) -> pyrovae.Trainer:
    """A trainer of the benchmark's VAE on the data path asked for, warmed up by one epoch
    (workers started, the replayed step recorded)."""
    device = pyrovae.training.select_device(args.device)
    resolved = pyrovae.resolve_config(config(args, in_memory, workers))
    data = pyrovae.load_data(resolved["data"], device=device)
    pyro.set_rng_seed(0)  # the same initial weights for every contender
    vae = pyrovae.VAE.from_resolved_config(resolved).to(device)
    trainer = pyrovae.Trainer(vae, data, resolved, device, progress=False)
    trainer.train_epoch()
    return trainer


def time_epoch(trainer: pyrovae.Trainer) -> tuple[float, float]:
    """Wall-clock seconds and training ELBO of one epoch from fixed seeds (the first timed
    epoch of every contender starts from the same weights: the same steps)."""
    trainer.data_generator.manual_seed(1)
    torch.manual_seed(1)
    holder: dict[str, float] = {}
    wall, _ = timed(lambda: holder.update(elbo=trainer.train_epoch()), trainer.device)
    return wall, holder["elbo"]


def contenders(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each contender's best epoch time over ``args.repeats`` epochs, interleaved (so that
    load from other processes falls on every contender alike), and its ELBO."""
    names = ["in memory"] + [f"streamed, {w} workers" for w in args.workers]
    trainers = [make_trainer(args, True, 0)] + [make_trainer(args, False, w) for w in args.workers]
    best = [float("inf")] * len(trainers)
    elbos: list[float] = []
    for repeat in range(args.repeats):
        for i, trainer in enumerate(trainers):
            wall, elbo = time_epoch(trainer)
            best[i] = min(best[i], wall)
            if repeat == 0:
                elbos.append(elbo)
    n = trainers[0].data.num_train
    return [{"contender": name, "seconds": t, "examples_per_s": n / t, "train_elbo": e}
            for name, t, e in zip(names, best, elbos)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-limit", type=int, default=DEFAULTS["train_limit"])
    p.add_argument("--test-limit", type=int, default=DEFAULTS["test_limit"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--hidden", type=int, default=DEFAULTS["hidden"])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = contenders(args)
    reference = rows[0]
    for row in rows:
        row["ratio"] = row["examples_per_s"] / reference["examples_per_s"]
        row["same_steps"] = row["train_elbo"] == reference["train_elbo"]
    meta = {"machine": platform.processor() or platform.machine(), "threads":
            torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "argv": sys.argv[1:] if argv is None else argv}
    if args.json:
        print(json.dumps({"rows": rows, "meta": meta}, indent=2))
    else:
        print(f"{args.train_limit} MNIST images, batch {args.batch_size}, {args.device}, "
              f"{meta['threads']} threads, best of {args.repeats}:")
        for row in rows:
            print(f"  {row['contender']:<22} {row['examples_per_s']:9.0f} examples/s  "
                  f"ratio {row['ratio']:.2f} (vs in memory)  same steps: {row['same_steps']}")
    return {"rows": rows, "meta": meta}


if __name__ == "__main__":
    main()
