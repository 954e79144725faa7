"""pyrovae on a CUDA GPU: training steps equal the CPU's, the replayed step equals the Pyro
programs run eagerly and never waits for the host, IS, AIS and BDMC agree with the CPU,
checkpoints move between CPU and CUDA, and streamed batches come through pinned memory.

Marked ``cuda`` and skipped, with the reason, where no GPU is present (CI is CPU-only);
``bench/gpu_check.sh`` runs them on a GPU (``pytest -m cuda``). They reuse the CPU tests'
helpers: the linear-Gaussian VAE whose log p(x) is known in closed form
(``tests/linear_gaussian.py``), the ``delta`` guide that draws nothing
(``tests/distributed_worker.py``) and the tiny configs of ``conftest``.
"""

from __future__ import annotations

import copy
import math

import pyro
import pytest
import torch
from data_files import resolved_data
from distributed_worker import register_delta_guide

import pyrovae
from pyrovae import GUIDES, OBJECTIVES, VAE, ImageData, Trainer, load_data, resolve_config
from pyrovae.evaluation.ais import ais_log_likelihood
from pyrovae.evaluation.bdmc import bdmc
from pyrovae.infer.replay import CHECK_ATOL, CHECK_RTOL, ELBOGradient
from pyrovae.training import load_program

from conftest import binary_images, tiny_config
from estimator_checks import mean_and_se
from linear_gaussian import exact_log_marginal, linear_gaussian_vae, sample_data

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA GPU here (bench/gpu_check.sh runs these on one)"),
]

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
#: float64 rounding of exact results (as in tests/evaluation/test_ais.py)
FLOAT64_TOL = 1e-9


# ---------------------------------------------------------------------- training steps
@pytest.fixture
def delta_guide():
    register_delta_guide()
    yield
    GUIDES.unregister("delta")  # leave the registry as the other tests know it


STEPS, BATCH, LR = 4, 32, 1e-3
# The two devices run the same float64 operations in different summation orders (cuBLAS
# against the CPU's BLAS). A sum of n terms, in any order, is within (n - 1) u sum|terms| of
# the exact one (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, eq. 3.5),
# u = 2^-53; the longest sums here (a batch's 32 x 784 log-probabilities) give n u < 3e-12
# relative to their absolute terms, which are O(1) per gradient coordinate (a mean over the
# batch). Adam's step lr m/(sqrt(v) + eps) moves by at most lr |dg| / eps for a change dg of
# the gradient (the worst case, a coordinate within eps = 1e-8 of zero): 1e-3 x 3e-12 / 1e-8
# = 3e-7 per step, so the parameters agree within STEPS x 1e-6 (a thousandth of a step of
# size lr). The loss of step t then moves by at most sum|grad| x that, ~1e3 x 4e-6 nats on a
# loss of ~1.7e4 nats per batch: relative 1e-6 bounds it.
PARAM_ATOL, LOSS_RTOL = STEPS * LR * 1e-3, 1e-6


#: a tiny VAE whose training draws nothing (q(z|x) a point mass)
DELTA_MODEL = {"latent_dim": 4, "guide": {"type": "delta"},
               "encoder": {"type": "mlp", "hidden": [16]},
               "decoder": {"type": "mlp", "hidden": [16]}}


def float64_steps(device: torch.device, initial: dict[str, torch.Tensor]):
    """The losses of STEPS Trainer steps on fixed binary batches (no draws: the ``delta``
    guide, data binarized once) and the parameters after them, in float64 on ``device``."""
    config = resolve_config(tiny_config(model=DELTA_MODEL, data={"binarize": "static"},
                                        train={"device": device.type, "lr": LR}))
    images = binary_images(STEPS * BATCH + 16).double().to(device)
    labels = torch.full((images.shape[0],), -1, device=device)  # unlabelled
    data = ImageData("binary", "static", images[:-16], labels[:-16], images[-16:], labels[-16:],
                     (1, 28, 28), 0)
    vae = VAE.from_resolved_config(config).double().to(device)
    vae.load_state_dict(initial)
    trainer = Trainer(vae, data, config, device, progress=False)
    batches = images[:-16].split(BATCH)
    with pyro.validation_enabled(True):  # as Trainer.train_epoch: the first step validated
        losses = [trainer.train_step(batches[0], None)]
    with pyro.validation_enabled(False):  # then recorded, checked and replayed
        losses += [trainer.train_step(x, None) for x in batches[1:]]
    params = {name: p.detach().cpu() for name, p in vae.named_parameters()}
    return torch.stack(losses).cpu(), params, trainer


def test_training_steps_on_cuda_equal_the_cpus(delta_guide):
    config = resolve_config(tiny_config(model=DELTA_MODEL))
    initial = VAE.from_resolved_config(config).double().state_dict()
    cpu_losses, cpu_params, _ = float64_steps(CPU, initial)
    gpu_losses, gpu_params, trainer = float64_steps(CUDA, initial)
    assert set(trainer.elbo_gradient.records.values()) == {"replayed"}
    torch.testing.assert_close(gpu_losses, cpu_losses, rtol=LOSS_RTOL, atol=0)
    moved = max((p - initial[name]).abs().max().item() for name, p in cpu_params.items())
    assert moved > LR  # Adam's steps are about lr each: the tolerance is far below them
    for name, p in cpu_params.items():
        torch.testing.assert_close(gpu_params[name], p, rtol=0, atol=PARAM_ATOL,
                                   msg=lambda m, name=name: f"{name}: {m}")


# ---------------------------------------------------------------------- the replayed step
def loss_grads_rng(gradient: ELBOGradient, vae: VAE, seed: int, x: torch.Tensor):
    """One call from a seeded random state: loss, gradients, the CUDA generator afterwards."""
    pyro.set_rng_seed(seed)  # seeds the CUDA generators too
    loss = gradient(x)
    grads = [None if p.grad is None else p.grad.clone() for p in vae.parameters()]
    return loss, grads, torch.cuda.get_rng_state(CUDA)


@pytest.mark.parametrize("objective", [{"type": "trace_elbo"},
                                       {"type": "iwae", "num_particles": 5}])
def test_replayed_steps_equal_the_programs_run_eagerly_on_cuda(objective):
    """Every replay, not only the first (which the Trainer checks), gives the eager loss and
    gradients, within the tolerance the Trainer's check accepts on a device (CHECK_RTOL,
    CHECK_ATOL: the same kernels, float32 sums possibly reordered), from the same draws."""
    config = resolve_config(tiny_config(objective=objective))
    vae = VAE.from_resolved_config(config).to(CUDA)
    elbo = OBJECTIVES.build(config["objective"], "objective").elbo()
    eager, replayed = ELBOGradient(elbo, vae, replay=False), ELBOGradient(elbo, vae, replay=True)
    with pyro.validation_enabled(False):
        for seed in range(3):  # recorded and checked, then replayed twice
            x = binary_images(BATCH, seed).to(CUDA)
            (loss, grads, rng), (loss_r, grads_r, rng_r) = (
                loss_grads_rng(g, vae, seed, x) for g in (eager, replayed))
            assert torch.equal(rng, rng_r)  # the same random numbers were drawn
            torch.testing.assert_close(loss_r, loss, rtol=CHECK_RTOL, atol=CHECK_ATOL)
            for g, g_r in zip(grads, grads_r):
                assert (g is None) == (g_r is None)
                if g is not None:
                    torch.testing.assert_close(g_r, g, rtol=CHECK_RTOL, atol=CHECK_ATOL)
    assert list(replayed.records.values()) == ["replayed"]


@pytest.mark.parametrize("objective", [{"type": "trace_elbo"},
                                       {"type": "analytic_kl", "beta": 0.5},
                                       {"type": "iwae", "num_particles": 5}])
def test_training_steps_never_wait_for_the_host(objective):
    """After the first two steps of an epoch (validated; recorded and checked: both read
    values back), slicing a batch, refilling the KL weight, the replayed loss and gradient,
    the optimizer step and summing the loss make no host synchronisation
    (torch.cuda.set_sync_debug_mode("error") raises on one)."""
    config = resolve_config(tiny_config(objective=objective, train={"device": CUDA.type}))
    data = load_data(config["data"], device=CUDA)
    trainer = Trainer(VAE.from_resolved_config(config).to(CUDA), data, config, CUDA,
                      progress=False)
    batch_size = config["train"]["batch_size"]
    num_batches = data.num_train_batches(batch_size)
    batches = data.train_batches(batch_size, trainer.data_generator)
    with pyro.validation_enabled(True):
        trainer.train_step(*next(batches))
    total = torch.zeros((), device=CUDA)
    with pyro.validation_enabled(False):
        trainer.train_step(*next(batches))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(2, num_batches):
                trainer._update_kl_scale(step, num_batches)
                total += trainer.train_step(*next(batches))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(total.item())
    assert set(trainer.elbo_gradient.records.values()) == {"replayed"}


# ---------------------------------------------------------------------- evaluation
def test_is_ais_and_bdmc_on_cuda_agree_with_the_cpu():
    # With the exact posterior as guide every estimator returns exactly log p(x), whatever
    # its draws (importance weights, and AIS increments, are then constants): the devices
    # agree with the closed form, hence with each other, to float64 rounding.
    vae = linear_gaussian_vae()
    x = sample_data(vae, 20)
    exact = exact_log_marginal(vae, x)
    gpu_vae, gpu_x = copy.deepcopy(vae).to(CUDA), x.to(CUDA)
    is_ll = pyrovae.log_likelihood(gpu_vae, gpu_x, num_samples=50)
    ais_ll, _ = ais_log_likelihood(gpu_vae, gpu_x, num_chains=4, num_steps=10)
    for ll in (is_ll, ais_ll):
        assert ll.device == CUDA
        torch.testing.assert_close(ll.cpu(), exact, rtol=0, atol=FLOAT64_TOL)
    # BDMC's data is simulated on the device: both bounds equal its closed form
    result = bdmc(gpu_vae, gpu_x, num_chains=4, num_steps=10)
    exact_simulated = exact_log_marginal(vae, result.x.cpu())
    for bound in (result.lower, result.upper):
        torch.testing.assert_close(bound.cpu(), exact_simulated, rtol=0, atol=FLOAT64_TOL)
    # an approximate guide: the devices draw differently, so their AIS estimates differ by
    # Monte Carlo noise; the mean difference is within 4 standard errors of the differences
    vae = linear_gaussian_vae(mean_shift=0.5, scale_factor=1.5)
    x = sample_data(vae, 64)
    cpu, _ = ais_log_likelihood(vae, x, num_chains=4, num_steps=20)
    gpu, _ = ais_log_likelihood(copy.deepcopy(vae).to(CUDA), x.to(CUDA), num_chains=4,
                                num_steps=20)
    mean, se = mean_and_se(gpu.cpu() - cpu)
    assert abs(mean) <= 4 * se, (mean, se)


# ---------------------------------------------------------------------- checkpoints
def test_checkpoints_move_between_cpu_and_cuda(tmp_path, monkeypatch):
    """A run trained on the GPU (train.device = "auto") loads on either device, resumes
    where there is no GPU ("auto" is then the CPU) and back on the GPU."""
    run = tmp_path / "run"
    trained = pyrovae.train(tiny_config(train={"epochs": 1, "device": "auto"}), out=run,
                            progress=False)
    assert trained.device == CUDA
    for device in (CPU, CUDA):
        program, _, _ = load_program(run, device=device.type)
        for name, value in program.state_dict().items():
            assert value.device.type == device.type, name
            assert torch.equal(value.cpu(), trained.program.state_dict()[name].cpu()), name
    with monkeypatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        on_cpu = pyrovae.resume(run, epochs=2, progress=False)
    assert on_cpu.device.type == "cpu"
    on_gpu = pyrovae.resume(run, epochs=3, progress=False)
    assert on_gpu.device == CUDA
    assert [r["epoch"] for r in on_gpu.metrics] == [1, 2, 3]
    assert all(math.isfinite(r["test_elbo"]) for r in on_gpu.metrics)
    assert on_gpu.metrics[:2] == on_cpu.metrics


# ---------------------------------------------------------------------- streamed data
def test_streamed_batches_come_through_pinned_memory_and_equal_the_in_memory_ones():
    """On a GPU the DataLoader pins its batches (so their copies overlap the step) and the
    streamed batches are the in-memory path's: the same order and dynamic binarization,
    drawn with the same CUDA generator."""
    config = resolved_data(train_limit=100, test_limit=10)
    memory = pyrovae.load_data({**config, "in_memory": True}, device=CUDA)
    for workers in (0, 2):
        streamed = pyrovae.load_data({**config, "in_memory": False, "workers": workers},
                                     device=CUDA)
        assert isinstance(streamed, pyrovae.data.StreamingImageData)
        a = list(memory.train_batches(32, torch.Generator(CUDA).manual_seed(5)))
        b = list(streamed.train_batches(32, torch.Generator(CUDA).manual_seed(5)))
        assert len(a) == len(b) == 4
        for (xa, ya), (xb, yb) in zip(a, b):
            assert xb.device == yb.device == CUDA
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        loader = streamed.loader()
        assert loader.pin_memory
        x, y = next(iter(loader))  # the last epoch's order is still set
        assert x.is_pinned() and y.is_pinned()
