"""Using a trained run: ``pyrovae encode``, ``pyrovae score``, ``pyrovae sample --out
FILE.npy`` and ``pyrovae export`` write what their Python equivalents compute, as files NumPy
and plain PyTorch read (the exported networks are loaded in a process where pyrovae cannot be
imported), atomically; bad input is refused in one line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae.cli import main
from pyrovae.data.run_source import load_run_source
from pyrovae.training import EVAL_SEED

from conftest import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained tiny MNIST run (4-d latent) and its test set, prepared as the commands read it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    config = tiny_config(data={"test_limit": 40}, model={"latent_dim": 4})
    pyrovae.train(config, out=out, progress=False)
    vae, config, _ = pyrovae.load_run(out, device="cpu")
    x, y = load_run_source(config, "test")
    return out, vae, x, y


def _cli(*argv: str) -> None:
    assert main([*argv]) == 0


def _read_csv(path):
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".csv"])
def test_encode_writes_the_posterior_mean_and_scale(run, tmp_path, suffix):
    out, vae, x, y = run
    path = tmp_path / f"latents{suffix}"
    _cli("encode", str(out), "--data", "test", "--out", str(path), "--quiet", "--device", "cpu")
    mean, scale = pyrovae.encode(vae, x)
    assert mean.shape == scale.shape == (40, 4) and bool((scale > 0).all())
    if suffix == ".npy":
        table = np.load(path)  # a structured array: no pickle
        got = {k: table[k] for k in ("mean", "scale", "label")}
    elif suffix == ".pt":
        got = {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
    else:
        flat = _read_csv(path)
        got = {k: np.stack([flat[f"{k}_{d}"] for d in range(4)], 1) for k in ("mean", "scale")}
        got["label"] = flat["label"]
    # CSV floats are written as Python's repr of the float32: they read back exactly
    np.testing.assert_array_equal(got["mean"], mean.numpy())
    np.testing.assert_array_equal(got["scale"], scale.numpy())
    np.testing.assert_array_equal(got["label"], y.numpy())


def test_score_writes_the_numbers_of_log_likelihood(run, tmp_path):
    out, vae, x, y = run
    path = tmp_path / "scores.csv"
    _cli("score", str(out), "--data", "test", "--out", str(path), "--num-samples", "60",
         "--quiet", "--device", "cpu")
    table = _read_csv(path)
    assert list(table) == ["index", "log_likelihood", "se", "pareto_k", "ess", "label"]
    ll, diag = pyrovae.log_likelihood(vae, x, y, num_samples=60, seed=EVAL_SEED,
                                      return_diagnostics=True)
    np.testing.assert_array_equal(table["log_likelihood"], ll.numpy())
    np.testing.assert_array_equal(table["pareto_k"], diag.pareto_k.numpy())
    np.testing.assert_array_equal(table["index"], np.arange(40))
    np.testing.assert_array_equal(table["label"], y.numpy())
    # delta method: se^2 = 1/ESS - 1/K, so 0 <= se < 1 nat whatever the weights
    expected_se = np.sqrt(1 / diag.ess.double().numpy() - 1 / 60)
    np.testing.assert_allclose(table["se"], expected_se, rtol=1e-6)


def test_score_with_ais_has_no_pareto_k(run):
    _, vae, x, y = run
    table = pyrovae.example_scores(vae, x[:3], y[:3], method="ais", num_samples=4, num_steps=3)
    assert torch.isnan(table["pareto_k"]).all()
    assert bool(((table["ess"] >= 1) & (table["ess"] <= 4 + 1e-6)).all())  # between 1 and S


def test_sample_writes_samples_as_data(run, tmp_path):
    out, vae, _, _ = run
    _cli("sample", str(out), "--num", "6", "--out", str(tmp_path / "s.npy"), "--device", "cpu")
    _cli("sample", str(out), "--num", "6", "--out", str(tmp_path / "d.pt"), "--draw",
         "--device", "cpu")
    means = np.load(tmp_path / "s.npy")
    draws = torch.load(tmp_path / "d.pt", weights_only=True)
    assert means.shape == draws.shape == (6, 1, 28, 28)
    torch.manual_seed(0)  # the command's default seed
    np.testing.assert_array_equal(means.reshape(6, -1), vae.sample(6).numpy())
    assert set(draws.unique().tolist()) <= {0.0, 1.0}  # Bernoulli draws, not probabilities


LOAD_WITHOUT_PYROVAE = """
import json, sys
sys.modules["pyrovae"] = None  # importing pyrovae now fails: the files must not need it
import torch
folder, check = sys.argv[1], torch.load(sys.argv[2])
spec = json.load(open(f"{folder}/model.json"))
load = {"torch.export": lambda p: torch.export.load(p).module(), "torchscript": torch.jit.load}
encoder = load[spec["encoder"]["format"]](f"{folder}/{spec['encoder']['file']}")
decoder = load[spec["decoder"]["format"]](f"{folder}/{spec['decoder']['file']}")
for n in (1, 5):
    loc, scale = encoder(check["x"][:n])
    assert torch.allclose(loc, check["loc"][:n], rtol=1e-5, atol=1e-6), n
    assert torch.allclose(scale, check["scale"][:n], rtol=1e-5, atol=1e-6), n
    assert torch.allclose(decoder(check["z"][:n]), check["mean"][:n], rtol=1e-5, atol=1e-6), n
print("ok")
"""


def test_export_loads_with_plain_torch(run, tmp_path):
    out, vae, x, _ = run
    _cli("export", str(out), "--out", str(tmp_path / "exported"))
    spec = json.loads((tmp_path / "exported" / "model.json").read_text())
    assert spec["latent_dim"] == 4 and spec["data_dim"] == 784
    assert spec["likelihood"] == "bernoulli" and spec["example_shape"] == [1, 28, 28]
    assert spec["encoder"]["outputs"] == {"loc": ["N", 4], "scale": ["N", 4]}
    mean, scale = pyrovae.encode(vae, x[:5])
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.save({"x": x[:5], "loc": mean, "scale": scale, "z": z,
                "mean": vae.decode_mean(z).detach()}, tmp_path / "check.pt")
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_PYROVAE)
    proc = subprocess.run([sys.executable, "-I", str(script), str(tmp_path / "exported"),
                           str(tmp_path / "check.pt")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_bad_input_is_refused_in_one_line_and_writes_nothing(run, tmp_path, capsys):
    out = str(run[0])
    np.save(tmp_path / "wide.npy", np.zeros((3, 29, 28), np.uint8))
    _one_line_error(capsys, ["encode", out, "--data", "test", "--out", str(tmp_path / "a.txt")],
                    "unknown suffix '.txt'")
    _one_line_error(capsys, ["score", out, "--data", str(tmp_path / "wide.npy"), "--out",
                             str(tmp_path / "a.csv"), "--quiet"], "(1, 29, 28)", "(1, 28, 28)")
    _one_line_error(capsys, ["sample", out, "--out", str(tmp_path / "s.jpg")], "'.jpg'")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    _one_line_error(capsys, ["export", out, "--out", str(tmp_path / "full")], "not empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "wide.npy"]
