"""The benchmark scripts in bench/ run on tiny settings and report every registered objective
(the log-likelihood benchmark's hand-written estimator is checked against pyrovae's in
tests/evaluation/test_log_likelihood.py)."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch

from pyrovae import OBJECTIVES

from conftest import ROOT


def load_bench():
    path = ROOT / "bench" / "train_speed.py"
    spec = importlib.util.spec_from_file_location("train_speed", path)
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
    assert set(OBJECTIVES.names()) <= {objective for objective, _, _ in bench.OBJECTIVES}
    assert any(name.startswith("pyro SVI") for name in rows)
    assert "ratio" in capsys.readouterr().out


def test_bench_cuda_without_gpu_says_so(monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in str(exc.value)
