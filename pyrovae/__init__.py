"""pyrovae: variational autoencoders whose model and guide are Pyro programs."""

from . import figures, plots
from .config import load_config, resolve_config
from .data import DATASETS, ImageData, load_data
from .elbo import AnalyticKL_ELBO, AnalyticKLFallbackWarning
from .errors import CheckpointError, ConfigError, DataError, PyrovaeError
from .evaluation import elbo_per_example, kl_per_dimension, rate_and_distortion
from .guides import GUIDES, GuideFamily
from .iwae import IWAE_ELBO
from .likelihoods import LIKELIHOODS, Likelihood
from .marginal import Evaluation, ImportanceDiagnostics, evaluate, log_likelihood
from .networks import DECODERS, ENCODERS
from .objectives import OBJECTIVES, Objective
from .priors import PRIORS, Prior
from .replay import ELBOGradient
from .trace_elbo import SyncFreeTrace_ELBO
from .training import Trainer, load_run, resume, train
from .vae import VAE

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "Trainer",
    "train",
    "resume",
    "load_run",
    "load_config",
    "resolve_config",
    "load_data",
    "ImageData",
    "elbo_per_example",
    "rate_and_distortion",
    "kl_per_dimension",
    "log_likelihood",
    "evaluate",
    "Evaluation",
    "ImportanceDiagnostics",
    "AnalyticKL_ELBO",
    "AnalyticKLFallbackWarning",
    "IWAE_ELBO",
    "PRIORS",
    "LIKELIHOODS",
    "ENCODERS",
    "DECODERS",
    "GUIDES",
    "OBJECTIVES",
    "DATASETS",
    "Prior",
    "Likelihood",
    "GuideFamily",
    "Objective",
    "SyncFreeTrace_ELBO",
    "ELBOGradient",
    "PyrovaeError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "plots",
    "figures",
]
