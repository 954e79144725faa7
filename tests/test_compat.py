"""The private Pyro and torch internals pyrovae relies on (pyrovae.compat) do what it needs,
on the versions pyrovae names as checked."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.util import MultiFrameTensor
from pyro.poutine.util import prune_subsample_sites

from pyrovae import compat
from pyrovae.infer.log_weights import trace_pair


def test_the_installed_releases_are_those_the_internals_were_checked_on():
    """A new Pyro or torch release fails here until the tests below pass on it and it is
    added to compat.CHECKED_VERSIONS."""
    installed = {"pyro-ppl": pyro.__version__, "torch": torch.__version__.split("+")[0]}
    for package, version in installed.items():
        assert version in compat.CHECKED_VERSIONS[package], (package, version)


def test_compute_log_r_is_log_p_minus_log_q_per_site():
    def model(x):
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Normal(x, 0.5))

    x = torch.tensor([0.1, -0.3, 0.7])
    model_trace, guide_trace = map(prune_subsample_sites, trace_pair(model, guide, x))
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    log_r = compat.compute_log_r(model_trace, guide_trace)
    assert isinstance(log_r, MultiFrameTensor)
    expected = sum(model_trace.nodes[s]["log_prob"] for s in ("z", "x"))
    expected = expected - guide_trace.nodes["z"]["log_prob"]
    frames = model_trace.nodes["z"]["cond_indep_stack"]
    torch.testing.assert_close(log_r.sum_to(frames), expected)


def test_is_alias_of_tells_shared_storage_apart():
    a = torch.zeros(4)
    assert compat.is_alias_of(a, a[1:]) and compat.is_alias_of(a, a.view(2, 2))
    assert not compat.is_alias_of(a, a.clone())


def test_standard_normal_draws_what_normal_rsample_draws():
    torch.manual_seed(3)
    draws = compat.standard_normal(torch.Size([5]), dtype=torch.float64, device=None)
    torch.manual_seed(3)
    expected = torch.distributions.Normal(torch.zeros(5, dtype=torch.float64), 1.0).rsample()
    assert torch.equal(draws, expected) and draws.dtype == torch.float64


@pytest.mark.parametrize("name", ["_compute_log_r", "_is_alias_of", "_standard_normal",
                                  "torch._subclasses", "torch.utils._"])
def test_no_other_module_imports_the_internals(name):
    from conftest import ROOT

    users = [p for p in (ROOT / "pyrovae").rglob("*.py")
             if name in p.read_text() and p.name != "compat.py"]
    assert not users, users


def test_fake_tensors_carry_shapes_and_no_data():
    with compat.FakeTensorMode() as mode:
        fake = mode.from_tensor(torch.empty(3, 4))
        out = (fake @ fake.T).relu()
    assert out.shape == (3, 3) and out.dtype == torch.float32
    assert type(out).__name__ == "FakeTensor" and out.device == torch.device("cpu")


def test_a_dispatch_mode_sees_every_operation_and_its_results():
    seen = []

    class Record(compat.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            seen.append((func.overloadpacket.__name__, tuple(out.shape)))
            return out

    with Record():
        torch.ones(2, 3).sum(0)
    assert ("sum", (3,)) in seen


def test_tree_leaves_and_tree_map_only_walk_nested_arguments():
    nested = ((torch.zeros(1), 2), {"a": [torch.ones(2)]})
    leaves = compat.tree_leaves(nested)
    assert [type(v).__name__ for v in leaves] == ["Tensor", "int", "Tensor"]
    doubled = compat.tree_map_only(torch.Tensor, lambda t: t + 1, nested)
    assert doubled[0][1] == 2 and torch.equal(doubled[1]["a"][0], torch.full((2,), 2.0))
