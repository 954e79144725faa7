"""Your own Pyro programs (pyrovae.models.program): what a module must provide, the estimators
over several latent sites and over enumerated discrete ones on programs whose log p(x) is
known, and the proof that a user module running the built-in VAE's programs trains, resumes
and scores to the same numbers, bitwise."""

from __future__ import annotations

import math
import warnings

import pyro
import pytest
import torch
from program_fixtures import (
    GaussianChain,
    GaussianMixture,
    Wrapped,
    relative_weight_variance,
)
from pyro.poutine.util import is_validation_enabled

import pyrovae
from pyrovae import VAE, ConfigError, DataError, resolve_config
from pyrovae.errors import CheckpointError
from pyrovae.evaluation.bdmc import bdmc
from pyrovae.models import factory, program
from pyrovae.training.run_dir import read_metrics

from conftest import numbers

PROGRAM = "program_fixtures:wrapped_vae"


# ---------------------------------------------------------------------- the contract
def test_a_program_is_an_nn_module_with_model_and_guide():
    program.check_program(Wrapped(VAE.from_config({"model": {"latent_dim": 2}})))
    with pytest.raises(ConfigError, match=r"no method guide\(x, y=None\).*docs/programs.md"):
        program.check_program(type("OnlyModel", (torch.nn.Module,), {"model": lambda s, x: x})())
    with pytest.raises(ConfigError, match=r"it is a str, not a torch.nn.Module"):
        program.as_program("vae")


def test_factories_are_named_package_module_attribute():
    assert factory.load_factory(PROGRAM).__name__ == "wrapped_vae"
    with pytest.raises(ConfigError, match=r"is not of the form 'package.module:attribute'"):
        factory.load_factory("program_fixtures.wrapped_vae")
    with pytest.raises(ConfigError, match=r"importing 'no_such_module' failed \(ModuleNotFound"
                                          r"Error.*PYTHONPATH"):
        factory.load_factory("no_such_module:build")
    with pytest.raises(ConfigError, match=r"has no attribute 'nope'"):
        factory.load_factory("program_fixtures:nope")
    with pytest.raises(ConfigError, match=r"is a int, not a callable"):
        factory.load_factory("program_fixtures:GaussianChain.D")
    config = resolve_config({"model": {"program": "program_fixtures:not_a_program"}})
    with pytest.raises(ConfigError, match=r"Linear, not|no method model"):
        pyrovae.build_model(config)


def test_the_defaults_check_data_and_draw_from_the_programs():
    chain = program.as_program(GaussianChain())
    x = chain.module.sample_data(4)
    chain.check_data(x)
    with pytest.raises(DataError, match=r"shape \(N, 5\)"):
        chain.check_data(x[:, :3])
    with pytest.raises(DataError, match=r"dtype torch.float32"):
        chain.check_data(x.float())
    with pytest.raises(DataError, match=r"NaN or infinite"):
        chain.check_data(x.index_fill(0, torch.tensor([1]), math.nan))
    with pytest.raises(DataError, match=r"integer tensor"):
        chain.check_data(x, torch.zeros(4))
    assert chain.model_labels(torch.arange(4)).tolist() == [0, 1, 2, 3]
    # the mean of site "x": from the prior, and replayed on the guide's draws
    assert chain.sample(3).shape == (3, 5)
    assert chain.reconstruct(x).shape == (4, 5)
    assert chain.device == torch.device("cpu") and chain.dtype == torch.float64
    text = chain.describe()
    assert "GaussianChain" in text and "latent 'z1'" in text and "latent 'z2'" in text
    mixture = program.as_program(GaussianMixture())
    assert "latent 'c'" in mixture.describe() and "(enumerated)" in mixture.describe()


def test_a_module_is_adapted_once_and_keeps_its_own_state_dict_and_members():
    vae = VAE.from_config({"model": {"latent_dim": 2}})
    assert program.as_program(vae) is vae  # a Program already
    wrapped = Wrapped(vae)
    adapted = program.as_program(wrapped, (1, 28, 28))
    assert program.as_program(adapted) is adapted and adapted.module is wrapped
    assert list(adapted.state_dict()) == list(wrapped.state_dict())  # checkpoints: its keys
    assert adapted.data_dim == 784 and adapted.example_shape() == (1, 28, 28)
    assert adapted.figure_kinds == ("samples", "reconstructions", "curves")
    assert not adapted.trains_with_any_objective and not adapted.rebuilt_from_config
    with pytest.raises(ConfigError, match=r"the 'latent' figure reads the latent space of "
                                          r"pyrovae's VAE.*class Wrapped has the figures"):
        adapted.latent_space("the 'latent' figure")
    with pytest.raises(ConfigError, match="the classes figure draws samples of each class, but "
                                          "Wrapped is not label-conditional"):
        adapted.classes("the classes figure")
    assert adapted.likelihood_component() is None

    class Own(torch.nn.Module):  # optional members of its own are used, once read
        def __init__(self):
            super().__init__()
            self.inner = Wrapped(vae)

        def model(self, x, y=None):
            return self.inner.model(x, y)

        def guide(self, x, y=None):
            return self.inner.guide(x, y)

        def describe(self):
            return "my own words"

        def sample(self, num):
            return torch.zeros(num, 784)

    own = program.as_program(Own())
    assert own.describe() == "my own words" and own.sample(3).shape == (3, 784)


def test_a_program_subclass_gets_every_default():
    class Direct(program.Program):
        """A Program written against the contract itself."""

        data_dim = 3

        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Linear(3, 2)

        def model(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0).expand([2]).to_event(1))
                pyro.sample("x", pyro.distributions.Normal(z @ torch.ones(2, 3), 1.0)
                            .to_event(1), obs=x)

        def guide(self, x, y=None):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", pyro.distributions.Normal(self.loc(x), 1.0).to_event(1))

    direct = Direct()
    assert program.as_program(direct) is direct and direct.module is direct
    x = torch.randn(5, 3)
    assert direct.sample(4).shape == (4, 3) and direct.reconstruct(x).shape == (5, 3)
    assert direct.example_shape() == (3,)
    assert "latent 'z': q = Independent, event shape (2,)" in direct.describe()
    assert pyrovae.log_likelihood(direct, x, num_samples=4).shape == (5,)
    with direct.evaluating():
        assert not direct.training and not is_validation_enabled()
    assert direct.training and is_validation_enabled()  # both restored
    with pytest.raises(TypeError, match="abstract"):
        program.Program()  # model and guide are required


# ---------------------------------------------------------------------- several latent sites
def test_estimators_with_the_exact_posterior_give_log_p_x_exactly():
    """With q(z1, z2 | x) = p(z1, z2 | x) every log-weight is log p(x), whatever the draws:
    IS, PSIS's weights and the ELBO then equal the closed form to float64 rounding."""
    chain = GaussianChain()
    x = chain.sample_data(8)
    exact = chain.exact_log_marginal(x)
    torch.testing.assert_close(pyrovae.log_likelihood(chain, x, num_samples=7), exact)
    torch.testing.assert_close(pyrovae.elbo_per_example(chain, x), exact)
    rate, distortion = pyrovae.rate_and_distortion(chain, x)
    torch.testing.assert_close(-(rate + distortion), exact)


def test_importance_sampling_over_two_sites_converges_to_log_p_x():
    """A guide whose Cholesky factors are 1.3 times the posterior's: in whitened coordinates
    q = N(0, 1.69 I_5) for p = N(0, I_5), so the weights' relative variance v is known in
    closed form; the K-sample estimate has bias -v / (2K) and standard error sqrt(v / K) per
    example (delta method), so the mean over N examples is within 4 SE / sqrt(N) + v / (2K)."""
    chain = GaussianChain(widen=1.3)
    x = chain.sample_data(20)
    K, v = 2000, relative_weight_variance(1.3, 5)
    estimate, diagnostics = pyrovae.log_likelihood(chain, x, num_samples=K,
                                                   return_diagnostics=True)
    error = (estimate - chain.exact_log_marginal(x)).mean().item()
    assert abs(error) < 4 * math.sqrt(v / K) / math.sqrt(20) + v / (2 * K)
    assert (diagnostics.pareto_k < 0.5).all()  # finite variance, as the closed form says


def test_ais_over_two_sites_converges_to_log_p_x():
    """AIS's estimate of an example is the log-mean of S chains' weights: its error is about
    the chains' log-weight spread s over sqrt(S), with a bias of at most s^2 / (2S) (delta
    method); over N examples the mean error is within 4 s / sqrt(S N) + s^2 / (2S)."""
    chain = GaussianChain(widen=1.3)
    N, S = 8, 8
    x = chain.sample_data(N)
    estimate, d = pyrovae.log_likelihood(chain, x, method="ais", num_samples=S, num_steps=40,
                                         return_diagnostics=True)
    spread = d.log_weight_std.square().mean().sqrt().item()
    error = (estimate - chain.exact_log_marginal(x)).mean().item()
    assert abs(error) < 4 * spread / math.sqrt(S * N) + spread**2 / (2 * S)


# ---------------------------------------------------------------------- enumerated sites
def test_enumerated_discrete_site_is_summed_out_exactly():
    """The guide enumerates c and draws z ~ p(z | c, x): the importance weight with c summed
    out is sum_c p(x, c, z_c) / p(z_c | c, x) = sum_c p(x, c) = p(x) for any q(c|x) and any
    draw; the ELBO is sum_c q(c|x) (log p(x, c) - log q(c|x)) exactly."""
    mixture = GaussianMixture()
    x = mixture.sample_data(10)
    log_joint = mixture.log_joint_c(x)
    torch.testing.assert_close(pyrovae.log_likelihood(mixture, x, num_samples=3),
                               log_joint.logsumexp(-1))
    with torch.no_grad():
        log_q = mixture.classifier(x).log_softmax(-1)
    expected_elbo = (log_q.exp() * (log_joint - log_q)).sum(-1)
    torch.testing.assert_close(pyrovae.elbo_per_example(mixture, x), expected_elbo)
    result = pyrovae.evaluate(mixture, x, num_samples=50)
    assert result.log_likelihood == pytest.approx(log_joint.logsumexp(-1).mean().item())


def test_ais_refuses_discrete_sites_with_the_reason():
    mixture = GaussianMixture()
    with pytest.raises(ConfigError, match=r"site 'c' has support .*use method='is'"):
        pyrovae.log_likelihood(mixture, mixture.sample_data(2), method="ais", num_steps=2)


def _mixture_trainer(tiny, objective: str) -> pyrovae.Trainer:
    mixture = GaussianMixture()
    x = mixture.sample_data(64)
    data = pyrovae.ImageData("mixture", "none", x, torch.zeros(64, dtype=torch.long), x[:16],
                             torch.zeros(16, dtype=torch.long), (1, 1, 4), 1)
    tiny["objective"] = {"type": objective}
    tiny["data"]["binarize"] = "none"
    tiny["train"]["batch_size"] = 32  # two steps: the second is recorded (or not)
    return pyrovae.Trainer(mixture, data, resolve_config(tiny), torch.device("cpu"),
                           progress=False)


def test_enumerated_programs_train_with_trace_enum_elbo_and_are_refused_otherwise(tiny):
    for objective in ("trace_elbo", "analytic_kl", "iwae"):
        with pytest.raises(ConfigError, match=r"enumerates its guide sites \['c'\], which "
                                              f"objective.type = '{objective}' cannot sum out"):
            _mixture_trainer(tiny, objective)
    trainer = _mixture_trainer(tiny, "trace_enum_elbo")
    before = trainer.vae.classifier.weight.detach().clone()
    with pytest.warns(RuntimeWarning, match=r"run the Pyro programs at every step"):
        metrics = trainer.fit()
    assert math.isfinite(metrics[-1]["test_elbo"])
    assert not torch.equal(before, trainer.vae.classifier.weight)


# ---------------------------------------------------------------------- the same numbers
def _train(config, out=None, **kwargs) -> pyrovae.Trainer:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # replayed, not eager
        return pyrovae.train(config, out=out, progress=False, **kwargs)


def test_a_user_module_running_the_vae_programs_trains_to_the_same_numbers(tiny, tmp_path):
    """The built-in VAE and a plain module wrapping the same networks (built by its factory
    from the same seed): the same parameters after training, bitwise, the same metrics and
    the same log-likelihoods."""
    tiny["train"]["epochs"] = 2
    builtin = _train(tiny)
    tiny["model"]["program"] = PROGRAM
    user = _train(tiny, out=tmp_path / "run")
    assert isinstance(user.vae, Wrapped)
    assert numbers(user.metrics) == numbers(builtin.metrics)
    for a, b in zip(builtin.vae.state_dict().values(), user.vae.state_dict().values()):
        assert torch.equal(a, b)
    x = builtin.data.test_images[:16]
    assert torch.equal(pyrovae.log_likelihood(builtin.vae, x, num_samples=20),
                       pyrovae.log_likelihood(user.vae, x, num_samples=20))
    ais = [pyrovae.log_likelihood(m, x[:4], method="ais", num_samples=2, num_steps=3)
           for m in (builtin.vae, user.vae)]
    assert torch.equal(*ais)
    # the run directory rebuilds the module from its config
    loaded, config, _ = pyrovae.load_run(tmp_path / "run", device="cpu")
    assert isinstance(loaded, Wrapped) and config["model"]["program"] == PROGRAM
    assert torch.equal(pyrovae.elbo_per_example(loaded, x), pyrovae.elbo_per_example(user.vae, x))


def test_a_program_run_resumes_bitwise(tiny, tmp_path):
    tiny["model"]["program"] = PROGRAM
    tiny["train"]["epochs"] = 2
    whole = _train(tiny)
    tiny["train"]["epochs"] = 1
    _train(tiny, out=tmp_path / "run")
    resumed = pyrovae.resume(tmp_path / "run", epochs=2, progress=False)
    assert numbers(read_metrics(tmp_path / "run")) == numbers(whole.metrics)
    for a, b in zip(whole.vae.state_dict().values(), resumed.vae.state_dict().values()):
        assert torch.equal(a, b)


def test_a_module_given_in_python_is_given_again_to_load_and_resume(tiny, tmp_path):
    pyro.set_rng_seed(0)
    module = Wrapped(VAE.from_resolved_config(resolve_config(tiny)))
    _train(tiny, out=tmp_path / "run", model=module)
    with pytest.raises(CheckpointError, match=r"class program_fixtures.Wrapped given in Python"):
        pyrovae.load_run(tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"pass that module again"):
        pyrovae.resume(tmp_path / "run", epochs=2)
    fresh = Wrapped(VAE.from_resolved_config(resolve_config(tiny)))
    loaded, _, _ = pyrovae.load_run(tmp_path / "run", device="cpu", model=fresh)
    assert loaded is fresh
    for a, b in zip(module.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    resumed = pyrovae.resume(tmp_path / "run", epochs=2, progress=False,
                             model=Wrapped(VAE.from_resolved_config(resolve_config(tiny))))
    assert resumed.epoch == 2


class ReversedChain(GaussianChain):
    """The chain's guide sampling z2 before z1: no per-site KL given earlier sites exists."""

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z2", pyro.distributions.Normal(x[..., :3], 1.0).to_event(1))
            pyro.sample("z1", pyro.distributions.Normal(x[..., :2], 1.0).to_event(1))


def test_programs_train_with_every_objective_that_can_train_them(tiny):
    chain = GaussianChain(widen=1.3)
    x = chain.sample_data(64)
    data = pyrovae.ImageData("chain", "none", x, torch.zeros(64, dtype=torch.long), x[:16],
                             torch.zeros(16, dtype=torch.long), (1, 1, 5), 1)
    tiny["data"]["binarize"] = "none"
    for objective in ("trace_elbo", "analytic_kl", "iwae"):
        tiny["objective"] = {"type": objective}
        pyrovae.Trainer(chain, data, resolve_config(tiny), torch.device("cpu"), progress=False)
    with pytest.raises(ConfigError, match=r"guide to sample the latent sites in the model's "
                       r"order \(\['z1', 'z2'\]\), but it samples \['z2', 'z1'\]"):
        tiny["objective"] = {"type": "analytic_kl"}
        pyrovae.Trainer(ReversedChain(), data, resolve_config(tiny), torch.device("cpu"),
                        progress=False)


def test_bdmc_simulates_from_a_program():
    chain = GaussianChain(widen=1.3)
    result = bdmc(chain, chain.sample_data(4), num_chains=2, num_steps=5)
    assert result.gap.shape == (4,) and torch.isfinite(result.gap).all()
