"""Evaluation of trained VAEs on held-out data, in nats per example.

* :mod:`~pyrovae.evaluation.log_likelihood`: log p(x) per example, by importance sampling
  (:mod:`~pyrovae.evaluation.importance`, with the PSIS diagnostic of
  :mod:`~pyrovae.evaluation.psis`) or annealed importance sampling
  (:mod:`~pyrovae.evaluation.ais`);
* :mod:`~pyrovae.evaluation.bdmc`: bidirectional Monte Carlo bounds on data simulated from
  the model, to choose AIS's number of steps;
* :mod:`~pyrovae.evaluation.inference_gaps`: where the nats go, the approximation and
  amortization gaps per example (:mod:`~pyrovae.evaluation.local_elbo`: the ELBO of the guide's
  family optimized per example);
* :mod:`~pyrovae.evaluation.compare`: paired comparison of models on the same examples;
* :mod:`~pyrovae.evaluation.metrics`: the ELBO, rate and distortion per example, and the KL
  per latent dimension;
* :mod:`~pyrovae.evaluation.encode`: the posterior mean and scale of each example;
* :mod:`~pyrovae.evaluation.example_scores`: a table of per-example log-likelihoods with
  their standard errors and diagnostics;
* :mod:`~pyrovae.evaluation.bits_per_dim`: log-likelihoods of masses on 8-bit (or binary)
  data in bits per dimension;
* :mod:`~pyrovae.evaluation.evaluate`: all of it summarized with standard errors
  (:mod:`~pyrovae.evaluation.standard_error`: the one mean-and-standard-error).

IS, AIS and BDMC are :class:`~pyrovae.evaluation.estimator.BlockEstimator` subclasses: the
driver in :mod:`~pyrovae.evaluation.estimator` owns the blocks, their seeds, the repeats, the
processes' shares, the progress bar and eval mode; each estimator only its per-block work.
"""

from .ais import AISDiagnostics
from .bdmc import BDMCResult, bdmc
from .bits_per_dim import bits_per_dim, bits_per_dim_note
from .compare import Comparison, compare
from .encode import encode
from .evaluate import Evaluation, evaluate, evaluate_test_set
from .example_scores import example_scores
from .importance import ImportanceDiagnostics, RunningLogMeanExp
from .inference_gaps import InferenceGaps, inference_gaps
from .local_elbo import LocalELBOResult, LocalOptimization
from .log_likelihood import METHODS, log_likelihood
from .metrics import elbo_per_example, kl_per_dimension, rate_and_distortion
from .standard_error import mean_and_se

__all__ = [
    "METHODS",
    "AISDiagnostics",
    "BDMCResult",
    "Comparison",
    "Evaluation",
    "ImportanceDiagnostics",
    "InferenceGaps",
    "LocalELBOResult",
    "LocalOptimization",
    "RunningLogMeanExp",
    "bdmc",
    "bits_per_dim",
    "bits_per_dim_note",
    "compare",
    "elbo_per_example",
    "encode",
    "evaluate",
    "evaluate_test_set",
    "example_scores",
    "inference_gaps",
    "kl_per_dimension",
    "log_likelihood",
    "mean_and_se",
    "rate_and_distortion",
]
