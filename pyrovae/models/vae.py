"""The VAE: a Pyro model p(x, z) = p(x|z) p(z) and an amortized guide q(z|x).

Both are plain Pyro programs over the sites ``"z"`` (latent, event shape ``(latent_dim,)``)
and ``"x"`` (observed, event shape ``(data_dim,)``) inside ``pyro.plate("data", N)``. The
components (prior, likelihood, encoder, decoder, guide family) are modules chosen by name.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.util import is_validation_enabled
from torch import nn

from ..config import resolve_config
from ..data import data_shape
from ..errors import ConfigError, DataError
from ..registry import PositiveInt, check_value
from .guides import GUIDES, GuideFamily
from .likelihoods import LIKELIHOODS, Likelihood, check_support
from .networks import DECODERS, ENCODERS
from .priors import PRIORS, Prior

_instance_ids = itertools.count()


class VAE(nn.Module):
    """A variational autoencoder whose ``model`` and ``guide`` are Pyro programs.

    Args:
        prior: p(z), event shape ``(latent_dim,)``.
        likelihood: p(x|z) given decoder output ``(*batch, k, data_dim)``.
        encoder: network ``(*batch, data_dim) -> (*batch, guide.num_params)``.
        decoder: network ``(*batch, latent_dim) -> (*batch, k * data_dim)``.
        guide_family: q(z|x) given encoder output.
        data_dim: number of elements (pixels) per example.
        image_shape: ``(C, H, W)`` of one example, for pictures and conv networks.

    Every Pyro ``param`` site registered by ``model``/``guide`` is a parameter of this module,
    so ``vae.parameters()`` and ``vae.state_dict()`` hold the whole learned state.

    The programs know nothing of training: a KL weight (beta, warm-up) is applied from outside
    with :func:`pyrovae.infer.scale_latents`.

    ``model`` and ``guide`` register the module in Pyro's param store (``pyro.module``) each
    time they run, so ``pyro.infer.SVI`` with a ``pyro.optim`` optimizer trains it as usual.
    Code that optimises ``vae.parameters()`` directly (like :class:`~pyrovae.Trainer`) can skip
    that per-call cost with :meth:`param_store_registration`.
    """

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        encoder: nn.Module,
        decoder: nn.Module,
        guide_family: GuideFamily,
        data_dim: int,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.prior = prior
        self.likelihood = likelihood
        self.encoder = encoder
        self.decoder = decoder
        self.guide_family = guide_family
        self.latent_dim = prior.latent_dim
        self._set_data_shape_and_name(data_dim, image_shape)
        prior.attach(self)

    def _set_data_shape_and_name(self, data_dim: int, image_shape: tuple[int, ...] | None) -> None:
        self.data_dim = data_dim
        self.image_shape = tuple(image_shape) if image_shape else (data_dim,)
        #: name of this module in Pyro's param store (unique per instance)
        self.pyro_name = f"vae{next(_instance_ids)}"
        #: whether ``model``/``guide`` call ``pyro.module`` (see :meth:`param_store_registration`)
        self.registers_params = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "VAE":
        """Build a VAE from a whole run config (as loaded from TOML, or its Python mapping).

        The config is validated and completed first (see :func:`pyrovae.resolve_config`; a
        config that is already resolved passes unchanged); only the ``data`` section (the data
        shape and its preparation) and ``model`` are used here.

        Example::

            vae = VAE.from_config({"model": {"latent_dim": 8}})
        """
        return cls.from_resolved_config(resolve_config(config))

    @classmethod
    def from_resolved_config(cls, config: Mapping[str, Any]) -> "VAE":
        """:meth:`from_config` for a config that :func:`pyrovae.resolve_config` has already
        validated and completed (as the library's own run code has), without resolving it
        again.

        The model's size is estimated from the config first
        (:func:`pyrovae.resources.check_model_fits`): one that cannot fit in memory is refused
        with the numbers before anything is allocated.

        A config whose ``model.latents`` declares stochastic layers builds a
        :class:`~pyrovae.models.hierarchical_vae.HierarchicalVAE` (this is the one place the
        config chooses the model)."""
        from ..resources import check_model_fits

        if "latents" in config["model"] and cls is VAE:
            from .hierarchical_vae import HierarchicalVAE

            return HierarchicalVAE.from_resolved_config(config)
        check_model_fits(config)
        shape = data_shape(config["data"])  # recorded by a run, or fixed by the data set
        m = config["model"]
        latent_dim, data_dim = m["latent_dim"], shape.data_dim
        likelihood = LIKELIHOODS.build(m["likelihood"], "model.likelihood", data_dim=data_dim)
        likelihood.check_data_config(config["data"]["binarize"])
        guide_family = GUIDES.build(m["guide"], "model.guide", latent_dim=latent_dim)
        check_data_shape(m, shape)
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

    # ------------------------------------------------------------------ data
    def check_data(
        self,
        x: object,
        y: object = None,
        *,
        name: str = "x",
        grey_levels: bool = False,
    ) -> None:
        """Raise :class:`~pyrovae.errors.DataError` unless ``x`` is data this VAE can score:
        a ``(N, data_dim)`` tensor with ``N >= 1``, of the parameters' floating dtype, on
        their device, with every value in the likelihood's support (finite; {0, 1} for a
        Bernoulli likelihood...); and unless ``y`` is ``None`` or ``(N,)`` integer labels in
        range of a label-conditional prior.

        With ``grey_levels=True`` the values are checked to be probabilities in [0, 1]
        instead (training data that is binarized afresh each epoch). The support check reads
        one number back from the device: the public entry points that take data call this
        once per call, never per training step.

        Example::

            vae.check_data(torch.full((2, vae.data_dim), 0.5))
            # DataError: model.likelihood.type = 'bernoulli' needs binary data ...
        """
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"{name} must be a torch.Tensor of shape (N, {self.data_dim}), got "
                f"a {type(x).__name__}"
            )
        reference = next(itertools.chain(self.parameters(), self.buffers()))
        if x.dim() != 2 or x.shape[1] != self.data_dim or x.shape[0] == 0:
            raise DataError(
                f"{name} must have shape (N, {self.data_dim}) with N >= 1 (one row of "
                f"{self.data_dim} elements per example; flatten images first), got shape "
                f"{tuple(x.shape)}"
            )
        if x.dtype != reference.dtype:
            raise DataError(
                f"{name} has dtype {x.dtype}, but the model's parameters are {reference.dtype}; "
                f"convert it with {name}.to({reference.dtype})"
            )
        if x.device != reference.device:
            raise DataError(
                f"{name} is on {x.device}, but the model is on {reference.device}; move it "
                f"with {name}.to({str(reference.device)!r})"
            )
        if grey_levels:
            check_support(x, "unit_interval", self.likelihood.type_name)
        else:
            self.likelihood.check_data(x)
        if y is None:
            return
        if not isinstance(y, torch.Tensor) or (
            y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool
        ):
            raise DataError(
                f"the labels y must be an integer tensor of shape ({x.shape[0]},), got "
                f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}"
            )
        if y.shape != (x.shape[0],):
            raise DataError(
                f"the labels y must have shape ({x.shape[0]},), one per example of {name}, "
                f"got shape {tuple(y.shape)}"
            )
        if y.device != x.device:
            raise DataError(f"the labels y are on {y.device}, but {name} is on {x.device}")
        num_classes = self.prior.num_classes
        if self.prior.uses_labels and num_classes is not None:
            bad = (y < 0) | (y >= num_classes)
            if bool(bad.any()):
                raise DataError(
                    f"the labels y must be classes 0 to {num_classes - 1}, but they hold "
                    f"{int(y[bad][0])}"
                )

    # ------------------------------------------------------------------ networks
    def model_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The labels to pass to :meth:`model`: ``y`` when the prior is label-conditional,
        else ``None`` (so unconditional models never see labels)."""
        return y if self.prior.uses_labels else None

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x) for data ``x`` of shape ``(*batch, data_dim)``."""
        return self.guide_family.distribution(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for latents ``(*batch, latent_dim)``: ``(*batch, k, data_dim)``."""
        out = self.decoder(z)
        return out.reshape(*out.shape[:-1], self.likelihood.params_per_element, self.data_dim)

    def likelihood_distribution(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x|z) for latents ``(*batch, latent_dim)``, event shape ``(data_dim,)``."""
        return self.likelihood.distribution(self.decode(z))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z], shape ``(*batch, data_dim)``."""
        return self.likelihood.mean(self.decode(z))

    # ------------------------------------------------------------------ Pyro programs
    @contextlib.contextmanager
    def param_store_registration(self, enabled: bool) -> Iterator["VAE"]:
        """Within the block, ``model``/``guide`` do (``True``) or do not (``False``) register
        this module's parameters in Pyro's param store; the previous setting is restored after.

        ``pyro.module`` puts one ``param`` site per parameter tensor through Pyro's handler
        stack each time ``model`` or ``guide`` runs, which a loop that optimises
        ``vae.parameters()`` with a torch optimizer does not need. Pyro's
        ``SVI`` with ``pyro.optim`` does need it: it finds the parameters to update from the
        ``param`` sites of its traces, so leave registration on (the default) for ``SVI``.

        Example::

            with vae.param_store_registration(False):
                loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        """
        previous, self.registers_params = self.registers_params, enabled
        try:
            yield self
        finally:
            self.registers_params = previous

    def _register(self) -> None:
        if self.registers_params:
            pyro.module(self.pyro_name, self)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """p(x, z): ``z ~ prior``, ``x ~ likelihood(decoder(z))``; ``x`` is ``(N, data_dim)``.

        ``y`` (``(N,)`` labels) is passed to label-conditional priors and ignored otherwise.
        While Pyro validation is on, ``x`` is checked against the likelihood's support
        (:meth:`Likelihood.check_data`)."""
        self._register()
        if is_validation_enabled():
            self.likelihood.check_data(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior.distribution(y))
            pyro.sample("x", self.likelihood_distribution(z), obs=self.likelihood.prepare(x))
        return z

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """q(z|x), amortized by the encoder; ``x`` is ``(N, data_dim)``; ``y`` is unused (the
        guide takes the model's arguments)."""
        self._register()
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.posterior(x))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, num: int, y: int | torch.Tensor | None = None) -> torch.Tensor:
        """Means E[x|z] of ``num`` prior draws z ~ p(z): ``(num, data_dim)``.

        With a label-conditional prior, ``y`` asks for a class: an ``int`` (all ``num`` draws
        of that class) or ``(num,)`` labels; without it, z comes from the prior's marginal."""
        check_value(num, PositiveInt, "num")
        if y is not None:
            if not self.prior.uses_labels:
                raise ConfigError(
                    f"sampling with a class label needs a label-conditional prior "
                    f"(model.prior.type = 'conditional'), but this VAE's prior is "
                    f"{self.prior.type_name!r}"
                )
            if isinstance(y, int):
                num_classes = self.prior.num_classes
                if num_classes is not None and not 0 <= y < num_classes:
                    raise ConfigError(
                        f"class label {y} is out of range: expected 0 to {num_classes - 1}"
                    )
                device = next(iter(self.parameters())).device
                y = torch.full((num,), y, dtype=torch.long, device=device)
        prior = self.prior.distribution(y)
        z = prior.sample(torch.Size([num]) if not prior.batch_shape else torch.Size())
        return self.decode_mean(self._descend(z))

    def _descend(self, z: torch.Tensor) -> torch.Tensor:
        """The latent the decoder reads, given a prior draw ``z``: ``z`` itself (a hierarchy
        draws its lower layers here)."""
        return z

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x|z] for one draw z ~ q(z|x) per example: ``(N, data_dim)``."""
        return self.decode_mean(self.posterior(x).sample())

    # ------------------------------------------------------------------ description
    def describe(self) -> str:
        """The model in words and math: p(x, z) = p(x|z) p(z) with each factor's family and
        parameters, and the guide q(z|x); each factor is followed by the config keys that
        choose it. :func:`pyrovae.describe` adds the data and the objective of a whole run."""
        shape = "x".join(map(str, self.image_shape))
        num_params = sum(p.numel() for p in self.parameters())
        given = " | y" if self.prior.uses_labels else ""
        lines = [
            f"VAE: x in {shape} = {self.data_dim} elements; latent z in R^{self.latent_dim}; "
            f"{num_params:,} parameters",
            f"  p(x, z{given}) = p(x | z) p(z{given})",
            f"  p(z{given}) = {self.prior.describe()}",
            f"      [model.prior = {self.prior.type_name}]",
            f"  p(x | z) = {self.likelihood.describe()}",
            f"      f(z) = decoder: {_describe_network(self.decoder)}",
            f"      [model.likelihood = {self.likelihood.type_name}, "
            f"model.decoder = {_type_name(self.decoder)}]",
            f"  q(z | x) = {self.guide_family.describe()}",
            f"      encoder: {_describe_network(self.encoder)}",
            f"      [model.guide = {self.guide_family.type_name}, "
            f"model.encoder = {_type_name(self.encoder)}]",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def check_data_shape(components: Mapping[str, Any], shape: Any) -> None:
    """Raise :class:`ConfigError` when resolved components (the ``encoder``, ``decoder`` and
    ``prior`` specs next to the data) cannot take data of ``shape`` (a
    :class:`pyrovae.data.DataShape`): conv networks on vectors, a label-conditional prior on
    unlabelled data."""
    for key in ("encoder", "decoder"):
        if components[key]["type"] == "conv" and len(shape.image_shape) != 3:
            raise ConfigError(
                f"model.{key}.type = 'conv' needs images (C, H, W), but the data are "
                f"vectors of {shape.data_dim} numbers; use model.{key}.type = 'mlp'"
            )
    if components["prior"]["type"] == "conditional" and not shape.num_classes:
        raise ConfigError(
            "model.prior.type = 'conditional' needs labelled data, but the data have no "
            "labels (a folder of images is labelled by its class subfolders)"
        )


def _describe_network(net: nn.Module) -> str:
    describe = getattr(net, "describe", None)
    return describe() if callable(describe) else type(net).__name__


def _type_name(net: nn.Module) -> str:
    return getattr(net, "type_name", type(net).__name__)
