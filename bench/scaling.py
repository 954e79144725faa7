"""Scaling out: training and evaluation throughput with 1 and N processes under torchrun.

Each measurement launches ``torchrun --standalone --nproc_per_node=P`` on this script (its
``--worker`` mode), for P = 1 and P = ``--processes`` (default 2), one torch thread per
process on CPU (gloo) or one GPU per process on CUDA (NCCL):

* training: the default MNIST VAE (784-400-50 MLPs, Bernoulli pixels, diagonal-Normal
  guide, ``trace_elbo``) trains for ``--steps`` steps of the same global batch
  (``--batch-size``, split between the processes; gradients all-reduced once per step) on
  synthetic binary images (throughput does not depend on the pixels), after one warm-up
  epoch; the rate is global examples per second, as rank 0 times it.
* communication: the time of one all-reduce of all the gradients (one flat buffer, as a
  training step makes), alone.
* evaluation: :func:`pyrovae.log_likelihood` (importance sampling, ``--num-samples`` K) of
  ``--eval-examples`` examples, sharded by blocks between the processes and gathered.

Scaling efficiency = rate(P) / (P x rate(1)); 1.0 is linear. The baseline is measured in the
same run, right before. On a shared machine the numbers move with the other load: run it
when the machine is quiet, and read rank 0's CPU share (its CPU seconds per wall-clock second
while training; 1.0 is a whole core) alongside.

    python bench/scaling.py                               # 1 vs 2 processes on CPU
    python bench/scaling.py --processes 4 --device cuda   # GPUs, one per process (NCCL)
    python bench/scaling.py --steps 5 --eval-examples 20 --num-samples 50   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

#: the worker prints its results on a line starting with this
RESULT = "SCALING-RESULT "


def worker(args: argparse.Namespace) -> None:
    """One process of a torchrun launch: time the training steps and the evaluation."""
    import pyro

    import pyrovae
    from pyrovae import distributed
    from pyrovae.data import ImageData

    torch.set_num_threads(1)
    with distributed.process_group():
        device = torch.device("cuda" if args.device == "cuda" else "cpu")
        config = pyrovae.resolve_config(
            {
                "data": {"binarize": "static"},
                "train": {"batch_size": args.batch_size, "device": args.device, "epochs": 2},
            }
        )
        pyro.set_rng_seed(0)  # the same initial weights in every launch
        vae = pyrovae.VAE.from_resolved_config(config).to(device)
        gen = torch.Generator().manual_seed(0)
        n = args.steps * args.batch_size
        images = torch.bernoulli(torch.full((n, 784), 0.2), generator=gen).to(device)
        labels = torch.zeros(n, dtype=torch.int64, device=device)
        data = ImageData("synthetic", "static", images, labels, images[:64], labels[:64],
                         (1, 28, 28), 10)
        trainer = pyrovae.Trainer(vae, data, config, device, progress=False)
        trainer.train_epoch()  # warm-up: records the replayed steps
        trainer.epoch += 1

        def sync() -> None:
            distributed.all_reduce_sum(torch.zeros(1, device=device))
            if device.type == "cuda":
                torch.cuda.synchronize()

        sync()
        start, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch()
        sync()
        train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu

        # the per-step communication alone: one all-reduce of every gradient, flattened
        flat = torch.zeros(sum(p.numel() for p in vae.parameters()), device=device)
        sync()
        start = time.perf_counter()
        for _ in range(20):
            distributed.all_reduce_sum(flat)
        sync()
        all_reduce_ms = (time.perf_counter() - start) / 20 * 1e3

        x = images[: args.eval_examples]
        sync()
        start = time.perf_counter()
        pyrovae.log_likelihood(vae, x, num_samples=args.num_samples)
        sync()
        eval_s = time.perf_counter() - start
        if distributed.is_main():
            print(RESULT + json.dumps({
                "processes": distributed.world_size(),
                "train_examples_per_s": n / train_s,
                "train_cpu_share_rank0": train_cpu / train_s,
                "train_step_ms": train_s / args.steps * 1e3,
                "all_reduce_ms": all_reduce_ms,
                "eval_examples_per_s": args.eval_examples / eval_s,
            }), flush=True)


def launch(processes: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run the worker under torchrun with ``processes`` processes; its results."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", str(Path(__file__).resolve()), "--worker",
        "--device", args.device, "--steps", str(args.steps), "--batch-size",
        str(args.batch_size), "--eval-examples", str(args.eval_examples), "--num-samples",
        str(args.num_samples),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise SystemExit(f"the {processes}-process launch failed:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="P, compared with 1")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--num-samples", type=int, default=1000, help="K of the evaluation")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda, but no CUDA GPU is available")
        if torch.cuda.device_count() < args.processes:
            raise SystemExit(
                f"--processes {args.processes} needs as many GPUs, {torch.cuda.device_count()} "
                "are visible"
            )
    if args.batch_size % args.processes:
        raise SystemExit(f"--batch-size must be a multiple of --processes {args.processes}")
    one = launch(1, args)
    many = launch(args.processes, args)
    p = args.processes
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
        + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
        "settings": {k: v for k, v in vars(args).items() if k != "worker"},
        "one": one,
        "many": many,
        "train_efficiency": many["train_examples_per_s"] / (p * one["train_examples_per_s"]),
        "eval_efficiency": many["eval_examples_per_s"] / (p * one["eval_examples_per_s"]),
    }
    print(f"{results['date']}, {results['machine']}, device {args.device}, one thread per "
          "process on CPU")
    print(f"{'processes':>9}  {'train ex/s':>10}  {'step ms':>7}  {'all-reduce ms':>13}  "
          f"{'rank 0 CPU share':>16}  {'eval ex/s':>9}")
    for row in (one, many):
        print(f"{row['processes']:>9}  {row['train_examples_per_s']:>10.0f}  "
              f"{row['train_step_ms']:>7.1f}  {row['all_reduce_ms']:>13.2f}  "
              f"{row['train_cpu_share_rank0']:>16.2f}  {row['eval_examples_per_s']:>9.1f}")
    print(f"scaling efficiency with {p} processes (1.0 = linear): training "
          f"{results['train_efficiency']:.2f}, evaluation {results['eval_efficiency']:.2f}")
    return results


if __name__ == "__main__":
    main()
