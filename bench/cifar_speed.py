"""CIFAR-10-shaped training speed: pyrovae's Trainer against a hand-written PyTorch loop.

Both train the same VAE on 3x32x32 8-bit colour images: conv encoder and decoder
(``channels``, default [32, 64]: 3x32x32 -> 32x16x16 -> 64x8x8), diagonal-Normal guide,
standard-Normal prior and the ``discretized_logistic`` likelihood (a mixture of
``--components`` discretized logistics per pixel and channel, PixelCNN++), from the same
initial weights, on the same batches, with the same fused torch Adam:

(a) ``hand``: the network and the estimator (single-sample ELBO; ELBO with the closed-form
    KL) written directly in PyTorch, the discretized logistic's log-mass included;
(b) ``pyrovae``: :meth:`pyrovae.Trainer.train_step` with ``trace_elbo`` and ``analytic_kl``,
    replaying the recorded loss-and-gradient graph (the default) and running the Pyro
    programs at every step (``replay off``).

The images are random smooth colour images quantised to 8-bit levels (the shape and the
value set of CIFAR-10, not its content: speed does not depend on it). Step times are timed
as in ``bench/train_speed.py`` (whose timing code this script uses): contenders alternate
within each repeat, the median over ``--repeats`` is reported, and ratios are to the
hand-written loop with the same estimator, measured in the same run.

    python bench/cifar_speed.py                      # 2-core CPU: a few minutes
    python bench/cifar_speed.py --device cuda --batch-size 128
    python bench/cifar_speed.py --threads 1 --steps 3 --repeats 2 --channels 8 16   # quick
"""

from __future__ import annotations

import argparse
from typing import Any

import pyro
import torch
from torch import nn
from torch.nn import functional as F

import pyrovae
from pyrovae.data import ImageData

from measure import start_run
from train_speed import (
    Contender,
    HandEstimators,
    adam,
    report,
    time_steps,
    timing_arguments,
)

SHAPE = (3, 32, 32)
DATA_DIM = 3 * 32 * 32
#: (objective, the hand-written estimator that matches it)
OBJECTIVES = (("trace_elbo", "mc_elbo"), ("analytic_kl", "analytic_kl"))
#: half the width of an 8-bit level on PixelCNN++'s [-1, 1] scale
HALF_BIN = 1 / 255


def bench_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run config (the trainer's settings; the model is built by :func:`build_vae`)."""
    return pyrovae.resolve_config({
        "data": {"binarize": "none"},
        "model": {"latent_dim": args.latent_dim,
                  "likelihood": {"type": "discretized_logistic", "components": args.components}},
        "train": {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                  "device": args.device},
    })


def build_vae(args: argparse.Namespace) -> pyrovae.VAE:
    """The benchmarked VAE, from the registered components, for 3x32x32 images."""
    likelihood = pyrovae.LIKELIHOODS.build(
        {"type": "discretized_logistic", "components": args.components}, "model.likelihood",
        data_dim=DATA_DIM)
    guide = pyrovae.GUIDES.build("diag_normal", "model.guide", latent_dim=args.latent_dim)
    nets = {"type": "conv", "channels": list(args.channels)}
    encoder = pyrovae.ENCODERS.build(nets, "model.encoder", in_features=DATA_DIM,
                                     out_features=guide.num_params, image_shape=SHAPE)
    decoder = pyrovae.DECODERS.build(nets, "model.decoder", in_features=args.latent_dim,
                                     out_features=likelihood.params_per_element * DATA_DIM,
                                     image_shape=SHAPE)
    prior = pyrovae.PRIORS.build("standard_normal", "model.prior", latent_dim=args.latent_dim,
                                 data_dim=DATA_DIM, num_classes=None)
    return pyrovae.VAE(prior, likelihood, encoder, decoder, guide, DATA_DIM, SHAPE)


def synthetic_data(n: int, device: torch.device, seed: int) -> ImageData:
    """``n`` smooth random colour images quantised to levels k/255 (train and test alike)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=gen)
    images = F.interpolate(low, size=SHAPE[1:], mode="bilinear", align_corners=False)
    images = (images * 255).round() / 255
    flat = images.reshape(n, DATA_DIM).to(device)
    labels = torch.zeros(n, dtype=torch.long, device=device)
    return ImageData("cifar10-shaped", "none", flat, labels, flat[:64], labels[:64], SHAPE, 10)


# ---------------------------------------------------------------------- (a) hand-written
class HandConvVAE(HandEstimators, nn.Module):
    """The benchmarked VAE in plain PyTorch around the layers of ``vae`` (a copy of its
    own, so the same weights): the convolutions and linear maps of pyrovae's
    ``ConvEncoder``/``ConvDecoder``, with the forward passes, the guide, the prior and the
    likelihood written out by hand."""

    def __init__(self, vae: pyrovae.VAE) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.conv, self.encoder.linear = vae.encoder.conv, vae.encoder.linear
        self.decoder = nn.Module()
        self.decoder.linear, self.decoder.deconv = vae.decoder.linear, vae.decoder.deconv
        self.smallest = vae.decoder.shapes[0]
        self.latent_dim, self.min_scale = vae.latent_dim, vae.guide_family.min_scale
        self.components = vae.likelihood.components
        self.min_log_scale = vae.likelihood.min_log_scale

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder.conv(x.reshape(-1, *SHAPE)).flatten(1)
        loc, raw = self.encoder.linear(features).split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw) + self.min_scale

    def log_px(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The discretized logistic mixture's log-mass of x (PixelCNN++; the CDF difference
        in log space), summed over the 3072 elements: ``(N,)``."""
        k = self.components
        out = self.decoder.deconv(self.decoder.linear(z).reshape(-1, *self.smallest))
        logits, locs, log_scales = out.reshape(z.shape[0], 3 * k, DATA_DIM).split(k, dim=1)
        inv_scale = torch.exp(-log_scales.clamp(min=self.min_log_scale))
        centered = (2 * x - 1).unsqueeze(1) - locs
        log_cdf = F.logsigmoid(inv_scale * (centered + HALF_BIN))
        log_sf = F.logsigmoid(-inv_scale * (centered - HALF_BIN))
        inside = log_cdf + log_sf + torch.log(-torch.expm1(-2 * HALF_BIN * inv_scale))
        x = x.unsqueeze(1)
        log_p = torch.where(x < 0.5 / 255, log_cdf, torch.where(x > 254.5 / 255, log_sf, inside))
        return torch.logsumexp(log_p + torch.log_softmax(logits, dim=1), dim=1).sum(-1)


def hand_contender(estimator: str, vae: pyrovae.VAE, lr: float) -> Contender:
    hand = HandConvVAE(vae)
    opt = adam(hand.parameters(), lr)
    loss_fn = getattr(hand, estimator)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        (loss / x.shape[0]).backward()
        opt.step()
        return loss.detach()

    return Contender(f"hand {estimator}", "(a) hand-written", None, step)


def pyrovae_contender(objective: str, estimator: str, vae: pyrovae.VAE, data: ImageData,
                      config: dict[str, Any], device: torch.device, replay: bool) -> Contender:
    config = pyrovae.resolve_config({**config, "objective": {"type": objective},
                                     "train": {**config["train"], "replay_steps": replay}})
    trainer = pyrovae.Trainer(vae, data, config, device, progress=False)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with pyro.validation_enabled(False):  # as in Trainer.train_epoch after its first step
            return trainer.train_step(x, y)

    label = f"pyrovae {objective}" + ("" if replay else ", replay off")
    return Contender(label, "(b) pyrovae Trainer", f"hand {estimator}", step)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = timing_arguments(__doc__, batch_size=64, latent_dim=32, steps=10, repeats=5, warmup=3,
                         pool=4)
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--components", type=int, default=5)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, load_before = start_run(args, "cifar_speed.py")
    pyro.set_rng_seed(args.seed)
    config = bench_config(args)
    data = synthetic_data(args.pool * args.batch_size, device, args.seed)
    initial = build_vae(args).state_dict()

    def fresh_vae() -> pyrovae.VAE:
        vae = build_vae(args).to(device)
        vae.load_state_dict(initial)
        return vae

    generator = torch.Generator(device=device).manual_seed(args.seed)
    pool = list(data.train_batches(args.batch_size, generator))
    contenders: list[Contender] = []
    for objective, estimator in OBJECTIVES:
        contenders.append(hand_contender(estimator, fresh_vae(), args.lr))
        for replay in (True, False):
            contenders.append(pyrovae_contender(objective, estimator, fresh_vae(), data,
                                                config, device, replay))
    time_steps(contenders, pool, args, device)
    # report() reads the end-to-end settings of train_speed.py: none here
    args.epochs, args.train_limit = 0, 0
    results = report(contenders, args, device, [], load_before)
    images_per_s = {row["contender"]: args.batch_size * row["steps_per_s"]
                    for row in results["rows"]}
    print(f"3x{SHAPE[1]}x{SHAPE[2]} images per second: "
          + ", ".join(f"{name} {v:.0f}" for name, v in images_per_s.items()))
    return results


if __name__ == "__main__":
    main()
