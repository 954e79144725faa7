"""Runs of two processes (torchrun, gloo on CPU, one thread each) against runs of one.

Two launches share the work of most tests (a launch costs seconds of start-up on a 2-core
machine): ``distributed_worker.py all`` computes the averaged gradients, trains, resumes and
evaluates; the references are computed here, in one process. Training uses the worker's
``delta`` guide, which draws no random numbers, so the two-process steps can equal the
one-process steps (with a random guide the processes draw different noise from one process:
equal in distribution only). The gradient check uses the real diagonal-Normal guide with the
same per-part draws in both.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from distributed_worker import (
    GRADIENT_BATCHES,
    OOD_OPTIONS,
    gradient_batch,
    gradient_vae,
    part_seed,
    register_delta_guide,
)

import pyrovae
from pyrovae import GUIDES, Trace_ELBO, cli, distributed
from pyrovae.config import dumps_toml
from pyrovae.errors import ConfigError
from pyrovae.evaluation import evaluate_test_set
from pyrovae.evaluation.bdmc import bdmc
from pyrovae.training import EVAL_SEED, load_run, run_dir

from conftest import TESTS, numbers, tiny_config

#: a launch that takes longer than this has hung (a healthy one takes ~15 s on 2 busy cores)
LAUNCH_TIMEOUT = 240


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """``tests/distributed_worker.py ARGS`` under torchrun, one torch thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(TESTS / "distributed_worker.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT)


def delta_config(epochs: int = 2) -> dict[str, Any]:
    """A tiny run whose training draws no random numbers (the worker's ``delta`` guide); 200
    examples in batches of 64: three full steps and an uneven last one (8 of 2 processes'
    parts of 32, 4 of 4 and 4)."""
    config = tiny_config(
        model={"latent_dim": 4, "guide": {"type": "delta"}, "encoder": {"type": "mlp",
               "hidden": [16]}, "decoder": {"type": "mlp", "hidden": [16]}},
        train={"epochs": epochs, "batch_size": 64},
        eval={"num_samples": 0},
    )
    config["data"].update(train_limit=200, test_limit=40)
    return config


def recipe_config() -> dict[str, Any]:
    """The delta run with a research recipe: SGD with momentum, a warm-up then a step
    schedule, clipping that bites, 40 of the 200 examples held out to validate, and an early
    stop after epoch 3 (a huge min_delta makes epochs 2 and 3 count as no improvement)."""
    config = delta_config(epochs=5)
    config["train"].update(
        optimizer={"type": "sgd", "momentum": 0.9}, lr=0.05, grad_clip=1.0, validation=40,
        lr_schedule={"type": "step", "step_epochs": 1, "gamma": 0.5, "warmup_epochs": 1},
        early_stopping={"patience": 2, "min_delta": 1e6},
    )
    return config


@pytest.fixture(scope="module")
def delta_guide():
    register_delta_guide()
    yield
    GUIDES.unregister("delta")  # leave the registry as the other tests know it


@pytest.fixture(scope="module")
def launched(tmp_path_factory, delta_guide) -> Path:
    """The worker's ``all`` launch; its folder also holds ``ref`` (two epochs in one
    process) and ``half1`` (one epoch in one process, resumed by the launch)."""
    out = tmp_path_factory.mktemp("distributed")
    config = out / "delta.toml"
    config.write_text(dumps_toml(delta_config()))
    random = delta_config()
    random["model"]["guide"] = {"type": "diag_normal"}
    (out / "random.toml").write_text(dumps_toml(random))
    (out / "recipe.toml").write_text(dumps_toml(recipe_config()))
    pyrovae.train(recipe_config(), out=out / "recipe_ref", progress=False)
    pyrovae.train(delta_config(), out=out / "ref", progress=False)
    pyrovae.train(delta_config(epochs=1), out=out / "half1", progress=False)
    done = torchrun("all", str(out), str(config), str(out / "half1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def assert_same_parameters(run: Path, ref: Path) -> None:
    """Trained parameters of a run of two processes and of one, to float32 rounding.

    Tolerance: the two sum the same per-example gradients in different groupings (per part,
    then across parts), so each step's gradient differs by a few float32 roundings, ~1e-6
    relative; Adam's update is lr * m / (sqrt(v) + eps), bounded by ~lr = 1e-3 and moved by
    about lr times that relative error per step, so after 8 steps parameters differ by
    ~1e-8; 1e-6 leaves a factor 100 for rounding in the update itself."""
    state, ref_state = run_dir.load_checkpoint(run), run_dir.load_checkpoint(ref)
    assert state["epoch"] == ref_state["epoch"]
    for name, value in ref_state["model"].items():
        torch.testing.assert_close(state["model"][name], value, rtol=0, atol=1e-6, msg=name)


def assert_same_metrics(run: Path, ref: Path, world_sizes: list[int]) -> None:
    rows, ref_rows = run_dir.read_metrics(run), run_dir.read_metrics(ref)
    assert [r["world_size"] for r in rows] == world_sizes
    for row, ref_row in zip(rows, ref_rows, strict=True):
        for key in ("train_elbo", "test_elbo"):  # ~500 nats: 1e-5 relative is float32 slack
            assert row[key] == pytest.approx(ref_row[key], rel=1e-5)


def test_two_processes_average_the_gradient_of_the_global_batch(launched):
    """The all-reduced gradient equals the gradient of the global batch's mean loss with the
    same draws, computed here as one autograd graph (even, uneven and empty parts).

    Tolerance: the same float32 products summed in another grouping and scaled by n_r / B
    instead of 1 / B: a few roundings of 2**-24 relative to the parts' gradients, so 1e-6
    relative to the largest entry of each tensor (plus 1e-6 relative)."""
    got = torch.load(launched / "gradients.pt")
    vae = gradient_vae()
    elbo = Trace_ELBO()
    params = dict(vae.named_parameters())
    for n in GRADIENT_BATCHES:
        total = torch.zeros(())
        with vae.param_store_registration(False):
            for rank, part in enumerate(torch.tensor_split(gradient_batch(n), 2)):
                if part.shape[0]:
                    torch.manual_seed(part_seed(n, rank))
                    total = total + elbo.differentiable_loss(vae.model, vae.guide, part, None)
        vae.zero_grad(set_to_none=True)
        (total / n).backward()
        torch.testing.assert_close(got[n]["loss"], total.detach(), rtol=1e-6, atol=0)
        for name, grad in got[n]["grads"].items():
            want = params[name.removeprefix("vae.")].grad
            scale = want.abs().max().item()
            torch.testing.assert_close(grad, want, rtol=1e-6, atol=1e-6 * scale, msg=name)


def test_two_processes_train_as_one(launched):
    assert_same_parameters(launched / "run2", launched / "ref")
    assert_same_metrics(launched / "run2", launched / "ref", [2, 2])
    assert run_dir.load_checkpoint(launched / "run2")["world_size"] == 2


def test_two_processes_follow_a_recipe_as_one(launched):
    """The schedule, the clipping of the all-reduced gradient, the validation ELBO (rank 0's,
    shared) and the early stop are those of one process; the learning rates exactly."""
    assert_same_parameters(launched / "recipe2", launched / "recipe_ref")
    assert_same_metrics(launched / "recipe2", launched / "recipe_ref", [2, 2, 2])
    rows, ref_rows = (run_dir.read_metrics(launched / r) for r in ("recipe2", "recipe_ref"))
    assert [r["lr"] for r in rows] == [r["lr"] for r in ref_rows] == [0.025, 0.05, 0.025]
    for row, ref_row in zip(rows, ref_rows):
        assert row["validation_elbo"] == pytest.approx(ref_row["validation_elbo"], rel=1e-5)
    assert run_dir.load_checkpoint(launched / "recipe2", name=run_dir.BEST_FILE)["epoch"] == 1
    last = run_dir.load_checkpoint(launched / "recipe2")["selection"]
    assert last["stopped"] and last["best_epoch"] == 1
    assert last == run_dir.load_checkpoint(launched / "recipe_ref")["selection"]


def test_runs_resume_under_another_number_of_processes(launched):
    # one epoch under two processes, resumed by one ...
    pyrovae.resume(launched / "half2", epochs=2, progress=False)
    assert_same_parameters(launched / "half2", launched / "ref")
    assert_same_metrics(launched / "half2", launched / "ref", [2, 1])
    # ... and one epoch under one, resumed by two (in the launch)
    assert_same_parameters(launched / "half1", launched / "ref")
    assert_same_metrics(launched / "half1", launched / "ref", [1, 2])


def test_a_run_of_two_processes_resumed_by_two_ends_as_an_uninterrupted_one(launched):
    """With a guide that draws (rank 1 draws its own stream, seeded per epoch; rank 0's is
    checkpointed), bitwise."""
    state = run_dir.load_checkpoint(launched / "random_half")
    ref_state = run_dir.load_checkpoint(launched / "random2")
    for name, value in ref_state["model"].items():
        assert torch.equal(state["model"][name], value), name
    assert numbers(run_dir.read_metrics(launched / "random_half")) == numbers(
        run_dir.read_metrics(launched / "random2")
    )


def test_sharded_inference_gaps_do_not_depend_on_the_number_of_processes(
    launched, one_torch_thread
):
    """``evaluate --gaps`` of two processes: one process's numbers (each block of the local
    ELBO, and of IS, seeded by its first example's index; margin as for evaluate)."""
    got = json.loads((launched / "evaluate_gaps.json").read_text())
    vae, config, _ = load_run(launched / "run2", device="cpu")
    data = pyrovae.load_data(config["data"])
    y = vae.model_labels(data.test_labels)
    want = pyrovae.inference_gaps(
        vae, data.test_images[:10], None if y is None else y[:10], method="is",
        num_samples=12, num_elbo_samples=8, local=pyrovae.LocalOptimization(max_steps=10),
        max_batch_elements=60, seed=EVAL_SEED,
    ).summary()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
        else:
            assert got[key] == value, key


def test_sharded_ood_scores_do_not_depend_on_the_number_of_processes(
    launched, one_torch_thread, capsys
):
    """``pyrovae ood`` of two processes: one process's scores (per example: the same
    operations on the same inputs; the table and the training mean: margin as above)."""
    got = json.loads((launched / "ood.json").read_text())
    one = launched / "ood_one"
    assert cli.main(["ood", str(launched / "run2"), "--out", "test", *OOD_OPTIONS,
                     "--results", str(one)]) == 0
    want = json.loads(capsys.readouterr().out)
    assert got["train_nll"] == pytest.approx(want["train_nll"], rel=1e-6)
    for name, metrics in want["metrics"].items():
        assert got["metrics"][name] == pytest.approx(metrics, rel=1e-6), name
    rows = [(launched / "ood" / "scores.csv").read_text().splitlines(),
            (one / "scores.csv").read_text().splitlines()]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == 21
    for a, b in zip(rows[0][1:], rows[1][1:], strict=True):
        assert [float(v) for v in a.split(",")[1:]] == pytest.approx(
            [float(v) for v in b.split(",")[1:]], rel=1e-5, nan_ok=True), a


@pytest.mark.parametrize("method", ["is", "ais", "bdmc"])
def test_sharded_evaluation_does_not_depend_on_the_number_of_processes(
    launched, method, one_torch_thread
):
    """Each block of examples is seeded by its first example's index: the two processes'
    gathered estimates are one process's: the same float32 operations on the same inputs, on
    one thread as each of the two processes runs them (a float32 sum over the examples
    reduced with another thread count differs by about 1e-6 relative; 1e-6 is the margin)."""
    got = json.loads((launched / f"evaluate_{method}.json").read_text())
    vae, config, _ = load_run(launched / "run2", device="cpu")
    data = pyrovae.load_data(config["data"])
    if method == "bdmc":  # 10 simulated examples in blocks of 5: one block per process
        y = vae.model_labels(data.test_labels)
        result = bdmc(vae, data.test_images[:10], None if y is None else y[:10], 12, 3,
                      seed=EVAL_SEED, max_batch_elements=60)
        want = result.summary()
        got = {key: got[key] for key in want}
    else:
        want = evaluate_test_set(
            vae,
            data,
            config,
            num_samples=12,
            seed=EVAL_SEED,
            method=method,
            num_steps=4 if method == "ais" else None,
            max_batch_elements=60,  # blocks of 5 examples: 8 blocks, 4 per process
            progress=False,
        )
        assert got.keys() - want.keys() == {"epoch", "checkpoint"}
    for key, value in want.items():
        if isinstance(value, float):  # JSON holds inf and nan as strings
            assert float(got[key]) == pytest.approx(value, rel=1e-6, nan_ok=True), key
        else:
            assert got[key] == value, key


def test_an_error_on_one_process_ends_every_process(tmp_path, delta_guide):
    """Rank 1 alone meets bad data: the run ends (no hang) with its one-line error, printed
    once, a non-zero exit and no run directory files but the markers."""
    config = tmp_path / "delta.toml"
    config.write_text(dumps_toml(delta_config()))
    done = torchrun("bad-data-on-rank-1", str(config), str(tmp_path / "run"))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("pyrovae train:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "error:" in errors[0] and "the data hold nan" in errors[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_leaving_the_process_group_frees_it():
    """The group, and its gloo threads, are gone once ``process_group()`` is left, even when
    torch's lazily imported modules were first imported inside it (left alive, the threads
    met the interpreter's shutdown and aborted about one launch in five)."""
    done = torchrun("leaves-no-group", nproc=1)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_global_batch_must_divide_by_the_number_of_processes():
    distributed.check_global_batch(64, size=2)
    with pytest.raises(ConfigError, match=r"batch_size = 100 .* 3 processes .* 99 or 102"):
        distributed.check_global_batch(100, size=3)
    with pytest.raises(ConfigError, match=r"e\.g\. 4\)"):
        distributed.check_global_batch(1, size=4)


def test_block_shards_cover_the_examples_once_in_order():
    for num_examples, block, size in ((64, 5, 2), (3, 5, 2), (10, 1, 3), (0, 4, 2)):
        shards = []
        for r in range(size):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(distributed, "rank", lambda r=r: r)
                shards.append(distributed.block_shard(num_examples, block, size))
        assert shards[0][0] == 0 and shards[-1][1] == num_examples
        for (_, stop), (start, _) in itertools.pairwise(shards):
            assert stop == start and start % block in (0, num_examples % block)
