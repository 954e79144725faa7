"""Research-grade training: the optimizer and learning-rate schedule of ``[train]``, gradient
clipping, the validation split, early stopping and ``best.pt``; each key's bad values refused
in one line; resume mid-schedule and mid-patience, and the replayed step under a schedule and
clipping, bitwise."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from test_trainer import HostReadCounter

import pyrovae
from pyrovae import CheckpointError, ConfigError, DataError, Trainer, load_data, resolve_config
from pyrovae.training import load_run
from pyrovae.training.optim import LR_SCHEDULES, OPTIMIZERS, burda_milestones
from pyrovae.training.run_dir import BEST_FILE, CHECKPOINT_FILE, load_checkpoint, read_metrics

from conftest import numbers, tiny_config

#: float64 unit roundoff (a learning rate is a Python float)
EPS64 = torch.finfo(torch.float64).eps


def small(**train):
    """The tiny config on 256 training and 64 test images (4 steps of 64 per epoch)."""
    config = tiny_config(train=train)
    config["data"].update(train_limit=256, test_limit=64)
    config["train"]["eval_batch_size"] = 64
    return config


#: a recipe using every key: warm-up then steps, clipping that bites, a validation split,
#: and an early stop that a huge min_delta makes certain (every epoch after the first is
#: "no improvement"): epochs 2 and 3 are bad, the run stops after epoch 3 of 6
RECIPE = {
    "epochs": 6,
    "optimizer": {"type": "adam", "eps": 1e-4},
    "lr_schedule": {"type": "step", "step_epochs": 1, "gamma": 0.5, "warmup_epochs": 1},
    "grad_clip": 1.0,
    "validation": 64,
    "early_stopping": {"patience": 2, "min_delta": 1e6},
}


# ---------------------------------------------------------------------- bad values, one line
BAD_VALUES = [
    ({"validation": -1}, r"train\.validation = -1 must be >= 0"),
    ({"validation": 1.5}, r"train\.validation = 1\.5 must be a fraction below 1"),
    ({"validation": "all"}, r"train\.validation = 'all' has the wrong type"),
    ({"validation_seed": -1}, r"train\.validation_seed = -1 must be >= 0"),
    ({"grad_clip": -1.0}, r"train\.grad_clip = -1\.0 must be >= 0"),
    ({"grad_clip": math.inf}, r"train\.grad_clip = inf must be finite"),
    ({"early_stopping": 50}, r"train\.early_stopping must be a table, got 50"),
    ({"early_stopping": {"patience": -1}}, r"train\.early_stopping\.patience = -1 must be >= 0"),
    ({"early_stopping": {"epochs": 5}}, r"train\.early_stopping\.epochs is not a known key"),
    (
        {"validation": 10, "early_stopping": {"min_delta": -0.5}},
        r"train\.early_stopping\.min_delta = -0\.5 must be >= 0",
    ),
    ({"early_stopping": {"patience": 5}}, r"patience = 5 needs a validation split"),
    ({"optimizer": "nadam"}, r"train\.optimizer\.type = 'nadam' is not a known optimizer"),
    (
        {"optimizer": {"type": "adam", "momentum": 0.9}},
        r"train\.optimizer\.momentum is not a parameter of optimizer 'adam'",
    ),
    ({"optimizer": {"type": "adam", "betas": [0.9]}}, r"betas = \[0\.9\] must hold 2"),
    (
        {"optimizer": {"type": "adamw", "betas": [0.9, 1.0]}},
        r"train\.optimizer\.betas\[1\] = 1\.0 must be >= 0 and less than 1",
    ),
    ({"optimizer": {"type": "adam", "eps": 0}}, r"train\.optimizer\.eps = 0\.0 must be positive"),
    (
        {"optimizer": {"type": "sgd", "momentum": -0.1}},
        r"train\.optimizer\.momentum = -0\.1 must be >= 0",
    ),
    ({"optimizer": {"type": "sgd", "nesterov": True}}, r"nesterov = true needs momentum > 0"),
    ({"optimizer": {"type": "rmsprop", "alpha": 1.0}}, r"train\.optimizer\.alpha = 1\.0 must"),
    ({"lr_schedule": "linear"}, r"train\.lr_schedule\.type = 'linear' is not a known lr_sch"),
    ({"lr_schedule": {"type": "step", "gamma": 0}}, r"train\.lr_schedule\.gamma = 0\.0 must"),
    (
        {"lr_schedule": {"type": "exponential", "gamma": 1.5}},
        r"train\.lr_schedule\.gamma = 1\.5 must be positive and at most 1",
    ),
    (
        {"lr_schedule": {"type": "step", "step_epochs": 0}},
        r"train\.lr_schedule\.step_epochs = 0 must be at least 1",
    ),
    (
        {"lr_schedule": {"type": "cosine", "min_lr": -1e-5}},
        r"train\.lr_schedule\.min_lr = -1e-05 must be >= 0",
    ),
    (
        {"lr_schedule": {"type": "burda", "stages": 0}},
        r"train\.lr_schedule\.stages = 0 must be at least 1",
    ),
    (
        {"lr_schedule": {"warmup_epochs": -2}},
        r"train\.lr_schedule\.warmup_epochs = -2 must be >= 0",
    ),
    (
        {"lr_schedule": {"type": "constant", "epochs": 5}},
        r"train\.lr_schedule\.epochs is not a parameter of lr_schedule 'constant'",
    ),
]


@pytest.mark.parametrize(("train", "message"), BAD_VALUES)
def test_bad_values_are_refused_in_one_line(train, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve_config({"train": train})
    assert "\n" not in str(info.value)


def test_a_validation_split_that_leaves_nothing_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"train\.validation = 256 holds out 256 of the 256") as e:
        pyrovae.train(small(validation=256), out=tmp_path / "run", progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- the defaults
def test_the_defaults_are_the_trainers_fused_adam_at_a_constant_rate(tiny):
    config = resolve_config(tiny)
    trainer = Trainer(
        pyrovae.VAE.from_resolved_config(config),
        load_data(config["data"]),
        config,
        torch.device("cpu"),
        progress=False,
    )
    optimizer = trainer.optimizer
    assert type(optimizer) is torch.optim.Adam and trainer.lr_schedule is None
    group = optimizer.param_groups[0]
    assert group["fused"] and group["lr"] == config["train"]["lr"]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.9, 0.999), 1e-8, 0.0)
    assert not trainer.clipped and trainer.data.validation_images is None
    row = trainer.fit()[0]
    assert {"epoch", "train_elbo", "test_elbo", "world_size", "lr"} <= set(row)
    assert "validation_elbo" not in row


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_torchs_own(name):
    spec = OPTIMIZERS.resolve({"type": name}, "train.optimizer")
    optimizer = OPTIMIZERS.build(spec, "train.optimizer").build(
        [torch.nn.Parameter(torch.zeros(3))], lr=0.01
    )
    assert type(optimizer).__name__.lower() == name
    assert optimizer.param_groups[0]["lr"] == 0.01


# ---------------------------------------------------------------------- the schedules
def rates(spec, epochs, lr=1e-3):
    """The learning rate of each of ``epochs`` epochs under the schedule ``spec``."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = LR_SCHEDULES.build(spec, "train.lr_schedule", epochs=epochs).build(optimizer)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return out


def test_burdas_schedule_is_3_to_the_i_passes_at_lr_times_10_to_the_minus_i_over_7():
    assert burda_milestones(8) == [1, 4, 13, 40, 121, 364, 1093]
    assert sum(3**i for i in range(8)) == 3280
    got = rates({"type": "burda", "stages": 4}, 45)
    stage = [i for i in range(4) for _ in range(3**i)] + [3] * (45 - 40)
    # the scheduler multiplies by gamma once per stage: i roundings of float64
    for lr, i in zip(got, stage, strict=True):
        assert lr == pytest.approx(1e-3 * 10 ** (-i / 7), rel=8 * EPS64)


@pytest.mark.parametrize(
    ("spec", "closed_form"),
    [
        ({"type": "constant"}, lambda e: 1e-3),
        ({"type": "step", "step_epochs": 2, "gamma": 0.5}, lambda e: 1e-3 * 0.5 ** (e // 2)),
        ({"type": "exponential", "gamma": 0.9}, lambda e: 1e-3 * 0.9**e),
        (
            {"type": "cosine", "min_lr": 1e-5},
            lambda e: 1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 6)) / 2,
        ),
    ],
)
def test_each_schedule_after_its_warm_up(spec, closed_form):
    """After ``W`` warm-up epochs at ``lr (e + 1) / (W + 1)``, epoch ``W + e`` has the
    schedule's closed form at ``e``; the schedulers multiply step by step, so 6 epochs of
    float64 rounding (a few eps each) is the tolerance."""
    got = rates({**spec, "warmup_epochs": 3}, 9)
    for e in range(3):
        assert got[e] == pytest.approx(1e-3 * (e + 1) / 4, rel=16 * EPS64)
    for e in range(6):
        assert got[3 + e] == pytest.approx(closed_form(e), rel=64 * EPS64)


# ---------------------------------------------------------------------- a recipe end to end
def test_validation_early_stopping_and_best_pt(tmp_path, capsys):
    out = tmp_path / "run"
    trainer = pyrovae.train(small(**RECIPE), out=out, progress=True)
    rows = read_metrics(out)
    # the split: 64 of the 256 training images held out, never the test set
    assert trainer.data.num_train == 192 and trainer.data.validation_images.shape == (64, 784)
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # stopped: two epochs without a gain
    assert all(math.isfinite(r["validation_elbo"]) for r in rows)
    assert [r["lr"] for r in rows] == [5e-4, 1e-3, 5e-4]  # warm-up, then the steps
    assert trainer.selection.stopped and trainer.selection.best_epoch == 1
    err = capsys.readouterr().err
    stop = [line for line in err.splitlines() if "early stopping" in line]
    assert stop == [
        "early stopping after epoch 3: the validation ELBO has not improved by more than "
        f"1e+06 nats for 2 epochs; best epoch 1 (validation ELBO {rows[0]['validation_elbo']:.2f}"
        " nats/example, kept as best.pt)"
    ]
    assert any(
        "epoch 1/6: train ELBO" in line and ", validation ELBO " in line and ", lr 0.0005 (" in line
        for line in err.splitlines()
    )
    # best.pt is the first epoch's state, checkpoint.pt the last; loading picks the best
    assert load_checkpoint(out, name=BEST_FILE)["epoch"] == 1
    assert load_checkpoint(out, name=CHECKPOINT_FILE)["epoch"] == 3
    _, _, best = load_run(out, device="cpu")
    _, _, last = load_run(out, device="cpu", checkpoint="last")
    assert (best["checkpoint"], best["epoch"]) == ("best", 1)
    assert (last["checkpoint"], last["epoch"]) == ("last", 3)
    # a stopped run resumed stays stopped
    resumed = pyrovae.resume(out, progress=False)
    assert resumed.epoch == 3 and read_metrics(out) == rows


def test_best_is_refused_for_a_run_without_a_validation_split(tmp_path):
    pyrovae.train(small(), out=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match=r"has no best\.pt: it was trained without") as e:
        load_run(tmp_path / "run", device="cpu", checkpoint="best")
    assert "\n" not in str(e.value)
    assert load_run(tmp_path / "run", device="cpu")[2]["checkpoint"] == "last"


class Killed(Exception):
    """The process dies in the middle of an epoch."""


def test_a_run_killed_mid_schedule_and_mid_patience_resumes_bitwise(tmp_path, monkeypatch):
    full = pyrovae.train(small(**RECIPE), out=tmp_path / "full", progress=False)
    train_epoch = Trainer.train_epoch

    def dies_in_epoch_3(self):
        if self.epoch == 2:  # after the warm-up, one step down, one bad epoch counted
            assert self.selection.bad_epochs == 1 and self.lr_schedule is not None
            raise Killed
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(Killed):
        pyrovae.train(small(**RECIPE), out=tmp_path / "split", progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    torch.rand(3)  # resuming must not depend on the global random state in between
    resumed = pyrovae.resume(tmp_path / "split", progress=False)
    assert resumed.epoch == full.epoch == 3 and resumed.selection.stopped
    for name in (CHECKPOINT_FILE, BEST_FILE):
        a, b = (
            load_checkpoint(tmp_path / "full", name=name),
            load_checkpoint(tmp_path / "split", name=name),
        )
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (name, key)
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
        assert a["lr_schedule"] == b["lr_schedule"] and a["selection"] == b["selection"]
    assert numbers(read_metrics(tmp_path / "split")) == numbers(read_metrics(tmp_path / "full"))


def test_the_replayed_step_under_a_schedule_and_clipping_is_the_eager_one():
    """Training with the recorded graph replayed and with the Pyro programs run at every step
    ends in bitwise the same parameters; the schedule forces no new record (one signature for
    the full batches, one for the last), and clipping reads nothing back."""
    trained = {}
    for replay in (True, False):
        config = small(**{**RECIPE, "replay_steps": replay, "early_stopping": {}, "epochs": 3})
        trainer = pyrovae.train(config, progress=False)
        trained[replay] = trainer
    for (name, p), q in zip(
        trained[True].vae.named_parameters(), trained[False].vae.parameters(), strict=True
    ):
        assert torch.equal(p, q), name
    assert [r["lr"] for r in trained[True].metrics] == [5e-4, 1e-3, 5e-4]
    records = trained[True].elbo_gradient.records
    assert all(v == "replayed" for v in records.values()) and len(records) == 1, records


def test_a_clipped_step_reads_nothing_back(monkeypatch):
    config = resolve_config(small(grad_clip=0.5))
    trainer = Trainer(
        pyrovae.VAE.from_resolved_config(config),
        load_data(config["data"]),
        config,
        torch.device("cpu"),
        progress=False,
    )
    batches = trainer.data.train_batches(64, trainer.data_generator)
    with pyro.validation_enabled(False):
        for _ in range(2):  # recorded and checked
            trainer.train_step(*next(batches))
        counter = HostReadCounter(monkeypatch)
        trainer.train_step(*next(batches))
    assert counter.calls == []
    # the clipping bites: the gradient's norm after the step is at most grad_clip
    norm = torch.nn.utils.get_total_norm([p.grad for p in trainer.clipped])
    assert norm <= 0.5 * (1 + 1e-5)  # clip_grad_norm_ scales by max_norm / (norm + 1e-6)


# ---------------------------------------------------------------------- the command line
def test_the_commands_say_which_state_they_score(tmp_path, capsys):
    from pyrovae.cli import main
    from pyrovae.config import dumps_toml

    config = tmp_path / "recipe.toml"
    recipe = small(**{**RECIPE, "epochs": 2, "early_stopping": {}})
    recipe["eval"] = {"num_samples": 0}
    config.write_text(dumps_toml(recipe))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    best = load_checkpoint(run, name=BEST_FILE)["epoch"]
    assert f"kept as best.pt (`pyrovae evaluate {run}`" in capsys.readouterr().out
    scored = {}
    for choice in ([], ["--checkpoint", "best"], ["--checkpoint", "last"]):
        assert (
            main(["evaluate", str(run), "--num-samples", "2", "--limit", "4", "--quiet", *choice])
            == 0
        )
        scored[tuple(choice)] = capsys.readouterr().out.splitlines()[0]
    assert scored[()] == scored[("--checkpoint", "best")]
    assert f"(epoch {best}, best.pt: the best validation ELBO)" in scored[()]
    assert "(epoch 2, checkpoint.pt: the last epoch)" in scored[("--checkpoint", "last")]
    # the curves of the run: train, validation and test ELBO, and the learning rate
    assert main(["plot", str(run), "--kind", "curves", "--checkpoint", "last"]) == 0
    assert (run / "curves.png").stat().st_size > 0
    # a run without a validation split has no best state: one line, exit code 2
    plain = tmp_path / "plain"
    pyrovae.train(small(), out=plain, progress=False)
    assert main(["evaluate", str(plain), "--checkpoint", "best", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no best.pt" in err and "\n" not in err


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_validation_split_is_held_out_of_the_training_set(in_memory):
    """The same examples are held out whether the training set is held or streamed; they are
    binarized once (like the test set) and are not among the training examples."""
    data_config = {**small()["data"], "in_memory": in_memory, "workers": 0}
    whole = load_data(data_config)
    data = load_data(data_config, validation=0.25, validation_seed=3)
    assert data.num_train == 192 and data.validation_images.shape == (64, 784)
    assert set(data.validation_images.unique().tolist()) <= {0.0, 1.0}
    again = load_data({**data_config, "in_memory": True}, validation=0.25, validation_seed=3)
    assert torch.equal(data.validation_labels, again.validation_labels)
    assert torch.equal(data.validation_images, again.validation_images)
    if in_memory:  # 64 of the 256 training rows are gone, the other 192 kept in order
        kept = [tuple(row.tolist()) for row in data.train_images]
        rows = [tuple(row.tolist()) for row in whole.train_images]
        assert [r for r in rows if r in set(kept)] == kept and len(rows) - len(kept) == 64
