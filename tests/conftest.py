"""Shared test set-up: offline MNIST from ../shared/data, tiny configs, clean Pyro state.

The tests mirror the package (tests/models/ for pyrovae/models/, ...); the helpers beside this
file (``linear_gaussian``, ``png_checks``) and this file itself are imported by name from every
folder (``from conftest import tiny_config``), so this folder is put on ``sys.path`` here,
whatever pytest's import mode. Test module names are unique across folders for the same
reason (there are no ``__init__.py`` files).
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pyro
import pytest
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
# the benchmark scripts, loaded by some tests, import their shared bench/measure.py by name
if str(ROOT / "bench") not in sys.path:
    sys.path.append(str(ROOT / "bench"))
# Tests never touch the network: data comes from $PYROVAE_DATA or ../shared/data.
os.environ.setdefault("PYROVAE_DATA", str(ROOT.parent / "shared" / "data"))
os.environ["PYROVAE_OFFLINE"] = "1"
DATA_ROOT = Path(os.environ["PYROVAE_DATA"])

TINY_CONFIG: dict[str, Any] = {
    "data": {"dataset": "mnist", "binarize": "dynamic", "train_limit": 512, "test_limit": 256},
    "model": {
        "latent_dim": 8,
        "prior": {"type": "standard_normal"},
        "likelihood": {"type": "bernoulli"},
        "encoder": {"type": "mlp", "hidden": [64]},
        "decoder": {"type": "mlp", "hidden": [64]},
        "guide": {"type": "diag_normal"},
    },
    "objective": {"type": "trace_elbo", "num_particles": 1},
    "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "seed": 0, "device": "cpu",
              "eval_batch_size": 256},
}


def tiny_config(**sections: dict[str, Any]) -> dict[str, Any]:
    """A copy of :data:`TINY_CONFIG` with the given sections' keys updated, e.g.
    ``tiny_config(train={"epochs": 2}, model={"latent_dim": 2})``."""
    config = copy.deepcopy(TINY_CONFIG)
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def tiny_vae(**model: Any) -> Any:
    """The built-in VAE of :data:`TINY_CONFIG` with the given ``[model]`` keys updated."""
    import pyrovae

    return pyrovae.VAE.from_config(tiny_config(model=model))


def numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics rows without the keys that time a run (the same numbers, not the same
    seconds)."""
    from pyrovae.training.trainer import TIMING_KEYS

    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def binary_images(n: int, seed: int = 0, p: float = 0.3) -> torch.Tensor:
    """``(n, 784)`` binary "images", each pixel 1 with probability ``p``, drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 784), p), generator=gen)


@pytest.fixture
def vae() -> Any:
    """The tiny config's VAE (an 8-d latent, 64-unit MLPs, Bernoulli pixels)."""
    return tiny_vae()


@pytest.fixture
def x() -> torch.Tensor:
    """A batch of 16 binary images, drawn from the test's seeded stream."""
    return torch.bernoulli(torch.full((16, 784), 0.3))


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh tiny config (512 train / 256 test MNIST images, 8-d latent, CPU)."""
    return tiny_config()


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    """The tiny config written as a TOML file in the test's folder."""
    from pyrovae.config import dumps_toml

    path = tmp_path / "tiny.toml"
    path.write_text(dumps_toml(tiny_config()))
    return path


@pytest.fixture(autouse=True)
def clean_pyro_state():
    """Every test starts with an empty param store, a fixed seed and validation on, and leaves
    torch's number of CPU threads as it found it (a benchmark's ``--threads 1`` run in-process
    would otherwise change the roundings of every later test's reference run)."""
    threads = torch.get_num_threads()
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    yield
    pyro.clear_param_store()
    torch.set_num_threads(threads)


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: tests of thousands of small tensor ops only pay
    synchronisation waits for a second thread, several times slower per ELBO gradient on two
    cores. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
