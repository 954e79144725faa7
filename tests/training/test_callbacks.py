"""Callbacks and the built-in loggers of ``[log]``: the hooks' order, a callback that stops
training, the richer metrics rows, the picture rewritten every ``images_every`` epochs, and
what CSV, TensorBoard (read back with its EventAccumulator) and MLflow (read back through its
client) hold; a missing optional extra is refused in one line."""

from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest

import pyrovae
from pyrovae import ConfigError
from pyrovae.training.run_dir import CSV_FILE, PICTURE_FILE, TENSORBOARD_DIR, load_checkpoint

from conftest import numbers, tiny_config

#: the keys every metrics row has, in this order
ROW_KEYS = ["epoch", "train_elbo", "test_elbo", "world_size", "lr", "train_rate",
            "train_distortion", "examples_per_second", "wall_time"]


class Recorder(pyrovae.Callback):
    """Records the hooks called, and stops after epoch ``stop_at`` (0: never)."""

    def __init__(self, run_dir=None, stop_at=0):
        self.calls, self.pictures, self.stop_at, self.run_dir = [], [], stop_at, run_dir

    def on_train_start(self, trainer):
        self.calls.append(("start", trainer.epoch))

    def on_epoch_end(self, trainer, row):
        self.calls.append(("epoch", row["epoch"]))
        if self.run_dir is not None:  # the run's picture as it is now
            self.pictures.append((self.run_dir / PICTURE_FILE).read_bytes())
        if row["epoch"] == self.stop_at:
            trainer.should_stop = True

    def on_train_end(self, trainer):
        self.calls.append(("end", trainer.epoch))


def test_a_callback_sees_every_epoch_and_may_stop_training(tmp_path):
    run = tmp_path / "run"
    recorder = Recorder(run, stop_at=2)
    trainer = pyrovae.train(tiny_config(train={"epochs": 3}), out=run, progress=False,
                            callbacks=[recorder])
    assert recorder.calls == [("start", 0), ("epoch", 1), ("epoch", 2), ("end", 2)]
    assert [r["epoch"] for r in trainer.metrics] == [1, 2]
    assert load_checkpoint(run)["epoch"] == 2  # the stopped epoch's checkpoint is written
    row = trainer.metrics[-1]
    assert list(row) == ROW_KEYS
    assert row["examples_per_second"] > 0 and row["wall_time"] > trainer.metrics[0]["wall_time"]
    # the picture is rewritten every epoch (log.images_every = 1), not only at the end
    assert len(recorder.pictures) == 2 and recorder.pictures[0] != recorder.pictures[1]
    # a resumed run goes on from the stopped epoch, its wall time counting on
    again = Recorder()
    resumed = pyrovae.resume(run, progress=False, callbacks=[again])
    assert again.calls == [("start", 2), ("epoch", 3), ("end", 3)]
    assert resumed.metrics[-1]["wall_time"] > row["wall_time"]


def test_callbacks_and_pictures_leave_the_training_numbers_as_they_are():
    """Pictures drawn between the epochs use their own seed and restore the random stream,
    and callbacks run outside the step: the numbers are bitwise those of a plain run."""
    config = tiny_config(train={"epochs": 2}, log={"images_every": 0})
    plain = pyrovae.train(config, progress=False).metrics
    config["log"]["images_every"] = 1
    watched = pyrovae.train(config, progress=False, callbacks=[Recorder()]).metrics
    for a, b in zip(plain, watched):
        assert (a["train_elbo"], a["test_elbo"]) == (b["train_elbo"], b["test_elbo"])


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_rows_hold_the_rate_and_distortion_of_the_training_objective(beta):
    """Read from the step's own draws: the training bound is -(distortion + beta * rate),
    up to float32 rounding of the per-batch sums (~1e-7 relative each, 8 batches)."""
    config = tiny_config(train={"epochs": 2}, objective={"type": "trace_elbo", "beta": beta})
    for row in pyrovae.train(config, progress=False).metrics:
        assert row["train_rate"] > 0  # a KL estimate, averaged over 512 examples
        bound = -(row["train_distortion"] + beta * row["train_rate"])
        assert row["train_elbo"] == pytest.approx(bound, rel=1e-5)


def test_step_rows_every_n_steps_read_the_same_numbers():
    """512 examples in batches of 64: 8 steps per epoch. Every step's row, weighted by its
    batch, averages to the epoch's row (float32 sums: 1e-5 relative), and reading them changes
    no number of the run."""
    config = tiny_config(train={"epochs": 2}, log={"every_steps": 1})
    seen = []

    class Steps(pyrovae.Callback):
        def on_step_end(self, trainer, row):
            seen.append(row["step"])

    trainer = pyrovae.train(config, progress=False, callbacks=[Steps()])
    assert seen == list(range(1, 17)) == [r["step"] for r in trainer.step_metrics]
    for epoch, row in enumerate(trainer.metrics, start=1):
        steps = [r for r in trainer.step_metrics if r["epoch"] == epoch]
        for key in ("train_elbo", "train_rate", "train_distortion"):
            assert sum(r[key] for r in steps) / 8 == pytest.approx(row[key], rel=1e-5)
    config["log"]["every_steps"] = 3
    every_third = pyrovae.train(config, progress=False)
    assert [r["step"] for r in every_third.step_metrics] == [3, 6, 11, 14]
    assert numbers(every_third.metrics) == numbers(trainer.metrics)


def test_on_train_end_is_called_when_training_fails():
    class Failing(Recorder):
        def on_epoch_end(self, trainer, row):
            super().on_epoch_end(trainer, row)
            raise RuntimeError("boom")

    failing = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        pyrovae.train(tiny_config(), progress=False, callbacks=[failing])
    assert failing.calls[-1] == ("end", 1)


@pytest.mark.parametrize(
    "callbacks, match",
    [([Recorder], "pass an instance"), ([object()], "none of the methods"), (Recorder(), "list")],
)
def test_a_callback_that_is_not_one_is_refused(callbacks, match):
    with pytest.raises(ConfigError, match=match):
        pyrovae.train(tiny_config(), progress=False, callbacks=callbacks)


def test_a_logger_needs_a_run_directory():
    with pytest.raises(ConfigError, match=r"log\.csv = true writes into the run directory"):
        pyrovae.train(tiny_config(log={"csv": True}), progress=False)


@pytest.mark.parametrize("logger, module", [("tensorboard", "torch.utils.tensorboard"),
                                            ("mlflow", "mlflow")])
def test_a_missing_extra_is_refused_in_one_line_naming_it(tmp_path, monkeypatch, logger, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=rf"pip install 'pyrovae\[{logger}\]'") as error:
        pyrovae.train(tiny_config(log={logger: True}), out=tmp_path / "run", progress=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_csv_holds_every_metrics_row(tmp_path):
    trainer = pyrovae.train(tiny_config(train={"epochs": 2}, log={"csv": True, "every_steps": 4}),
                            out=tmp_path / "run", progress=False)
    for name, expected_rows in ((CSV_FILE, trainer.metrics), ("steps.csv", trainer.step_metrics)):
        rows = list(csv.DictReader(io.StringIO((tmp_path / "run" / name).read_text())))
        assert [list(r) for r in rows] == [list(r) for r in expected_rows]
        for row, expected in zip(rows, expected_rows):
            assert {k: float(v) for k, v in row.items()} == pytest.approx(expected, rel=0, abs=0)
    assert [r["step"] for r in trainer.step_metrics] == [4, 8, 12, 16]


def _colour_config(tmp_path):
    """The tiny config on 3 x 8 x 6 colour images: red everywhere, green nowhere."""
    x = np.zeros((40, 8, 6, 3), np.uint8)
    x[..., 0] = np.random.default_rng(0).integers(0, 256, (40, 8, 6))
    np.save(tmp_path / "colour.npy", x)
    return tiny_config(data={"dataset": "array", "path": str(tmp_path / "colour.npy"),
                             "train_limit": 0, "test_limit": 0, "binarize": "none"},
                       model={"latent_dim": 3, "likelihood": {"type": "continuous_bernoulli"}},
                       train={"epochs": 2, "batch_size": 8},
                       log={"tensorboard": True, "every_steps": 2})


def test_tensorboard_event_files_read_back(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = pyrovae.train(_colour_config(tmp_path), out=tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / TENSORBOARD_DIR),
                              size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    for key in ("train_elbo", "test_elbo", "examples_per_second", "wall_time"):
        got = [(e.step, e.value) for e in events.Scalars(key)]
        # float32 is how TensorBoard stores a scalar
        assert got == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in trainer.metrics]
    assert {"samples", "reconstructions"} <= set(tags["images"])
    image = Image.open(io.BytesIO(events.Images("samples")[-1].encoded_image_string))
    pixels = np.asarray(image.convert("RGB")).astype(int)
    # colour kept: the model learned red images; green (never in the data) stays darker
    assert pixels[..., 0].mean() > pixels[..., 1].mean()
    kl = events.Histograms("kl_per_dimension")
    assert [e.step for e in kl] == [1, 2] and kl[-1].histogram_value.num == 3  # 3 dimensions
    assert "config/text_summary" in tags["tensors"]  # the resolved config as text
    assert "hparam/test_elbo" in tags["scalars"]  # and as hyper-parameters
    # 36 training examples in batches of 8: 5 steps per epoch, a step row every 2
    assert [e.step for e in events.Scalars("step/train_elbo")] == [2, 4, 7, 9]


def test_mlflow_run_reads_back_through_its_client(tmp_path):
    import mlflow

    run = tmp_path / "run"
    config = tiny_config(train={"epochs": 1}, log={"mlflow": True})
    pyrovae.train(config, out=run, progress=False)
    pyrovae.resume(run, epochs=2, progress=False)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("pyrovae").experiment_id])
    metrics = pyrovae.training.run_dir.read_metrics(run)
    history = client.get_metric_history(found.info.run_id, "test_elbo")
    # one MLflow run across the resume, one value per epoch
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["test_elbo"]) for r in metrics]
    assert found.data.params["train.lr"] == str(config["train"]["lr"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"samples", "reconstructions", "kl_per_dimension"} <= artifacts
    # the run directory keeps the store and its artifacts: nothing is written outside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_object_with_some_of_the_hooks_is_adapted_once():
    class Plain:  # not a pyrovae.Callback: only the hook it needs
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, trainer, row):
            self.epochs.append(row["epoch"])

    plain = Plain()
    trainer = pyrovae.train(tiny_config(train={"epochs": 2}), progress=False, callbacks=[plain])
    assert plain.epochs == [1, 2]
    assert all(isinstance(c, pyrovae.Callback) for c in trainer.callbacks)
