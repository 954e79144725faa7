"""The `pyrovae` command line end to end on a tiny config, and its one-line errors."""

import json
import subprocess
import sys

import matplotlib.image
import pytest

from conftest import tiny_config
from pyrovae.config import dumps_toml


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pyrovae", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(dumps_toml(tiny_config()))
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_evaluate_sample_end_to_end(tmp_path, tiny_toml):
    run = tmp_path / "run"
    proc = run_cli("train", "--config", str(tiny_toml), "--out", str(run), "--epochs", "2",
                   "--quiet", "--set", "train.lr=2e-3")
    assert "test ELBO after 2 epochs" in proc.stdout
    for name in ("config.toml", "checkpoint.pt", "metrics.jsonl", "samples_reconstructions.png"):
        assert (run / name).is_file(), name
    assert "lr = 0.002" in (run / "config.toml").read_text()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]

    result = json.loads(run_cli("evaluate", str(run), "--json", "--device", "cpu").stdout)
    # evaluation repeats the trainer's seeded test ELBO exactly
    assert result["elbo"] == pytest.approx(rows[-1]["test_elbo"], abs=1e-4)
    assert result["elbo"] < 0 and result["num_examples"] == 256

    png = tmp_path / "samples.png"
    run_cli("sample", str(run), "--num", "16", "--out", str(png), "--device", "cpu")
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.std() > 0.05

    # resume to more epochs continues the metrics
    run_cli("train", "--resume", str(run), "--epochs", "3", "--quiet")
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("model.prior.type=nope", ["model.prior.type = 'nope'", "valid choices", "standard_normal"]),
        ("model.encoder.hiden=[3]", ["model.encoder.hiden", "valid parameters", "hidden"]),
        ("train.epoch=3", ["train.epoch", "valid keys", "epochs"]),
        ("train.lr=fast", ["train.lr = 'fast'", "expected float"]),
        ('data.binarize="none"', ["needs binary data", "data.binarize"]),
    ],
)
def test_bad_config_is_a_one_line_error_and_creates_nothing(tmp_path, tiny_toml, override,
                                                             fragments):
    run = tmp_path / "run"
    proc = run_cli("train", "--config", str(tiny_toml), "--out", str(run), "--set", override,
                   check=False)
    assert_one_line_error(proc, *fragments)
    assert not run.exists()


def test_missing_data_root_is_a_clear_error(tmp_path, tiny_toml):
    proc = run_cli("train", "--config", str(tiny_toml), "--out", str(tmp_path / "run"),
                   "--data-root", str(tmp_path / "nowhere"), check=False)
    assert_one_line_error(proc, "MNIST not found", "--data-root", "PYROVAE_DATA")
    assert not (tmp_path / "run").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_toml):
    run = tmp_path / "run"
    run_cli("train", "--config", str(tiny_toml), "--out", str(run), "--quiet")
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert_one_line_error(run_cli("evaluate", str(run), check=False), "damaged or truncated")
    assert_one_line_error(run_cli("train", "--resume", str(run), check=False),
                          "damaged or truncated")


def test_not_a_run_directory(tmp_path):
    assert_one_line_error(run_cli("evaluate", str(tmp_path), check=False), "not a pyrovae run")


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["sample"]])
def test_help(command):
    out = run_cli(*command, "--help").stdout
    assert "usage: pyrovae" in out and "--" in out
