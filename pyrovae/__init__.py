"""pyrovae: variational autoencoders whose model and guide are Pyro programs.

The package, one idea per module:

* :mod:`pyrovae.models`: :class:`Program`, the contract every model meets (and
  :func:`as_program`, which adapts a module of your own to it), :func:`build_model`, the one
  factory, and the :class:`VAE` and :class:`HierarchicalVAE` with their components (priors,
  likelihoods, guides, networks), each registered by name;
* :mod:`pyrovae.infer`: the ELBOs (one per file), the objectives registry, the latent-site
  weighting, the shared importance log-weights and the replayed training step;
* :mod:`pyrovae.evaluation`: log-likelihoods and per-example metrics on held-out data;
* :mod:`pyrovae.training`: the trainer, runs and run directories;
* :mod:`pyrovae.viz`: figures (matplotlib, imported on first use);
* :mod:`pyrovae.config`, :mod:`pyrovae.registry`: declarative configs and their validation;
  :mod:`pyrovae.memory`: the memory a device has and a computation takes (the sizes of a
  model and of its passes: :mod:`pyrovae.models.size`);
  :mod:`pyrovae.data`: data sets; :mod:`pyrovae.atomic`: atomic file writes;
  :mod:`pyrovae.tables`: per-example outputs as data files; :mod:`pyrovae.export`: a
  trained model's networks for plain PyTorch;
  :mod:`pyrovae.cli`: the ``pyrovae`` command.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import load_config, resolve_config
from .data import DATASETS, ImageData, load_data
from .describe import describe
from .errors import (
    BinarizedColourWarning,
    CheckpointError,
    ConfigError,
    DataError,
    DistributedError,
    DivergenceError,
    PyrovaeError,
    PyrovaeWarning,
    RunDirectoryError,
    UnreliableEstimateWarning,
    WriteError,
)
from .evaluation import (
    Evaluation,
    ImportanceDiagnostics,
    InferenceGaps,
    LocalOptimization,
    elbo_per_example,
    encode,
    evaluate,
    example_scores,
    inference_gaps,
    kl_per_dimension,
    log_likelihood,
    rate_and_distortion,
)
from .export import export_model
from .infer import (
    ELBO,
    IWAE_ELBO,
    OBJECTIVES,
    AnalyticKL_ELBO,
    AnalyticKLFallbackWarning,
    ELBOGradient,
    Objective,
    Trace_ELBO,
    scale_latents,
)
from .models import (
    DECODERS,
    ENCODERS,
    GUIDES,
    LIKELIHOODS,
    PRIORS,
    VAE,
    GuideFamily,
    HierarchicalVAE,
    Likelihood,
    Prior,
    Program,
    as_program,
    build_model,
)
from .training import Callback, Trainer, load_run, resume, train
from .version import __version__

__all__ = [
    "__version__",
    "DATASETS",
    "DECODERS",
    "ELBO",
    "ENCODERS",
    "GUIDES",
    "IWAE_ELBO",
    "LIKELIHOODS",
    "OBJECTIVES",
    "PRIORS",
    "VAE",
    "AnalyticKLFallbackWarning",
    "AnalyticKL_ELBO",
    "Callback",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DistributedError",
    "DivergenceError",
    "ELBOGradient",
    "Evaluation",
    "GuideFamily",
    "HierarchicalVAE",
    "ImageData",
    "ImportanceDiagnostics",
    "InferenceGaps",
    "Likelihood",
    "LocalOptimization",
    "Objective",
    "Prior",
    "Program",
    "PyrovaeError",
    "PyrovaeWarning",
    "BinarizedColourWarning",
    "RunDirectoryError",
    "Trace_ELBO",
    "Trainer",
    "UnreliableEstimateWarning",
    "WriteError",
    "as_program",
    "build_model",
    "describe",
    "elbo_per_example",
    "encode",
    "evaluate",
    "example_scores",
    "export_model",
    "inference_gaps",
    "kl_per_dimension",
    "load_config",
    "load_data",
    "load_run",
    "log_likelihood",
    "rate_and_distortion",
    "resolve_config",
    "resume",
    "scale_latents",
    "train",
    "viz",
]


def __getattr__(name: str) -> Any:
    # pyrovae.viz imports matplotlib: only when it is first used
    if name == "viz":
        return importlib.import_module(".viz", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
