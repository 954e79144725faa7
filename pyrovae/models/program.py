"""Your own Pyro programs: what a module must provide to be trained and scored by pyrovae.

A *program* is a :class:`torch.nn.Module` with two Pyro programs as methods:

* ``model(x, y=None)``: p(x, latents), with the examples in ``pyro.plate("data", N)`` (at
  dim -1) and the observations at the sample site ``"x"`` (``obs=x``, ``x`` of shape
  ``(N, data_dim)``); every other sample site is a latent variable;
* ``guide(x, y=None)``: q(latents | x), over the same plate, sampling the model's latent sites
  (continuous sites reparameterized for ``analytic_kl``/``iwae``; discrete sites marked for
  parallel enumeration with ``infer={"enumerate": "parallel"}`` or
  :func:`pyro.infer.config_enumerate`, trained with ``objective.type = "trace_enum_elbo"``).

Its learned state is ``module.parameters()`` (a ``pyro.param`` outside the module is not
trained). :class:`~pyrovae.VAE` is one such module. The rest is optional, each with a fallback
(:data:`OPTIONAL`): ``data_dim`` and ``image_shape`` (else taken from the data),
``check_data(x, y, *, name, grey_levels)`` (else shape, dtype, device and finiteness are
checked), ``model_labels(y)`` (which labels the programs see; else all of them),
``sample(num)`` and ``reconstruct(x)`` (else the mean of site ``"x"`` under a run of the
model from its prior, or replayed on the guide's draws), ``describe()`` (else the sites of a
trace) and ``param_store_registration(enabled)``.

Example::

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Linear(4, 2)

        def model(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
                pyro.sample("x", dist.Normal(z @ torch.ones(2, 4), 1.0).to_event(1), obs=x)

        def guide(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", dist.Normal(self.loc(x), 1.0).to_event(1))

    check_program(Tiny())
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import nn

from ..errors import ConfigError, DataError

__all__ = [
    "OPTIONAL",
    "Program",
    "build_model",
    "check_data",
    "check_objective",
    "check_program",
    "data_dim",
    "describe_program",
    "image_shape",
    "latent_sites",
    "load_factory",
    "model_labels",
    "no_param_store_registration",
    "reconstruct",
    "sample",
]

#: where a program's contract is explained, for error messages
DOCS = "docs/programs.md"


@runtime_checkable
class Program(Protocol):
    """What pyrovae requires of a module: the two Pyro programs (and ``nn.Module``'s
    ``parameters``/``state_dict``/``train``/``eval``, checked by :func:`check_program`)."""

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any: ...

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any: ...


#: the optional members of a program and what pyrovae does without them
OPTIONAL: dict[str, str] = {
    "data_dim": "taken from the data",
    "image_shape": "taken from the data ((data_dim,) without it)",
    "check_data": "x checked for shape (N, data_dim), the parameters' dtype and device, and "
    "finite values; y for integer labels (N,)",
    "model_labels": "the programs get every label y",
    "sample": "the mean of site 'x' in a run of the model from its prior",
    "reconstruct": "the mean of site 'x' in the model replayed on one draw of the guide",
    "describe": "the program's class, parameter count and sites",
    "param_store_registration": "the programs run as written",
}


def check_program(module: object, what: str = "the model") -> None:
    """Raise :class:`~pyrovae.errors.ConfigError` naming what ``module`` lacks to be a
    program (see the module docstring): an ``nn.Module`` with callable ``model`` and
    ``guide``. Optional members (:data:`OPTIONAL`) are not required."""
    missing = [name for name in ("model", "guide") if not callable(getattr(module, name, None))]
    problems = []
    if not isinstance(module, nn.Module):
        problems.append(f"it is a {type(module).__name__}, not a torch.nn.Module")
    if missing:
        problems.append(
            "it has no method " + " and no method ".join(f"{m}(x, y=None)" for m in missing)
        )
    if problems:
        raise ConfigError(
            f"{what} cannot be trained or scored by pyrovae: {'; '.join(problems)}. A program "
            "is an nn.Module with Pyro programs model(x, y=None) and guide(x, y=None) over "
            f'pyro.plate("data") with observations at site "x" (see {DOCS})'
        )


# ---------------------------------------------------------------------- optional members
def data_dim(module: Any, default: int | None = None) -> int | None:
    """``module.data_dim`` if it has one, else ``default``."""
    return getattr(module, "data_dim", default)


def image_shape(module: Any, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """``module.image_shape``, else ``default``, else ``(data_dim,)``."""
    shape = getattr(module, "image_shape", None) or default
    if shape is None:
        dim = data_dim(module)
        if dim is None:
            raise ConfigError(
                f"{type(module).__name__} has neither image_shape nor data_dim: give it an "
                "image_shape attribute (e.g. (1, 28, 28)) to draw pictures"
            )
        shape = (dim,)
    return tuple(shape)


def model_labels(module: Any, y: torch.Tensor | None) -> torch.Tensor | None:
    """The labels the programs get: ``module.model_labels(y)``, else ``y``."""
    method = getattr(module, "model_labels", None)
    return method(y) if callable(method) else y


def no_param_store_registration(module: Any) -> contextlib.AbstractContextManager[Any]:
    """``module.param_store_registration(False)`` where it exists (pyrovae's VAE), else a
    context that does nothing."""
    method = getattr(module, "param_store_registration", None)
    return method(False) if callable(method) else contextlib.nullcontext()


def _reference(module: nn.Module) -> torch.Tensor | None:
    return next(itertools.chain(module.parameters(), module.buffers()), None)


def check_data(
    module: Any,
    x: object,
    y: object = None,
    *,
    name: str = "x",
    grey_levels: bool = False,
) -> None:
    """Raise :class:`~pyrovae.errors.DataError` unless ``x`` (and labels ``y``) are data
    ``module`` can score: its own ``check_data`` where it has one; else ``x`` must be a
    ``(N, data_dim)`` tensor (``N >= 1``; any width when the module has no ``data_dim``) of
    the parameters' dtype and device with finite values, and ``y`` ``None`` or ``(N,)``
    integer labels on the same device."""
    method = getattr(module, "check_data", None)
    if callable(method):
        method(x, y, name=name, grey_levels=grey_levels)
        return
    dim = data_dim(module)
    width = dim if dim is not None else "D"
    if not isinstance(x, torch.Tensor):
        raise DataError(
            f"{name} must be a torch.Tensor of shape (N, {width}), got a {type(x).__name__}"
        )
    if x.dim() != 2 or x.shape[0] == 0 or (dim is not None and x.shape[1] != dim):
        raise DataError(
            f"{name} must have shape (N, {width}) with N >= 1 (one row per example; flatten "
            f"images first), got shape {tuple(x.shape)}"
        )
    reference = _reference(module)
    if reference is not None and x.dtype != reference.dtype:
        raise DataError(
            f"{name} has dtype {x.dtype}, but the model's parameters are {reference.dtype}; "
            f"convert it with {name}.to({reference.dtype})"
        )
    if reference is not None and x.device != reference.device:
        raise DataError(f"{name} is on {x.device}, but the model is on {reference.device}")
    if not bool(x.isfinite().all()):
        raise DataError(f"{name} holds NaN or infinite values")
    if y is None:
        return
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataError(f"the labels y must be an integer tensor of shape ({x.shape[0]},)")
    if y.shape != (x.shape[0],) or y.device != x.device:
        raise DataError(
            f"the labels y must have shape ({x.shape[0]},) on {x.device}, one per example of "
            f"{name}; got shape {tuple(y.shape)} on {y.device}"
        )


def _site_mean(trace: Any) -> torch.Tensor:
    fn = trace.nodes["x"]["fn"]
    try:
        return fn.mean
    except NotImplementedError:
        return trace.nodes["x"]["value"]


def _template(module: Any, num: int, dim: int | None = None) -> torch.Tensor:
    dim = data_dim(module, dim)
    reference = _reference(module)
    if dim is None or reference is None:
        raise ConfigError(
            f"{type(module).__name__} has no sample(num) method and no data_dim to run its "
            "model from the prior with: give it one of them to draw samples"
        )
    return torch.zeros(num, dim, dtype=reference.dtype, device=reference.device)


@torch.no_grad()
def sample(module: Any, num: int, y: Any = None, *, dim: int | None = None) -> torch.Tensor:
    """``module.sample(num)`` (with ``y`` when given), else E[x | latents] of ``num`` runs of
    the model from its prior: ``(num, data_dim)`` (``dim``: the data's ``data_dim``, for a
    module without one)."""
    method = getattr(module, "sample", None)
    if callable(method):
        return method(num) if y is None else method(num, y=y)
    if y is not None:
        raise ConfigError(
            f"{type(module).__name__} has no sample(num, y) method: it cannot "
            "draw samples of a class"
        )
    with no_param_store_registration(module), pyro.validation_enabled(False):
        trace = poutine.trace(poutine.uncondition(module.model)).get_trace(
            _template(module, num, dim), None
        )
    return _site_mean(trace)


@torch.no_grad()
def reconstruct(module: Any, x: torch.Tensor) -> torch.Tensor:
    """``module.reconstruct(x)``, else E[x | latents] for one draw of the guide per example:
    ``(N, data_dim)``."""
    method = getattr(module, "reconstruct", None)
    if callable(method):
        return method(x)
    with no_param_store_registration(module), pyro.validation_enabled(False):
        guide_trace = poutine.trace(module.guide).get_trace(x, None)
        trace = poutine.trace(poutine.replay(module.model, trace=guide_trace)).get_trace(x, None)
    return _site_mean(trace)


def latent_sites(trace: Any) -> dict[str, Any]:
    """The latent sample sites of a trace by name: every non-observed sample site (not a
    plate's subsample)."""
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }


def describe_program(module: Any) -> str:
    """``module.describe()``, else its class, parameter count and (when it has a
    ``data_dim``) the latent sites of one run of its guide on a template batch."""
    method = getattr(module, "describe", None)
    if callable(method):
        return str(method())
    num_params = sum(p.numel() for p in module.parameters())
    cls = type(module)
    lines = [f"program {cls.__module__}.{cls.__qualname__}: {num_params:,} parameters"]
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc:
        lines.append(f"  {doc[0]}")
    try:
        x = _template(module, 1)
        with no_param_store_registration(module), pyro.validation_enabled(False), torch.no_grad():
            trace = poutine.trace(module.guide).get_trace(x, None)
    except Exception:  # a description never fails on a program it cannot run
        return "\n".join(lines)
    for name, site in latent_sites(trace).items():
        fn = site["fn"]
        how = " (enumerated)" if site["infer"].get("enumerate") else ""
        lines.append(
            f"  latent {name!r}: q = {type(fn).__name__}, event shape {tuple(fn.event_shape)}{how}"
        )
    return "\n".join(lines)


def check_objective(module: Any, name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`~pyrovae.errors.ConfigError` when the objective ``name`` (an
    ``objective.type``) cannot train the program ``module``, from one run of its guide and
    model on the examples ``x`` (labels ``y``), leaving the random stream untouched.

    Discrete guide sites marked for enumeration need ``"trace_enum_elbo"``; the
    reparameterized objectives (``"analytic_kl"``, ``"iwae"``) need every latent guide site
    to have ``rsample``, and ``"analytic_kl"`` a guide that samples the latent sites in the
    model's order (Pyro's mean-field condition of ``TraceMeanField_ELBO``); every latent site
    of the model must be sampled by the guide."""
    from ..infer.log_weights import trace_pair  # pyrovae.infer imports this module
    from ..rng import preserved_rng

    with (
        preserved_rng(x.device),
        no_param_store_registration(module),
        pyro.validation_enabled(False),
        torch.no_grad(),
    ):
        model_trace, guide_trace = trace_pair(
            module.model, module.guide, x, model_labels(module, y), enumerate=True
        )
    guide_sites = latent_sites(guide_trace)
    enumerated = [n for n, s in guide_sites.items() if s["infer"].get("enumerate")]
    if enumerated and name != "trace_enum_elbo":
        raise ConfigError(
            f"the program enumerates its guide sites {enumerated}, which objective.type = "
            f"{name!r} cannot sum out; use objective.type = 'trace_enum_elbo' (Pyro's "
            "TraceEnum_ELBO)"
        )
    if name in ("analytic_kl", "iwae"):
        for site_name, site in guide_sites.items():
            if not site["fn"].has_rsample:
                raise ConfigError(
                    f"objective.type = {name!r} needs a reparameterized guide, but the "
                    f"program's guide site {site_name!r} samples {type(site['fn']).__name__}, "
                    "which has no rsample; use objective.type = 'trace_elbo' (score-function "
                    "gradients) or enumerate the site with 'trace_enum_elbo'"
                )
    model_sites = latent_sites(model_trace)
    if name == "analytic_kl" and [n for n in guide_sites if n in model_sites] != [
        n for n in model_sites if n in guide_sites
    ]:
        raise ConfigError(
            f"objective.type = 'analytic_kl' takes each site's KL given the latents sampled "
            f"before it, which needs the guide to sample the latent sites in the model's "
            f"order ({list(model_sites)}), but it samples {list(guide_sites)}; use "
            "objective.type = 'trace_elbo' or 'iwae'"
        )
    unguided = sorted(set(model_sites) - set(guide_sites))
    if unguided:
        raise ConfigError(
            f"the program's model samples the latent sites {unguided}, which its guide does "
            "not: every latent site of the model must be sampled (or enumerated) by the guide"
        )


# ---------------------------------------------------------------------- building
_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def load_factory(spec: str) -> Callable[[dict[str, Any]], Any]:
    """The callable named by ``spec`` = ``"package.module:attribute"`` (imported; the current
    folder is searched first, as ``python -m`` does). Importing runs that module's code.

    Raises:
        ConfigError: ``spec`` is malformed, the module cannot be imported, it has no such
            attribute, or the attribute is not callable.
    """
    fix = (
        "make the module importable (install it, run from the folder that holds it, or add "
        "that folder to PYTHONPATH)"
    )
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise ConfigError(
            f"model.program = {spec!r} is not of the form 'package.module:attribute' (e.g. "
            "'my_models:build', a function called with the resolved config that returns the "
            "module)"
        )
    module_name, attribute = spec.split(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"model.program = {spec!r}: importing {module_name!r} failed "
            f"({type(exc).__name__}: {message}); {fix}"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(
                f"model.program = {spec!r}: module {module_name!r} has no attribute "
                f"{attribute!r}; name the function that builds the module from the config"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"model.program = {spec!r} is a {type(target).__name__}, not a callable: name a "
            "function (or class) called with the resolved config that returns the module"
        )
    return target


def build_model(config: Mapping[str, Any], model: Any = None) -> Any:
    """The module a resolved ``config`` trains: ``model`` when given (checked with
    :func:`check_program`), else the module ``model.program``'s factory returns for the
    config, else pyrovae's :class:`~pyrovae.VAE`."""
    from .vae import VAE

    if model is not None:
        check_program(model, f"model = {type(model).__name__}")
        return model
    spec = config["model"].get("program", "")
    if not spec:
        return VAE.from_resolved_config(config)
    factory = load_factory(spec)
    module = factory(dict(config))
    check_program(module, f"the module model.program = {spec!r} returned")
    return module
