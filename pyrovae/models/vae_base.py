"""What pyrovae's built-in VAEs share: a :class:`~pyrovae.models.program.Program` built from
registered components.

:class:`VAEBase` holds a prior (:data:`~pyrovae.models.priors.PRIORS`) on the top latent and a
likelihood (:data:`~pyrovae.models.likelihoods.LIKELIHOODS`) of the observed site ``"x"``,
and from them answers what the contract asks: the data it accepts (the likelihood's support),
the labels its programs take (those of a label-conditional prior), how to draw from the prior
and decode, and whether its programs register in Pyro's param store. Its two subclasses,
siblings under the contract, differ in the latents between the prior and ``x``:
:class:`~pyrovae.VAE` (one site ``"z"``) and :class:`~pyrovae.HierarchicalVAE` (a chain of
sites ``"z1"``, ..., ``"zL"``). Which one a config builds is decided in
:mod:`pyrovae.models.factory`.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, cast

import pyro
import pyro.distributions as dist
import torch

from ..config import resolve_config
from ..errors import ConfigError
from ..registry import PositiveInt, check_value
from .factory import build_builtin
from .likelihoods import Likelihood, check_support
from .priors import Prior
from .program import Program

__all__ = ["VAEBase"]

_instance_ids = itertools.count()


class VAEBase(Program):
    """A model built from registered components: a prior p(z_top) and a likelihood p(x | .)
    (see the module docstring). Subclasses implement the programs, :meth:`decode` (the decoder
    output of the latent ``x`` depends on) and :meth:`descend` (that latent, from a prior
    draw).

    Args:
        prior: p(z_top), event shape ``(prior.latent_dim,)``.
        likelihood: p(x | .) given decoder output ``(*batch, k, data_dim)``.
        data_dim: elements per example.
        image_shape: ``(C, H, W)`` of one example (``(data_dim,)`` when not given).

    ``model`` and ``guide`` register the module in Pyro's param store (``pyro.module``) each
    time they run, so ``pyro.infer.SVI`` with a ``pyro.optim`` optimizer trains it as usual;
    code that optimises ``parameters()`` directly (like :class:`~pyrovae.Trainer`) skips that
    per-call cost with :meth:`param_store_registration`.
    """

    #: every registered objective trains the built-in VAEs (reparameterized guide families;
    #: the analytic KL takes the closed form where the sites' order allows it)
    data_dim: int
    image_shape: tuple[int, ...]
    trains_with_any_objective: ClassVar[bool] = True
    #: a run's config rebuilds it (:func:`~pyrovae.models.factory.build_model`)
    rebuilt_from_config: ClassVar[bool] = True

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        data_dim: int,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.prior = prior
        self.likelihood = likelihood
        self.data_dim = data_dim
        self.image_shape = tuple(image_shape) if image_shape else (data_dim,)
        #: name of this module in Pyro's param store (unique per instance)
        self.pyro_name = f"vae{next(_instance_ids)}"
        #: whether ``model``/``guide`` call ``pyro.module`` (see :meth:`param_store_registration`)
        self.registers_params = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VAEBase:
        """The built-in model a whole run config declares (as loaded from TOML, or its Python
        mapping): a :class:`~pyrovae.VAE`, or a :class:`~pyrovae.HierarchicalVAE` when
        ``model.latents`` declares stochastic layers (:func:`pyrovae.models.factory.build_builtin`).

        The config is validated and completed first (:func:`pyrovae.resolve_config`; a config
        that is already resolved passes unchanged); only the ``data`` section (the data's
        shape and preparation) and ``model`` are used. A subclass of a built-in model builds
        itself.

        Example::

            vae = VAE.from_config({"model": {"latent_dim": 8}})
        """
        return cls.from_resolved_config(resolve_config(config))

    @classmethod
    def from_resolved_config(cls, config: Mapping[str, Any]) -> VAEBase:
        """:meth:`from_config` for a config :func:`pyrovae.resolve_config` has already
        validated and completed, without resolving it again."""
        return cast(VAEBase, build_builtin(config, cls))

    # ------------------------------------------------------------------ data
    def check_values(self, x: torch.Tensor, *, name: str = "x", grey_levels: bool = False) -> None:
        """Raise :class:`~pyrovae.errors.DataError` when ``x`` holds values outside the
        likelihood's support (finite; {0, 1} for a Bernoulli likelihood...); with
        ``grey_levels``, when they are not probabilities in [0, 1] (training data binarized
        afresh each epoch).

        Example::

            vae.check_data(torch.full((2, vae.data_dim), 0.5))
            # DataError: model.likelihood.type = 'bernoulli' needs binary data ...
        """
        if grey_levels:
            check_support(x, "unit_interval", self.likelihood.type_name)
        else:
            self.likelihood.check_data(x)

    @property
    def num_classes(self) -> int | None:
        """The classes of a label-conditional prior, else ``None``."""
        return self.prior.num_classes if self.prior.uses_labels else None

    def classes(self, purpose: str) -> int:
        """The classes of a label-conditional prior; :class:`ConfigError` naming the prior for
        another."""
        if self.num_classes is None:
            raise ConfigError(
                f"{purpose} draws from p(z|y), a class-conditional prior, but this model has "
                f"model.prior = {self.prior.type_name!r}; train one with model.prior.type = "
                "'conditional' (e.g. examples/conditional_vae.py)"
            )
        return self.num_classes

    def model_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The labels to pass to :meth:`model`: ``y`` when the prior is label-conditional,
        else ``None`` (so unconditional models never see labels)."""
        return y if self.prior.uses_labels else None

    def likelihood_component(self) -> Likelihood:
        return self.likelihood

    # ------------------------------------------------------------------ decoding
    @abc.abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for the latent ``x`` depends on, ``(*batch, latent)``:
        ``(*batch, k, data_dim)``."""

    def descend(self, z: torch.Tensor) -> torch.Tensor:
        """The latent the likelihood's decoder reads, given a draw ``z`` of the prior:
        ``z`` itself (a hierarchy draws its lower layers here)."""
        return z

    def likelihood_distribution(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z) for the latent ``x`` depends on, event shape ``(data_dim,)``."""
        return self.likelihood.distribution(self.decode(z))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z], shape ``(*batch, data_dim)``."""
        return self.likelihood.mean(self.decode(z))

    def _reshape_decoded(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(*out.shape[:-1], self.likelihood.params_per_element, self.data_dim)

    # ------------------------------------------------------------------ Pyro programs
    @contextlib.contextmanager
    def param_store_registration(self, enabled: bool) -> Iterator[VAEBase]:
        """Within the block, ``model``/``guide`` do (``True``) or do not (``False``) register
        this module's parameters in Pyro's param store; the previous setting is restored after.

        ``pyro.module`` puts one ``param`` site per parameter tensor through Pyro's handler
        stack each time ``model`` or ``guide`` runs, which a loop that optimises
        ``vae.parameters()`` with a torch optimizer does not need. Pyro's ``SVI`` with
        ``pyro.optim`` does need it: it finds the parameters to update from the ``param``
        sites of its traces, so leave registration on (the default) for ``SVI``.

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

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, num: int, y: int | torch.Tensor | None = None) -> torch.Tensor:
        """Means E[x | z] of ``num`` prior draws: ``(num, data_dim)``.

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
                y = torch.full((num,), y, dtype=torch.long, device=self.device)
        prior = self.prior.distribution(y)
        z = prior.sample(torch.Size([num]) if not prior.batch_shape else torch.Size())
        return self.decode_mean(self.descend(z))

    def __repr__(self) -> str:
        return self.describe()
