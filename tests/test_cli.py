"""The `pyrovae` command line: train, describe, evaluate, sample and plot end to end on tiny
configs; its help names every real option; user errors are one line on stderr, exit code 2,
no traceback, and create nothing.

End-to-end runs and one-line errors run ``python -m pyrovae`` in a subprocess (the real exit
code and stderr); the rest call :func:`pyrovae.cli.main` in-process.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import tomli_w

import pyrovae
from pyrovae.cli import main
from pyrovae.config import dumps_toml, load_config
from pyrovae.training.run_dir import read_metrics, save_checkpoint, write_config
from pyrovae.viz import FIGURE_KINDS, NEEDS_DATA, figures, save_figure

from conftest import ROOT, tiny_config
from png_checks import assert_picture


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pyrovae", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_main_error(capsys, argv: list[str], *fragments: str) -> None:
    """``main(argv)`` fails with exit code 2 and one line naming ``fragments`` on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ---------------------------------------------------------------------------- help
#: what each command's help must name: its real arguments and options
HELP = {
    "train": ["--config FILE", "--resume RUN_DIR", "--out RUN_DIR", "--epochs EPOCHS",
              "--seed SEED", "--set KEY=VALUE", "--quiet", "--device {auto,cpu,cuda}",
              "--data-root PATH"],
    "describe": ["CONFIG", "--set KEY=VALUE", "--toml"],
    "evaluate": ["RUN_DIR", "--method {is,ais,bdmc}", "--num-samples K", "--num-steps T",
                 "--limit N", "--seed S", "--max-batch-elements M", "--json", "--quiet",
                 "--device {auto,cpu,cuda}", "--data-root PATH", "--gaps",
                 "--num-elbo-samples K", "--max-local-steps N"],
    "ood": ["RUN_DIR", "--in SOURCE", "--out SOURCE", "--background RUN_B",
            "--method {is,ais}", "--num-samples K", "--num-steps T", "--limit N",
            "--num-train N", "--compressor {png,zlib}", "--results DIR", "--seed S",
            "--max-batch-elements M", "--json", "--quiet", "--device {auto,cpu,cuda}",
            "--data-root PATH"],
    "compare": ["RUN_DIR", "--method {is,ais}", "--num-samples K", "--num-steps T",
                "--num-repeats R", "--limit N", "--seed S", "--max-batch-elements M", "--json",
                "--quiet", "--device {auto,cpu,cuda}", "--data-root PATH"],
    "sample": ["RUN_DIR", "--num NUM", "--out FILE.png", "--seed SEED", "--label CLASS",
               "--device {auto,cpu,cuda}"],
    "plot": ["RUN_DIR", "--kind", "{" + ",".join(FIGURE_KINDS) + "}", "--out FILE.png",
             "--seed SEED", "--device {auto,cpu,cuda}", "--data-root PATH"],
}
#: options a command must not offer (they belong to other commands)
NOT_IN_HELP = {"describe": ["--out", "--device"], "sample": ["--set", "--data-root"],
               "evaluate": ["--set", "--out"],
               "compare": ["--set", "--out", "bdmc", "--gaps"]}


def test_top_level_help_lists_every_command():
    out = run_cli("--help").stdout  # also: `python -m pyrovae` works
    assert out.startswith("usage: pyrovae ")
    for command in HELP:
        assert f"    {command} " in out, (command, out)


@pytest.mark.parametrize("command", sorted(HELP))
def test_command_help_names_its_options(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pyrovae {command} ")
    for option in HELP[command]:
        assert option in out, (command, option, out)
    for option in NOT_IN_HELP.get(command, []):
        assert option not in out, (command, option)


# ---------------------------------------------------------------------------- end to end
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


def test_train_with_component_overrides_then_sample_a_class(tmp_path, capsys):
    run = tmp_path / "run"
    code = main([
        "train", "--config", str(ROOT / "configs" / "mnist.toml"), "--out", str(run),
        "--epochs", "1", "--quiet", "--device", "cpu",
        "--set", "model.prior.type=conditional", "--set", "model.latent_dim=4",
        "--set", "model.encoder.hidden=[32]", "--set", "model.decoder.hidden=[32]",
        "--set", "data.train_limit=256", "--set", "data.test_limit=64",
    ])
    err = capsys.readouterr().err  # train's output, its PSIS warning included
    assert code == 0, err
    assert load_config(run / "config.toml")["model"]["prior"]["type"] == "conditional"
    code = main(["sample", str(run), "--label", "3", "--num", "4", "--out",
                 str(tmp_path / "threes.png"), "--device", "cpu"])
    assert code == 0 and (tmp_path / "threes.png").stat().st_size > 0
    assert_main_error(capsys, ["sample", str(run), "--label", "12", "--out",
                               str(tmp_path / "x.png")], "class label 12 is out of range")
    assert_main_error(capsys, ["sample", str(run), "--num", "0", "--out",
                               str(tmp_path / "x.png")], "--num = 0 must be at least 1")
    assert not (tmp_path / "x.png").exists()
    code = main(["describe", str(run)])  # a run directory describes its config.toml
    assert code == 0 and "p(x, z | y) = p(x | z) p(z | y)" in capsys.readouterr().out


# ---------------------------------------------------------------------------- describe
def test_describe_with_overrides(capsys):
    code = main(["describe", str(ROOT / "configs" / "mnist.toml"),
                 "--set", "model.prior.type=mog", "--set", "model.prior.components=3", "--toml"])
    out = capsys.readouterr().out
    assert code == 0
    assert "a learned mixture of 3 diagonal Gaussians" in out and "[model.prior = mog]" in out
    assert 'type = "mog"' in out and "components = 3" in out  # the resolved TOML


def test_describe_prints_pyrovae_describe(capsys):
    path = ROOT / "configs" / "mnist.toml"
    assert main(["describe", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == pyrovae.describe(load_config(path)) + "\n"
    assert out.startswith("data: mnist, data.binarize = ")
    assert "\n  objective: maximise " in out and "[objective = " in out


def test_describe_reports_bad_config_in_one_line(capsys):
    assert_main_error(capsys, ["describe", str(ROOT / "configs" / "mnist.toml"),
                               "--set", "model.likelihood.type=beta"],
                      "model.likelihood.type = 'beta' is a density on grey levels")


# ---------------------------------------------------------------------------- train errors
@pytest.mark.parametrize(
    "override, fragments",
    [
        ("model.prior.type=nope",
         ["model.prior.type = 'nope'", "valid choices", "standard_normal"]),
        ("model.encoder.hiden=[3]", ["model.encoder.hiden", "valid parameters", "hidden"]),
        ("train.epoch=3", ["train.epoch", "valid keys", "epochs"]),
        ("train.lr=fast", ["train.lr = 'fast'", "expected float"]),
        ("train.lr=nan", ["train.lr = nan must be positive"]),
        ("model.encoder.hidden=[64, 0]", ["model.encoder.hidden[1] = 0 must be at least 1"]),
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


@pytest.mark.parametrize("override, fragments", [
    ("model.likelihood.scale=-1.0", ["model.likelihood.scale = -1.0 must be positive"]),
    ("model.likelihood.scale=0", ["model.likelihood.scale = 0.0 must be positive"]),
    ("objective.beta=0", ["objective.beta = 0.0 must be positive"]),
    ("model.latent_dim=1", ["model.guide.type = 'iaf': needs model.latent_dim >= 2 (got 1)"]),
])
def test_range_errors_of_components_name_the_key(tmp_path, capsys, override, fragments):
    config = tiny_config(data={"binarize": "none"},
                         model={"likelihood": {"type": "gaussian"}, "guide": "iaf"})
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(config))
    assert_main_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run"),
                               "--set", override], *fragments)
    assert not (tmp_path / "run").exists()


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


def test_resume_takes_only_epochs_and_data_root(tmp_path, capsys):
    assert_main_error(capsys, ["train", "--resume", str(tmp_path), "--set", "train.lr=1"],
                      "--resume continues a run as it was configured")
    assert_main_error(capsys, ["train", "--config", str(ROOT / "configs" / "mnist.toml")],
                      "train --config needs --out RUN_DIR")


# ---------------------------------------------------------------------------- evaluate
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
            "binarize", "seed", "ess_mean", "ess_min", "ess_median", "pareto_k_max",
            "num_pareto_k_above_0_7", "epoch", "bits_per_dim", "bits_per_dim_se",
            "bits_per_dim_note"} <= set(result)
    assert result["num_samples"] == 10 and result["num_examples"] == 30
    # K = 10 < 46 draws leave fewer than 10 tail weights: no Pareto k, and no warning
    assert result["pareto_k_max"] is None and result["num_pareto_k_above_0_7"] == 0
    assert capsys.readouterr().err == ""
    assert result["binarize"] == "static" and result["seed"] == 1234 and result["epoch"] == 1
    assert result["log_likelihood"] < 0 and result["log_likelihood_se"] > 0
    # a Bernoulli mass on binarized pixels: bits per binary pixel
    assert result["bits_per_dim"] == pytest.approx(-result["log_likelihood"] / (784 * math.log(2)))
    assert 1 <= result["ess_min"] <= result["ess_mean"] <= 10
    # after one epoch the guide is poor: the 10-sample bound is far above the ELBO (~10
    # nats, against standard errors below 1 nat)
    assert result["log_likelihood"] - result["elbo"] > 4 * result["elbo_se"]


def test_evaluate_text_defaults_to_the_runs_num_samples(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--limit", "16", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "16 test examples" in text and "K=20" in text
    # trained with binarize = "dynamic"; the test set is binarized once, for every run
    assert "(binarized once with a fixed seed, as for every run on binary data)" in text
    assert "static" not in text
    assert "test ELBO:" in text and "test log-likelihood:" in text and "±" in text
    assert "effective sample size" in text
    assert "PSIS Pareto k: not estimated (K < 46" in text  # K = 20


def test_evaluate_reports_pareto_k_and_warns_in_one_line(run_dir):
    # after one epoch the guide is poor: with K = 100 nearly every example has k > 0.7
    proc = run_cli("evaluate", str(run_dir), "--num-samples", "100", "--limit", "30",
                   "--json", "--quiet", "--device", "cpu")
    result = json.loads(proc.stdout)
    assert result["pareto_k_max"] > 0.7 and 0 < result["num_pareto_k_above_0_7"] <= 30
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyrovae evaluate: warning: the importance-sampled ")
    for fragment in (f"for {result['num_pareto_k_above_0_7']} of 30 examples", "K=100",
                     "a better guide", "--method ais"):
        assert fragment in lines[0], lines[0]


def test_evaluate_text_has_a_pareto_k_line(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--num-samples", "50", "--limit", "8",
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    line = next(line for line in out.splitlines() if "Pareto k" in line)
    assert "max" in line and "above 0.7 (unreliable) for" in line and "of 8" in line
    assert err.startswith("pyrovae evaluate: warning: ") and err.count("\n") == 1, err


def test_train_says_how_many_estimates_are_unreliable_in_its_summary_line(tmp_path, capsys):
    """After one epoch the guide is poor: with K = 100 nearly every example has k > 0.7. The
    summary line says how many, and the command for a number to trust; no warning."""
    config = tiny_config(eval={"num_samples": 100}, data={"train_limit": 128, "test_limit": 16})
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    line = next(line for line in out.splitlines() if line.startswith("test log-likelihood:"))
    assert re.search(r"unreliable for \d+ of 16 examples by PSIS", line), line
    assert "--num-samples 5000` or `--method ais`" in line, line


def test_main_shows_only_pyrovae_warnings_in_its_own_format(monkeypatch, capsys):
    import warnings

    from pyrovae.cli.boundary import _one_line_warnings

    shown = []

    def show(message, *args):
        shown.append(message)

    monkeypatch.setattr(warnings, "showwarning", show)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with _one_line_warnings("evaluate"):
            warnings.warn(pyrovae.UnreliableEstimateWarning("k is large"), stacklevel=1)
            warnings.warn(UserWarning("not ours"), stacklevel=1)
    assert capsys.readouterr().err == "pyrovae evaluate: warning: k is large\n"
    assert [str(message) for message in shown] == ["not ours"]  # shown as before
    assert warnings.showwarning is show  # the override is undone
@pytest.mark.parametrize("flag", ["--num-samples", "--limit", "--max-batch-elements"])
def test_evaluate_rejects_non_positive_numbers(run_dir, capsys, flag):
    assert_main_error(capsys, ["evaluate", str(run_dir), flag, "0", "--quiet"],
                      f"{flag} = 0 must be at least 1")


def test_evaluate_with_ais_reports_its_settings_and_diagnostics(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--method", "ais", "--num-samples", "4",
                 "--num-steps", "5", "--limit", "8", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "ais" and result["num_steps"] == 5
    assert result["num_samples"] == 4 and result["num_examples"] == 8
    assert 0 < result["acceptance_rate"] <= 1 and result["chain_log_weight_std"] >= 0
    # the importance-sampling diagnostics do not apply
    assert result["pareto_k_max"] is None and result["ess_mean"] is None
    assert result["log_likelihood"] < 0 and result["elbo"] < 0

    assert main(["evaluate", str(run_dir), "--method", "ais", "--num-steps", "3", "--limit",
                 "4", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "AIS, S=16 chains of T=3 steps" in text and "HMC acceptance rate" in text
    assert "--method bdmc --num-steps 3" in text


def test_evaluate_with_bdmc_reports_both_bounds_and_the_gap(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--method", "bdmc", "--num-samples", "4",
                 "--num-steps", "5", "--limit", "6", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "bdmc" and result["num_examples"] == 6
    assert result["bdmc_gap"] == pytest.approx(result["bdmc_upper"] - result["bdmc_lower"],
                                               abs=1e-3)  # float32 means of ~-500 nats
    assert {"bdmc_lower_se", "bdmc_upper_se", "bdmc_gap_se", "bdmc_gap_max", "acceptance_rate",
            "reverse_acceptance_rate", "seed", "epoch"} <= set(result)
    assert main(["evaluate", str(run_dir), "--method", "bdmc", "--num-samples", "2",
                 "--num-steps", "3", "--limit", "3", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "stochastic lower bound" in text and "stochastic upper bound" in text
    assert "gap:" in text and "raise --num-steps" in text


def test_evaluate_gaps_reports_each_gap_with_its_error(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--gaps", "--method", "is", "--num-samples", "10",
                 "--limit", "4", "--num-elbo-samples", "20", "--max-local-steps", "20",
                 "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("log_likelihood", "elbo", "local_elbo", "approximation_gap",
                "amortization_gap"):
        assert math.isfinite(result[key]) and result[f"{key}_se"] > 0, key
    assert result["approximation_gap"] + result["amortization_gap"] == pytest.approx(
        result["log_likelihood"] - result["elbo"], abs=1e-3)  # float32 means of ~-500 nats
    assert result["method"] == "is" and result["num_examples"] == 4
    assert result["num_elbo_samples"] == 20 and result["max_steps_taken"] == 20
    assert result["elbo_mc_se"] > 0 and result["epoch"] == 1
    assert main(["evaluate", str(run_dir), "--gaps", "--num-samples", "2", "--num-steps", "2",
                 "--limit", "2", "--num-elbo-samples", "8", "--max-local-steps", "5",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "AIS, S=2 chains of T=2 steps" in text  # AIS: the default of --gaps
    assert "approximation gap:" in text and "amortization gap:" in text
    assert "local ELBO: SVI per example" in text


@pytest.mark.parametrize("argv, fragments", [
    (["--gaps", "--method", "bdmc"], ["--gaps", "--method bdmc"]),
    (["--num-elbo-samples", "5"], ["--num-elbo-samples 5", "add --gaps"]),
    (["--max-local-steps", "5"], ["--max-local-steps 5", "add --gaps"]),
    (["--gaps", "--max-local-steps", "0"], ["--max-local-steps = 0 must be at least 1"]),
])
def test_evaluate_gaps_refuses_bad_options_in_one_line(run_dir, capsys, argv, fragments):
    assert_main_error(capsys, ["evaluate", str(run_dir), *argv, "--quiet"], *fragments)


def test_ood_prints_the_table_and_writes_the_scores_and_the_histograms(
        run_dir, capsys, tmp_path):
    black = tmp_path / "black.npy"
    np.save(black, np.zeros((5, 28, 28), dtype=np.uint8))
    results = tmp_path / "ood"
    assert main(["ood", str(run_dir), "--out", str(black), "--background", str(run_dir),
                 "--limit", "6", "--num-samples", "8", "--num-train", "10", "--quiet",
                 "--results", str(results), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_in"] == 6 and summary["num_out"] == 5
    assert set(summary["metrics"]) == {"log_likelihood", "llr", "complexity", "typicality"}
    assert summary["metrics"]["llr"]["auroc"] == 0.5  # the run against itself: all ties
    assert summary["compressor"].startswith("PNG")
    rows = (results / "scores.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["set", "index", "log_likelihood", "pareto_k"]
    assert rows[0].endswith("score_typicality,psis_flag") and len(rows) == 1 + 6 + 5
    assert rows[-1].startswith("out,4,")
    assert_picture(results / "histograms.png")
    assert main(["ood", str(run_dir), "--out", str(black), "--limit", "3", "--num-samples",
                 "8", "--num-train", "4", "--quiet", "--results", str(results)]) == 0
    text = capsys.readouterr().out
    assert "AUROC" in text and "FPR@95%TPR" in text and "llr" not in text
    assert "PSIS k > 0.7" in text and "histograms:" in text


@pytest.mark.parametrize("argv, fragments", [
    (["--out", "missing.npy"], ["--out", "missing.npy", "does not exist"]),
    (["--in", "gone.npy", "--out", "test"], ["--in", "gone.npy", "does not exist"]),
    (["--out", "test", "--limit", "0"], ["--limit = 0 must be at least 1"]),
    (["--out", "test", "--background", "nowhere"], ["nowhere"]),
])
def test_ood_refuses_bad_input_in_one_line(run_dir, capsys, argv, fragments):
    assert_main_error(capsys, ["ood", str(run_dir), *argv, "--quiet"], *fragments)


def test_num_steps_is_refused_for_importance_sampling(run_dir, capsys):
    assert_main_error(capsys, ["evaluate", str(run_dir), "--num-steps", "10", "--quiet"],
                      "--num-steps 10", "--method is", "--method ais")
    assert_main_error(capsys, ["evaluate", str(run_dir), "--method", "ais", "--num-steps", "0",
                               "--quiet"], "--num-steps = 0 must be at least 1")


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """A second tiny run on the same data, with a mixture-of-Gaussians prior."""
    out = tmp_path_factory.mktemp("other") / "run"
    pyrovae.train(tiny_config(model={"prior": {"type": "mog", "components": 3}}), out=out,
                  progress=False)
    return out


def test_compare_reports_paired_differences(run_dir, other_run, capsys):
    argv = ["compare", str(run_dir), str(other_run), "--num-samples", "20", "--limit", "64",
            "--quiet"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "is" and result["num_examples"] == 64
    assert result["num_repeats"] == 2 and result["dataset"] == "mnist"
    a, b = result["scores"]
    (d,) = result["differences"]
    assert (a["name"], b["name"], d["name"], d["reference"]) == (
        str(run_dir), str(other_run), str(other_run), str(run_dir))
    assert d["mean"] == pytest.approx(b["log_likelihood"] - a["log_likelihood"],
                                      abs=1e-3)  # float32 means of ~-500 nats
    # the examples' difficulty is shared by both models and cancels in the paired difference
    assert d["se"] < min(a["se"], b["se"])
    assert d["mc_error"] > 0

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "64 test examples of mnist" in text and "K=20" in text and "(reference)" in text


def test_compare_refuses_runs_on_different_test_sets(run_dir, tmp_path, capsys):
    (tmp_path / "grey").mkdir()
    grey = untrained_run(tmp_path / "grey", likelihood={"type": "continuous_bernoulli"},
                         data={"binarize": "none"})
    assert_main_error(capsys, ["compare", str(run_dir), str(grey), "--quiet"],
                      "different test sets", "test binarization")
    assert_main_error(capsys, ["compare", str(run_dir), "--quiet"], "at least two")
    assert_main_error(capsys, ["compare", str(run_dir), str(run_dir), "--quiet"], "twice")


def test_json_output_is_strict_json():
    from pyrovae.cli.report import to_json

    text = to_json({"pareto_k_max": float("inf"), "k": [float("-inf"), float("nan"), 0.5]})
    assert text == '{"pareto_k_max": "inf", "k": ["-inf", "nan", 0.5]}'
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))


def test_eval_num_samples_zero_skips_the_log_likelihood(tmp_path, capsys):
    config = tiny_config(eval={"num_samples": 0}, data={"train_limit": 128, "test_limit": 32})
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "log-likelihood" not in capsys.readouterr().out
    assert_main_error(capsys, ["evaluate", str(tmp_path / "r"), "--quiet"], "give --num-samples")


# ---------------------------------------------------------------------------- plot
def untrained_run(run_dir: Path, data: dict | None = None, **model) -> Path:
    config = pyrovae.resolve_config(tiny_config(model=model, data=data or {}))
    write_config(run_dir, config)
    save_checkpoint(run_dir, {"epoch": 0,
                              "model": pyrovae.VAE.from_resolved_config(config).state_dict()})
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int | str, Path]:
    """Run directories: a 2-D latent space (trained for one tiny epoch), an 8-D one and a
    class-conditional one (untrained: the refusals happen before any data is needed, and the
    class rows need none), and a 2-D one on unlabelled data (an array file without labels)."""
    run2 = tmp_path_factory.mktemp("run2")
    config = tiny_config(model={"latent_dim": 2}, data={"train_limit": 256, "test_limit": 256})
    pyrovae.train(config, out=run2, progress=False)
    unlabelled = tmp_path_factory.mktemp("unlabelled")
    array = unlabelled / "x.npy"
    np.save(array, np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8))
    config = tiny_config(model={"latent_dim": 2},
                         data={"dataset": "array", "path": str(array), "train_limit": 0,
                               "test_limit": 0, "test_fraction": 0.5})
    pyrovae.train(config, out=unlabelled / "run", progress=False)
    return {2: run2, 8: untrained_run(tmp_path_factory.mktemp("run8"), latent_dim=8),
            "conditional": untrained_run(tmp_path_factory.mktemp("runc"),
                                         prior={"type": "conditional", "init_spread": 3.0}),
            "unlabelled": unlabelled / "run"}


@pytest.mark.parametrize("run", [2, 8, "conditional", "unlabelled"])
def test_every_plot_kind_on_every_kind_of_run_draws_or_refuses_in_one_line(run, runs, tmp_path,
                                                                          capsys):
    drawn = set()
    for kind in FIGURE_KINDS:
        out = tmp_path / f"{kind}.png"
        code = main(["plot", str(runs[run]), "--kind", kind, "--out", str(out), "--device",
                     "cpu"])
        err = capsys.readouterr().err
        if code == 0:
            assert_picture(out)
            drawn.add(kind)
        else:
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (kind, err)
            assert not out.exists()
    # every kind of a 2-D latent space but the class rows draws, labelled or not
    if run in (2, "unlabelled"):
        assert drawn == set(FIGURE_KINDS) - {"classes"}, drawn


@pytest.mark.parametrize("kind", FIGURE_KINDS)
def test_plot_command_draws_each_kind(kind, runs, capsys, tmp_path):
    """The command writes figures.draw's figure of the run (whose legibility is checked in
    tests/viz/test_figures.py): the same pixels as drawing it here."""
    run_dir = runs["conditional" if kind == "classes" else 2]
    assert main(["plot", str(run_dir), "--kind", kind, "--device", "cpu"]) == 0
    path = run_dir / f"{kind}.png"
    assert f"wrote the {kind} figure to {path}" in capsys.readouterr().out
    assert_picture(path)
    vae, config, _ = pyrovae.load_run(run_dir, device="cpu")
    data = pyrovae.load_data(config["data"]) if kind in NEEDS_DATA else None
    expected = save_figure(figures.draw(kind, vae, data=data, metrics=read_metrics(run_dir)),
                           tmp_path / "expected.png")
    assert np.array_equal(matplotlib.image.imread(path), matplotlib.image.imread(expected))


def test_plot_command_writes_to_out(runs, tmp_path):
    out = tmp_path / "deep" / "samples.png"
    assert main(["plot", str(runs[8]), "--kind", "samples", "--out", str(out)]) == 0
    assert_picture(out)


@pytest.mark.parametrize("kind", ["latent", "manifold"])
def test_two_dimensional_figures_refuse_other_latent_sizes(kind, runs, tmp_path, capsys):
    out = tmp_path / f"{kind}.png"
    assert_main_error(capsys, ["plot", str(runs[8]), "--kind", kind, "--out", str(out)],
                      "latent_dim = 8", "model.latent_dim = 2")
    assert not out.exists()


def test_class_rows_refuse_a_prior_without_labels(runs, tmp_path, capsys):
    out = tmp_path / "classes.png"
    assert_main_error(capsys, ["plot", str(runs[8]), "--kind", "classes", "--out", str(out)],
                      "model.prior = 'standard_normal'", "'conditional'")
    assert not out.exists()


def test_plot_command_refuses_a_run_without_metrics(runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.toml", "checkpoint.pt"):
        (run_dir / name).write_bytes((runs[2] / name).read_bytes())
    assert_main_error(capsys, ["plot", str(run_dir), "--kind", "curves"], "no metrics yet")


# ---------------------------------------------------------------------------- --program
def test_train_a_program_then_every_command_rebuilds_it(tmp_path, tiny_toml, capsys):
    """``train --program`` records the factory in the run directory; evaluate, resume,
    sample, plot and describe rebuild the module from it (tests/program_fixtures.py, importable
    here because the tests folder is on sys.path)."""
    run = tmp_path / "run"
    assert main(["train", "--config", str(tiny_toml), "--out", str(run), "--quiet",
                 "--program", "program_fixtures:wrapped_vae", "--set", "eval.num_samples=0"]) == 0
    assert load_config(run / "config.toml")["model"]["program"] == "program_fixtures:wrapped_vae"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--num-samples", "5", "--limit", "8", "--json",
                 "--quiet", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 8
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert [row["epoch"] for row in read_metrics(run)] == [1, 2]
    assert main(["sample", str(run), "--num", "4", "--out", str(tmp_path / "s.png"),
                 "--device", "cpu"]) == 0
    assert_picture(tmp_path / "s.png")
    assert main(["plot", str(run), "--kind", "reconstructions", "--device", "cpu"]) == 0
    assert_picture(run / "reconstructions.png")
    assert main(["describe", str(run)]) == 0
    assert "program program_fixtures.Wrapped" in capsys.readouterr().out
    assert_main_error(capsys, ["plot", str(run), "--kind", "latent", "--device", "cpu"],
                      "the 'latent' figure reads the latent space of pyrovae's VAE",
                      "samples, reconstructions, curves")


def test_a_program_that_cannot_be_imported_is_a_one_line_error(tmp_path, tiny_toml):
    proc = run_cli("train", "--config", str(tiny_toml), "--out", str(tmp_path / "run"),
                   "--program", "no_such_package.models:build", check=False)
    assert_one_line_error(proc, "model.program = 'no_such_package.models:build'",
                          "importing 'no_such_package.models' failed", "PYTHONPATH")
    assert not (tmp_path / "run").exists()


PROGRAM_SOURCE = '''
"""A user's program module, kept in a folder of its own."""
from pyrovae import VAE


def build(config):
    return VAE.from_resolved_config(config)
'''


def test_a_program_run_keeps_its_source_and_rebuilds_from_it_elsewhere(tmp_path, tiny_toml,
                                                                       capsys, monkeypatch):
    """``train --program`` keeps a copy of the module's file in the run directory; from a
    folder where the module cannot be imported, evaluate rebuilds the model from that copy
    and says so in one line."""
    import sys

    home = tmp_path / "home"
    home.mkdir()
    (home / "p23_user_program.py").write_text(PROGRAM_SOURCE)
    run = tmp_path / "run"
    monkeypatch.chdir(home)  # the current folder is searched first
    assert main(["train", "--config", str(tiny_toml), "--out", str(run), "--quiet",
                 "--program", "p23_user_program:build", "--set", "eval.num_samples=0"]) == 0
    assert (run / "program.py").read_text() == PROGRAM_SOURCE
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "p23_user_program")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--num-samples", "5", "--limit", "8", "--json",
                 "--quiet", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["num_examples"] == 8
    assert err.count("\n") == 1 and "module 'p23_user_program' is not importable here" in err
    assert str(run / "program.py") in err, err
    sys.modules.pop("p23_user_program", None)
