"""A trained model's networks as programs that plain PyTorch loads, without pyrovae.

:func:`export_model` writes, into a new folder:

* ``encoder.pt2``: ``x (N, D) -> (loc, scale)``, each ``(N, L)``: q(z|x) = prod_d
  Normal(z_d | loc_d, scale_d), the posterior of each example;
* ``decoder.pt2``: ``z (N, L) -> mean (N, D)``: E[x|z], the mean of the run's likelihood
  p(x|z) (for ``bernoulli``: the pixels' probabilities; reshape a row to the image shape);
* ``model.json``: the shapes, what each output means, the likelihood, and how the data was
  prepared for training (scaling, binarization).

Each network is a :func:`torch.export.export` program (``torch.export.load(path).module()``)
with a dynamic batch size, or, where export cannot trace it, a TorchScript module
(``torch.jit.load(path)``; the file is then ``encoder.ts`` / ``decoder.ts``, and
``model.json`` says which). Neither holds Python code of pyrovae: only torch operations and
the trained weights. The model must have a single latent space with one Normal per dimension
(:class:`~pyrovae.VAE` with the ``diag_normal`` guide).

Example::

    spec = pyrovae.export_model(vae, "exported/")
    # later, anywhere with torch alone:
    encoder = torch.export.load("exported/encoder.pt2").module()
    loc, scale = encoder(x)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import nn

from .atomic import atomic_write_bytes
from .errors import ConfigError, PyrovaeError
from .evaluation.metrics import normal_factors
from .models.program import LatentSpace, Program, as_program

__all__ = ["EXPORT_FORMAT", "SPEC_FILE", "export_model"]

#: bumped when the files or ``model.json`` change
EXPORT_FORMAT = 1
SPEC_FILE = "model.json"
#: examples of the batch the networks are traced with (any batch size runs them after)
TRACE_BATCH = 3


class PosteriorNetwork(nn.Module):
    """``x (N, D) -> (loc, scale)`` of q(z|x) = prod_d Normal(loc_d, scale_d)."""

    def __init__(self, space: LatentSpace) -> None:
        super().__init__()
        self.space = space

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = normal_factors(self.space.posterior(x))
        if q is None:
            raise ConfigError(
                "export writes q(z|x) as one Normal per latent dimension, but this guide has "
                "another form; use model.guide = 'diag_normal'"
            )
        return q.loc, q.scale


class MeanNetwork(nn.Module):
    """``z (N, L) -> E[x|z] (N, D)``, the mean of the likelihood."""

    def __init__(self, space: LatentSpace) -> None:
        super().__init__()
        self.space = space

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.space.decode_mean(z)


def _save(network: nn.Module, example: torch.Tensor, out: Path, name: str) -> dict[str, str]:
    """``network`` exported with a dynamic batch size (TorchScript where export fails),
    written atomically to ``out``; returns its ``file`` and ``format``."""
    try:
        batch = torch.export.Dim.DYNAMIC
        program = torch.export.export(network, (example,), dynamic_shapes=({0: batch},))
        path = out / f"{name}.pt2"
        atomic_write_bytes(path, lambda f: torch.export.save(program, f))
        return {"file": path.name, "format": "torch.export"}
    except PyrovaeError:
        raise
    except Exception:  # what export cannot trace (data-dependent Python): TorchScript's trace
        traced = torch.jit.trace(network, (example,), check_trace=False)
        path = out / f"{name}.ts"
        atomic_write_bytes(path, lambda f: torch.jit.save(traced, f))
        return {"file": path.name, "format": "torchscript"}


def _check_out(out: Path) -> None:
    """``out`` must be a new or empty folder: export writes over nothing."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise PyrovaeError(f"--out '{out}' is {what}; give a new or empty folder to export into")


def export_model(
    vae: nn.Module, out: str | os.PathLike, *, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Export the encoder and decoder of ``vae`` into the new or empty folder ``out`` (see the
    module's docstring) and return what ``model.json`` holds.

    Args:
        vae: the trained model (a :class:`~pyrovae.models.program.Program` or a module of one's
            own with a single latent space of Normal factors).
        out: the folder to write (created; it must be new or empty).
        data: the run's ``data`` config section, recorded in ``model.json`` (how examples
            were prepared: ``binarize``, ``shape``...).

    Raises:
        ConfigError: the model has no single latent space of Normal factors.
        PyrovaeError: ``out`` is a file or a folder that is not empty.
    """
    program: Program = as_program(vae)
    space = program.latent_space("export")
    out = Path(out)
    _check_out(out)
    dim = program.data_dim
    if dim is None:
        raise ConfigError("export needs the model's data_dim (the width of x)")
    x = torch.full((TRACE_BATCH, dim), 0.5, dtype=program.dtype, device=program.device)
    z = torch.zeros(TRACE_BATCH, space.latent_dim, dtype=program.dtype, device=program.device)
    likelihood = program.likelihood_component()
    spec: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "example_shape": list(program.example_shape()),
        "data_dim": dim,
        "latent_dim": space.latent_dim,
        "likelihood": likelihood.type_name if likelihood is not None else None,
        "data": dict(data or {}),
    }
    meaning = likelihood.describe() if likelihood is not None else "the model's site 'x'"
    with program.evaluating(), pyro.validation_enabled(False), _no_validation(), torch.no_grad():
        PosteriorNetwork(space)(x)  # refuses a guide that is not Normal factors, before writing
        out.mkdir(parents=True, exist_ok=True)
        spec["encoder"] = {
            **_save(PosteriorNetwork(space), x, out, "encoder"),
            "inputs": {"x": ["N", dim]},
            "outputs": {"loc": ["N", space.latent_dim], "scale": ["N", space.latent_dim]},
            "meaning": "q(z|x) = prod_d Normal(z_d | loc_d, scale_d), the posterior of x",
        }
        spec["decoder"] = {
            **_save(MeanNetwork(space), z, out, "decoder"),
            "inputs": {"z": ["N", space.latent_dim]},
            "outputs": {"mean": ["N", dim]},
            "meaning": f"E[x|z], the mean of p(x|z) = {meaning}; reshape a row to example_shape",
        }
    text = json.dumps(spec, indent=2) + "\n"
    atomic_write_bytes(out / SPEC_FILE, lambda f: f.write(text.encode()))
    return spec


@contextlib.contextmanager
def _no_validation() -> Iterator[None]:
    """torch.distributions' argument checks off for the block (they read values, which a
    trace cannot), restored after."""
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
