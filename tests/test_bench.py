"""The benchmark scripts in bench/ run on tiny settings and report every registered objective
(the log-likelihood benchmark's hand-written estimator is checked against pyrovae's in
tests/evaluation/test_log_likelihood.py); the AIS benchmark's hand-written AIS gives pyrovae's
numbers."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch

from pyrovae import OBJECTIVES

from conftest import ROOT


def load_bench(name: str = "train_speed"):
    path = ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_runs_and_reports_every_registered_objective(capsys):
    bench = load_bench()
    results = bench.main([
        "--threads", "1", "--hidden", "16", "--batch-size", "32", "--train-limit", "128",
        "--test-limit", "64", "--steps", "2", "--repeats", "1", "--warmup", "1", "--pool", "2",
        "--epochs", "1",
    ])
    rows = {row["contender"]: row for row in results["rows"]}

    for objective, _, estimator in bench.OBJECTIVES:
        pyrovae_rows = [r for name, r in rows.items() if name.startswith(f"pyrovae {objective}")]
        if objective in OBJECTIVES:
            row, eager = sorted(pyrovae_rows, key=lambda r: r["contender"])  # "..., replay off"
            assert eager["contender"].endswith("replay off")
            for r in (row, eager):
                assert r["reference"] == f"hand {estimator}" and r["reference"] in rows
                assert r["ratio_wall"] > 0
            assert math.isfinite(row["test_elbo"])
            assert math.isfinite(rows[row["reference"]]["test_elbo"])
        else:
            assert not pyrovae_rows
            assert any(objective in line for line in results["meta"]["skipped"])
    # every registered objective is benchmarked
    # (trace_enum_elbo is Pyro's own TraceEnum_ELBO, for programs with discrete latents: no
    # hand-written VAE to race)
    assert set(OBJECTIVES.names()) - {"trace_enum_elbo"} <= {o for o, _, _ in bench.OBJECTIVES}
    assert any(name.startswith("pyro SVI") for name in rows)
    assert "ratio" in capsys.readouterr().out


def test_bench_cuda_without_gpu_says_so(monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in str(exc.value)


def test_ais_bench_runs_and_the_handwritten_ais_gives_pyrovaes_numbers(capsys):
    bench = load_bench("ais_speed")
    # 2 blocks of 4 examples (16 chains each): each block seeded from its first example
    results = bench.main([
        "--threads", "1", "--num-examples", "8", "--hidden", "16", "--num-steps", "5",
        "--max-batch-elements", "64", "--repeats", "1", "--no-memory",  # no memory child: fast
    ])
    out = capsys.readouterr().out
    assert "ratio pyrovae / hand-written" in out
    assert "projected pyrovae time of the default budget" in out
    assert results["ratio_wall"] > 0 and results["ratio_cpu"] > 0
    assert not results["default_budget"] and math.isfinite(results["projected_seconds"])
    # the same draws in the same order and the same arithmetic: equal to float rounding
    # (torch's float32 tolerances; on this CPU they are equal bit for bit)
    for key in ("estimates", "acceptance_rate", "step_size"):
        pyrovae_values, hand = results[key]["pyrovae"], results[key]["handwritten"]
        assert pyrovae_values.shape == (8,)
        torch.testing.assert_close(pyrovae_values, hand)
    assert torch.isfinite(results["estimates"]["pyrovae"]).all()
    # the step sizes moved: the adaptation ran in both
    assert (results["step_size"]["pyrovae"] != 0.1).all()


def test_ais_bench_cuda_without_gpu_says_so(monkeypatch):
    bench = load_bench("ais_speed")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in str(exc.value)


TINY_CIFAR = ["--threads", "1", "--batch-size", "4", "--channels", "4", "8", "--components", "2",
              "--latent-dim", "4", "--steps", "2", "--repeats", "1", "--warmup", "1",
              "--pool", "2"]


def test_cifar_bench_runs_and_reports_ratios_to_the_hand_written_loop(capsys):
    bench = load_bench("cifar_speed")
    results = bench.main(TINY_CIFAR)
    rows = {row["contender"]: row for row in results["rows"]}
    for objective, estimator in bench.OBJECTIVES:
        for name in (f"pyrovae {objective}", f"pyrovae {objective}, replay off"):
            assert rows[name]["reference"] == f"hand {estimator}" and rows[name]["ratio_wall"] > 0
    out = capsys.readouterr().out
    assert "ratio" in out and "3x32x32 images per second" in out


def test_cifar_bench_hand_written_loss_is_pyrovaes():
    """The baseline computes what pyrovae computes: the same loss from the same draws, up to
    float32 rounding of sums over 3072 elements in another order (~1e-7 relative; 1e-5
    allows for any summation order)."""
    import pyro

    import pyrovae

    bench = load_bench("cifar_speed")
    args = bench.parse_args(TINY_CIFAR)
    vae = bench.build_vae(args)
    hand = bench.HandConvVAE(vae)
    x = bench.synthetic_data(4, torch.device("cpu"), 0).train_images
    for objective, estimator in bench.OBJECTIVES:
        elbo = pyrovae.OBJECTIVES.build({"type": objective}, "objective").elbo()
        pyro.set_rng_seed(3)
        with pyro.validation_enabled(False):
            expected = elbo.differentiable_loss(vae.model, vae.guide, x)
        pyro.set_rng_seed(3)
        torch.testing.assert_close(getattr(hand, estimator)(x), expected, rtol=1e-5, atol=0)
def test_scaling_bench_runs_one_and_two_processes(capsys):
    results = load_bench("scaling").main(
        ["--steps", "2", "--batch-size", "16", "--eval-examples", "4", "--num-samples", "8"]
    )
    assert results["one"]["processes"] == 1 and results["many"]["processes"] == 2
    for row in (results["one"], results["many"]):
        assert row["train_examples_per_s"] > 0 and row["eval_examples_per_s"] > 0
    assert results["train_efficiency"] > 0 and results["eval_efficiency"] > 0
    assert "scaling efficiency with 2 processes" in capsys.readouterr().out


def test_scaling_bench_cuda_without_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        load_bench("scaling").main(["--device", "cuda"])
    assert "no CUDA GPU is available" in str(exc.value)
def test_data_bench_runs_and_both_paths_take_the_same_steps(capsys):
    bench = load_bench("data_speed")
    results = bench.main(["--train-limit", "256", "--test-limit", "32", "--batch-size", "64",
                          "--hidden", "16", "--workers", "0", "--repeats", "1", "--threads", "1"])
    rows = {row["contender"]: row for row in results["rows"]}
    assert set(rows) == {"in memory", "streamed, 0 workers"}
    assert all(row["same_steps"] and row["ratio"] > 0 for row in rows.values())
    assert "ratio" in capsys.readouterr().out


def test_memory_estimate_bench_compares_estimate_and_measure_for_three_configs(capsys):
    results = load_bench("memory_estimate").main(
        ["--pairs", "100", "--num-samples", "50", "--threads", "1"]
    )
    assert results["pairs"] == 100
    assert [row["config"] for row in results["rows"]] == ["mlp", "conv", "colour"]
    for row in results["rows"]:
        assert row["estimate_mib"] > 0 and row["measured_mib"] >= 0
    assert "ratio estimate / measured" in capsys.readouterr().out
