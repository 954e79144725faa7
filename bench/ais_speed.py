"""Time pyrovae's AIS estimate of log p(x) against a hand-written pure-PyTorch AIS.

Both run annealed importance sampling (:mod:`pyrovae.evaluation.ais`) on the same network (the
default MNIST VAE of ``configs/mnist.toml``: 784-400-50 MLPs, Bernoulli pixels, diagonal-Normal
guide ``sigma = softplus(raw) + min_scale``, standard-Normal prior; freshly initialised, as in
``bench/log_likelihood_speed.py``: the cost does not depend on the weights) and the same test
images, with the same S chains, T steps and L leapfrog steps, started from the guide:

* the same sigmoid schedule (delta = 4) and the same HMC transitions: a fresh momentum, one
  gradient evaluation at the start of every transition and then L velocity-Verlet leapfrog
  steps of one gradient evaluation each (``(T - 1) (L + 1)`` gradient evaluations per chain in
  all, after one density evaluation at the start), then a Metropolis accept;
* the same per-example step size, starting at ``INITIAL_STEP_SIZE`` and adapted after every
  transition by ``log eps += ADAPT_RATE * (mean acceptance of the example's chains -
  TARGET_ACCEPT)`` (the constants are read from pyrovae);
* the same blocks of at most ``max_batch_elements`` (chain, example) pairs, each drawing from
  :func:`pyrovae.rng.derived_seed` of the seed, the repeat and the block's first example;
* the same random stream, consumed in the same order: the draw of the prior that pyrovae's
  ``AnnealingTarget`` makes when it traces the model to find the latent sites (unused by
  either), the guide's draw ``z = loc + eps * scale``, then per transition the momentum
  ``randn`` and the ``rand`` of the Metropolis test (Pyro's ``Normal.rsample`` draws with
  ``empty(shape).normal_()``, which is ``torch.randn``'s stream). The log-densities are written
  as torch's ``Normal.log_prob`` and pyrovae's ``StandardNormal`` and ``IndependentBernoulli``
  compute them, and the gradients are taken of the same summed potential, so the two agree to
  float rounding; the script prints the largest difference of the estimates, acceptance rates
  and final step sizes. (Over long runs a rounding difference can flip a Metropolis decision
  whose uniform lies within rounding of the acceptance probability; that chain then goes its
  own way and its example's estimates differ by Monte Carlo noise. The script reports how many
  examples differ by more than 1e-3 nats.)

So the hand-written AIS differs from pyrovae's only in what pyrovae adds to be general: a Pyro
trace of the model (conditioned on the chains' values) at every density evaluation, the sites
read off it, the flattening of the latent sites into one vector, and Pyro's integrator.

    PYROVAE_DATA=/path/to/data python bench/ais_speed.py --num-examples 200 --threads 1
    PYROVAE_DATA=/path/to/data python bench/ais_speed.py --device cuda --num-examples 2000

Timing alternates the two, ``--repeats`` calls each, after one untimed call of each (which also
gives the numbers compared), and reports medians of wall-clock time and of process CPU time;
when other processes compete for the cores, wall times wander and the CPU time (with
``--threads 1``, the work done) is the steadier comparison.

The script then projects the time of pyrovae's default budget (S = ``DEFAULT_NUM_CHAINS``,
T = ``DEFAULT_NUM_STEPS``, L = ``DEFAULT_NUM_LEAPFROG_STEPS``) on the full MNIST test set
(10000 examples) from the median pyrovae wall time, scaled linearly in the number of examples:
AIS's cost is linear in them (the examples are independent and run in blocks of a fixed
size), provided the subset is large enough to keep the matrix products efficient (a few
hundred examples: the blocks hold up to ``max_batch_elements / S`` = 1024 examples by
default). With a budget other than the default, the projection is also scaled by
``S ((T - 1) (L + 1) + 1)``, the (chain, density evaluation) pairs per example, and says so;
measure with the default budget for the number to quote.

Peak memory is measured as in ``bench/log_likelihood_speed.py``: the rise of the peak resident
set (Linux ``VmHWM``, reset before each call) in a child process run with
``MALLOC_MMAP_THRESHOLD_=65536`` on CPU, ``torch.cuda.max_memory_allocated`` on CUDA. AIS
holds one transition's tensors at a time (its only per-step record is a ``(T + 1, n)`` row of
step sizes), so its peak does not grow with T: the peak is measured on a run of
``MEMORY_STEPS`` steps with the same S, L and blocks, not repeating the whole timed run
(``--no-memory`` skips it).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

import pyrovae
from pyrovae.config import load_config
from pyrovae.data import load_data
from pyrovae.distributions import HALF_LOG_2PI
from pyrovae.evaluation.ais import (
    ADAPT_RATE,
    DEFAULT_NUM_CHAINS,
    DEFAULT_NUM_LEAPFROG_STEPS,
    DEFAULT_NUM_STEPS,
    INITIAL_STEP_SIZE,
    TARGET_ACCEPT,
    ais_log_likelihood,
)
from pyrovae.rng import derived_seed, fixed_rng

from measure import alternated_times, memory_in_child, peak_memory_mib, start_run

ROOT = Path(__file__).resolve().parents[1]
#: pyrovae's default block size, (chain, example) pairs
DEFAULT_MAX_BATCH_ELEMENTS = inspect.signature(ais_log_likelihood).parameters[
    "max_batch_elements"
].default
#: examples of the full MNIST test set, for the projected time of the default budget
MNIST_TEST_EXAMPLES = 10000
#: annealing steps of the runs whose peak memory is measured (the peak does not grow with T)
MEMORY_STEPS = 3


def handwritten_schedule(num_steps: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(T + 1,)`` sigmoid schedule (delta = 4) of inverse temperatures beta_0 = 0 < ... <
    beta_T = 1, computed in ``dtype`` on ``device`` (as pyrovae computes it)."""
    s = torch.sigmoid(torch.linspace(-4.0, 4.0, num_steps + 1, dtype=dtype, device=device))
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0
    return beta


@torch.no_grad()
def handwritten_ais(
    vae: pyrovae.VAE,
    x: torch.Tensor,
    num_chains: int,
    num_steps: int,
    num_leapfrog_steps: int,
    max_batch_elements: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AIS from the guide written directly in PyTorch for this one model (Bernoulli likelihood,
    diagonal-Normal guide, standard-Normal prior), blocked and seeded exactly as
    :func:`pyrovae.evaluation.ais.ais_log_likelihood` blocks and seeds it.

    Returns ``(N,)`` estimates of log p(x), ``(N,)`` mean acceptance probabilities and ``(N,)``
    final step sizes."""
    encoder, decoder = vae.encoder, vae.decoder
    d, min_scale = vae.latent_dim, vae.guide_family.min_scale
    S, L = num_chains, num_leapfrog_steps
    beta_t = handwritten_schedule(num_steps, x.dtype, x.device)
    betas = beta_t.tolist()
    deltas = (beta_t[1:] - beta_t[:-1]).tolist()
    block = max(1, max_batch_elements // S)
    estimates = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    acceptance = torch.empty_like(estimates)
    final_step = torch.empty_like(estimates)
    for start in range(0, x.shape[0], block):
        xb = x[start : start + block]
        n = xb.shape[0]
        with fixed_rng(derived_seed(seed, "ais", 0, start), x.device):
            torch.randn(S, n, d, dtype=x.dtype, device=x.device)  # pyrovae's prior trace draw
            loc, raw_scale = encoder(xb).split(d, dim=-1)
            scale = F.softplus(raw_scale) + min_scale
            var, log_scale = scale**2, scale.log()
            z = loc + torch.randn(S, n, d, dtype=x.dtype, device=x.device) * scale
            log_densities = functools.partial(
                _log_densities, decoder, xb.expand(S, n, -1), loc, var, log_scale
            )
            log_joint, log_q = log_densities(z)
            log_w = torch.zeros_like(log_joint)
            eps = torch.full((n,), INITIAL_STEP_SIZE, dtype=x.dtype, device=x.device)
            accept_sum = torch.zeros_like(eps)
            for t in range(1, num_steps + 1):
                log_w = log_w + deltas[t - 1] * (log_joint - log_q)
                if t == num_steps:
                    break
                beta = betas[t]
                # HMC transition leaving f_beta = q^(1 - beta) p^beta invariant
                step = eps.unsqueeze(-1)
                half_step = 0.5 * step
                momentum = torch.randn_like(z)
                grad, _, _ = _grad_potential(log_densities, z, beta)
                z_new, r = z, momentum
                for _ in range(L):
                    r = r + half_step * (-grad)
                    z_new = z_new + step * r
                    grad, new_joint, new_q = _grad_potential(log_densities, z_new, beta)
                    r = r + half_step * (-grad)
                energy = -((1 - beta) * log_q + beta * log_joint) + 0.5 * momentum.square().sum(-1)
                new_energy = -((1 - beta) * new_q + beta * new_joint) + 0.5 * r.square().sum(-1)
                log_accept = (energy - new_energy).clamp(max=0.0)
                log_accept = torch.where(torch.isnan(log_accept), -math.inf, log_accept)
                accept_prob = log_accept.exp()
                accept = torch.rand_like(accept_prob) < accept_prob
                z = torch.where(accept.unsqueeze(-1), z_new, z)
                log_joint = torch.where(accept, new_joint, log_joint)
                log_q = torch.where(accept, new_q, log_q)
                chains_accept = accept_prob.mean(0)
                accept_sum = accept_sum + chains_accept
                eps = eps * torch.exp(ADAPT_RATE * (chains_accept - TARGET_ACCEPT))
        stop = start + n
        estimates[start:stop] = log_w.logsumexp(0) - math.log(S)
        acceptance[start:stop] = accept_sum / max(1, num_steps - 1)
        final_step[start:stop] = eps
    return estimates, acceptance, final_step


def _log_densities(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    loc: torch.Tensor,
    var: torch.Tensor,
    log_scale: torch.Tensor,
    z: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(x, z), log q(z|x))``, each ``(S, n)``, for latents ``z`` ``(S, n, d)``, data
    ``x`` ``(S, n, data_dim)`` and the guide's ``loc``, ``scale ** 2`` and ``log scale``."""
    logits = decoder(z)
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    log_pz = (-(z**2) / 2 - HALF_LOG_2PI).sum(-1)
    log_qz = (-((z - loc) ** 2) / (2 * var) - log_scale - HALF_LOG_2PI).sum(-1)
    return log_pz + log_px, log_qz


def _grad_potential(
    log_densities: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    z: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of the potential ``-log f_beta = -(1 - beta) log q - beta log p(x, z)``
    summed over chains (the chains are independent: each chain's gradient) at ``z``, and
    ``(log p(x, z), log q(z|x))`` there."""
    with torch.enable_grad():
        z = z.detach().requires_grad_()
        log_joint, log_q = log_densities(z)
        potential = -((1 - beta) * log_q + beta * log_joint).sum()
        (grad,) = torch.autograd.grad(potential, z)
    return grad, log_joint.detach(), log_q.detach()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-examples", type=int, default=200)
    parser.add_argument("--num-chains", type=int, default=DEFAULT_NUM_CHAINS, help="S")
    parser.add_argument("--num-steps", type=int, default=DEFAULT_NUM_STEPS, help="T")
    parser.add_argument("--num-leapfrog-steps", type=int, default=DEFAULT_NUM_LEAPFROG_STEPS,
                        help="L")
    parser.add_argument("--max-batch-elements", type=int, default=DEFAULT_MAX_BATCH_ELEMENTS)
    parser.add_argument("--hidden", type=int, default=0,
                        help="hidden units of encoder and decoder (0: configs/mnist.toml's)")
    parser.add_argument("--latent-dim", type=int, default=0,
                        help="latent dimensions (0: configs/mnist.toml's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each (median)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    device, _ = start_run(args, "ais_speed.py")

    config = load_config(ROOT / "configs" / "mnist.toml")
    config["data"]["test_limit"] = args.num_examples
    if args.hidden:
        config["model"]["encoder"]["hidden"] = [args.hidden]
        config["model"]["decoder"]["hidden"] = [args.hidden]
    if args.latent_dim:
        config["model"]["latent_dim"] = args.latent_dim
    torch.manual_seed(0)
    vae = pyrovae.VAE.from_config(config).to(device).eval()
    x = load_data(config["data"], device=device).test_images
    S, L, M, seed = args.num_chains, args.num_leapfrog_steps, args.max_batch_elements, args.seed
    T = min(args.num_steps, MEMORY_STEPS) if args.memory_only else args.num_steps

    def ours() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        estimate, diagnostics = ais_log_likelihood(
            vae, x, num_chains=S, num_steps=T, num_leapfrog_steps=L, max_batch_elements=M,
            seed=seed,
        )
        return estimate, diagnostics.acceptance_rate, diagnostics.step_size

    def handwritten() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return handwritten_ais(vae, x, S, T, L, M, seed)

    methods = {"pyrovae": ours, "handwritten": handwritten}
    a, b = ours(), handwritten()  # warm-up, and the same draws: the same numbers
    if args.memory_only:
        print(json.dumps({name: peak_memory_mib(fn, device) for name, fn in methods.items()}))
        return {}
    diffs = [(u - v).abs().max().item() for u, v in zip(a, b)]
    num_apart = int(((a[0] - b[0]).abs() > 1e-3).sum())
    wall, cpu = alternated_times(methods, args.repeats, device)
    if args.no_memory:
        peaks = dict.fromkeys(methods, math.nan)
    elif device.type == "cpu":
        peaks = memory_in_child(__file__, argv)
    else:
        T = min(args.num_steps, MEMORY_STEPS)  # ours() and handwritten() read T when called
        peaks = {name: peak_memory_mib(fn, device) for name, fn in methods.items()}
    med = {name: statistics.median(t) for name, t in wall.items()}
    med_cpu = {name: statistics.median(t) for name, t in cpu.items()}
    ratio = med["pyrovae"] / med["handwritten"]
    ratio_cpu = med_cpu["pyrovae"] / med_cpu["handwritten"]
    N = x.shape[0]
    print(f"device {device}, torch threads {torch.get_num_threads()}, N={N} test examples, "
          f"S={S} chains, T={args.num_steps} steps, L={L} leapfrog steps "
          f"({(args.num_steps - 1) * (L + 1)} gradient evaluations per chain), "
          f"max_batch_elements={M}, {args.repeats} timed calls each")
    print(f"mean log p(x): {a[0].mean().item():.4f} nats (pyrovae), {b[0].mean().item():.4f} "
          f"(hand-written); max |difference| {diffs[0]:.2e} nats, {num_apart} of {N} examples "
          f"apart by > 1e-3 nats")
    print(f"mean acceptance rate {a[1].mean().item():.4f} (pyrovae), {b[1].mean().item():.4f} "
          f"(hand-written), max |difference| {diffs[1]:.2e}; final step sizes max |difference| "
          f"{diffs[2]:.2e}")
    for name in methods:
        peak = "not measured" if math.isnan(peaks[name]) else f"+{peaks[name]:.0f} MiB"
        print(f"{name:>12}: median {med[name]:.3f} s wall (min {min(wall[name]):.3f} s), "
              f"{med_cpu[name]:.3f} s CPU, peak memory {peak}")
    print(f"ratio pyrovae / hand-written: {ratio:.3f} (median wall time), {ratio_cpu:.3f} "
          f"(median process CPU time)")
    # cost: (chain, density evaluation) pairs per example
    run_cost = S * ((args.num_steps - 1) * (L + 1) + 1)
    default_cost = DEFAULT_NUM_CHAINS * ((DEFAULT_NUM_STEPS - 1) * (DEFAULT_NUM_LEAPFROG_STEPS + 1)
                                         + 1)
    default_budget = (S, args.num_steps, L) == (
        DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS, DEFAULT_NUM_LEAPFROG_STEPS)
    projected = med["pyrovae"] * MNIST_TEST_EXAMPLES / N * default_cost / run_cost
    how = "scaled linearly in examples" + (
        "" if default_budget else f" and from this run's S={S}, T={args.num_steps}, L={L} by "
        f"S((T-1)(L+1)+1) ({default_cost} / {run_cost}): rerun with the default budget to quote it")
    print(f"projected pyrovae time of the default budget (S={DEFAULT_NUM_CHAINS}, "
          f"T={DEFAULT_NUM_STEPS}, L={DEFAULT_NUM_LEAPFROG_STEPS}) on the {MNIST_TEST_EXAMPLES} "
          f"MNIST test examples on {device}: {projected:.0f} s ({projected / 3600:.2f} h; "
          f"median wall time on {N} examples {how})")
    return {
        "estimates": {"pyrovae": a[0], "handwritten": b[0]},
        "acceptance_rate": {"pyrovae": a[1], "handwritten": b[1]},
        "step_size": {"pyrovae": a[2], "handwritten": b[2]},
        "wall": wall,
        "cpu": cpu,
        "peak_memory_mib": peaks,
        "ratio_wall": ratio,
        "ratio_cpu": ratio_cpu,
        "projected_seconds": projected,
        "default_budget": default_budget,
    }


if __name__ == "__main__":
    main()
