"""Run configuration: one nested mapping, loaded from TOML or given in Python.

Sections and their keys (defaults in :data:`SCHEMA` and :data:`COMPONENT_DEFAULTS`)::

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
    [train]      epochs, batch_size, lr, seed, device, eval_batch_size, replay_steps
    [eval]       num_samples (K of the importance-sampled test log-likelihood reported after
                 training; 0 skips it)

:func:`resolve_config` validates a mapping and fills in every default; the result is what is
saved in a run directory. Unknown sections, keys and names raise :class:`ConfigError` naming
the key and listing the valid choices.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from .errors import ConfigError
from .registry import PositiveFloat, PositiveInt, Range, Registry, Seed, check_value, show

Device = Literal["auto", "cpu", "cuda"]
#: a data-set size limit: 0 means the whole split
Limit = Annotated[int, Range(min=0, note="0 means all")]

#: plain (non-component) keys of each section: name -> (type with its range, default)
SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "data": {
        "dataset": (str, "mnist"),
        "binarize": (Literal["dynamic", "static", "none"], "dynamic"),
        "binarization_seed": (Seed, 0),
        "train_limit": (Limit, 0),
        "test_limit": (Limit, 0),
        # people's own data (see pyrovae.data.sources): a folder of images or an array file
        "path": (str, ""),
        "test_path": (str, ""),
        "test_fraction": (Annotated[float, Range(gt=0, lt=1)], 0.1),
        "split_seed": (Seed, 0),
        "image_size": (tuple[PositiveInt, ...], []),
        "channels": (Literal[0, 1, 3], 0),  # 1 grey, 3 colour, 0 as the first image
        # held on the device (fast) or streamed by a DataLoader; "auto": streamed when it
        # does not fit pyrovae.memory.data_memory_budget
        "in_memory": (bool | Literal["auto"], "auto"),
        "workers": (Annotated[int, Range(min=0, note="0 reads in the main process")], 2),
        # recorded by training: the data's shape and classes, and the hash of its files
        "shape": (tuple[PositiveInt, ...], []),
        "num_classes": (Annotated[int, Range(min=0, note="0: unlabelled")], 0),
        "sha256": (str, ""),
    },
    # program: "package.module:factory" of a user's Pyro program module ("": pyrovae's VAE)
    "model": {"latent_dim": (PositiveInt, 50), "program": (str, "")},
    "train": {
        "epochs": (PositiveInt, 10),
        "batch_size": (PositiveInt, 128),
        "lr": (PositiveFloat, 1e-3),
        "seed": (Seed, 0),
        "device": (Device, "auto"),
        "eval_batch_size": (PositiveInt, 1000),
        "replay_steps": (bool, True),
    },
    "eval": {"num_samples": (Annotated[int, Range(min=0, note="0 skips the evaluation")], 100)},
}

#: component keys: (section, key) -> default component spec
COMPONENT_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("model", "prior"): {"type": "standard_normal"},
    ("model", "likelihood"): {"type": "bernoulli"},
    ("model", "encoder"): {"type": "mlp"},
    ("model", "decoder"): {"type": "mlp"},
    ("model", "guide"): {"type": "diag_normal"},
}

#: keys a section may hold that are absent from the resolved config unless given
OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {"model": ("latents",)}

#: the keys of one entry of ``model.latents``, and which component registry each names
LATENT_COMPONENTS = ("encoder", "decoder", "guide", "prior")

#: sections that are a single component (``type`` plus parameters)
COMPONENT_SECTIONS: dict[str, dict[str, Any]] = {"objective": {"type": "trace_elbo"}}


def _registries() -> dict[str, Registry]:
    from .data import DATASETS
    from .infer.objectives import OBJECTIVES
    from .models.guides import GUIDES
    from .models.likelihoods import LIKELIHOODS
    from .models.networks import DECODERS, ENCODERS
    from .models.priors import PRIORS

    return {
        "model.prior": PRIORS,
        "model.likelihood": LIKELIHOODS,
        "model.encoder": ENCODERS,
        "model.decoder": DECODERS,
        "model.guide": GUIDES,
        "objective": OBJECTIVES,
        "data.dataset": DATASETS,
    }


def _sections() -> list[str]:
    return sorted(set(SCHEMA) | set(COMPONENT_SECTIONS))


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``config`` and return a new, complete config with every default filled in.

    Raises:
        ConfigError: an unknown section, key or component name; a value of the wrong type;
            a missing required parameter; a value out of range.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    registries = _registries()
    for section in config:
        if section not in _sections():
            raise ConfigError(
                f"unknown config section {section!r}; valid sections: {', '.join(_sections())}"
            )
    resolved: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        given = config.get(section, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"config section [{section}] must be a table, got {show(given)}")
        components = {k: v for (s, k), v in COMPONENT_DEFAULTS.items() if s == section}
        valid = sorted(set(keys) | set(components) | set(OPTIONAL_KEYS.get(section, ())))
        for key in given:
            if key not in valid:
                raise ConfigError(
                    f"{section}.{key} is not a known key; valid keys in [{section}]: "
                    + ", ".join(valid)
                )
        out: dict[str, Any] = {}
        for key, (annotation, default) in keys.items():
            out[key] = check_value(given.get(key, default), annotation, f"{section}.{key}")
        for key, default in components.items():
            path = f"{section}.{key}"
            spec = _with_default_type(given.get(key, default), default)
            out[key] = registries[path].resolve(spec, path)
        if section == "model" and "latents" in given:
            out["latents"] = resolve_latents(given["latents"], out, registries)
        resolved[section] = out
    data = resolved["data"]
    data["image_size"], data["shape"] = list(data["image_size"]), list(data["shape"])
    registries["data.dataset"].get(data["dataset"], key="data.dataset").check_config(data)
    for section, default in COMPONENT_SECTIONS.items():
        spec = _with_default_type(config.get(section, default), default)
        resolved[section] = registries[section].resolve(spec, section)
    return resolved


def resolve_latents(
    given: Any, model: dict[str, Any], registries: Mapping[str, Registry]
) -> list[dict[str, Any]]:
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
    top = len(given) - 1
    layers = []
    for i, entry in enumerate(given):
        path = f"{key}[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path} must be a table such as {{dim = 50}}, got {show(entry)}")
        valid = ["dim", *(k for k in LATENT_COMPONENTS if k != "prior" or i == top)]
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
            layer[k] = registries[f"model.{k}"].resolve(spec, f"{path}.{k}")
        layers.append(layer)
    model["latent_dim"] = sum(layer["dim"] for layer in layers)
    return layers


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


def load_config(path: str | Path) -> dict[str, Any]:
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
    return keys, value


def apply_overrides(config: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``key.path=value`` override set (not yet validated).

    Overrides that choose a component's type (``model.prior.type=vamp``, or the short
    ``model.prior=vamp``) are applied first and reset that component to the new type's
    defaults, so ``--set model.prior.components=10 --set model.prior.type=vamp`` means a
    VampPrior with 10 components whatever the order."""
    component_keys = {key for _, key in COMPONENT_DEFAULTS} | set(COMPONENT_SECTIONS)
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


def dumps_toml(config: Mapping[str, Any]) -> str:
    """The config as TOML text (round-trips through :func:`load_config`)."""
    import tomli_w

    return tomli_w.dumps(config)
