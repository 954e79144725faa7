"""The examples run end to end with tiny settings and draw real pictures; `pyrovae plot` draws
every figure kind from a run directory; the 2-D-only figures refuse other latent sizes.

Adding an example is one entry in EXAMPLES: its file, its tiny-run flags and its PNGs.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyrovae
from png_checks import assert_picture, checked_figures  # noqa: F401  (fixture)
from pyrovae import ConfigError, checkpoint, figures
from pyrovae.cli import main

from conftest import ROOT, tiny_config

#: a few steps on a small subset: 256 training images are 2 batches of 128, for 1 epoch
TINY = ["--train-limit", "256", "--test-limit", "256", "--epochs", "1", "--quiet"]

#: example file -> (extra tiny-run flags, PNGs it writes into --out, texts it prints)
EXAMPLES = {
    "mnist_vae.py": (["--num-samples", "5"], ["samples.png", "reconstructions.png", "curves.png"],
                     ["test ELBO: ", "IS log-likelihood (K = 5): "]),
    "latent_2d.py": (["--grid", "15"], ["latent.png", "manifold.png"], ["test ELBO: "]),
    "interpolate.py": (["--pairs", "4", "--steps", "6", "--latent-dim", "8"],
                       ["interpolation.png"], []),
    "swap_likelihoods.py": (
        ["--latent-dim", "4", "--test-limit", "64"], ["samples.png", "reconstructions.png"],
        ["bernoulli", "continuous_bernoulli", "gaussian", "beta", "not comparable",
         "probability MASS", "DENSITY", "different data"],
    ),
    "conditional_vae.py": (["--latent-dim", "4", "--per-class", "5"], ["classes.png"],
                           ["test ELBO: "]),
    "beta_vae.py": (
        ["--latent-dim", "4", "--betas", "0.5", "4", "--test-limit", "64"],
        ["reconstructions.png", "samples.png", "rate_distortion.png", "kl_per_dimension.png"],
        ["rate: KL", "distortion", "active units", "of 4"],
    ),
    "swap_priors.py": (
        ["--latent-dim", "4", "--num-samples", "5", "--test-limit", "64"],
        ["comparison.png", "samples.png"],
        ["standard_normal", "mog", "vamp", "flow", "log p^(x)"],
    ),
    "marginal_likelihood.py": (
        ["--latent-dim", "4", "--ks", "1", "10", "50", "--test-limit", "32"],
        ["log_likelihood_vs_k.png", "ess_vs_k.png"],
        ["gain over ELBO", "mean ESS"],
    ),
}


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_and_writes_its_pictures(script, tmp_path):
    flags, pngs, texts = EXAMPLES[script]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--out", str(out), *TINY, *flags],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for text in texts:
        assert text in result.stdout
    for png in pngs:
        assert f"wrote {out / png}" in result.stdout  # it says where
        assert_picture(out / png)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_help_describes_it(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # as `python examples/X.py` does
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text and "2 CPU cores" in text


# ---------------------------------------------------------------------------- pyrovae plot
def untrained_run(run_dir: Path, **model) -> Path:
    config = pyrovae.resolve_config(tiny_config(model=model))
    checkpoint.write_config(run_dir, config)
    checkpoint.save_checkpoint(run_dir, {"epoch": 0,
                                         "model": pyrovae.VAE.from_config(config).state_dict()})
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int | str, Path]:
    """Run directories: a 2-D latent space (trained for one tiny epoch), an 8-D one and a
    class-conditional one (untrained: the refusals happen before any data is needed, and the
    class rows need none)."""
    run2 = tmp_path_factory.mktemp("run2")
    config = tiny_config(model={"latent_dim": 2}, data={"train_limit": 256, "test_limit": 256})
    pyrovae.train(config, out=run2, progress=False)
    return {2: run2, 8: untrained_run(tmp_path_factory.mktemp("run8"), latent_dim=8),
            "conditional": untrained_run(tmp_path_factory.mktemp("runc"),
                                         prior={"type": "conditional", "init_spread": 3.0})}


@pytest.mark.parametrize("kind", figures.KINDS)
def test_plot_command_draws_each_kind(kind, runs, capsys, checked_figures):  # noqa: F811
    run_dir = runs["conditional" if kind == "classes" else 2]
    assert main(["plot", str(run_dir), "--kind", kind, "--device", "cpu"]) == 0
    path = run_dir / f"{kind}.png"
    assert f"wrote the {kind} figure to {path}" in capsys.readouterr().out
    assert_picture(path)
    assert [r["path"] for r in checked_figures] == [path]  # and no overlapping text


def test_plot_command_writes_to_out(runs, tmp_path):
    out = tmp_path / "deep" / "samples.png"
    assert main(["plot", str(runs[8]), "--kind", "samples", "--out", str(out)]) == 0
    assert_picture(out)


@pytest.mark.parametrize("kind", ["latent", "manifold"])
def test_two_dimensional_figures_refuse_other_latent_sizes(kind, runs, tmp_path, capsys):
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(runs[8]), "--kind", kind, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "latent_dim = 8" in err and "model.latent_dim = 2" in err and "Traceback" not in err
    assert not out.exists()
    vae, _, _ = pyrovae.load_run(runs[8], device="cpu")
    x, y = torch.rand(16, vae.data_dim), torch.arange(16) % 10
    draw = {"latent": lambda: figures.latent(vae, x, y, out),
            "manifold": lambda: figures.manifold(vae, out)}[kind]
    with pytest.raises(ConfigError, match=r"latent_dim = 8.*model\.latent_dim = 2"):
        draw()
    assert not out.exists()


def test_class_rows_refuse_a_prior_without_labels(runs, tmp_path, capsys):
    out = tmp_path / "classes.png"
    assert main(["plot", str(runs[8]), "--kind", "classes", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.prior = 'standard_normal'" in err and "'conditional'" in err
    assert "Traceback" not in err and not out.exists()


def test_plot_command_refuses_a_run_without_metrics(runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.toml", "checkpoint.pt"):
        (run_dir / name).write_bytes((runs[2] / name).read_bytes())
    assert main(["plot", str(run_dir), "--kind", "curves"]) == 2
    assert "no metrics yet" in capsys.readouterr().err
