"""Likelihoods p(x|z): the distribution of the observed site ``"x"``.

A likelihood turns the decoder's output, a tensor of shape ``(*batch, k, D)`` with ``k =
params_per_element`` numbers per data element, into a Pyro distribution with batch shape
``batch`` and event shape ``(D,)`` (``D`` = pixels, treated as one event with ``to_event(1)``).
Its ``log_prob`` is in nats per example.

Each likelihood declares the data it accepts (:attr:`Likelihood.data_kind`):

* ``"binary"``: {0, 1} (a probability mass; needs binarized data);
* ``"unit_interval"``: grey levels in [0, 1] (a density on [0, 1]; binarized data is refused,
  because on {0, 1} such a density can grow without bound and the "log-likelihood" with it);
* ``"eight_bit"``: the 256 levels ``k/255`` of 8-bit pixels scaled into [0, 1] (a
  probability mass on those levels; binarized data is refused);
* ``"real"``: any finite numbers.

:meth:`Likelihood.check_data_config` refuses a data preparation it cannot model before any
work starts, and :meth:`Likelihood.check_data` refuses out-of-support values with the same
kind of message (the model calls it while Pyro validation is on).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..distributions import LEVELS, DiscretizedLogisticMixture, IndependentBernoulli
from ..errors import ConfigError, DataError
from ..registry import PositiveFloat, PositiveInt, Range, Registry

DataKind = Literal["binary", "unit_interval", "eight_bit", "real"]

#: how far (in levels) a value of 8-bit data may sit from ``k/255``: float32 rounding of
#: ``k/255`` is ~1e-5 levels, dequantization noise or other grey levels are far more
_LEVEL_TOLERANCE = 1e-3

_DATA_WORDS: dict[str, tuple[str, str]] = {
    # kind: (what it needs, how to fix the data)
    "binary": (
        "binary data (every value 0 or 1)",
        "binarize it (data.binarize = 'dynamic' or 'static'), or opt in to Bernoulli "
        "cross-entropy on grey levels with model.likelihood.allow_grey_levels = true",
    ),
    "unit_interval": ("grey levels in [0, 1]", "scale the data into [0, 1]"),
    "eight_bit": (
        "8-bit levels k/255 in [0, 1] (k = 0..255)",
        "give 8-bit images scaled by 1/255 (uint8 / 255, neither dequantized nor rescaled), "
        "or choose a density on [0, 1] (e.g. 'continuous_bernoulli')",
    ),
    "real": ("finite real numbers", "remove or replace the NaN/infinite values"),
}


def check_support(x: torch.Tensor, kind: DataKind, likelihood: str) -> None:
    """Raise :class:`DataError` naming ``likelihood`` and an offending value when ``x`` is
    not of data ``kind``. Reads the data on the host (a device sync): call it once per data
    set, not per step."""
    if kind == "binary":
        bad = (x != 0) & (x != 1)
    elif kind == "unit_interval":
        bad = ~((x >= 0) & (x <= 1))
    elif kind == "eight_bit":
        levels = x * (LEVELS - 1)
        bad = ~((x >= 0) & (x <= 1) & ((levels - levels.round()).abs() <= _LEVEL_TOLERANCE))
    else:
        bad = ~torch.isfinite(x)
    if bool(bad.any()):
        needs, fix = _DATA_WORDS[kind]
        example = x[bad].flatten()[0].item()
        raise DataError(
            f"model.likelihood.type = {likelihood!r} needs {needs}, but the data hold "
            f"{example:.6g} ({int(bad.sum())} of {x.numel()} values are outside); {fix}"
        )


class Likelihood(nn.Module):
    """Base class: maps decoder outputs ``(*batch, k, D)`` to a distribution over ``x``."""

    type_name: ClassVar[str]
    #: numbers the decoder emits per data element (a class constant, or set per instance by
    #: likelihoods whose parameters decide it)
    params_per_element: int = 1
    #: the data this likelihood is a density/mass for
    data_kind: ClassVar[DataKind] = "real"
    #: the number of values each element takes when this likelihood is a probability mass on
    #: a finite set (2: binary pixels; 256: 8-bit levels), so that its log-likelihood converts
    #: to bits per dimension; ``None`` for densities (see :func:`pyrovae.evaluation.bits_per_dim`)
    levels_per_element: int | None = None
    #: why ``log_prob`` is not a normalised likelihood of the data it accepts, when it is not
    #: (``""``: it is); said where bits per dimension are asked for
    unnormalised: str = ""

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        """The distribution of ``x`` given decoder output ``params`` of shape ``(*batch, k, D)``."""
        raise NotImplementedError

    @staticmethod
    def one_param(params: torch.Tensor) -> torch.Tensor:
        """``(*batch, D)``: the decoder output of a likelihood with one number per element
        (``k = 1``), squeezed; a view whose gradient is a view too (``params[..., 0, :]``
        would copy the gradient into a fresh ``(*batch, 1, D)`` tensor)."""
        return params.squeeze(-2)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mean of ``x`` given ``params``, shape ``(*batch, D)``; used for pictures."""
        return self.distribution(params).mean

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The value the density is evaluated at for data ``x`` (identity unless a likelihood
        documents otherwise, e.g. ``beta`` clamps into its open support)."""
        return x

    def check_data_config(self, binarize: str) -> None:
        """Raise :class:`ConfigError` when data prepared with ``binarize`` is outside the
        support."""
        binary = binarize in ("dynamic", "static")
        if self.data_kind == "binary" and not binary:
            raise ConfigError(
                f"model.likelihood.type = {self.type_name!r} needs binary data but "
                f"data.binarize = {binarize!r}; set data.binarize to 'dynamic' or 'static', "
                "choose a likelihood for grey levels (e.g. 'continuous_bernoulli'), or opt in "
                "to Bernoulli cross-entropy on grey levels with "
                "model.likelihood.allow_grey_levels = true"
            )
        if self.data_kind == "eight_bit" and binary:
            raise ConfigError(
                f"model.likelihood.type = {self.type_name!r} is a mass on the 256 levels of "
                f"8-bit pixels, but data.binarize = {binarize!r} leaves only 0 and 1. Set "
                "data.binarize = 'none', or use model.likelihood.type = 'bernoulli' for "
                "binarized data"
            )
        if self.data_kind == "unit_interval" and binary:
            raise ConfigError(
                f"model.likelihood.type = {self.type_name!r} is a density on grey levels in "
                f"[0, 1], but data.binarize = {binarize!r}: on binary data that density (and the "
                "reported log-likelihood) grows without bound. Set data.binarize = 'none', or "
                "use model.likelihood.type = 'bernoulli' for binarized data"
            )

    def check_data(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` when ``x`` holds values outside this likelihood's data."""
        check_support(x, self.data_kind, self.type_name)

    def describe(self) -> str:
        """p(x|z) in words, with f(z) the decoder output (for :meth:`pyrovae.VAE.describe`)."""
        return self.type_name

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}, data={self.data_kind}"


LIKELIHOODS: Registry[Likelihood] = Registry("likelihood", context=("data_dim",))


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Independent Bernoulli pixels parameterised by logits: ``x_d ~ Bernoulli(sigmoid(l_d))``.

    ``allow_grey_levels = true`` accepts grey levels in [0, 1] too: ``log_prob`` is then the
    negative binary cross-entropy, which is *not* a normalised log-likelihood of grey-level
    data (use ``continuous_bernoulli`` for one).
    """

    data_kind = "binary"

    def __init__(self, *, data_dim: int, allow_grey_levels: bool = False) -> None:
        super().__init__()
        self.allow_grey_levels = allow_grey_levels
        # on grey levels the cross-entropy is not a normalised mass
        self.levels_per_element = None if allow_grey_levels else 2
        if allow_grey_levels:
            self.unnormalised = "allow_grey_levels = true scores the binary cross-entropy"

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        base = dist.Bernoulli(
            logits=self.one_param(params), validate_args=False if self.allow_grey_levels else None
        )
        # Bernoulli's support check would refuse grey levels when they are allowed
        return IndependentBernoulli(
            base, 1, validate_args=False if self.allow_grey_levels else None
        )

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.one_param(params))

    def check_data_config(self, binarize: str) -> None:
        if not self.allow_grey_levels:
            super().check_data_config(binarize)

    def check_data(self, x: torch.Tensor) -> None:
        kind: DataKind = "unit_interval" if self.allow_grey_levels else "binary"
        check_support(x, kind, self.type_name)

    def describe(self) -> str:
        text = "prod_d Bernoulli(x_d | p_d = sigmoid(f(z)_d)), a mass on binary pixels"
        if self.allow_grey_levels:
            text += " (grey levels allowed: cross-entropy, not a normalised likelihood)"
        return text


@LIKELIHOODS.register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """Continuous Bernoulli pixels (Loaiza-Ganem & Cunningham, 2019) for grey levels in [0, 1]:
    density ``C(lam) lam^x (1 - lam)^(1 - x)`` with ``lam = sigmoid(l_d)`` and the normaliser
    ``C(lam) = 2 artanh(1 - 2 lam) / (1 - 2 lam)`` (``C(1/2) = 2``) that the plain Bernoulli
    cross-entropy lacks. ``E[x|z]`` is not ``lam``; pictures use the true mean."""

    data_kind = "unit_interval"

    def __init__(self, *, data_dim: int) -> None:
        super().__init__()

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        return dist.ContinuousBernoulli(logits=self.one_param(params)).to_event(1)

    def describe(self) -> str:
        return (
            "prod_d ContinuousBernoulli(x_d | lam_d = sigmoid(f(z)_d)), density "
            "C(lam) lam^x (1-lam)^(1-x) on grey levels in [0, 1]"
        )


class LocationScaleLikelihood(Likelihood):
    """Independent pixels ``x_d ~ family(mu_d, s)`` with decoder locations ``mu = f(z)``.

    ``scale`` is a fixed positive number, ``"learned"`` (one global s) or
    ``"learned_per_pixel"`` (one s per element); learned scales start at ``init_scale``.
    A learned scale can shrink without bound on pixels that are constant in the data (e.g.
    MNIST's always-black border), so the log-likelihood is then unbounded too.
    """

    data_kind = "real"
    #: the distribution family, called as ``family(loc, scale)``
    family: ClassVar[type[dist.Normal] | type[dist.Laplace]]
    #: the scale parameter's name in :meth:`describe`
    scale_symbol: ClassVar[str] = "s"

    def __init__(
        self,
        *,
        data_dim: int,
        scale: PositiveFloat | Literal["learned", "learned_per_pixel"] = 1.0,
        init_scale: PositiveFloat = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(scale, float):
            self.register_buffer("log_scale", torch.tensor(scale).log())
        else:
            shape = (data_dim,) if scale == "learned_per_pixel" else ()
            self.log_scale = nn.Parameter(torch.full(shape, float(init_scale)).log())
        self.scale_mode = scale

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        loc = self.one_param(params)
        return self.family(loc, self.log_scale.exp().expand_as(loc)).to_event(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.one_param(params)

    def describe(self) -> str:
        s = self.scale_symbol
        family = self.family.__name__
        if self.scale_mode == "learned":
            return f"prod_d {family}(x_d | mu_d = f(z)_d, {s}), one learned {s}"
        if self.scale_mode == "learned_per_pixel":
            return f"prod_d {family}(x_d | mu_d = f(z)_d, {s}_d), a learned {s}_d per pixel"
        return f"prod_d {family}(x_d | mu_d = f(z)_d, {s}), fixed {s} = {self.scale_mode:g}"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale_mode!r}"


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(LocationScaleLikelihood):
    """Independent Gaussian pixels ``x_d ~ N(mu_d, sigma^2)`` with decoder means ``mu``."""

    family = dist.Normal
    scale_symbol = "sigma"


@LIKELIHOODS.register("laplace")
class LaplaceLikelihood(LocationScaleLikelihood):
    """Independent Laplace pixels ``x_d ~ Laplace(mu_d, b)``, density
    ``exp(-|x - mu| / b) / (2 b)``, with decoder locations (medians) ``mu``."""

    family = dist.Laplace
    scale_symbol = "b"


@LIKELIHOODS.register("beta")
class BetaLikelihood(Likelihood):
    """Independent Beta pixels ``x_d ~ Beta(a_d, b_d)`` for grey levels, with
    ``a, b = softplus(f(z)) + min_concentration`` (the decoder emits 2 numbers per pixel).

    A Beta density is 0 or infinite at exactly 0 and 1, where most MNIST pixels are, so the
    density is evaluated at ``clamp(x, eps, 1 - eps)``: data preparation that is part of the
    model (:meth:`prepare`). The default ``eps = 1/510`` is half a grey level of 8-bit images:
    it keeps every level distinct and in order, and moves 0 and 1 by less than the
    quantisation step. Log-likelihoods are those of the clamped data, so they depend on
    ``eps`` (the density near the edges can reach ~1/eps); compare runs only at equal ``eps``.
    """

    params_per_element = 2
    data_kind = "unit_interval"

    def __init__(
        self,
        *,
        data_dim: int,
        eps: Annotated[float, Range(gt=0, lt=0.5)] = 1 / 510,
        min_concentration: PositiveFloat = 1e-3,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.min_concentration = min_concentration

    def concentrations(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)``, each ``(*batch, D)``: the exponents of ``x`` and ``1 - x``."""
        a, b = F.softplus(params).unbind(-2)
        return a + self.min_concentration, b + self.min_concentration

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        a, b = self.concentrations(params)
        return dist.Beta(a, b).to_event(1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        a, b = self.concentrations(params)
        return a / (a + b)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.eps, 1.0 - self.eps)

    def describe(self) -> str:
        return (
            "prod_d Beta(x'_d | a_d, b_d), (a, b) = softplus(f(z)) + "
            f"{self.min_concentration:g}, on x' = clamp(x, {self.eps:.4g}, 1 - {self.eps:.4g})"
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps:.4g}"


@LIKELIHOODS.register("discretized_logistic")
class DiscretizedLogisticLikelihood(Likelihood):
    """A mixture of ``components`` discretized logistics per pixel and channel (PixelCNN++,
    Salimans et al. 2017; :class:`~pyrovae.distributions.DiscretizedLogisticMixture`): a
    probability mass on the 256 levels ``k/255`` of 8-bit images, so its log-likelihoods
    (and bits per dimension) compare with the literature's on CIFAR-10, SVHN...

    The decoder emits ``3 * components`` numbers per element, in blocks of ``components``:
    the mixture logits, the locations and the log scales (on the [-1, 1] scale of
    PixelCNN++, ``x' = 2x - 1``; log scales below ``min_log_scale`` are clamped). Each
    element (one channel of one pixel) has its own mixture; given z the elements are
    independent (PixelCNN++'s channel coefficients and autoregression are not used).
    """

    data_kind = "eight_bit"
    levels_per_element = LEVELS

    def __init__(
        self,
        *,
        data_dim: int,
        components: PositiveInt = 5,
        min_log_scale: float = -7.0,
    ) -> None:
        super().__init__()
        self.components = components
        self.min_log_scale = min_log_scale
        self.params_per_element = 3 * components

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        logits, locs, log_scales = params.split(self.components, dim=-2)
        return DiscretizedLogisticMixture(logits, locs, log_scales, self.min_log_scale)

    def describe(self) -> str:
        k = self.components
        return (
            f"prod_d sum_(k<={k}) pi_dk DiscretizedLogistic(x_d | mu_dk, s_dk), "
            "(logit pi, mu, log s) = f(z) on x' = 2x - 1, a mass on the 256 levels of 8-bit "
            "pixels"
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, components={self.components}"
