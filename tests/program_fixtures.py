"""User programs for the tests of pyrovae.models.program: modules with Pyro ``model`` and
``guide`` written as a user would, whose answers are known.

* :class:`Wrapped`: pyrovae's VAE behind a plain module exposing only ``model`` and
  ``guide`` (every optional member falls back): the same program as the built-in path;
  :func:`wrapped_vae` is its ``model.program`` factory.
* :class:`GaussianChain`: z1 ~ N(0, I), z2 | z1 ~ N(A z1 + a, s^2 I), x | z2 ~ N(B z2 + b,
  sigma^2 I), two continuous latent sites; x is Gaussian, so log p(x) and the exact posterior
  p(z1, z2 | x) are known, and the guide q(z1|x) q(z2|z1, x) is that posterior with its
  Cholesky factors widened by ``widen`` (1: exact).
* :class:`GaussianMixture`: c ~ Categorical(pi), z | c ~ N(mu_c, I), x | z ~ N(W z, sigma^2 I),
  a discrete site enumerated by the guide q(c|x) (any probabilities) followed by the exact
  p(z | c, x): log p(x) = log sum_c p(x, c) is known.
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyrovae import VAE


class Wrapped(nn.Module):
    """The built-in VAE's programs, from a module that has nothing else."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return self.vae.model(x, y)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        return self.vae.guide(x, y)


def wrapped_vae(config: dict[str, Any]) -> Wrapped:
    """``model.program = "program_fixtures:wrapped_vae"``."""
    return Wrapped(VAE.from_resolved_config(config))


def not_a_program(config: dict[str, Any]) -> nn.Module:
    return nn.Linear(2, 2)


def _gaussian_condition(mean: torch.Tensor, cov: torch.Tensor, obs: slice, hidden: slice):
    """``(K, m0, C)``: p(w_hidden | w_obs) = N(m0 + K w_obs, C) for w ~ N(mean, cov)."""
    s_hh, s_ho, s_oo = cov[hidden, hidden], cov[hidden, obs], cov[obs, obs]
    gain = torch.linalg.solve(s_oo, s_ho.T).T
    return gain, mean[hidden] - gain @ mean[obs], s_hh - gain @ s_ho.T


class GaussianChain(nn.Module):
    D1, D2, D = 2, 3, 5

    def __init__(self, widen: float = 1.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        d1, d2, D = self.D1, self.D2, self.D

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen, dtype=torch.float64)

        A, a, B, b = rand(d2, d1), rand(d2), rand(D, d2), rand(D)
        s, sigma = 0.7, 0.5
        # the joint of w = (z1, z2, x)
        cov_z2 = A @ A.T + s**2 * torch.eye(d2, dtype=torch.float64)
        n = d1 + d2 + D
        cov = torch.zeros(n, n, dtype=torch.float64)
        z1, z2, x = slice(0, d1), slice(d1, d1 + d2), slice(d1 + d2, n)
        cov[z1, z1] = torch.eye(d1, dtype=torch.float64)
        cov[z2, z2], cov[z2, z1] = cov_z2, A
        cov[x, x] = B @ cov_z2 @ B.T + sigma**2 * torch.eye(D, dtype=torch.float64)
        cov[x, z2], cov[x, z1] = B @ cov_z2, B @ A
        cov = torch.tril(cov) + torch.tril(cov, -1).T
        mean = torch.cat([torch.zeros(d1, dtype=torch.float64), a, B @ a + b])
        for name, value in dict(A=A, a=a, B=B, b=b, mean_x=mean[x], cov_x=cov[x, x]).items():
            self.register_buffer(name, value)
        self.s, self.sigma = s, sigma
        # q(z1 | x) = p(z1 | x); q(z2 | z1, x) = p(z2 | z1, x), Cholesky factors widened
        k1, m1, c1 = _gaussian_condition(mean, cov, x, z1)
        order = [*range(d1), *range(d1 + d2, n), *range(d1, d1 + d2)]  # w = (z1, x, z2)
        k2, m2, c2 = _gaussian_condition(mean[order], cov[order][:, order],
                                         slice(0, d1 + D), slice(d1 + D, n))
        for name, value in dict(k1=k1, m1=m1, l1=widen * torch.linalg.cholesky(c1), k2=k2,
                                m2=m2, l2=widen * torch.linalg.cholesky(c2)).items():
            self.register_buffer(name, value)
        #: a learnable shift of q(z1 | x)'s mean, 0 (so the guide stays as constructed)
        self.shift = nn.Parameter(torch.zeros(d1, dtype=torch.float64))
        self.data_dim = D
        self.image_shape = (1, 1, D)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        d1 = self.D1
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros_like(x[..., :d1]), 1.0).to_event(1))
            z2 = pyro.sample("z2", dist.Normal(z1 @ self.A.T + self.a, self.s).to_event(1))
            pyro.sample("x", dist.Normal(z2 @ self.B.T + self.b, self.sigma).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.MultivariateNormal(x @ self.k1.T + self.m1 + self.shift,
                                                           scale_tril=self.l1))
            context = torch.cat([z1, x.expand(*z1.shape[:-1], x.shape[-1])], -1)
            pyro.sample("z2", dist.MultivariateNormal(context @ self.k2.T + self.m2,
                                                      scale_tril=self.l2))

    def exact_log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        return dist.MultivariateNormal(self.mean_x, covariance_matrix=self.cov_x).log_prob(x)

    def sample_data(self, num: int, seed: int = 1) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(num, self.D, generator=gen, dtype=torch.float64)
        return self.mean_x + noise @ torch.linalg.cholesky(self.cov_x).T


class GaussianMixture(nn.Module):
    C, Z, D = 3, 2, 4

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(4)
        C, Z, D = self.C, self.Z, self.D
        self.register_buffer("logits", torch.tensor([0.2, -0.5, 0.3], dtype=torch.float64))
        self.register_buffer("mu", 2 * torch.randn(C, Z, generator=gen, dtype=torch.float64))
        self.register_buffer("W", torch.randn(D, Z, generator=gen, dtype=torch.float64))
        self.sigma = 0.6
        # the guide's q(c|x): a linear classifier with arbitrary weights (not the posterior)
        self.classifier = nn.Linear(D, C).double()
        # p(z | c, x) = N(mu_c + K (x - W mu_c), P), K = W^T S^-1, S = W W^T + sigma^2 I
        S = self.W @ self.W.T + self.sigma**2 * torch.eye(D, dtype=torch.float64)
        gain = torch.linalg.solve(S, self.W).T
        self.register_buffer("gain", gain)
        self.register_buffer("post_tril", torch.linalg.cholesky(
            torch.eye(Z, dtype=torch.float64) - gain @ self.W))
        self.register_buffer("cov_x", S)
        self.data_dim = D

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits.expand(x.shape[0], -1)))
            z = pyro.sample("z", dist.Normal(self.mu[c], 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T, self.sigma).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.classifier(x)),
                            infer={"enumerate": "parallel"})
            mu = self.mu[c]
            loc = mu + (x - mu @ self.W.T) @ self.gain.T
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=self.post_tril))

    def log_joint_c(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` log p(x, c) = log pi_c + log N(x; W mu_c, S)."""
        log_pi = self.logits.log_softmax(-1)
        comp = dist.MultivariateNormal(self.mu @ self.W.T, covariance_matrix=self.cov_x)
        return log_pi + comp.log_prob(x[:, None, :])

    def sample_data(self, num: int, seed: int = 1) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        c = torch.multinomial(self.logits.softmax(-1), num, replacement=True, generator=gen)
        z = self.mu[c] + torch.randn(num, self.Z, generator=gen, dtype=torch.float64)
        return z @ self.W.T + self.sigma * torch.randn(num, self.D, generator=gen,
                                                       dtype=torch.float64)


#: the relative variance E_q[(p/q)^2] - 1 of importance weights from N(0, w^2 I_n) for a target
#: N(0, I_n): (w^2 / sqrt(2 w^2 - 1))^n - 1 (a Gaussian integral; finite for w^2 > 1/2)
def relative_weight_variance(widen: float, dims: int) -> float:
    return (widen**2 / math.sqrt(2 * widen**2 - 1)) ** dims - 1
