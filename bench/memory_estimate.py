"""How close pyrovae's memory estimate of an evaluation pass is to the memory the pass takes.

``pyrovae.log_likelihood`` sizes its passes to the memory there is
(:func:`pyrovae.models.size.fit_batch_elements`) from the peak memory of one pass measured on
fake tensors (:func:`pyrovae.models.size.pass_bytes`). This script compares that estimate with
the memory the same pass takes when it runs, for three ready configs:

* ``mlp``: ``configs/mnist.toml`` (784-400-50 MLPs, Bernoulli pixels) on MNIST;
* ``conv``: ``configs/conv.toml`` (convolutional encoder and decoder) on MNIST;
* ``colour``: ``configs/cifar10.toml`` (3x32x32, conv nets, a mixture of 5 discretized
  logistics per pixel and channel) on a CIFAR-shaped array of random uint8 images that the
  script writes (``data.dataset = "array"``).

One pass is K draws for each of ``pairs // K`` test examples, the guide and the model replayed
on its draws (:func:`pyrovae.infer.log_weights.log_weights`), in eval mode under
``torch.no_grad()``, as the importance-sampled log-likelihood runs it. The measured peak is the
rise of the peak resident set (Linux ``VmHWM``, reset before the pass) in a child process run
with ``MALLOC_MMAP_THRESHOLD_=65536``, so that glibc returns every tensor above 64 KiB to the
system when it is freed and the resident set follows the live tensors (``bench/measure.py``).
The ratio is estimate / measured: above 1 the estimate is cautious, below 1 it is short.

    PYROVAE_DATA=/path/to/data python bench/memory_estimate.py --pairs 4000 --num-samples 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from pyrovae.config import load_config
from pyrovae.data import load_data
from pyrovae.infer.log_weights import log_weights
from pyrovae.models.factory import build_model
from pyrovae.models.size import pass_bytes

from measure import memory_in_child, peak_memory_mib, start_run

ROOT = Path(__file__).resolve().parents[1]
#: the benchmarked configs, by name
CONFIGS = {"mlp": "mnist.toml", "conv": "conv.toml", "colour": "cifar10.toml"}
#: the shape of one image of the CIFAR-shaped array the colour config reads (height, width,
#: channels, as a .npy file of images holds them)
COLOUR_IMAGE = (32, 32, 3)


def colour_array(folder: Path, num: int, seed: int) -> Path:
    """Write ``num`` random uint8 images of :data:`COLOUR_IMAGE` to ``folder/colour.npy``."""
    path = folder / "colour.npy"
    images = np.random.default_rng(seed).integers(0, 256, (num, *COLOUR_IMAGE), dtype=np.uint8)
    np.save(path, images)
    return path


def setup(name: str, examples: int, folder: Path, seed: int) -> tuple[Any, torch.Tensor, Any]:
    """The program of config ``name`` (weights from ``seed``) and ``examples`` of its test
    images and labels (labels ``None`` unless the model reads them)."""
    config = load_config(ROOT / "configs" / CONFIGS[name])
    limit = max(examples, 10)  # the array's test split is a tenth of it
    config["data"].update(train_limit=limit, test_limit=limit)
    if name == "colour":
        # data.test_fraction (a tenth) of the array is the test split
        path = colour_array(folder, max(200, 20 * examples), seed)
        config["data"].update(dataset="array", path=str(path))
    data = load_data(config["data"])
    config["data"].update(data.record())
    torch.manual_seed(seed)
    program = build_model(config).eval()
    x = data.test_images[:examples]
    assert x.shape[0] == examples, f"{name}: only {x.shape[0]} test examples"
    return program, x, program.model_labels(data.test_labels[:examples])


def run_pass(program: Any, x: torch.Tensor, y: Any, num_samples: int) -> None:
    """One evaluation pass, as the importance-sampled log-likelihood runs it."""
    with torch.no_grad(), program.evaluating():
        log_weights(program.model, program.guide, x, y, num_particles=num_samples)


def measured_peak(program: Any, x: torch.Tensor, y: Any, num_samples: int) -> float:
    """The rise of the resident set during one pass, in MiB (after a first, warm-up pass)."""
    run_pass(program, x, y, num_samples)
    return peak_memory_mib(lambda: run_pass(program, x, y, num_samples), torch.device("cpu"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4000,
                        help="(sample, example) pairs of the pass: K x examples")
    parser.add_argument("--num-samples", type=int, default=1000, help="K, draws per example")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device = "cpu"  # the resident set measured is the host's (start_run reads it)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    start_run(args, "memory_estimate.py")
    k = min(args.num_samples, args.pairs)
    examples = max(1, args.pairs // k)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: setup(name, examples, Path(tmp), args.seed) for name in args.configs}
        if args.memory_only:  # the child: the measured peaks, in MiB
            print(json.dumps({name: measured_peak(*run, k) for name, run in runs.items()}))
            return {}
        estimates = {name: pass_bytes(program, x, y, k) / 2**20
                     for name, (program, x, y) in runs.items()}
    measured = memory_in_child(__file__, argv)
    print(f"one evaluation pass of K={k} x {examples} examples = {k * examples} pairs, CPU, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}, pyro "
          f"{pyro.__version__}")
    rows = []
    for name in args.configs:
        # a pass too small to raise the resident set has no ratio
        ratio = estimates[name] / measured[name] if measured[name] > 0 else float("nan")
        rows.append({"config": name, "estimate_mib": estimates[name],
                     "measured_mib": measured[name], "ratio": ratio})
        print(f"{name:>7} ({CONFIGS[name]}): estimate {estimates[name]:9.1f} MiB, measured "
              f"{measured[name]:9.1f} MiB, ratio estimate / measured {ratio:.2f}")
    return {"pairs": k * examples, "num_samples": k, "rows": rows}


if __name__ == "__main__":
    main()
