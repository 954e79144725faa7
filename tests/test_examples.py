"""The examples run end to end with tiny settings and draw real pictures, and their help says
what each one does and lists its flags (``pyrovae plot`` on run directories: test_cli.py).

Adding an example is one entry in EXAMPLES: its file, its tiny-run flags and its PNGs.
"""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys

import pytest

from conftest import ROOT
from png_checks import assert_picture

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
    "m2_semi_supervised.py": (
        ["--labels", "20", "--num-samples", "5", "--latent-dim", "4", "--hidden", "32"],
        ["classes.png"],
        ["20 labelled of 256", "test classification accuracy of q(y|x): ", "test ELBO: ",
         "IS log-likelihood (K = 5 per class, y summed out): "],
    ),
    "own_data.py": (["--latent-dim", "4", "--test-limit", "64"],
                    ["folder.png", "array.png", "python.png"],
                    ["folder: test ELBO", "array: test ELBO", "python: test ELBO",
                     "source 'folder', sha256", "source 'tensors', sha256"]),
    "inference_gaps.py": (
        ["--latent-dim", "4", "--gap-examples", "3", "--num-samples", "10",
         "--max-local-steps", "20"],
        ["gaps.png"], ["diag_normal", "iaf", "approximation", "amortization"],
    ),
    "ood_detection.py": (
        ["--latent-dim", "4", "--per-set", "20", "--num-samples", "5", "--mutation-rate", "0.1"],
        ["histograms_digits_5_9.png", "histograms_black.png"],
        ["against digits_5_9", "against black", "AUROC", "llr", "complexity", "typicality"],
    ),
    "marginal_likelihood.py": (
        ["--latent-dim", "4", "--ks", "1", "10", "50", "--test-limit", "32", "--ts", "2", "5",
         "--bdmc-examples", "8", "--compare-num-samples", "10", "--compare-num-steps", "2"],
        ["log_likelihood_vs_k.png", "ess_vs_k.png", "log_likelihood_vs_compute.png"],
        ["gain over ELBO", "mean ESS", "Pareto k", "Annealed importance sampling (AIS)",
         "BDMC on 8 images simulated", "lower bound", "upper bound",
         "Paired comparison, IS, K = 10", "Paired comparison, AIS, S = 16 chains of T = 2",
         "(reference)", "vamp, 10 pseudo-inputs"],
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


#: the flags every example takes (examples/_common.py); --latent-dim where the size is free
SHARED_FLAGS = ["--out", "--epochs", "--train-limit", "--test-limit", "--seed", "--device",
                "--quiet"]
FIXED_LATENT_DIM = {"latent_2d.py"}  # always a 2-D latent space


def test_every_example_is_covered():
    assert set(EXAMPLES) == {p.name for p in (ROOT / "examples").glob("*.py")
                             if not p.name.startswith("_")}


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_help_describes_it(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # as `python examples/X.py` does
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {script} ")
    # the example's own description: the first line of its docstring, as written
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / script).read_text()))
    assert doc and doc.splitlines()[0] in text, (script, doc)
    # the shared flags, and the example's own flags used in its tiny run above
    own = [flag for flag in EXAMPLES[script][0] if flag.startswith("--")]
    for flag in SHARED_FLAGS + own:
        assert f"  {flag} " in text or f"  {flag}\n" in text, (script, flag)
    assert ("--latent-dim" in text) == (script not in FIXED_LATENT_DIM)
