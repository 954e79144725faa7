"""Evaluation of trained VAEs on held-out data, in nats per example.

* :mod:`~pyrovae.evaluation.log_likelihood`: the importance-sampled log p(x) and its
  diagnostics;
* :mod:`~pyrovae.evaluation.metrics`: the ELBO, rate and distortion per example, and the KL
  per latent dimension;
* :mod:`~pyrovae.evaluation.evaluate`: all of it summarized with standard errors.
"""

from .evaluate import Evaluation, evaluate, evaluate_test_set, mean_and_se
from .log_likelihood import ImportanceDiagnostics, RunningLogMeanExp, log_likelihood
from .metrics import elbo_per_example, kl_per_dimension, rate_and_distortion

__all__ = [
    "Evaluation",
    "ImportanceDiagnostics",
    "RunningLogMeanExp",
    "elbo_per_example",
    "evaluate",
    "evaluate_test_set",
    "kl_per_dimension",
    "log_likelihood",
    "mean_and_se",
    "rate_and_distortion",
]
