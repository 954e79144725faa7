"""Which model a config builds: the one model factory.

A resolved config builds one of three models, and this module is the only place that chooses:

* ``model.program = "package.module:factory"``: the module your factory returns for the config
  (:func:`load_factory`), adapted to the contract
  (:func:`~pyrovae.models.program.as_program`);
* ``model.latents = [...]``: a :class:`~pyrovae.HierarchicalVAE`;
* otherwise: a :class:`~pyrovae.VAE`.

Every rule about what can be built stands here too (:func:`check_model_config`): the data's
shape against the networks and the prior, what is refused above the first stochastic layer,
and the model's size (measured on a build on the ``meta`` device: :mod:`pyrovae.models.size`)
against the memory there is. The built-in models register themselves with :func:`built_in`,
so this module needs none of their code to choose between them.

Example::

    model = build_model(resolve_config({"model": {"latent_dim": 8}}))   # a VAE
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..data import DataShape, data_shape
from ..errors import ConfigError, PyrovaeError, PyrovaeWarning
from .guides import GUIDES
from .likelihoods import LIKELIHOODS
from .networks import DECODERS, ENCODERS
from .priors import PRIORS
from .program import Program, as_program
from .size import ModelSize, check_model_fits, model_size

__all__ = [
    "build_builtin",
    "build_model",
    "builtin_size",
    "built_in",
    "check_model_config",
    "load_factory",
    "model_kind",
]

P = TypeVar("P", bound=type[Program])

#: the built-in models by kind (:func:`model_kind`), registered by :func:`built_in`
_BUILT_IN: dict[str, type[Program]] = {}


def built_in(kind: str) -> Callable[[P], P]:
    """Class decorator: the built-in model of ``kind`` (``"vae"``, ``"hierarchical_vae"``)."""

    def register(cls: P) -> P:
        _BUILT_IN[kind] = cls
        return cls

    return register


def model_kind(model_config: Mapping[str, Any]) -> str:
    """What a resolved ``model`` section builds: ``"program"``, ``"hierarchical_vae"`` or
    ``"vae"`` (see the module docstring)."""
    if model_config.get("program"):
        return "program"
    return "hierarchical_vae" if "latents" in model_config else "vae"


def build_model(
    config: Mapping[str, Any],
    model: object = None,
    *,
    training: bool = False,
    device: torch.device | None = None,
    program_source: Path | None = None,
) -> Program:
    """The model a resolved ``config`` trains, as a :class:`~pyrovae.models.program.Program`:
    ``model`` when given (a module of one's own, adapted), else the module the factory of
    ``model.program`` returns (imported from ``program_source``, a run's copy of the
    module's file, when the module is not importable), else the built-in model
    (:func:`build_builtin`, checked to fit in the memory of ``device``, with ``training``
    together with its gradients and optimizer state).

    Raises:
        ConfigError: ``model`` or the factory's module is not a program; the factory cannot
            be loaded or fails; the built-in model breaks a rule (:func:`check_model_config`)
            or does not fit in memory.
    """
    if model is not None:
        return as_program(model, _known_image_shape(config), what=f"model = {type(model).__name__}")
    spec = config["model"].get("program", "")
    if not spec:
        return build_builtin(config, training=training, device=device)
    module = _call_factory(spec, config, program_source)
    return as_program(
        module,
        _known_image_shape(config),
        what=f"the module model.program = {spec!r} returned",
    )


def _call_factory(spec: str, config: Mapping[str, Any], source: Path | None = None) -> Any:
    """The module the factory ``model.program = spec`` (or its copy ``source``:
    :func:`load_factory`) returns for ``config``; its failure a :class:`ConfigError` that
    quotes its own message."""
    factory = load_factory(spec, source)
    try:
        return factory(dict(config))
    except PyrovaeError:
        raise
    except Exception as exc:  # the user's code
        text = str(exc).strip()
        raise ConfigError(
            f"model.program = {spec!r}: the factory raised {type(exc).__name__}: "
            f"{text.splitlines()[0] if text else '(no message)'}; fix the factory (it is "
            "called with the resolved config and returns the module)"
        ) from None


def _known_image_shape(config: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The data's example shape where the config records it (a run's config), else ``None``."""
    shape = config["data"].get("shape")
    return tuple(shape) if shape else None


def build_builtin(
    config: Mapping[str, Any],
    cls: type[Program] | None = None,
    *,
    training: bool = False,
    device: torch.device | None = None,
) -> Program:
    """The built-in model a resolved ``config`` declares: a :class:`~pyrovae.VAE`, or a
    :class:`~pyrovae.HierarchicalVAE` for ``model.latents``; ``cls``, a subclass of that
    model, builds itself instead (``Mine.from_config(config)``).

    Its rules are checked (:func:`check_model_config`) and its size measured on the ``meta``
    device and checked against the memory available on ``device`` (default: the host; with
    ``training``, for the model with its gradients and optimizer state:
    :func:`pyrovae.models.size.check_model_fits`) before a single parameter is allocated."""
    build = _builtin_builder(config, cls)
    check_model_fits(model_size(build), training=training, device=device)
    return build()


def builtin_size(config: Mapping[str, Any], cls: type[Program] | None = None) -> ModelSize:
    """The size of the built-in model of a resolved ``config`` (as :func:`build_builtin`
    builds it), from a build on the ``meta`` device that allocates nothing and leaves the
    random state as it was (:func:`pyrovae.models.size.model_size`).

    Raises:
        ConfigError: the model breaks a rule (:func:`check_model_config`) or has more than
            :data:`~pyrovae.models.size.MAX_LAYERS` layers (the build stops there, naming the
            component being built).
    """
    return model_size(_builtin_builder(config, cls))


def _builtin_builder(config: Mapping[str, Any], cls: type[Program] | None) -> Callable[[], Program]:
    """The built-in model of ``config`` (``cls`` when a subclass of it), as a function that
    builds it, its rules checked first (:func:`check_model_config`)."""
    shape = data_shape(config["data"])  # recorded by a run, or fixed by the data set
    kind = model_kind({**config["model"], "program": ""})
    target = _BUILT_IN[kind]
    if cls is not None and issubclass(cls, target):
        target = cls
    check_model_config(config, shape)
    builder = _build_hierarchy if kind == "hierarchical_vae" else _build_vae
    return lambda: builder(target, config, shape)


# ---------------------------------------------------------------------- the rules
def check_model_config(config: Mapping[str, Any], shape: DataShape) -> None:
    """Raise :class:`ConfigError` when the resolved ``config`` declares a built-in model that
    cannot be built for data of ``shape``: a network of images (``conv``) on vectors, or
    above the first stochastic layer (the layers above map between latent vectors); a
    label-conditional prior on unlabelled data; a VampPrior above the first layer (the guide
    at pseudo-inputs has no closed-form density there)."""
    m = config["model"]
    layers = m.get("latents")
    first = layers[0] if layers else m
    for key in ("encoder", "decoder"):
        if first[key]["type"] == "conv" and len(shape.image_shape) != 3:
            raise ConfigError(
                f"model.{key}.type = 'conv' needs images (C, H, W), but the data are "
                f"vectors of {shape.data_dim} numbers; use model.{key}.type = 'mlp'"
            )
    prior = layers[-1]["prior"] if layers else m["prior"]
    if prior["type"] == "conditional" and not shape.num_classes:
        raise ConfigError(
            "model.prior.type = 'conditional' needs labelled data, but the data have no "
            "labels (a folder of images is labelled by its class subfolders)"
        )
    if not layers:
        return
    top = len(layers) - 1
    if prior["type"] == "vamp":
        raise ConfigError(
            f"model.latents[{top}].prior.type = 'vamp' (the top layer's prior: model.prior "
            "unless the layer names its own) is not available for a hierarchical VAE: a "
            f"VampPrior is the guide's q(z{top + 1} | u) at pseudo-inputs u, which has no "
            "closed-form density above the first layer; choose another prior"
        )
    for i, layer in enumerate(layers[1:], 1):
        for registry, kind in ((ENCODERS, "encoder"), (DECODERS, "decoder")):
            if registry.takes(layer[kind]["type"], "image_shape"):
                raise ConfigError(
                    f"model.latents[{i}].{kind}.type = {layer[kind]['type']!r} is a network of "
                    f"images, but layer {i + 1} maps between latent vectors; use 'mlp'"
                )


# ---------------------------------------------------------------------- the built-in models
def _build_vae(cls: type[Program], config: Mapping[str, Any], shape: DataShape) -> Program:
    m = config["model"]
    latent_dim, data_dim = m["latent_dim"], shape.data_dim
    likelihood = LIKELIHOODS.build(m["likelihood"], "model.likelihood", data_dim=data_dim)
    likelihood.check_data_config(config["data"]["binarize"])
    guide_family = GUIDES.build(m["guide"], "model.guide", latent_dim=latent_dim)
    context = {"image_shape": shape.image_shape}
    encoder = ENCODERS.build(
        m["encoder"],
        "model.encoder",
        in_features=data_dim,
        out_features=guide_family.num_params,
        **context,
    )
    decoder = DECODERS.build(
        m["decoder"],
        "model.decoder",
        in_features=latent_dim,
        out_features=likelihood.params_per_element * data_dim,
        **context,
    )
    prior = PRIORS.build(
        m["prior"],
        "model.prior",
        latent_dim=latent_dim,
        data_dim=data_dim,
        num_classes=shape.num_classes,
    )
    return cls(prior, likelihood, encoder, decoder, guide_family, data_dim, shape.image_shape)


def _build_hierarchy(cls: type[Program], config: Mapping[str, Any], shape: DataShape) -> Program:
    m, data_dim = config["model"], shape.data_dim
    layers = m["latents"]
    likelihood = LIKELIHOODS.build(m["likelihood"], "model.likelihood", data_dim=data_dim)
    likelihood.check_data_config(config["data"]["binarize"])
    encoders: list[nn.Module] = []
    families, decoders = [], []
    for i, layer in enumerate(layers):
        path, dim = f"model.latents[{i}]", layer["dim"]
        family = GUIDES.build(layer["guide"], f"{path}.guide", latent_dim=dim)
        below = data_dim if i == 0 else layers[i - 1]["dim"]
        outputs = likelihood.params_per_element * data_dim if i == 0 else 2 * below
        context = {"image_shape": shape.image_shape}
        encoders.append(
            ENCODERS.build(
                layer["encoder"],
                f"{path}.encoder",
                in_features=below,
                out_features=family.num_params,
                **context,
            )
        )
        decoders.append(
            DECODERS.build(
                layer["decoder"],
                f"{path}.decoder",
                in_features=dim,
                out_features=outputs,
                **context,
            )
        )
        families.append(family)
    top = len(layers) - 1
    prior = PRIORS.build(
        layers[top]["prior"],
        f"model.latents[{top}].prior",
        latent_dim=layers[top]["dim"],
        data_dim=data_dim,
        num_classes=shape.num_classes,
    )
    return cls(prior, likelihood, encoders, families, decoders, data_dim, shape.image_shape)


# ---------------------------------------------------------------------- programs of one's own
_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def load_factory(spec: str, source: Path | None = None) -> Callable[[dict[str, Any]], Any]:
    """The callable named by ``spec`` = ``"package.module:attribute"`` (imported; the current
    folder is searched first, as ``python -m`` does). Importing runs that module's code.

    ``source``: a copy of the module's file (a run directory keeps one), imported instead
    when the module itself cannot be found, with a one-line :class:`PyrovaeWarning` saying so.

    Raises:
        ConfigError: ``spec`` is malformed, the module cannot be imported, it has no such
            attribute, or the attribute is not callable.
    """
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise ConfigError(
            f"model.program = {spec!r} is not of the form 'package.module:attribute' (e.g. "
            "'my_models:build', a function called with the resolved config that returns the "
            "module)"
        )
    module_name, attribute = spec.split(":")
    target: Any = _import(spec, module_name, source)
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


def _import(spec: str, module_name: str, source: Path | None = None) -> Any:
    """Import ``module_name`` with the current folder searched first; from the file
    ``source`` when it exists and the module cannot be found."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name is not None and (module_name + ".").startswith(exc.name + ".")
        if not (missing and source is not None and source.is_file()):
            raise _import_error(spec, module_name, exc) from None
    except Exception as exc:
        raise _import_error(spec, module_name, exc) from None
    finally:
        if added:
            sys.path.remove(cwd)
    assert source is not None  # only a module that is missing, with its copy, comes here
    return _import_copy(spec, module_name, source)


def _import_copy(spec: str, module_name: str, source: Path) -> Any:
    """Import the module ``module_name`` from its copy ``source``, saying so in one line."""
    warnings.warn(
        PyrovaeWarning(
            f"model.program = {spec!r}: module {module_name!r} is not importable here; using "
            f"the copy of its source that the run keeps, '{source}'"
        ),
        stacklevel=4,
    )
    found = importlib.util.spec_from_file_location(module_name, source)
    assert found is not None and found.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(found)
    sys.modules[module_name] = module
    try:
        found.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise _import_error(spec, module_name, exc) from None
    return module


def _import_error(spec: str, module_name: str, exc: Exception) -> ConfigError:
    """The error of a module that cannot be imported."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ConfigError(
        f"model.program = {spec!r}: importing {module_name!r} failed "
        f"({type(exc).__name__}: {message}); make the module importable (install it, run "
        "from the folder that holds it, or add that folder to PYTHONPATH)"
    )
