"""`pyrovae train` reports the importance-sampled test log-likelihood; `pyrovae evaluate`
reports ELBO and log p(x) with standard errors, as text or one JSON object."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import tomli_w

from pyrovae import ConfigError, resolve_config
from pyrovae.cli import main

from conftest import TINY_CONFIG, tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny one-epoch run whose training output is kept for inspection."""
    root = tmp_path_factory.mktemp("cli")
    config = tiny_config(eval={"num_samples": 20})
    path = root / "tiny.toml"
    path.write_text(tomli_w.dumps(config))
    out = root / "run"
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["train", "--config", str(path), "--out", str(out), "--quiet"]) == 0
    out.joinpath("train_stdout.txt").write_text(buffer.getvalue())
    return out


def test_train_reports_importance_sampled_log_likelihood(run_dir):
    text = run_dir.joinpath("train_stdout.txt").read_text()
    assert "test log-likelihood:" in text and "K=20" in text
    assert "--num-samples 5000" in text  # says how to get the K=5000 number


def test_evaluate_json_has_the_documented_keys(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--num-samples", "10", "--limit", "30", "--json",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"elbo", "log_likelihood", "log_likelihood_se", "num_samples", "num_examples",
            "binarize", "seed", "ess_mean", "ess_min", "ess_median"} <= set(result)
    assert result["num_samples"] == 10 and result["num_examples"] == 30
    assert result["binarize"] == "static" and result["seed"] == 1234
    assert result["log_likelihood"] < 0 and result["log_likelihood_se"] > 0
    assert 1 <= result["ess_min"] <= result["ess_mean"] <= 10
    # after one epoch the guide is poor: the 10-sample bound is far above the ELBO (~10
    # nats, against standard errors below 1 nat)
    assert result["log_likelihood"] - result["elbo"] > 4 * result["elbo_se"]


def test_evaluate_text_defaults_to_the_runs_num_samples(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--limit", "16", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "16 test examples" in text and "K=20" in text
    assert "test ELBO:" in text and "test log-likelihood:" in text and "±" in text
    assert "effective sample size" in text


@pytest.mark.parametrize("flag", ["--num-samples", "--limit", "--max-batch-elements"])
def test_evaluate_rejects_non_positive_numbers(run_dir, capsys, flag):
    assert main(["evaluate", str(run_dir), flag, "0", "--quiet"]) == 2
    assert f"{flag} 0 must be at least 1" in capsys.readouterr().err


def test_eval_num_samples_zero_skips_the_log_likelihood(tmp_path, capsys):
    config = tiny_config(eval={"num_samples": 0}, data={"train_limit": 128, "test_limit": 32})
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "log-likelihood" not in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "r"), "--quiet"]) == 2
    assert "give --num-samples" in capsys.readouterr().err


def test_eval_section_is_validated():
    assert resolve_config(TINY_CONFIG)["eval"] == {"num_samples": 100}
    with pytest.raises(ConfigError, match="eval.num_samples = -1"):
        resolve_config(tiny_config(eval={"num_samples": -1}))
