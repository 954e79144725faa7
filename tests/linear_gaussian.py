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


# ---------------------------------------------------------------------- two stochastic layers
#: the two-layer linear-Gaussian hierarchy: x in R^8, z1 in R^4, z2 in R^2
HIER_DATA_DIM, HIER_DIMS = 8, (4, 2)
#: std of z1 | z2, of x | z1, and the gains alpha (z2 -> z1) and beta (z1 -> x)
HIER_Z1_STD, HIER_X_STD = 0.7, 0.5
HIER_ALPHA, HIER_BETA = (1.5, 1.0), (2.0, 1.5, 1.0, 0.8)


def _layer_params(net: torch.nn.Module, loc_weight: torch.Tensor, loc_bias: torch.Tensor,
                  std: torch.Tensor, min_scale: float) -> None:
    """A linear map ``h -> (W h + c, raw)`` with ``softplus(raw) + min_scale = std`` whatever
    ``h`` is: the parameters of a diagonal Gaussian of mean ``W h + c`` and fixed ``std``."""
    n = loc_weight.shape[0]
    lin = net.net[0]
    lin.weight.zero_()
    lin.weight[:n] = loc_weight
    lin.bias[:n] = loc_bias
    lin.bias[n:] = _inverse_softplus(std - min_scale)


def linear_gaussian_hierarchy(mean_shift: float = 0.0, scale_factor: float = 1.0,
                              dtype: torch.dtype = torch.float64):
    """A two-layer :class:`~pyrovae.models.hierarchical_vae.HierarchicalVAE` of linear networks
    (``mlp`` with ``hidden = []``) whose log p(x) and posterior are known in closed form::

        z2 ~ N(0, I_2),  z1 | z2 ~ N(A z2 + a, s1^2 I_4),  x | z1 ~ N(B z1 + b, sx^2 I_8)

    ``A`` puts gain alpha_j of z2_j on coordinate 2j of z1 and ``B = R diag(beta)`` has
    orthonormal columns ``R``, so z1 ~ N(a, C1) with C1 diagonal, and both factors of the
    posterior p(z1, z2 | x) = p(z1 | x) p(z2 | z1) are diagonal Gaussians with means linear in
    x and in z1: the library's guide q(z1 | x) q(z2 | z1) with linear encoders holds it
    exactly. The guide is that posterior with each mean moved by ``mean_shift`` of its std and
    each std multiplied by ``scale_factor`` (0 and 1: exact)."""
    from pyrovae.models.hierarchical_vae import HierarchicalVAE

    gen = torch.Generator().manual_seed(0)
    D, (d1, d2) = HIER_DATA_DIM, HIER_DIMS
    likelihood = LIKELIHOODS.build({"type": "gaussian", "scale": HIER_X_STD},
                                   "model.likelihood", data_dim=D)
    guides = [GUIDES.build({"type": "diag_normal"}, "model.guide", latent_dim=d)
              for d in (d1, d2)]
    linear = {"type": "mlp", "hidden": []}
    encoders = [ENCODERS.build(linear, "model.encoder", in_features=n_in, out_features=2 * d)
                for n_in, d in ((D, d1), (d1, d2))]
    decoders = [DECODERS.build(linear, "model.decoder", in_features=d1, out_features=D),
                DECODERS.build(linear, "model.decoder", in_features=d2, out_features=2 * d1)]
    prior = PRIORS.build({"type": "standard_normal"}, "model.prior", latent_dim=d2)
    vae = HierarchicalVAE(prior, likelihood, encoders, guides, decoders, data_dim=D).to(dtype)

    A = torch.zeros(d1, d2, dtype=dtype)
    for j, alpha in enumerate(HIER_ALPHA):
        A[2 * j, j] = alpha
    a = torch.randn(d1, generator=gen, dtype=dtype)
    R, _ = torch.linalg.qr(torch.randn(D, d1, generator=gen, dtype=dtype))
    B, b = R * torch.tensor(HIER_BETA, dtype=dtype), torch.randn(D, generator=gen, dtype=dtype)
    s1 = torch.full((d1,), HIER_Z1_STD, dtype=dtype)
    sx2 = vae.likelihood.log_scale.exp().item() ** 2  # as stored (float32 log)
    # p(z2 | z1) = N(S2 A^T (z1 - a) / s1^2, S2),  S2 = (I + A^T A / s1^2)^-1 (diagonal)
    S2 = 1 / (1 + (A**2).sum(0) / HIER_Z1_STD**2)
    W2 = S2[:, None] * A.T / HIER_Z1_STD**2
    # p(z1 | x) = N(S1 (C1^-1 a + B^T (x - b) / sx^2), S1),  S1 = (C1^-1 + B^T B / sx^2)^-1
    C1 = (A**2).sum(1) + HIER_Z1_STD**2
    S1 = 1 / (1 / C1 + (B**2).sum(0) / sx2)
    W1 = S1[:, None] * B.T / sx2
    std1, std2 = S1.sqrt(), S2.sqrt()
    min_scale = guides[0].min_scale
    with torch.no_grad():
        _layer_params(decoders[1], A, a, s1, vae.conditionals[0].min_scale)
        decoders[0].net[0].weight.copy_(B)
        decoders[0].net[0].bias.copy_(b)
        _layer_params(encoders[0], W1, S1 * a / C1 - W1 @ b + mean_shift * std1,
                      scale_factor * std1, min_scale)
        _layer_params(encoders[1], W2, -W2 @ a + mean_shift * std2, scale_factor * std2,
                      min_scale)
    vae.true_parameters = {"A": A, "a": a, "B": B, "b": b, "C1": C1, "sx2": sx2}
    return vae


def hierarchy_data(vae, num: int, seed: int = 1) -> torch.Tensor:
    """``num`` draws x ~ p(x) of :func:`linear_gaussian_hierarchy`, ``(num, 8)``."""
    t = vae.true_parameters
    gen = torch.Generator().manual_seed(seed)
    dtype = t["A"].dtype
    z2 = torch.randn(num, HIER_DIMS[1], generator=gen, dtype=dtype)
    z1 = z2 @ t["A"].T + t["a"] + HIER_Z1_STD * torch.randn(num, HIER_DIMS[0], generator=gen,
                                                              dtype=dtype)
    noise = math.sqrt(t["sx2"]) * torch.randn(num, HIER_DATA_DIM, generator=gen, dtype=dtype)
    return z1 @ t["B"].T + t["b"] + noise


def hierarchy_log_marginal(vae, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log N(x; B a + b, B C1 B^T + sx^2 I), ``(N,)`` in nats."""
    t = vae.true_parameters
    B = t["B"]
    cov = B @ torch.diag(t["C1"]) @ B.T + t["sx2"] * torch.eye(B.shape[0], dtype=B.dtype)
    mean = B @ t["a"] + t["b"]
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


#: the linear-Gaussian models by name: (builder taking mean_shift and scale_factor, data
#: sampler, closed-form log p(x)), for the tests that hold for both
LINEAR_GAUSSIAN_MODELS = {
    "one_layer": (linear_gaussian_vae, sample_data, exact_log_marginal),
    "two_layers": (linear_gaussian_hierarchy, hierarchy_data, hierarchy_log_marginal),
}
