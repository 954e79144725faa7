"""Run configuration: one nested mapping, loaded from TOML or given in Python.

Sections and their keys, each with its type, range and default, are declared once, as the
typed dictionaries below; :class:`Config` is the resolved config pyrovae works with::

    [data]       dataset, binarize, binarization_seed, train_limit, test_limit, path,
                 test_path, test_fraction, split_seed, image_size, channels, in_memory,
                 workers, and the record of a run's data: shape, num_classes, sha256
    [model]      latent_dim, program (``"package.module:factory"`` of your own Pyro program
                 module, see :mod:`pyrovae.models.program`), and the components prior,
                 likelihood, encoder, decoder, guide,
                 each a table ``{ type = "<registered name>", <its parameters>... }``;
                 optionally latents, the stochastic layers of a hierarchical VAE (see
                 :func:`resolve_latents`)
    [objective]  type, and the objective's parameters (e.g. num_particles)
    [train]      epochs, batch_size, lr, seed, device, eval_batch_size, replay_steps,
                 validation, validation_seed, grad_clip, early_stopping (patience,
                 min_delta), and the components optimizer and lr_schedule
                 (:mod:`pyrovae.training.optim`)
    [eval]       num_samples (K of the importance-sampled test log-likelihood reported after
                 training; 0 skips it)
    [log]        every_steps, images_every, csv, tensorboard, mlflow, mlflow_uri,
                 mlflow_experiment (what a run reports while it trains:
                 :mod:`pyrovae.training.loggers`)

:func:`resolve_config` validates a mapping and fills in every default; the result, a plain
``dict`` typed as :class:`Config` (so that ``mypy`` rejects a misspelled key inside pyrovae),
is what is saved in a run directory. Unknown sections, keys and names raise
:class:`ConfigError` naming the key and listing the valid choices. A component's parameters
are its class's keyword-only constructor (:mod:`pyrovae.registry`); the registries are found
by their kind (:meth:`~pyrovae.registry.Registry.of_kind`), so this module imports none of
the components.
"""

from __future__ import annotations

import copy
import sys
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict, cast

from .errors import ConfigError
from .registry import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    Registry,
    Seed,
    check_value,
    show,
)

__all__ = [
    "ComponentSpec",
    "Config",
    "DataConfig",
    "DataRecord",
    "EarlyStoppingConfig",
    "EvalConfig",
    "LayerConfig",
    "LogConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "dumps_toml",
    "load_config",
    "parse_override",
    "parse_toml",
    "read_config_file",
    "resolve_config",
    "resolve_latents",
    "section_defaults",
]


@dataclass(frozen=True)
class Default:
    """The default of a plain config key, declared in its annotation:
    ``Annotated[int, Range(min=1), Default(10)]``."""

    value: Any


@dataclass(frozen=True)
class Component:
    """A component key, declared in its annotation: the kind of its registry
    (:meth:`Registry.of_kind`) and the ``type`` it defaults to."""

    kind: str
    default: str


#: a component's resolved table: ``type`` and every parameter of that type
ComponentSpec = dict[str, Any]
Device = Literal["auto", "cpu", "cuda"]
#: a data-set size limit: 0 means the whole split
Limit = Annotated[int, Range(min=0, note="0 means all")]


class DataConfig(TypedDict):
    """``[data]``: where the examples come from and how they are prepared."""

    dataset: Annotated[str, Default("mnist")]
    binarize: Annotated[Literal["dynamic", "static", "none"], Default("dynamic")]
    binarization_seed: Annotated[Seed, Default(0)]
    train_limit: Annotated[Limit, Default(0)]
    test_limit: Annotated[Limit, Default(0)]
    # people's own data (see pyrovae.data.sources): a folder of images or an array file
    path: Annotated[str, Default("")]
    test_path: Annotated[str, Default("")]
    test_fraction: Annotated[float, Range(gt=0, lt=1), Default(0.1)]
    split_seed: Annotated[Seed, Default(0)]
    image_size: Annotated[list[PositiveInt], Default([])]
    channels: Annotated[Literal[0, 1, 3], Default(0)]  # 1 grey, 3 colour, 0 as the first image
    # held on the device (fast) or streamed by a DataLoader; "auto": streamed when it does
    # not fit pyrovae.memory.data_memory_budget
    in_memory: Annotated[bool | Literal["auto"], Default("auto")]
    workers: Annotated[int, Range(min=0, note="0 reads in the main process"), Default(2)]
    # train and test on these classes only (novelty splits); []: every class
    classes: Annotated[list[NonNegativeInt], Default([])]
    # the fraction of training pixels replaced by random values, per batch (Ren et al. 2019)
    mutation_rate: Annotated[float, Range(min=0, lt=1), Default(0.0)]
    # recorded by training: the data's shape and classes, and the hash of its files
    shape: Annotated[list[PositiveInt], Default([])]
    num_classes: Annotated[int, Range(min=0, note="0: unlabelled"), Default(0)]
    class_names: Annotated[list[str], Default([])]  # a folder's class subfolders, label 0 first
    sha256: Annotated[str, Default("")]


class LayerConfig(TypedDict):
    """One entry of ``model.latents``: a stochastic layer and its components."""

    dim: int
    encoder: ComponentSpec
    decoder: ComponentSpec
    guide: ComponentSpec
    prior: NotRequired[ComponentSpec]  # the top layer's only


class ModelConfig(TypedDict):
    """``[model]``: the latent space, the components, or a program of one's own."""

    latent_dim: Annotated[PositiveInt, Default(50)]
    # "package.module:factory" of a user's Pyro program module ("": pyrovae's VAE)
    program: Annotated[str, Default("")]
    prior: Annotated[ComponentSpec, Component("prior", "standard_normal")]
    likelihood: Annotated[ComponentSpec, Component("likelihood", "bernoulli")]
    encoder: Annotated[ComponentSpec, Component("encoder", "mlp")]
    decoder: Annotated[ComponentSpec, Component("decoder", "mlp")]
    guide: Annotated[ComponentSpec, Component("guide", "diag_normal")]
    latents: NotRequired[list[LayerConfig]]


class EarlyStoppingConfig(TypedDict):
    """``train.early_stopping``: stop when the validation ELBO has not improved for a while."""

    # epochs without an improvement of more than min_delta before training stops (0: never)
    patience: Annotated[int, Range(min=0, note="0: no early stopping"), Default(0)]
    min_delta: Annotated[float, Range(min=0, note="nats per example"), Default(0.0)]


#: ``train.validation``: how many training examples are held out to validate on
Validation = Annotated[
    int | float,
    Range(min=0, note="0: none; below 1: a fraction of the training set; else a count"),
]


class TrainConfig(TypedDict):
    """``[train]``: the optimisation (optimizer, learning-rate schedule, clipping) and the
    model selection on a validation split held out of the training set."""

    epochs: Annotated[PositiveInt, Default(10)]
    batch_size: Annotated[PositiveInt, Default(128)]
    lr: Annotated[PositiveFloat, Default(1e-3)]
    seed: Annotated[Seed, Default(0)]
    device: Annotated[Device, Default("auto")]
    eval_batch_size: Annotated[PositiveInt, Default(1000)]
    replay_steps: Annotated[bool, Default(True)]
    validation: Annotated[Validation, Default(0)]
    validation_seed: Annotated[Seed, Default(0)]
    grad_clip: Annotated[float, Range(min=0, note="0: no clipping"), Default(0.0)]
    early_stopping: EarlyStoppingConfig
    optimizer: Annotated[ComponentSpec, Component("optimizer", "adam")]
    lr_schedule: Annotated[ComponentSpec, Component("lr_schedule", "constant")]


class EvalConfig(TypedDict):
    """``[eval]``: the estimate reported after training."""

    num_samples: Annotated[
        int, Range(min=0, max=1_000_000, note="0 skips the evaluation"), Default(100)
    ]


class LogConfig(TypedDict):
    """``[log]``: what a run reports while it trains, besides ``metrics.jsonl`` (the loggers
    are callbacks, :mod:`pyrovae.training.loggers`; rank 0 alone logs under torchrun)."""

    # a step row (train_elbo, train_rate, train_distortion, examples_per_second of the
    # batches since the last one) every N training steps, for the callbacks and loggers
    every_steps: Annotated[int, Range(min=0, note="0: epoch rows only"), Default(0)]
    # the samples/reconstructions picture (and the loggers' images and KL histogram) every N
    # epochs, and at the end
    images_every: Annotated[int, Range(min=0, note="0: at the end only"), Default(1)]
    csv: Annotated[bool, Default(False)]  # RUN/metrics.csv
    # RUN/tensorboard (pip install 'pyrovae[tensorboard]')
    tensorboard: Annotated[bool, Default(False)]
    mlflow: Annotated[bool, Default(False)]  # pip install 'pyrovae[mlflow]'
    # MLflow's tracking URI ("": a local store in the run directory) and experiment
    mlflow_uri: Annotated[str, Default("")]
    mlflow_experiment: Annotated[str, Default("pyrovae")]


class DataRecord(TypedDict):
    """What a run records of its data in ``[data]`` (:meth:`pyrovae.ImageData.record`), so
    that its run directory rebuilds the model without the data and finds the data again."""

    dataset: str
    path: str
    sha256: str
    shape: list[int]
    num_classes: int
    class_names: list[str]


class Config(TypedDict):
    """A resolved run config: every section, every key, every default filled in."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    log: LogConfig
    objective: Annotated[ComponentSpec, Component("objective", "trace_elbo")]


def _keys(table: type) -> dict[str, Any]:
    """The annotated keys of a typed dictionary, in declaration order."""
    return typing.get_type_hints(table, include_extras=True)


def _meta(annotation: Any, kind: type) -> Any:
    """The metadata of type ``kind`` in an ``Annotated`` annotation, or ``None``."""
    if typing.get_origin(annotation) is not Annotated:
        return None
    return next((m for m in annotation.__metadata__ if isinstance(m, kind)), None)


def _sections() -> dict[str, Any]:
    return _keys(Config)


def section_defaults(section: str) -> dict[str, Any]:
    """The default of every plain key of a section, e.g. ``section_defaults("data")``."""
    table = _sections()[section]
    return {
        key: copy.deepcopy(default.value)
        for key, annotation in _keys(table).items()
        if (default := _meta(annotation, Default)) is not None
    }


def resolve_config(config: Mapping[str, Any]) -> Config:
    """Validate ``config`` and return a new, complete config with every default filled in.

    Raises:
        ConfigError: an unknown section, key or component name; a value of the wrong type;
            a missing required parameter; a value out of range.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    sections = _sections()
    for section in config:
        if section not in sections:
            raise ConfigError(
                f"unknown config section {section!r}; valid sections: {', '.join(sorted(sections))}"
            )
    resolved: dict[str, Any] = {}
    for section, annotation in sections.items():
        component = _meta(annotation, Component)
        if component is not None:
            resolved[section] = _resolve_component(config.get(section), component, section)
        else:
            resolved[section] = _resolve_section(section, annotation, config.get(section, {}))
    data = resolved["data"]
    Registry.of_kind("dataset").get(data["dataset"], key="data.dataset").check_config(data)
    return cast(Config, resolved)


def _resolve_section(section: str, table: type, given: Any) -> dict[str, Any]:
    """One section's keys checked and completed (its plain keys, then its components)."""
    if not isinstance(given, Mapping):
        what = f"config section [{section}]" if "." not in section else section
        raise ConfigError(f"{what} must be a table, got {show(given)}")
    keys = _keys(table)
    valid = sorted(keys)
    for key in given:
        if key not in valid:
            raise ConfigError(
                f"{section}.{key} is not a known key; valid keys in [{section}]: "
                + ", ".join(valid)
            )
    out: dict[str, Any] = {}
    for key, annotation in keys.items():
        default = _meta(annotation, Default)
        if default is not None:
            value = check_value(given.get(key, default.value), annotation, f"{section}.{key}")
            out[key] = list(value) if isinstance(value, tuple) else value
    for key, annotation in keys.items():
        if typing.is_typeddict(annotation):  # a table of its own, e.g. train.early_stopping
            out[key] = _resolve_section(f"{section}.{key}", annotation, given.get(key, {}))
    for key, annotation in keys.items():
        component = _meta(annotation, Component)
        if component is not None:
            out[key] = _resolve_component(given.get(key), component, f"{section}.{key}")
    if section == "model" and "latents" in given:
        out["latents"] = resolve_latents(given["latents"], out)
    if section == "train":
        _check_train(out)
    return out


def _check_train(train: dict[str, Any]) -> None:
    """The rules of ``[train]`` that relate several keys."""
    validation = train["validation"]
    if isinstance(validation, float) and validation >= 1 and not validation.is_integer():
        raise ConfigError(
            f"train.validation = {validation:g} must be a fraction below 1 (e.g. 0.1) or a "
            "whole number of examples (e.g. 10000)"
        )
    # the checks that relate an optimizer's or a schedule's parameters, made by building them
    Registry.of_kind("optimizer").build(train["optimizer"], "train.optimizer")
    Registry.of_kind("lr_schedule").build(
        train["lr_schedule"], "train.lr_schedule", epochs=train["epochs"]
    )
    if train["early_stopping"]["patience"] and not validation:
        raise ConfigError(
            f"train.early_stopping.patience = {train['early_stopping']['patience']} needs a "
            "validation split to watch: set train.validation (e.g. 10000 or 0.1)"
        )


def _resolve_component(given: Any, component: Component, path: str) -> ComponentSpec:
    default = {"type": component.default}
    spec = _with_default_type(default if given is None else given, default)
    return Registry.of_kind(component.kind).resolve(spec, path)


def resolve_latents(given: Any, model: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate ``model.latents``, the stochastic layers ``z1, ..., zL`` of a hierarchical VAE
    (:class:`~pyrovae.models.hierarchical_vae.HierarchicalVAE`), bottom (next to ``x``) first,
    and return them complete; set ``model["latent_dim"]`` to their total size (the layers
    declare the latent space, so a ``latent_dim`` of the base config, e.g.
    ``configs/mnist.toml`` with ``--set model.latents=...``, is replaced).

    Each entry is a table: ``dim`` (required) and the components of its layer, each defaulting
    to the ``[model]`` table's own (a table of the same type, or without ``type``, overrides
    some of its parameters; another type starts from that type's defaults): ``encoder`` and
    ``guide`` (q(z_l | z_{l-1}), ``z_0 = x``),
    ``decoder`` (the network from ``z_l`` to the distribution of the layer below: p(x | z1)
    through ``model.likelihood`` for the first layer, a diagonal Gaussian p(z_{l-1} | z_l)
    above it) and, for the top layer only, ``prior`` (p(z_L)). What a hierarchy can be built
    from (no VampPrior on top, no network of images above the first layer) is the model
    factory's to say (:func:`pyrovae.models.factory.check_model_config`). Example::

        resolve_config({"model": {"latents": [{"dim": 100}, {"dim": 50}]}})
    """
    key = "model.latents"
    if not isinstance(given, list) or len(given) < 2:
        raise ConfigError(
            f"{key} must be a list of 2 or more layer tables, bottom first, e.g. "
            f"[{{dim = 100}}, {{dim = 50}}], got {show(given)}; for one stochastic layer use "
            "model.latent_dim"
        )
    layers = [_resolve_layer(i, entry, len(given) - 1, model) for i, entry in enumerate(given)]
    model["latent_dim"] = sum(layer["dim"] for layer in layers)
    return layers


#: the component keys of one entry of ``model.latents`` (``prior``: the top layer's only)
LAYER_COMPONENTS = ("encoder", "decoder", "guide", "prior")


def _resolve_layer(i: int, entry: Any, top: int, model: dict[str, Any]) -> dict[str, Any]:
    """Entry ``i`` of ``model.latents`` checked, its components completed from ``[model]``."""
    key, path = "model.latents", f"model.latents[{i}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{path} must be a table such as {{dim = 50}}, got {show(entry)}")
    valid = ["dim", *(k for k in LAYER_COMPONENTS if k != "prior" or i == top)]
    for k in entry:
        if k == "prior" and i != top:
            raise ConfigError(
                f"{path}.prior: only the top layer ({key}[{top}]) has a prior; the "
                f"distribution of z{i + 1} given z{i + 2} is a diagonal Gaussian whose "
                f"network is {key}[{i + 1}].decoder"
            )
        if k not in valid:
            raise ConfigError(f"{path}.{k} is not a known key; valid keys: {', '.join(valid)}")
    if "dim" not in entry:
        raise ConfigError(f"{path}.dim is required: the number of dimensions of z{i + 1}")
    layer: dict[str, Any] = {"dim": check_value(entry["dim"], PositiveInt, f"{path}.dim")}
    for k in valid[1:]:
        spec = _with_default_type(entry.get(k, model[k]), model[k])
        if isinstance(spec, Mapping) and spec["type"] == model[k]["type"]:
            spec = {**model[k], **spec}  # the [model] table's parameters, some overridden
        layer[k] = Registry.of_kind(k).resolve(spec, f"{path}.{k}")
    return layer


def _with_default_type(spec: Any, default: Mapping[str, Any]) -> Any:
    """A copy of a component ``spec``; a table without ``type`` gets the default type, so
    ``[objective] beta = 0.5`` means the default objective with ``beta = 0.5``."""
    spec = copy.deepcopy(spec)
    if isinstance(spec, Mapping) and "type" not in spec:
        spec = {"type": default["type"], **spec}
    return spec


#: the largest config file read: real configs are a few KB, and one of many MB could only
#: describe a model that cannot be built
MAX_CONFIG_BYTES = 1 << 20


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a TOML config file holds, as written (not yet validated: see
    :func:`resolve_config`).

    Raises:
        ConfigError: the file is missing, unreadable, a folder, larger than
            :data:`MAX_CONFIG_BYTES`, not UTF-8 text, not valid TOML or nested too deeply.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file '{path}' is a folder; give the path of a TOML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file '{path}' is larger than {MAX_CONFIG_BYTES:,} bytes; a pyrovae config "
            "is a few KB of TOML (see configs/mnist.toml)"
        )
    return parse_toml(raw, f"config file '{path}'")


def parse_toml(raw: bytes | str, what: str) -> dict[str, Any]:
    """The mapping TOML text ``raw`` holds; :class:`ConfigError` naming ``what`` if it is not
    UTF-8, not TOML, or nested too deeply to parse."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "a config is a TOML text file"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests tables or arrays too deeply to be a config") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise ConfigError(
            f"{what} holds a number of more than {sys.get_int_max_str_digits():,} digits, too "
            "long for any setting; give a number that fits in 64 bits"
        ) from None


def load_config(path: str | Path) -> Config:
    """Read a TOML config file and return it resolved (see :func:`resolve_config`)."""
    return resolve_config(read_config_file(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``"a.b.c=value"`` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} must look like key.path=value, e.g. train.lr=3e-4")
    path, value_text = text.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {text!r} has an empty key in {path!r}")
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    except RecursionError:
        raise ConfigError(f"--set {path}=...: the value nests arrays too deeply") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise ConfigError(
            f"--set {path}=...: the value is a number of {len(value_text.strip()):,} digits, "
            "too long for any setting; give a number that fits in 64 bits"
        ) from None
    return keys, value


def apply_overrides(config: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``key.path=value`` override set (not yet validated).

    Overrides that choose a component's type (``model.prior.type=vamp``, or the short
    ``model.prior=vamp``) are applied first and reset that component to the new type's
    defaults, so ``--set model.prior.components=10 --set model.prior.type=vamp`` means a
    VampPrior with 10 components whatever the order."""
    component_keys = _component_keys()
    parsed = [(text, *parse_override(text)) for text in overrides]
    chooses_type = [
        keys[-1] == "type" or (keys[-1] in component_keys and isinstance(value, str))
        for _, keys, value in parsed
    ]
    ordered = [p for p, first in zip(parsed, chooses_type) if first]
    ordered += [p for p, first in zip(parsed, chooses_type) if not first]
    out = copy.deepcopy(dict(config))
    for text, keys, value in ordered:
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if isinstance(child, str) and key in component_keys:
                child = {"type": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {key!r} is a value, not a table")
            node[key] = child
            node = child
        if keys[-1] == "type" and node.get("type") not in (None, value):
            node.clear()  # a new component type starts from its own defaults
        node[keys[-1]] = value
    return out


def _component_keys() -> set[str]:
    """The keys that name a component (``model.prior``..., ``objective``)."""
    tables = [_sections(), *(_keys(t) for t in _sections().values() if _is_table(t))]
    return {key for table in tables for key, a in table.items() if _meta(a, Component)}


def _is_table(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dict)


def dumps_toml(config: Mapping[str, Any]) -> str:
    """The config as TOML text (round-trips through :func:`load_config`)."""
    import tomli_w

    return tomli_w.dumps(config)
