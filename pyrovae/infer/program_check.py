"""The contract a program's ``model`` and ``guide`` keep, checked once on real examples before
training: what Pyro would otherwise report with a traceback and its trace dumps, or not at
all.

* the model scores the data at an observed sample site named ``"x"`` whose distribution has
  the data's shape (or broadcasts to it);
* the guide samples no site that the model lacks (the model, replayed on such a draw, ignores
  it: every estimate of log p(x) would be wrong);
* no site's log-density is NaN at the program's initial parameters.

Each break is a :class:`~pyrovae.errors.ConfigError` of one line naming the program, the site
and what was expected.
"""

from __future__ import annotations

import warnings
from typing import Any

import pyro
import torch

from ..errors import ConfigError, PyrovaeError
from ..models.program import Program, latent_sites
from ..rng import preserved_rng
from .log_weights import trace_pair

__all__ = ["check_program_sites"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _traces(program: Program, x: torch.Tensor, y: torch.Tensor | None) -> tuple[Any, Any]:
    """The guide's and the replayed model's traces on ``x``, with their log-densities;
    random state and param store as they were."""
    name = type(program.module).__name__
    with pyro.get_param_store().scope(), preserved_rng(x.device), program.quiet():
        try:
            with torch.no_grad():
                model_trace, guide_trace = trace_pair(program.model, program.guide, x, y)
        except PyrovaeError:
            raise
        except Exception as exc:  # the user's code
            raise ConfigError(
                f"the program {name} fails on two training examples of shape "
                f"{tuple(x.shape)} ({_first_line(exc)}); fix its model or guide"
            ) from None
    return model_trace, guide_trace


def check_program_sites(program: Program, x: torch.Tensor, y: torch.Tensor | None) -> None:
    """Raise :class:`~pyrovae.errors.ConfigError` when ``program`` breaks the contract of the
    module's docstring on the examples ``x`` ``(N, D)`` (labels ``y``: what the programs
    get); the random stream and Pyro's param store are left as they were."""
    name = type(program.module).__name__
    model_trace, guide_trace = _traces(program, x, y)
    site = model_trace.nodes.get("x")
    if site is None or site["type"] != "sample" or not site["is_observed"]:
        observed = [n for n, s in model_trace.nodes.items() if s.get("is_observed")]
        raise ConfigError(
            f"the model of the program {name} has no observed sample site 'x' (its observed "
            f"sites: {observed or 'none'}); score the data with pyro.sample('x', ..., obs=x)"
        )
    extra = [n for n in latent_sites(guide_trace) if n not in model_trace.nodes]
    if extra:
        raise ConfigError(
            f"the guide of the program {name} samples {extra}, which its model lacks: every "
            "estimate of log p(x) would be wrong; remove them from the guide or add them to "
            "the model"
        )
    _check_x_shape(name, site)
    _check_log_densities(name, model_trace, "model")
    _check_log_densities(name, guide_trace, "guide")


def _check_x_shape(name: str, site: dict[str, Any]) -> None:
    fn, value = site["fn"], site["value"]
    # enumerated guide sites add dimensions on the left of the data's: only its own count
    shape = tuple(fn.batch_shape + fn.event_shape)[-value.dim() :]
    try:
        fits = torch.broadcast_shapes(shape, value.shape) == value.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ConfigError(
            f"the model of the program {name} gives the site 'x' a distribution of shape "
            f"{shape}, but the data x has shape {tuple(value.shape)}; make its distribution "
            "of one example match the data's (.to_event(1) over the features)"
        )


def _check_log_densities(name: str, trace: Any, which: str) -> None:
    try:
        with warnings.catch_warnings():  # Pyro's own word on a NaN: said below, in one line
            warnings.simplefilter("ignore")
            trace.compute_log_prob()
    except Exception as exc:  # the user's distributions
        raise ConfigError(
            f"the {which} of the program {name} has a log-density that cannot be computed "
            f"({_first_line(exc)}); fix its distributions"
        ) from None
    for site_name, site in trace.nodes.items():
        log_prob = site.get("log_prob") if site["type"] == "sample" else None
        if log_prob is not None and bool(torch.isnan(log_prob).any()):
            raise ConfigError(
                f"the {which} of the program {name} has a NaN log-density at site "
                f"'{site_name}' on the first training examples; check the parameters its "
                "distribution gets"
            )
