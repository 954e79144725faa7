"""A linear-Gaussian VAE (probabilistic PCA) built from the library's registries, whose
log p(x), posterior and ELBO are known in closed form.

Model: z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I_D), with W = Q diag(s) having orthogonal
columns. Then x ~ N(b, W W^T + sigma^2 I) and the posterior is

    p(z|x) = N(M^{-1} W^T (x - b), sigma^2 M^{-1}),   M = W^T W + sigma^2 I = diag(s^2 + sigma^2),

a *diagonal* Gaussian whose mean is linear in x, so the library's ``diag_normal`` guide with a
linear encoder (``mlp`` with ``hidden = []``) represents it exactly.

:func:`hard_linear_gaussian_vae` is the case that is hard for importance sampling: many data
dimensions, a non-orthogonal W (so the posterior ``N(M^{-1} W^T (x - b), sigma^2 M^{-1})``,
``M = W^T W + sigma^2 I``, has correlated coordinates no diagonal guide can match) and a guide
that is narrower than even the posterior's conditional spread.
"""

from __future__ import annotations

import math

import torch

from pyrovae import DECODERS, ENCODERS, GUIDES, LIKELIHOODS, PRIORS, VAE

DATA_DIM, LATENT_DIM, NOISE_SCALE = 12, 3, 0.5
SINGULAR_VALUES = (2.0, 1.5, 1.0)


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def _linear_vae(data_dim: int, latent_dim: int, noise_scale: float, dtype: torch.dtype) -> VAE:
    """A VAE of linear encoder and decoder (``mlp`` with ``hidden = []``), Gaussian likelihood
    of fixed scale, diagonal-Normal guide and standard-Normal prior, from the registries."""
    D, d = data_dim, latent_dim
    likelihood = LIKELIHOODS.build({"type": "gaussian", "scale": noise_scale},
                                   "model.likelihood", data_dim=D)
    guide = GUIDES.build({"type": "diag_normal"}, "model.guide", latent_dim=d)
    encoder = ENCODERS.build({"type": "mlp", "hidden": []}, "model.encoder",
                             in_features=D, out_features=guide.num_params)
    decoder = DECODERS.build({"type": "mlp", "hidden": []}, "model.decoder",
                             in_features=d, out_features=D)
    prior = PRIORS.build({"type": "standard_normal"}, "model.prior", latent_dim=d)
    return VAE(prior, likelihood, encoder, decoder, guide, data_dim=D).to(dtype)


def _set_parameters(vae: VAE, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor,
                    guide_shift: torch.Tensor | float, guide_std: torch.Tensor) -> None:
    """Decoder ``x = W z + b``; guide ``q(z|x) = N(A (x - b) + guide_shift, guide_std^2)``."""
    d = vae.latent_dim
    with torch.no_grad():
        vae.decoder.net[0].weight.copy_(W)
        vae.decoder.net[0].bias.copy_(b)
        enc = vae.encoder.net[0]
        enc.weight.zero_()
        enc.weight[:d] = A
        enc.bias[:d] = -A @ b + guide_shift
        enc.bias[d:] = _inverse_softplus(guide_std - vae.guide_family.min_scale)


def _noise_variance(vae: VAE) -> float:
    return vae.likelihood.log_scale.exp().item() ** 2


def linear_gaussian_vae(
    mean_shift: float = 0.0, scale_factor: float = 1.0, dtype: torch.dtype = torch.float64
) -> VAE:
    """The probabilistic-PCA VAE with guide mean ``posterior mean + mean_shift * posterior
    std`` and guide std ``scale_factor * posterior std`` (0 and 1: the exact posterior)."""
    gen = torch.Generator().manual_seed(0)
    D, d = DATA_DIM, LATENT_DIM
    vae = _linear_vae(D, d, NOISE_SCALE, dtype)
    q, _ = torch.linalg.qr(torch.randn(D, d, generator=gen, dtype=dtype))
    s = torch.tensor(SINGULAR_VALUES, dtype=dtype)
    W, b = q * s, torch.randn(D, generator=gen, dtype=dtype)
    var = _noise_variance(vae)
    post_std = torch.sqrt(var / (s**2 + var))
    A = W.T / (s**2 + var)[:, None]  # M^{-1} W^T, (d, D)
    _set_parameters(vae, W, b, A, mean_shift * post_std, scale_factor * post_std)
    return vae


def hard_linear_gaussian_vae(
    data_dim: int = 64,
    latent_dim: int = 6,
    noise_scale: float = 0.3,
    scale_factor: float = 0.5,
    dtype: torch.dtype = torch.float64,
) -> VAE:
    """A linear-Gaussian VAE that is hard for importance sampling from its guide.

    ``W`` (``(data_dim, latent_dim)``) has i.i.d. N(0, 1) entries plus a shared column
    component (columns correlated, so ``W^T W`` is far from diagonal); the guide's mean is the
    exact posterior mean and its standard deviations are ``scale_factor`` times the
    posterior's *conditional* ones, ``sigma / sqrt(diag M)``, which are themselves narrower
    than its marginal ones: the importance weights are heavy-tailed."""
    gen = torch.Generator().manual_seed(0)
    D, d = data_dim, latent_dim
    vae = _linear_vae(D, d, noise_scale, dtype)
    W = torch.randn(D, d, generator=gen, dtype=dtype)
    W = (W + torch.randn(D, 1, generator=gen, dtype=dtype)) / math.sqrt(D / 4)
    b = torch.randn(D, generator=gen, dtype=dtype)
    var = _noise_variance(vae)
    M = W.T @ W + var * torch.eye(d, dtype=dtype)
    A = torch.linalg.solve(M, W.T)  # posterior mean = A (x - b), (d, D)
    conditional_std = torch.sqrt(var / torch.diagonal(M))
    _set_parameters(vae, W, b, A, 0.0, scale_factor * conditional_std)
    return vae


def parameters(vae: VAE) -> tuple[torch.Tensor, torch.Tensor, float]:
    """W ``(D, d)``, b ``(D,)`` and the noise scale sigma, as the VAE holds them (sigma is
    stored as a float32 log, so it differs from NOISE_SCALE by ~1e-8 relative)."""
    lin = vae.decoder.net[0]
    return lin.weight.detach(), lin.bias.detach(), vae.likelihood.log_scale.exp().item()


def sample_data(vae: VAE, num: int, seed: int = 1) -> torch.Tensor:
    """``num`` draws x ~ p(x), ``(num, D)``."""
    W, b, sigma = parameters(vae)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num, W.shape[1], generator=gen, dtype=W.dtype)
    return z @ W.T + b + sigma * torch.randn(num, W.shape[0], generator=gen, dtype=W.dtype)


def exact_log_marginal(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log N(x; b, W W^T + sigma^2 I), ``(N,)`` in nats."""
    W, b, sigma = parameters(vae)
    cov = W @ W.T + sigma**2 * torch.eye(W.shape[0], dtype=W.dtype)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def exact_expectations(vae: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Closed-form E_q[log p(x|z)], E_q[log p(z)], E_q[log q(z|x)] and KL(q || p(z)) under the
    VAE's diagonal guide, each ``(N,)`` in nats."""
    W, b, sigma = parameters(vae)
    with torch.no_grad():
        loc, std = vae.guide_family.loc_scale(vae.encoder(x))
    var, D, d = std**2, W.shape[0], W.shape[1]
    sigma2 = sigma**2
    resid = x - loc @ W.T - b
    log_lik = (-0.5 * D * math.log(2 * math.pi * sigma2)
               - (resid.square().sum(-1) + var @ W.square().sum(0)) / (2 * sigma2))
    log_prior = -0.5 * d * math.log(2 * math.pi) - 0.5 * (loc.square() + var).sum(-1)
    log_q = -0.5 * (torch.log(2 * math.pi * var) + 1).sum(-1)
    return {"log_lik": log_lik, "log_prior": log_prior, "log_q": log_q,
            "kl": log_q - log_prior}


def exact_elbo(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """E_q[log p(x|z)] - KL(q(z|x) || p(z)), ``(N,)`` in nats."""
    e = exact_expectations(vae, x)
    return e["log_lik"] - e["kl"]
