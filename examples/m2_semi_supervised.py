"""The semi-supervised VAE "M2" of Kingma, Rezende, Mohamed and Welling, "Semi-supervised
learning with deep generative models" (NeurIPS 2014), as your own Pyro programs trained and
scored by pyrovae.

Model p(y) p(z) p(x | y, z): a uniform class y, a standard-Normal z, a Bernoulli decoder of
(y, z). Guide q(y | x) q(z | x, y): a classifier and an encoder of (x, y). The class is
observed where an image is labelled (``obs_mask``) and summed out exactly otherwise: the guide
marks it for parallel enumeration and the objective is ``trace_enum_elbo`` (Pyro's
TraceEnum_ELBO). The classifier also gets the paper's extra term alpha * log q(y | x) on the
labelled images (eq. 9; alpha = 0.1 N for N training images, spread over the epoch's copies of
the labelled images, which are repeated so that about a tenth of every batch is labelled).

Reports the test classification accuracy of q(y | x) and the importance-sampled test
log-likelihood log p(x), with y summed out exactly and z drawn K times per class.

    python examples/m2_semi_supervised.py --labels 100
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn
from torch.nn import functional as F

import pyrovae
from pyrovae.data import data_shape
from pyrovae.rng import fixed_rng
from pyrovae.training.run import select_device
from pyrovae.viz.plots import plot_class_rows, save_figure

from _common import example_parser, run_config


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.Softplus()]
    return nn.Sequential(*layers[:-1])


class M2(nn.Module):
    """Kingma et al. (2014) M2 over ``(N, data_dim)`` binary images; labels ``y`` are classes
    ``0..num_classes - 1`` where known and ``-1`` where not (``None``: none known)."""

    def __init__(self, data_dim: int, image_shape: tuple[int, ...], num_classes: int = 10,
                 latent_dim: int = 32, hidden: int = 256, alpha: float = 0.0) -> None:
        super().__init__()
        self.data_dim, self.image_shape = data_dim, image_shape
        self.num_classes, self.latent_dim, self.alpha = num_classes, latent_dim, alpha
        self.classifier = mlp([data_dim, hidden, num_classes])  # q(y | x)
        self.encoder = mlp([data_dim + num_classes, hidden, 2 * latent_dim])  # q(z | x, y)
        self.decoder = mlp([latent_dim + num_classes, hidden, data_dim])  # p(x | y, z)

    def _with_class(self, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[a, one_hot(y)]`` broadcast together: ``a`` ``(*batch, k)``, ``y`` the classes
        (with the enumerated values' dimension on the left while y is summed out)."""
        batch = torch.broadcast_shapes(a.shape[:-1], y.shape)
        one_hot = F.one_hot(y, self.num_classes).to(a.dtype)
        return torch.cat([a.expand(*batch, a.shape[-1]),
                          one_hot.expand(*batch, self.num_classes)], -1)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        n, C = x.shape[0], self.num_classes
        with pyro.plate("data", n):
            prior_y = dist.Categorical(logits=x.new_zeros(n, C))
            if y is None:
                y_all = pyro.sample("y", prior_y)
            else:  # y observed where labelled, "y_unobserved" (enumerated by the guide) elsewhere
                labelled = y >= 0
                y_all = pyro.sample("y", prior_y, obs=y.clamp(min=0), obs_mask=labelled)
                if self.alpha:  # the classification term alpha * log q(y | x) (eq. 9)
                    log_q = dist.Categorical(logits=self.classifier(x)).log_prob(y.clamp(min=0))
                    pyro.factor("classifier", self.alpha * log_q * labelled)
            z = pyro.sample("z", dist.Normal(x.new_zeros(n, self.latent_dim), 1.0).to_event(1))
            logits = self.decoder(self._with_class(z, y_all))
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        enumerate = {"enumerate": "parallel"}
        with pyro.plate("data", x.shape[0]):
            q_y = dist.Categorical(logits=self.classifier(x))
            if y is None:
                y_all = pyro.sample("y", q_y, infer=enumerate)
            else:
                labelled = y >= 0
                with poutine.mask(mask=~labelled):
                    hidden = pyro.sample("y_unobserved", q_y, infer=enumerate)
                y_all = torch.where(labelled, y.clamp(min=0), hidden)
            loc, raw_scale = self.encoder(self._with_class(x, y_all)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + 1e-4).to_event(1))

    # optional members (pyrovae.models.program.OPTIONAL): pictures of the classes
    @torch.no_grad()
    def sample(self, num: int, y: int | torch.Tensor | None = None) -> torch.Tensor:
        """E[x | y, z] for z ~ p(z) and y uniform (or the class ``y``): ``(num, data_dim)``."""
        weight = self.decoder[0].weight
        if y is None:
            y = torch.randint(self.num_classes, (num,), device=weight.device)
        elif isinstance(y, int):
            y = torch.full((num,), y, dtype=torch.long, device=weight.device)
        z = torch.randn(num, self.latent_dim, dtype=weight.dtype, device=weight.device)
        return torch.sigmoid(self.decoder(self._with_class(z, y)))

    def describe(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return "\n".join([
            f"M2 (Kingma et al. 2014): {params:,} parameters; y in {self.num_classes} classes, "
            f"z in R^{self.latent_dim}, alpha = {self.alpha:g}",
            "  p(x, y, z) = p(x | y, z) p(y) p(z), p(y) uniform, p(z) = N(0, I)",
            "  q(y, z | x) = q(y | x) q(z | x, y); y observed where labelled, else enumerated",
        ])


def build(config: dict[str, Any]) -> M2:
    """``model.program = "m2_semi_supervised:build"``: an M2 for the config's data and
    ``model.latent_dim`` (alpha 0: no labels in the config alone)."""
    shape = data_shape(config["data"])
    return M2(shape.data_dim, shape.image_shape, shape.num_classes,
              latent_dim=config["model"]["latent_dim"])


def semi_supervised(data: pyrovae.ImageData, num_labels: int, seed: int) -> tuple[
        pyrovae.ImageData, int]:
    """The training set with ``num_labels`` labels kept (as many per class) and the rest set
    to -1, the labelled images repeated so that about a tenth of each epoch is labelled, and
    the test labels hidden (the per-epoch test ELBO is then that of p(x)); returns it and the
    number of copies of each labelled image."""
    gen = torch.Generator().manual_seed(seed)
    labels = data.train_labels.cpu()
    per_class = num_labels // data.num_classes
    keep = torch.cat([
        (labels == c).nonzero().flatten()[torch.randperm(int((labels == c).sum()),
                                                        generator=gen)[:per_class]]
        for c in range(data.num_classes)
    ])
    hidden = torch.ones(len(labels), dtype=torch.bool)
    hidden[keep] = False
    copies = max(1, math.ceil(0.1 * int(hidden.sum()) / len(keep)))
    images = torch.cat([data.train_images[hidden.to(data.train_images.device)],
                        data.train_images[keep.to(data.train_images.device)].repeat(copies, 1)])
    y = torch.cat([torch.full((int(hidden.sum()),), -1), labels[keep].repeat(copies)])
    return dataclasses.replace(
        data, train_images=images, train_labels=y.to(data.train_labels.device),
        test_labels=torch.full_like(data.test_labels, -1)), copies


def main() -> None:
    p = example_parser(__doc__, "m2_semi_supervised", epochs=3, train_limit=10_000,
                       test_limit=1_000, latent_dim=32)
    p.add_argument("--labels", type=int, default=100,
                   help="labelled training images, as many per class (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=256, help="hidden units (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="weight of the classification term per training image, the paper's "
                   "0.1 (alpha = 0.1 N) (default: %(default)s)")
    p.add_argument("--num-samples", type=int, default=100,
                   help="K, importance samples of z per class and test image (default: "
                   "%(default)s)")
    args = p.parse_args()
    config = pyrovae.resolve_config({
        **run_config(args), "objective": {"type": "trace_enum_elbo"},
    })
    config["train"]["batch_size"] = 100
    device = select_device(config["train"]["device"])
    data = pyrovae.load_data(config["data"], device=device)
    test_labels = data.test_labels
    train, copies = semi_supervised(data, args.labels, args.seed)
    pyro.set_rng_seed(args.seed)
    shape = data_shape(config["data"])
    alpha = args.alpha * data.train_images.shape[0] / copies  # eq. 9, per copy
    num_classes, image_shape = shape.num_classes, shape.image_shape
    m2 = M2(shape.data_dim, image_shape, num_classes, latent_dim=args.latent_dim,
            hidden=args.hidden, alpha=alpha).to(device)
    print(m2.describe())
    print(f"{args.labels} labelled of {data.train_images.shape[0]} training images (each "
          f"repeated {copies}x per epoch, alpha = {alpha:.1f} per copy)")
    trainer = pyrovae.Trainer(m2, train, config, device, progress=not args.quiet)
    with warnings.catch_warnings():  # TraceEnum_ELBO runs eagerly: known, and said here
        warnings.filterwarnings("ignore", "training steps on batches", RuntimeWarning)
        trainer.fit()
    m2.eval()
    with torch.no_grad():
        predicted = m2.classifier(data.test_images).argmax(-1)
    accuracy = (predicted == test_labels).float().mean().item()
    print(f"test classification accuracy of q(y|x): {100 * accuracy:.2f}% "
          f"({data.test_images.shape[0]} test images, {args.labels} labels)")
    with warnings.catch_warnings():  # the PSIS summary is printed below
        warnings.simplefilter("ignore", pyrovae.UnreliableEstimateWarning)
        result = pyrovae.evaluate(m2, data.test_images, num_samples=args.num_samples,
                                  progress=not args.quiet)
    print(f"test ELBO: {result.elbo:.2f} ± {result.elbo_se:.2f} nats/example")
    print(f"IS log-likelihood (K = {args.num_samples} per class, y summed out): "
          f"{result.log_likelihood:.2f} ± {result.log_likelihood_se:.2f} nats/example")
    if result.pareto_k_max is not None:
        print(f"PSIS Pareto k: max {result.pareto_k_max:.2f}, above 0.7 (unreliable) for "
              f"{result.num_pareto_k_above_0_7} of {result.num_examples} test images")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with fixed_rng(0, device):
        classes = m2.sample(10 * shape.num_classes,
                            torch.arange(shape.num_classes, device=device).repeat_interleave(10))
    figure = plot_class_rows(classes.reshape(shape.num_classes, 10, -1), shape.image_shape,
                             title="samples E[x|y,z], z ~ p(z), one row per class y")
    path = save_figure(figure, out / "classes.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
