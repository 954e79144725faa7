"""Time ``pyrovae.log_likelihood`` against a hand-written pure-PyTorch IWAE evaluation.

Both evaluate the same network (the default MNIST VAE: 784-400-50 MLPs, Bernoulli pixels,
diagonal-Normal guide, standard-Normal prior) on the same test images with the same K, the
same chunking and the same random draws, so they must agree to float rounding; the script
checks that, then times them alternately and prints the time ratio and peak memory.

    PYROVAE_DATA=/path/to/data python bench/log_likelihood_speed.py --num-examples 1000 \
        --num-samples 1000
    PYROVAE_DATA=/path/to/data python bench/log_likelihood_speed.py --device cuda \
        --num-examples 10000 --num-samples 1000 --json ll_speed.json

Timing alternates the two, five calls each by default, and reports medians of wall-clock time
and of process CPU time; when other processes compete for the cores, wall times wander and
the CPU time (with ``--threads 1``, the work done) is the steadier comparison.

Peak memory is the rise of the peak resident set (Linux ``VmHWM``, reset before each call) on
CPU, and ``torch.cuda.max_memory_allocated`` on CUDA. On CPU it is measured in a child
process run with ``MALLOC_MMAP_THRESHOLD_=65536``, so that glibc returns every large tensor to
the system when it is freed: the resident set then follows the live tensors and the peak is
the same from call to call. (The timings are taken with the default allocator, which reuses
freed memory and so does not pay for fresh pages on every allocation.)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

import pyrovae
from pyrovae.config import load_config
from pyrovae.data import load_data
from pyrovae.evaluation.importance import DEFAULT_MAX_BATCH_ELEMENTS
from pyrovae.rng import derived_seed, fixed_rng

from measure import alternated_times, memory_in_child, peak_memory_mib, start_run

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def handwritten_log_likelihood(
    vae: pyrovae.VAE, x: torch.Tensor, num_samples: int, max_batch_elements: int, seed: int
) -> torch.Tensor:
    """The K-sample IWAE estimate of log p(x) written directly in PyTorch for this one model
    (Bernoulli likelihood, diagonal-Normal guide, standard-Normal prior), chunked exactly as
    :func:`pyrovae.log_likelihood` chunks and seeds it."""
    encoder, decoder = vae.encoder, vae.decoder
    d, min_scale = vae.latent_dim, vae.guide_family.min_scale
    half_d_log_2pi = 0.5 * d * math.log(2 * math.pi)
    sample_chunk = min(num_samples, max_batch_elements)
    example_chunk = max(1, max_batch_elements // sample_chunk)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], example_chunk):
        with fixed_rng(derived_seed(seed, "is", 0, start), x.device):  # each block its seed
            xb = x[start : start + example_chunk]
            loc, raw_scale = encoder(xb).split(d, dim=-1)
            scale = F.softplus(raw_scale) + min_scale
            log_q_const = -scale.log().sum(-1) - half_d_log_2pi
            log_sum = torch.full((xb.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
            for k_start in range(0, num_samples, sample_chunk):
                k = min(sample_chunk, num_samples - k_start)
                eps = torch.randn(k, *loc.shape, dtype=x.dtype, device=x.device)
                z = loc + scale * eps
                logits = decoder(z)
                log_px = -F.binary_cross_entropy_with_logits(
                    logits, xb.expand_as(logits), reduction="none"
                ).sum(-1)
                log_pz = -0.5 * z.square().sum(-1) - half_d_log_2pi
                log_qz = -0.5 * eps.square().sum(-1) + log_q_const
                log_sum = torch.logaddexp(log_sum, (log_px + log_pz - log_qz).logsumexp(0))
            out[start : start + xb.shape[0]] = log_sum - math.log(num_samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-examples", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--max-batch-elements", type=int, default=DEFAULT_MAX_BATCH_ELEMENTS)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each (median)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device, _ = start_run(args, "log_likelihood_speed.py")

    config = load_config(ROOT / "configs" / "mnist.toml")
    config["data"]["test_limit"] = args.num_examples
    torch.manual_seed(0)
    vae = pyrovae.VAE.from_config(config).to(device).eval()
    x = load_data(config["data"], device=device).test_images
    K, M, seed = args.num_samples, args.max_batch_elements, 0

    def ours() -> torch.Tensor:
        return pyrovae.log_likelihood(vae, x, num_samples=K, max_batch_elements=M, seed=seed)

    def handwritten() -> torch.Tensor:
        return handwritten_log_likelihood(vae, x, K, M, seed)

    methods = {"pyrovae": ours, "handwritten": handwritten}
    a, b = ours(), handwritten()  # warm-up, and the same draws: the same numbers
    if args.memory_only:
        print(json.dumps({name: peak_memory_mib(fn, device) for name, fn in methods.items()}))
        return
    max_diff = (a - b).abs().max().item()
    wall, cpu = alternated_times(methods, args.repeats, device)
    if device.type == "cpu":
        peaks = memory_in_child(__file__, sys.argv[1:])
    else:
        peaks = {name: peak_memory_mib(fn, device) for name, fn in methods.items()}
    med = {name: statistics.median(t) for name, t in wall.items()}
    med_cpu = {name: statistics.median(t) for name, t in cpu.items()}
    print(f"device {device}, torch threads {torch.get_num_threads()}, N={x.shape[0]} test "
          f"examples, K={K}, max_batch_elements={M}, {args.repeats} timed calls each")
    print(f"mean log p(x): {a.mean().item():.4f} nats (pyrovae), {b.mean().item():.4f} "
          f"(hand-written); max |difference| {max_diff:.2e} nats")
    for name in methods:
        print(f"{name:>12}: median {med[name]:.3f} s wall (min {min(wall[name]):.3f} s), "
              f"{med_cpu[name]:.3f} s CPU, peak memory +{peaks[name]:.0f} MiB")
    print(f"ratio pyrovae / hand-written: {med['pyrovae'] / med['handwritten']:.3f} (median wall "
          f"time), {med_cpu['pyrovae'] / med_cpu['handwritten']:.3f} (median process CPU time)")
    if args.json:
        results = {
            "device": str(device), "num_examples": x.shape[0], "num_samples": K,
            "max_batch_elements": M, "mean_log_px": a.mean().item(), "max_abs_difference": max_diff,
            "wall_s": wall, "cpu_s": cpu, "peak_memory_mib": peaks,
            "ratio_wall": med["pyrovae"] / med["handwritten"],
            "ratio_cpu": med_cpu["pyrovae"] / med_cpu["handwritten"],
        }
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
