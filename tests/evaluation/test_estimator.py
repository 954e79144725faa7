"""The evaluation driver (pyrovae.evaluation.estimator): blocks, per-block seeds, repeats and
results in example order; the model's mode, Pyro's validation, the param-store registration
and the caller's random stream restored however a run ends; the one place a run's memory
bound is decided; the one settings object of the AIS family; the one mean-and-SE."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pyro
import pyro.distributions.util
import pyro.infer.util
import pyro.poutine.util
import pytest
import torch

import pyrovae
from pyrovae.errors import ConfigError
from pyrovae.evaluation import ais, estimator, importance, mean_and_se
from pyrovae.evaluation.ais import AISSettings
from pyrovae.evaluation.bdmc import bdmc
from pyrovae.evaluation.estimator import Block, BlockEstimator, Results
from pyrovae.rng import derived_seed, fixed_rng

from linear_gaussian import linear_gaussian_vae, sample_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def validation_enabled() -> bool:
    """Whether Pyro validates (``pyro.validation_enabled`` sets all three flags)."""
    flags = {pyro.distributions.util.is_validation_enabled(),
             pyro.infer.util.is_validation_enabled(), pyro.poutine.util.is_validation_enabled()}
    assert len(flags) == 1, "the three flags disagree"
    return flags.pop()


class Recording(BlockEstimator[list[Results]]):
    """Returns each example's first two values, and records what every block saw."""

    seed_name = "recording"
    progress_unit = "ex"

    def __init__(self, *args, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at = fail_at
        self.seen: list[dict] = []

    def block_size(self, max_batch_elements: int) -> int:
        return max(1, max_batch_elements // self.num_samples)

    def progress_description(self) -> str:
        return "recording"

    def result_shapes(self, x: torch.Tensor, repeat: int) -> dict[str, tuple[int, ...]]:
        return {"first": (), "pair": (2,)}

    def estimate_block(self, block: Block) -> Results:
        self.seen.append({
            "size": block.x.shape[0],
            "repeat": block.repeat,
            "training": self.program.training,
            "validation": validation_enabled(),
            "registers": self.program.registers_params,
            "draw": torch.rand(()),
        })
        if len(self.seen) == self.fail_at:
            raise RuntimeError("this block failed")
        return {"first": block.x[:, 0], "pair": block.x[:, :2].T}

    def collect(self, results: list[Results]) -> list[Results]:
        return results


def test_the_driver_lays_out_seeds_and_reassembles_the_blocks():
    vae = linear_gaussian_vae()
    x = sample_data(vae, 7)
    run = Recording(vae, 2, 6, seed=5, num_repeats=2)  # blocks of 6 // 2 = 3 examples
    torch.manual_seed(0)
    outer = torch.get_rng_state()
    results = run(x, first_index=30)
    assert torch.equal(torch.get_rng_state(), outer)  # the caller's stream is untouched
    assert [(s["size"], s["repeat"]) for s in run.seen] == [
        (3, 0), (3, 0), (1, 0), (3, 1), (3, 1), (1, 1)]
    starts = [0, 3, 6] * 2
    for seen, start in zip(run.seen, starts):
        with fixed_rng(derived_seed(5, "recording", seen["repeat"], 30 + start), x.device):
            assert torch.equal(seen["draw"], torch.rand(()))
        # inside a block: eval mode and quiet programs
        assert not seen["training"] and not seen["validation"] and not seen["registers"]
    assert len(results) == 2
    for repeat in results:
        assert torch.equal(repeat["first"], x[:, 0])
        assert torch.equal(repeat["pair"], x[:, :2].T)


def test_a_failing_block_leaves_the_model_and_pyro_as_they_were():
    vae = linear_gaussian_vae()
    x = sample_data(vae, 7)
    vae.train()
    outer = torch.get_rng_state()
    with pyro.validation_enabled(True):
        run = Recording(vae, 2, 6, progress=True, fail_at=2)
        with pytest.raises(RuntimeError, match="this block failed"):
            run(x)
        assert validation_enabled()
    assert not run.seen[1]["training"]  # the failing block ran in eval mode
    assert vae.training and vae.registers_params
    assert torch.equal(torch.get_rng_state(), outer)


@pytest.mark.parametrize("method", ["is", "ais"])
def test_a_failing_estimator_block_restores_the_model(method, monkeypatch):
    """The same through the public entry point, the failure inside IS's or AIS's own work."""
    vae = linear_gaussian_vae()
    x = sample_data(vae, 5)
    module, name = (importance, "log_weights") if method == "is" else (ais, "anneal")
    real, calls = getattr(module, name), []

    def fails_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("second block failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fails_second)
    vae.train()
    with pyro.validation_enabled(True), pytest.raises(RuntimeError, match="second block"):
        pyrovae.log_likelihood(vae, x, num_samples=2, method=method, num_steps=2
                               if method == "ais" else None, max_batch_elements=4)
    assert vae.training and vae.registers_params and len(calls) == 2


def test_the_memory_bound_of_a_run_is_decided_in_one_place(monkeypatch):
    """``effective_max_batch_elements`` is called once per run, with the request, and what it
    returns sizes the blocks (and IS's sample chunks): a run whose bound is shrunk to 8 is
    the run asked for with 8, bit for bit."""
    vae = linear_gaussian_vae()
    x = sample_data(vae, 6)
    want = {
        "is": pyrovae.log_likelihood(vae, x, num_samples=4, max_batch_elements=8, seed=3),
        "ais": pyrovae.log_likelihood(vae, x, num_samples=4, method="ais", num_steps=3,
                                      max_batch_elements=8, seed=3),
        "bdmc": bdmc(vae, x, None, 4, 3, max_batch_elements=8, seed=3).upper,
    }
    calls = []

    def shrink(program, x, y, per_example, requested, gradients):
        calls.append((x.shape[0], per_example, requested, gradients))
        return 8

    monkeypatch.setattr(estimator, "effective_max_batch_elements", shrink)
    got = {
        "is": pyrovae.log_likelihood(vae, x, num_samples=4, max_batch_elements=1000, seed=3),
        "ais": pyrovae.log_likelihood(vae, x, num_samples=4, method="ais", num_steps=3,
                                      max_batch_elements=1000, seed=3),
        "bdmc": bdmc(vae, x, None, 4, 3, max_batch_elements=1000, seed=3).upper,
    }
    assert calls == [(6, 4, 1000, False), (6, 4, 1000, True), (6, 4, 1000, True)]
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_the_memory_bound_is_the_measured_fit_of_the_programs_own_pass(monkeypatch):
    """The bound is pyrovae.models.size.fit_batch_elements of the request: with the memory
    there is, the request itself; AIS's passes are measured with their gradients."""
    vae = linear_gaussian_vae()
    x = sample_data(vae, 5)
    program = pyrovae.as_program(vae)
    assert estimator.effective_max_batch_elements(program, x, None, 3, 1000) == 1000
    asked = []
    monkeypatch.setattr(estimator, "fit_batch_elements",
                        lambda *args, **kwargs: asked.append((args[3:], kwargs)) or 7)
    assert estimator.effective_max_batch_elements(program, x, None, 3, 1000, True) == 7
    assert asked == [((1000, 3), {"gradients": True})]


@pytest.mark.parametrize("setting, value, message", [
    ("num_chains", 0, "num_samples = 0 must be at least 1"),
    ("num_steps", 0, "num_steps = 0 must be at least 1"),
    ("num_steps", 2.5, "num_steps = 2.5 has the wrong type"),
    ("num_leapfrog_steps", -1, "num_leapfrog_steps = -1 must be at least 1"),
    ("max_batch_elements", 0, "max_batch_elements = 0 must be at least 1"),
    ("initial_step_size", 0.0, "initial_step_size = 0.0 must be positive"),
    ("init", "posterior", "init must be 'guide' or 'prior'; got 'posterior'"),
])
def test_ais_settings_refuse_a_value_out_of_range_in_one_line(setting, value, message):
    with pytest.raises(ConfigError) as error:
        AISSettings(**{setting: value})
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    # AIS and BDMC refuse it the same way, through the same settings
    vae = linear_gaussian_vae()
    x = sample_data(vae, 2)
    for run in (ais.ais_log_likelihood, bdmc):
        with pytest.raises(ConfigError, match=None) as error:
            run(vae, x, **{setting: value})
        assert str(error.value).startswith(message)


def test_ais_settings_have_the_public_functions_defaults_and_are_frozen():
    settings = AISSettings()
    for function in (ais.ais_log_likelihood, bdmc):
        parameters = inspect.signature(function).parameters
        for field in dataclasses.fields(settings):
            assert parameters[field.name].default == getattr(settings, field.name), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.num_steps = 3  # type: ignore[misc]
    assert AISSettings(initial_step_size=1).initial_step_size == 1.0  # an int becomes a float


def test_mean_and_se_in_the_values_dtype_or_in_double():
    values = torch.tensor([1.0, 2.0, 4.0, 7.5], dtype=torch.float32)
    std = values.std()
    mean, se = mean_and_se(values)
    assert mean == values.mean().item() and se == (std / 2.0).item()
    mean, se = mean_and_se(values, float64=True)
    assert mean == values.mean().item() and se == std.item() / math.sqrt(4)
    assert mean_and_se(values[:1], float64=True) == (1.0, None)
