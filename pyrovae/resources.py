"""Resource bounds: what a model or a computation will need, known before it is allocated.

A config names the sizes of its networks, so the number of parameters, layers and bytes of
the model it defines follow from it without building anything (:func:`model_footprint`).
:func:`check_model_fits` refuses, with the numbers, a model that would not fit in the memory
available (or has more layers than can be built in reasonable time) *before* a single tensor
is allocated: a config or run directory from someone else cannot exhaust the machine.
:func:`check_batch_fits` does the same for a vectorized evaluation pass.

The estimates count float32 parameters and buffers, the optimizer's state when training
(gradients and Adam's two moments: 4 numbers per parameter), and a fixed overhead per layer
(the Python objects of a ``torch.nn`` module); they are exact for the parameter count of
every built-in component and a slight over-estimate of memory.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = [
    "MAX_LAYERS",
    "Footprint",
    "available_memory",
    "check_batch_fits",
    "check_model_fits",
    "data_memory_budget",
    "model_footprint",
]

#: the most layers a model may have: each costs Python objects and time to build, and no
#: VAE needs thousands
MAX_LAYERS = 1000
#: memory of one layer's Python objects (module, parameters, hooks), an over-estimate
LAYER_BYTES = 16 * 1024
#: bytes per number (float32)
NUMBER_BYTES = 4


@dataclass(frozen=True)
class Footprint:
    """The size of a model: learned numbers, fixed numbers (buffers, masks) and layers."""

    parameters: int = 0
    buffers: int = 0
    layers: int = 0

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(
            self.parameters + other.parameters,
            self.buffers + other.buffers,
            self.layers + other.layers,
        )

    def bytes(self, training: bool = False) -> int:
        """Memory of the model, and with ``training`` of its gradients and Adam's state."""
        per_parameter = 4 if training else 1
        numbers = per_parameter * self.parameters + self.buffers
        return NUMBER_BYTES * numbers + LAYER_BYTES * self.layers


def _linear_chain(sizes: list[int]) -> Footprint:
    return Footprint(
        parameters=sum(a * b + b for a, b in itertools.pairwise(sizes)), layers=len(sizes) - 1
    )


def _made(inputs: int, hidden: list[int], outputs: int, num_flows: int) -> Footprint:
    """``num_flows`` MADE networks (Pyro's autoregressive flows): a masked MLP, each mask a
    buffer the size of its weight."""
    one = _linear_chain([inputs, *hidden, outputs])
    weights = sum(a * b for a, b in itertools.pairwise([inputs, *hidden, outputs]))
    return Footprint(num_flows * one.parameters, num_flows * weights, num_flows * one.layers)


def _mlp(spec: Mapping[str, Any], n_in: int, n_out: int, image_shape: tuple[int, ...]) -> Footprint:
    return _linear_chain([n_in, *spec["hidden"], n_out])


def _conv_encoder(
    spec: Mapping[str, Any], n_in: int, n_out: int, image_shape: tuple[int, ...]
) -> Footprint:
    from .models.networks import _conv_shapes

    shapes = _conv_shapes(tuple(image_shape), list(spec["channels"]))
    convs = sum(a[0] * b[0] * 16 + b[0] for a, b in itertools.pairwise(shapes))
    c, h, w = shapes[-1]
    return Footprint(parameters=convs + c * h * w * n_out + n_out, layers=len(shapes))


def _conv_decoder(
    spec: Mapping[str, Any], n_in: int, n_out: int, image_shape: tuple[int, ...]
) -> Footprint:
    from .models.networks import _conv_shapes

    shapes = _conv_shapes(tuple(image_shape), list(spec["channels"]))
    c, h, w = shapes[0]
    shapes[0] = (max(1, n_out // (c * h * w)) * c, h, w)
    convs = sum(a[0] * b[0] * 16 + a[0] for a, b in itertools.pairwise(shapes))
    c0, h0, w0 = shapes[-1]
    return Footprint(parameters=convs + n_in * c0 * h0 * w0 + c0 * h0 * w0, layers=len(shapes))


_NETWORKS: dict[str, Callable[..., Footprint]] = {
    "mlp": _mlp,
    "conv": _conv_encoder,
}
_DECODERS: dict[str, Callable[..., Footprint]] = {"mlp": _mlp, "conv": _conv_decoder}


def _prior(spec: Mapping[str, Any], latent_dim: int, data_dim: int, num_classes: int) -> Footprint:
    kind = spec["type"]
    if kind == "standard_normal":
        return Footprint(buffers=2 * latent_dim)
    if kind == "normal":
        return Footprint(parameters=2 * latent_dim)
    if kind == "mog":
        return Footprint(parameters=spec["components"] * (2 * latent_dim + 1))
    if kind == "vamp":
        return Footprint(parameters=spec["components"] * data_dim)
    if kind == "conditional":
        return Footprint(parameters=num_classes * latent_dim)
    if kind == "flow":
        made = _made(latent_dim, list(spec["hidden"]), 2 * latent_dim, spec["num_flows"])
        return made + Footprint(buffers=2 * latent_dim)
    return Footprint()  # a component registered elsewhere: not estimated


def _guide(spec: Mapping[str, Any], latent_dim: int) -> tuple[Footprint, int]:
    """The guide's own footprint and the numbers its encoder must emit per example."""
    if spec["type"] == "iaf":
        context = spec["context_dim"]
        made = _made(latent_dim + context, list(spec["hidden"]), 2 * latent_dim, spec["num_flows"])
        return made, 2 * latent_dim + context
    return Footprint(), 2 * latent_dim


def _likelihood(spec: Mapping[str, Any], data_dim: int) -> tuple[Footprint, int]:
    """The likelihood's own footprint and the numbers its decoder emits per element."""
    from .models.likelihoods import LIKELIHOODS

    per_element = LIKELIHOODS.get(spec["type"]).numbers_per_element(spec)
    scale = spec.get("scale")
    learned = {"learned": 1, "learned_per_pixel": data_dim}.get(scale, 0)  # type: ignore[arg-type]
    return Footprint(parameters=learned, buffers=0 if learned else int(scale is not None)), (
        per_element
    )


def model_footprint(config: Mapping[str, Any]) -> Footprint:
    """The size of the VAE a resolved ``config`` defines, computed from its numbers alone
    (with ``model.latents``, the sum over its stochastic layers).

    Example::

        model_footprint(resolve_config({})).parameters   # 688884
    """
    from .data import data_shape

    shape = data_shape(config["data"])
    m = config["model"]
    data_dim, image_shape = shape.data_dim, shape.image_shape
    likelihood, per_element = _likelihood(m["likelihood"], data_dim)
    if "latents" not in m:
        layers, paths = [{**m, "dim": m["latent_dim"]}], ["model"]
    else:
        layers = m["latents"]
        paths = [f"model.latents[{i}]" for i in range(len(layers))]
    top = layers[-1]
    total = likelihood + _prior(top["prior"], top["dim"], data_dim, shape.num_classes)
    for i, (layer, path) in enumerate(zip(layers, paths)):
        guide, guide_outputs = _guide(layer["guide"], layer["dim"])
        below = data_dim if i == 0 else layers[i - 1]["dim"]
        outputs = per_element * data_dim if i == 0 else 2 * below
        total += guide
        for kind, estimators, n_in, n_out in (
            ("encoder", _NETWORKS, below, guide_outputs),
            ("decoder", _DECODERS, layer["dim"], outputs),
        ):
            spec = layer[kind]
            estimate = estimators.get(spec["type"])
            if estimate is None:
                continue  # a network registered elsewhere: not estimated
            try:
                total += estimate(spec, n_in, n_out, image_shape)
            except ConfigError as exc:  # a shape check of the network, as the registry names it
                raise ConfigError(f"{path}.{kind}.type = {spec['type']!r}: {exc}") from None
    return total


def available_memory() -> int:
    """Bytes of memory this process can still allocate: ``MemAvailable`` of
    ``/proc/meminfo`` where there is one, else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 1 << 62  # unknown: no bound


def data_memory_budget(device: Any) -> int:
    """Bytes a data set may take to be held in memory on ``device`` (a ``torch.device``):
    half of :func:`available_memory`, and on a GPU also half of its free memory; data
    larger than this is streamed (``data.in_memory = "auto"``)."""
    budget = available_memory() // 2
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        budget = min(budget, free // 2)
    return budget


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def check_model_fits(config: Mapping[str, Any], training: bool = False) -> Footprint:
    """Raise :class:`ConfigError` with the numbers when the model of the resolved ``config``
    has more than :data:`MAX_LAYERS` layers or would not fit in :func:`available_memory`
    (with ``training``, together with its gradients and optimizer state); return its
    :class:`Footprint` otherwise."""
    size = model_footprint(config)
    if size.layers > MAX_LAYERS:
        raise ConfigError(
            f"model.encoder/decoder/prior/guide define {size.layers:,} layers, more than the "
            f"{MAX_LAYERS:,} pyrovae builds; use fewer hidden layers"
        )
    need, have = size.bytes(training), available_memory()
    if need > have:
        what = "to train" if training else "to hold"
        raise ConfigError(
            f"the model has {size.parameters:,} parameters in {size.layers:,} layers and needs "
            f"about {_gb(need)} of memory {what}, but only {_gb(have)} is available; make the "
            "networks smaller (model.encoder.hidden, model.decoder.hidden...)"
        )
    return size


def check_batch_fits(elements: int, bytes_per_element: int, flag: str) -> None:
    """Raise :class:`ConfigError` when ``elements`` items of ``bytes_per_element`` each would
    not fit in :func:`available_memory`, naming the option ``flag`` that sets ``elements``."""
    need, have = elements * bytes_per_element, available_memory()
    if need > have:
        most = max(1, have // bytes_per_element)
        raise ConfigError(
            f"{flag} {elements:,} needs about {_gb(need)} of memory per pass, but only "
            f"{_gb(have)} is available; give at most {most:,}"
        )


def example_bytes(program: Any) -> int:
    """An over-estimate of the memory one (sample, example) pair takes in a vectorized pass
    of a program's guide and model: every layer's output, the data-sized tensors of the
    likelihood, float32, with room for the intermediate results."""
    from torch import nn

    shape = tuple(program.image_shape or ())
    # a conv layer's feature maps are at most the image's height x width (stride >= 1)
    map_size = shape[-1] * shape[-2] if len(shape) == 3 else 28 * 28
    widths = 0
    for module in program.modules():
        if isinstance(module, nn.Linear):
            widths += module.out_features
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            # spatial sizes are not stored on the module: count an image-sized map per channel
            widths += module.out_channels * map_size
    likelihood = program.likelihood_component()
    per_element = 1 if likelihood is None else likelihood.params_per_element
    data = (program.data_dim or 0) * (per_element + 2)
    return 4 * NUMBER_BYTES * (widths + data)
