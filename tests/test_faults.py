"""Fault injection: bad input, damaged files, concurrent use, divergence and kills, tried as a
hostile user would. Every attack ends with exit code 2 and one line on stderr without a
traceback, and leaves every file as it was (nothing half-made, nothing changed); every fault
(kill -9 in training or in the checkpoint write, a full disk, two runs at once) loses nothing
already written, and ``--resume`` still ends bitwise where an uninterrupted run does.

The attacks are tables, one per class: config, data files, run directories, checkpoints,
resources, API inputs; they call :func:`pyrovae.cli.main` in-process (fast). The faults that
need a real process (kill -9, two runs at once) run ``python -m pyrovae`` in subprocesses.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pyrovae
from pyrovae import DataError
from pyrovae.cli import main
from pyrovae.config import dumps_toml
from pyrovae.training import run_dir
from pyrovae.training.run_guard import LOCK_FILE, hold_run_dir

from conftest import DATA_ROOT, numbers, tiny_config

RAW = DATA_ROOT / "MNIST" / "raw"


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and mode (folders as empty entries)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = (b"" if path.is_dir() else path.read_bytes(), path.stat().st_mode)
    return out


def assert_fails_cleanly(capsys, argv: list[str], *fragments: str, root: Path) -> str:
    """``main(argv)`` exits 2 with one line on stderr naming ``fragments``, no traceback, and
    every file under ``root`` as it was before."""
    before = snapshot(root)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert snapshot(root) == before, "the attack changed or left files"
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-epoch tiny run (copied by tests that damage it)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    pyrovae.train(tiny_config(train={"epochs": 2}), out=out, progress=False)
    return out


def copy_run(run: Path, to: Path) -> Path:
    to.mkdir()
    for path in run.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


# ---------------------------------------------------------------------------- config
def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


CONFIG_FILES = {
    # name: (content of the config file (None: a folder), what the error says)
    "missing": (..., "does not exist"),
    "folder": (None, "is a folder"),
    "binary": (bytes(range(256)) * 4, "is not UTF-8 text"),
    "latin-1": ("[train]\nlr = 1e-3 # caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "nested": (("x = " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nests"),
    "too large": (b"# " + b"x" * (1 << 20) + b"\n", "larger than"),
    "not toml": (b"[train\nlr = ", "is not valid TOML"),
    "unknown key": (b"[train]\nlearning_rate = 0.1\n", "train.learning_rate is not a known key"),
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_config_file_attacks(name, tmp_path, capsys):
    content, fragment = CONFIG_FILES[name]
    path = tmp_path / "config.toml"
    if content is None:
        path.mkdir()
    elif content is not ...:
        path.write_bytes(content)
    for argv in (["train", "--config", str(path), "--out", str(tmp_path / "run")],
                 ["describe", str(path)]):
        assert_fails_cleanly(capsys, argv, fragment, root=tmp_path)


OVERRIDES = [
    # --set values that fail a declared range, or options out of theirs
    (["--set", "train.lr=nan"], "train.lr = nan must be positive"),
    (["--set", "train.lr=inf"], "train.lr = inf must be finite and positive"),
    (["--set", "train.lr=-1e-3"], "train.lr = -0.001 must be positive"),
    (["--set", "model.guide.min_scale=-1"], "model.guide.min_scale = -1.0 must be >= 0"),
    (["--set", "model.guide.min_scale=nan"], "model.guide.min_scale = nan"),
    (["--set", "model.likelihood.type=gaussian", "--set", "model.likelihood.scale=nan"],
     "model.likelihood.scale = nan must be positive"),
    (["--set", "model.likelihood.type=gaussian", "--set", "model.likelihood.scale=inf"],
     "model.likelihood.scale = inf must be finite"),
    (["--set", "objective.beta=inf"], "objective.beta = inf must be finite and positive"),
    (["--set", "objective.beta=nan"], "objective.beta = nan"),
    (["--set", "train.seed=-1"], "train.seed = -1 must be >= 0 and at most 4294967295"),
    (["--set", "train.seed=9223372036854775807"], "train.seed = 9223372036854775807"),
    (["--set", "data.binarization_seed=4294967296"], "data.binarization_seed"),
    (["--set", "model.latent_dim=0"], "model.latent_dim = 0 must be at least 1"),
    (["--set", "train.batch_size=-5"], "train.batch_size = -5"),
    (["--set", "model.encoder.hidden=[64, 0]"], "model.encoder.hidden[1] = 0"),
    (["--set", f"train.lr={list(range(5000))}"], "train.lr = [0, 1, 2"),
    (["--set", "train.lr=" + "[" * 3000 + "]" * 3000], "train.lr"),
    (["--seed", "-1"], "--seed = -1 must be >= 0"),
    (["--seed", str(2**64)], "--seed"),
    (["--epochs", "0"], "--epochs = 0 must be at least 1"),
    (["--epochs", str(10**25)], "must fit in 64 bits"),
    (["--set", "model.latent_dim=9223372036854775807"], "GB of memory"),
]


@pytest.mark.parametrize("extra,fragment", OVERRIDES)
def test_values_outside_their_declared_range(extra, fragment, tmp_path, tiny_toml, capsys):
    """Each is refused before anything is created, naming the key and its range."""
    err = assert_fails_cleanly(
        capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "run"), *extra],
        fragment, root=tmp_path)
    assert len(err) < 400, err  # a huge value is shown shortened


USAGE = [
    ["sample", "run", "--num", "many", "--out", "s.png"],
    ["train", "--config", "c.toml", "--out", "run", "--bogus"],
    ["evaluate"],
    ["nonsense"],
]


@pytest.mark.parametrize("argv", USAGE, ids=[" ".join(a) for a in USAGE])
def test_usage_errors_are_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--help" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error,fragment", [
    (OSError(errno.EIO, os.strerror(errno.EIO), "/dev/sdz"), "'/dev/sdz': Input/output error"),
    (MemoryError(), "out of memory"),
])
def test_the_boundary_maps_the_machines_failures(error, fragment, tmp_path, tiny_toml,
                                                 capsys, monkeypatch):
    """An I/O error or exhausted memory that the library does not map where it happens is
    still one line at the boundary (other exceptions are bugs and keep their traceback)."""
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("pyrovae.training.run.load_data", fail)
    assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out",
                                  str(tmp_path / "run")], fragment, root=tmp_path)


def test_the_suggested_evaluate_command_is_shell_quoted(tmp_path, capsys):
    config = _write(tmp_path / "tiny.toml", dumps_toml(tiny_config(
        data={"train_limit": 64, "test_limit": 16}, eval={"num_samples": 2})).encode())
    out = tmp_path / "my run; rm -rf ~"
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert f"`pyrovae evaluate '{out}' --num-samples 5000`" in capsys.readouterr().out


# ---------------------------------------------------------------------------- data files
def _data_root(tmp_path: Path, damage: dict[str, bytes]) -> Path:
    """A data root whose MNIST files are links to the real ones, except ``damage``."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in RAW.iterdir():
        if path.name in damage:
            (raw / path.name).write_bytes(damage[path.name])
        else:
            (raw / path.name).symlink_to(path)
    return tmp_path / "data"


def _images(head: bytes | None = None, keep: int | None = None) -> bytes:
    data = (RAW / "t10k-images-idx3-ubyte").read_bytes()
    if head is not None:
        data = head + data[len(head):]
    return data if keep is None else data[:keep]


DATA_FILES = {
    "wrong magic": ({"t10k-images-idx3-ubyte": _images(b"\x00\x00\x09\x03")}, "magic number"),
    "text file": ({"t10k-images-idx3-ubyte": b"not an idx file at all\n"}, "magic number"),
    "truncated header": ({"t10k-images-idx3-ubyte": _images(keep=7)}, "shorter than its IDX"),
    "truncated data": ({"t10k-images-idx3-ubyte": _images(keep=10_000)}, "announces"),
    "wrong item shape": ({"t10k-images-idx3-ubyte": _images(b"\x00\x00\x08\x03\x00\x00\x27\x10"
                                                            b"\x00\x00\x00\x1b")}, "shape"),
    "label count": ({"t10k-labels-idx1-ubyte": (RAW / "t10k-labels-idx1-ubyte").read_bytes()[:8]
                     .replace(b"\x27\x10", b"\x00\x05") + b"\x01" * 5}, "labels"),
    "announces a huge file": ({"t10k-images-idx3-ubyte": _images(b"\x00\x00\x08\x03\x7f\xff"
                                                                 b"\xff\xff", keep=4096)},
                              "announces"),
    "label out of range": ({"t10k-labels-idx1-ubyte": (RAW / "t10k-labels-idx1-ubyte")
                            .read_bytes()[:-1] + b"\x0c"}, "label 12"),
}


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_damaged_data_files_are_called_damaged(name, tmp_path, tiny_toml, capsys):
    damage, fragment = DATA_FILES[name]
    root = _data_root(tmp_path, damage)
    err = assert_fails_cleanly(
        capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "run"),
                 "--data-root", str(root)], "damaged", fragment, root=tmp_path)
    assert "not found" not in err


@pytest.mark.parametrize("value", ["TRUE", "on", "Yes", "1"])
def test_offline_accepts_every_yes(value, tmp_path, tiny_toml, capsys, monkeypatch):
    monkeypatch.setenv("PYROVAE_OFFLINE", value)
    root = tmp_path / "empty"
    assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out",
                                  str(tmp_path / "run"), "--data-root", str(root)],
                         "not found", "downloads are off", root=tmp_path)
    assert not root.exists()  # no empty data tree made


def test_offline_refuses_a_word_that_is_no_yes_or_no(tmp_path, tiny_toml, capsys, monkeypatch):
    monkeypatch.setenv("PYROVAE_OFFLINE", "maybe")
    assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out",
                                  str(tmp_path / "run")], "PYROVAE_OFFLINE='maybe'",
                         root=tmp_path)


def _tree(files: dict | None = None):
    """A writer of the folder ``im`` holding ``files``: relative path -> a PNG's
    ``(size, mode)``, a file's bytes, or None for an empty folder."""
    def write(d: Path) -> Path:
        from PIL import Image

        root = d / "im"
        root.mkdir()
        for name, content in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if content is None:
                path.mkdir()
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                Image.new(content[1], content[0], 128).save(path)
        return root
    return write


def _array(name: str, **arrays):
    """A writer of the array file ``name``: ``.npy`` of ``arrays["x"]``, or ``.npz`` of all;
    ``raw`` instead: those bytes."""
    def write(d: Path) -> Path:
        import numpy as np

        path = d / name
        if "raw" in arrays:
            path.write_bytes(arrays["raw"])
        elif name.endswith(".npy"):
            np.save(path, np.asarray(arrays["x"]))
        else:
            np.savez(path, **arrays)
        return path
    return write


GREY, COLOUR = ((6, 8), "L"), ((6, 8), "RGB")
ROWS = [[0.0, 1.0]] * 10
OWN_DATA = {
    # name: (writer of the data (tmp_path -> its path), data.dataset, what the error says)
    "empty folder": (_tree(), "folder", "is an empty folder"),
    "mixed sizes": (_tree({"a.png": GREY, "b.png": ((7, 8), "L")}), "folder",
                    "set data.image_size"),
    "grey and colour": (_tree({"a.png": GREY, "b.png": COLOUR}), "folder", "set data.channels"),
    "a non-image file": (_tree({"a.png": GREY, "notes.txt": b"hi"}), "folder",
                         "is not an image"),
    "a broken png": (_tree({"a.png": GREY, "b.png": b"no"}), "folder", "is not a readable image"),
    "empty class folder": (_tree({"cat/a.png": GREY, "dog": None}), "folder", "is empty"),
    "no such folder": (lambda d: d / "nowhere", "folder", "does not exist"),
    "NaN in an array": (_array("x.npy", x=[[0.5, float("nan")]] * 10), "array",
                        "NaN or infinite"),
    "wrong dtype": (_array("x.npy", x=[["a", "b"]] * 10), "array", "has dtype <U1"),
    "int64 levels": (_array("x.npy", x=[[0, 255]] * 10), "array", "has dtype int64"),
    "labels of the wrong length": (_array("x.npz", x_train=ROWS, y_train=[0, 1, 1],
                                          x_test=ROWS[:2], y_test=[0, 1]), "array",
                                   "must have shape (10,)"),
    "float labels": (_array("x.npz", x_train=ROWS, y_train=[0.5] * 10), "array",
                     "must be integers"),
    "npz of other names": (_array("x.npz", images=ROWS), "array", "expected x_train"),
    "a 5-d array": (_array("x.npy", x=[[[[[0.0]]]]] * 10), "array", "has shape"),
    "not an array file": (_array("x.npy", raw=b"not numpy"), "array",
                          "cannot be read as a NumPy array"),
    "too few to split": (_array("x.npy", x=ROWS[:1]), "array", "too few"),
}


@pytest.mark.parametrize("name", list(OWN_DATA))
def test_bad_own_data_is_refused_in_one_line(name, tmp_path, capsys):
    make, dataset, fragment = OWN_DATA[name]
    path = make(tmp_path)
    config = _write(tmp_path / "own.toml", dumps_toml(tiny_config(
        data={"dataset": dataset, "path": str(path), "train_limit": 0, "test_limit": 0})).encode())
    assert_fails_cleanly(capsys, ["train", "--config", str(config), "--out",
                                  str(tmp_path / "run")], fragment, root=tmp_path)


OWN_DATA_CONFIG = [
    ({"dataset": "folder"}, "needs data.path"),
    ({"dataset": "mnist", "path": "x.npy"}, "remove data.path"),
    ({"dataset": "array", "path": "x.npy", "image_size": [4, 4]}, "remove data.image_size"),
    ({"dataset": "folder", "path": "d", "image_size": [4]}, "must be [H, W]"),
    ({"dataset": "folder", "path": "d", "channels": 2}, "data.channels = 2"),
    ({"in_memory": "maybe"}, "data.in_memory"),
    ({"test_fraction": 1.0}, "data.test_fraction = 1.0"),
    ({"dataset": "imagenet"}, "valid choices: array, cifar10"),
]


@pytest.mark.parametrize("data,fragment", OWN_DATA_CONFIG)
def test_own_data_keys_that_do_not_fit(data, fragment, tmp_path, capsys):
    config = _write(tmp_path / "own.toml", dumps_toml(tiny_config(data=data)).encode())
    assert_fails_cleanly(capsys, ["train", "--config", str(config), "--out",
                                  str(tmp_path / "run")], fragment, root=tmp_path)


# ---------------------------------------------------------------------------- run directories
def test_run_directory_attacks(tmp_path, tiny_toml, trained, capsys):
    train = ["train", "--config", str(tiny_toml), "--out"]
    a_file = _write(tmp_path / "a_file", b"mine\n")
    assert_fails_cleanly(capsys, [*train, str(a_file)], "is a file, not a folder", root=tmp_path)
    assert_fails_cleanly(capsys, [*train, str(a_file / "run")], "a parent of this path is a file",
                         root=tmp_path)
    user = tmp_path / "mine"
    user.mkdir()
    _write(user / "config.toml", b"[train]\nepochs = 3\n")  # a hand-written config
    assert_fails_cleanly(capsys, [*train, str(user)], "not a pyrovae run", "config.toml",
                         root=tmp_path)
    run = copy_run(trained, tmp_path / "run")
    assert_fails_cleanly(capsys, [*train, str(run)], "already holds a run", "--resume",
                         root=tmp_path)
    assert_fails_cleanly(capsys, ["train", "--resume", str(user)], "not a pyrovae run",
                         root=tmp_path)
    assert_fails_cleanly(capsys, ["train", "--resume", str(a_file)], "not a folder",
                         root=tmp_path)
    assert_fails_cleanly(capsys, ["sample", str(run), "--out", str(user)], "is a folder",
                         root=tmp_path)
    assert_fails_cleanly(capsys, ["evaluate", str(user)], "a pyrovae run directory",
                         root=tmp_path)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_an_out_that_cannot_be_created(code, tmp_path, tiny_toml, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out",
                                  str(tmp_path / "run")], "cannot write", os.strerror(code),
                         root=tmp_path)


def test_a_locked_run_refuses_a_second_writer(tmp_path, tiny_toml, trained, capsys):
    run = copy_run(trained, tmp_path / "run")
    with hold_run_dir(run, new=False):  # as a training process holds it
        assert_fails_cleanly(capsys, ["train", "--resume", str(run), "--epochs", "3"],
                             "in use by another pyrovae process", root=tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with hold_run_dir(fresh, new=True):
        assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out", str(fresh)],
                             "in use by another pyrovae process", root=tmp_path)
        # a run that is starting has written its metrics file and not yet its config: still a
        # run in use, not "a folder of other files"
        run_dir.write_metrics(fresh, [])
        assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out", str(fresh)],
                             "in use by another pyrovae process", root=tmp_path)


def test_a_run_cut_at_its_start_is_started_afresh(tmp_path, tiny_toml, capsys):
    """A run killed between its two marker files leaves only an empty metrics file: a new
    ``train`` takes the folder; a metrics file with rows in it is somebody's, and kept."""
    cut = tmp_path / "cut"
    cut.mkdir()
    run_dir.write_metrics(cut, [])
    assert main(["train", "--config", str(tiny_toml), "--out", str(cut), "--quiet"]) == 0
    assert (cut / run_dir.CHECKPOINT_FILE).is_file()
    capsys.readouterr()
    kept = tmp_path / "kept"
    kept.mkdir()
    run_dir.write_metrics(kept, [{"epoch": 1}])
    assert_fails_cleanly(capsys, ["train", "--config", str(tiny_toml), "--out", str(kept)],
                         "not a pyrovae run", "metrics.jsonl", root=tmp_path)


def test_stale_temporaries_are_removed_and_user_files_kept(tmp_path, trained):
    run = copy_run(trained, tmp_path / "run")
    stale = [run / ".checkpoint.pt.abc123.tmp", run / ".metrics.jsonl.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    with hold_run_dir(run, new=False):
        pass
    assert not any(path.exists() for path in stale)
    assert snapshot(run) == snapshot(trained)


def test_run_files_and_pictures_get_the_same_normal_permissions(trained):
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in trained.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


# ---------------------------------------------------------------------------- checkpoints
def _pickled_code() -> bytes:
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned > /dev/null",))

    return pickle.dumps(Payload())


CHECKPOINTS = {
    "truncated": (lambda b: b[: len(b) // 3], "damaged or truncated"),
    "random bytes": (lambda b: random.Random(0).randbytes(4096), "is damaged"),
    "empty": (lambda b: b"", "damaged or truncated"),
    "code": (lambda b: _pickled_code(), "never runs code"),
}
def _moment_of_the_wrong_shape(state: dict) -> None:
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)


def _rng_of_the_wrong_length(state: dict) -> None:
    state["torch_rng"] = state["torch_rng"][:100]


STATES = {
    # name: (change to a good checkpoint's state: entries to set, or a function), message
    "model is a str": ({"model": "weights"}, "'model' entry is a str"),
    "epoch is a str": ({"epoch": "3"}, "'epoch' entry is a str"),
    "epoch is a float": ({"epoch": 2.5}, "'epoch' entry is a float"),
    "negative epoch": ({"epoch": -1}, "'epoch' entry"),
    "optimizer is a list": ({"optimizer": [1, 2]}, "'optimizer' entry is a list"),
    "rng is a float tensor": ({"torch_rng": torch.zeros(3)}, "'torch_rng' entry"),
    "no model": ({"model": None}, "'model' entry"),
    "wrong parameter shape": ({"model": {"encoder.net.0.weight": torch.zeros(2, 2)}},
                              "does not match"),
    "moment of the wrong shape": (_moment_of_the_wrong_shape, "does not match"),
    "rng of the wrong length": (_rng_of_the_wrong_length, "does not match"),
}


def _damage_state(run: Path, change) -> None:
    state = torch.load(run / run_dir.CHECKPOINT_FILE, weights_only=True)
    if callable(change):
        change(state)
    else:
        state.update(change)
    torch.save(state, run / run_dir.CHECKPOINT_FILE)


@pytest.mark.parametrize("name", list(CHECKPOINTS) + list(STATES))
def test_checkpoint_attacks(name, tmp_path, trained, capsys):
    run = copy_run(trained, tmp_path / "run")
    ckpt = run / run_dir.CHECKPOINT_FILE
    if name in CHECKPOINTS:
        damage, fragment = CHECKPOINTS[name]
        ckpt.write_bytes(damage(ckpt.read_bytes()))
    else:
        change, fragment = STATES[name]
        _damage_state(run, change)
    argvs = [["train", "--resume", str(run), "--epochs", "3", "--quiet"]]
    if name not in ("moment of the wrong shape", "rng of the wrong length"):  # used to train
        argvs += [["evaluate", str(run), "--num-samples", "2", "--limit", "4", "--quiet"],
                  ["sample", str(run), "--out", str(tmp_path / "s.png")]]
    for argv in argvs:
        err = assert_fails_cleanly(capsys, argv, fragment, root=tmp_path)
        assert "weights_only" not in err


RUN_FILES = {
    "metrics row without epoch": (run_dir.METRICS_FILE, b'{"train_elbo": -100.0}\n',
                                  "not a metrics row"),
    "metrics row not an object": (run_dir.METRICS_FILE, b"[1, 2]\n", "not a metrics row"),
    "metrics value not a number": (run_dir.METRICS_FILE, b'{"epoch": 1, "test_elbo": "x"}\n',
                                   "expected a finite number"),
    "metrics not utf-8": (run_dir.METRICS_FILE, b"\xff\xfe\n", "not UTF-8"),
    "config not utf-8": (run_dir.CONFIG_FILE, b"\xff\xfe\n", "not UTF-8"),
    "config out of range": (run_dir.CONFIG_FILE, b"[train]\nlr = nan\n", "train.lr = nan"),
}


@pytest.mark.parametrize("name", list(RUN_FILES))
def test_damaged_run_files(name, tmp_path, trained, capsys):
    run = copy_run(trained, tmp_path / "run")
    filename, content, fragment = RUN_FILES[name]
    (run / filename).write_bytes(content)
    argvs = [["train", "--resume", str(run), "--epochs", "3", "--quiet"]]
    if filename == run_dir.METRICS_FILE:
        argvs.append(["plot", str(run), "--kind", "curves", "--out", str(tmp_path / "c.png")])
    else:
        argvs.append(["describe", str(run)])
    for argv in argvs:
        assert_fails_cleanly(capsys, argv, fragment, root=tmp_path)


# ---------------------------------------------------------------------------- resources
def test_resource_attacks_are_refused_fast_with_the_numbers(tmp_path, trained, capsys):
    deep = _write(tmp_path / "deep.toml",
                  ("[model.encoder]\nhidden = [" + ", ".join(["400"] * 12_000) + "]\n").encode())
    assert deep.stat().st_size > 60_000
    wide = _write(tmp_path / "wide.toml", b"[model.decoder]\nhidden = [1000000, 1000000]\n")
    start = time.perf_counter()
    assert_fails_cleanly(capsys, ["describe", str(deep)], "model.encoder",
                         "more than the 1,000 layers pyrovae builds", root=tmp_path)
    assert_fails_cleanly(capsys, ["describe", str(wide)], "parameters", "GB of memory",
                         root=tmp_path)
    assert time.perf_counter() - start < 10
    run = copy_run(trained, tmp_path / "run")
    (run / run_dir.CONFIG_FILE).write_bytes(wide.read_bytes())  # a run from someone else
    assert_fails_cleanly(capsys, ["evaluate", str(run)], "GB of memory", root=tmp_path)
    run = copy_run(trained, tmp_path / "run2")
    assert_fails_cleanly(capsys, ["sample", str(run), "--num", "1000000", "--out",
                                  str(tmp_path / "s.png")], "--num = 1000000", "at most 10000",
                         root=tmp_path)
    # a bound on a pass larger than the memory is lowered to what fits: not an attack
    assert main(["evaluate", str(run), "--num-samples", "10", "--max-batch-elements",
                 str(10**15), "--quiet"]) == 0
    capsys.readouterr()
    assert_fails_cleanly(capsys, ["train", "--config", str(run / run_dir.CONFIG_FILE), "--out",
                                  str(tmp_path / "new"), "--set",
                                  "objective.num_particles=100000000"],
                         "objective.num_particles x train.batch_size", "GB of memory",
                         root=tmp_path)


# ---------------------------------------------------------------------------- API inputs
@pytest.fixture(scope="module")
def vae_and_data():
    vae = pyrovae.VAE.from_config(tiny_config())
    x = torch.bernoulli(torch.full((6, vae.data_dim), 0.5))
    return vae, x


def _bad_inputs(x: torch.Tensor) -> dict[str, tuple[object, str]]:
    nan = x.clone()
    nan[2, 5] = float("nan")
    return {
        "nan": (nan, "needs binary data"),
        "grey levels": (x * 0.5, "needs binary data"),
        "wrong pixel count": (x[:, :700], "must have shape (N, 784)"),
        "one example, not a batch": (x[0], "must have shape (N, 784)"),
        "no examples": (x[:0], "with N >= 1"),
        "integers": (x.long(), "dtype torch.int64"),
        "float64": (x.double(), "dtype torch.float64"),
        "a list": (x.tolist(), "must be a torch.Tensor"),
        "on meta": (x.to("meta"), "is on meta"),
    }


API = {
    "log_likelihood": lambda vae, x: pyrovae.log_likelihood(vae, x, num_samples=2),
    "elbo_per_example": lambda vae, x: pyrovae.elbo_per_example(vae, x),
    "rate_and_distortion": lambda vae, x: pyrovae.rate_and_distortion(vae, x),
    "kl_per_dimension": lambda vae, x: pyrovae.kl_per_dimension(vae, x),
    "evaluate": lambda vae, x: pyrovae.evaluate(vae, x, num_samples=2),
}


@pytest.mark.parametrize("function", list(API))
def test_api_data_attacks_are_data_errors(function, vae_and_data):
    vae, x = vae_and_data
    for name, (bad, fragment) in _bad_inputs(x).items():
        with pytest.raises(DataError, match=None) as error:
            API[function](vae, bad)
        assert fragment in str(error.value), (name, str(error.value))
    API[function](vae, x)  # good data passes


def test_labels_are_checked_for_a_conditional_prior():
    vae = pyrovae.VAE.from_config(tiny_config(model={"prior": {"type": "conditional"}}))
    x = torch.bernoulli(torch.full((4, vae.data_dim), 0.5))
    for y, fragment in [(torch.tensor([0, 1, 2, 10]), "classes 0 to 9"),
                        (torch.tensor([0, 1]), "shape (4,)"),
                        (torch.zeros(4), "integer tensor")]:
        with pytest.raises(DataError, match=None) as error:
            pyrovae.elbo_per_example(vae, x, y)
        assert fragment in str(error.value)
    pyrovae.elbo_per_example(vae, x, torch.tensor([0, 1, 2, 9]))


def test_api_arguments_outside_their_range(vae_and_data):
    vae, x = vae_and_data
    for call, fragment in [
        (lambda: pyrovae.elbo_per_example(vae, x, batch_size=0), "batch_size = 0"),
        (lambda: pyrovae.elbo_per_example(vae, x, seed=-1), "seed = -1"),
        (lambda: pyrovae.log_likelihood(vae, x, num_samples=2, seed=2**64), "seed = "),
        (lambda: pyrovae.rate_and_distortion(vae, x, batch_size=-1), "batch_size = -1"),
    ]:
        with pytest.raises(pyrovae.ConfigError, match=None) as error:
            call()
        assert fragment in str(error.value)


def test_sampling_a_number_of_images_outside_its_range(vae_and_data):
    vae, _ = vae_and_data
    for num in (0, -3):
        with pytest.raises(pyrovae.ConfigError, match=f"num = {num} must be at least 1"):
            vae.sample(num)


def test_trainer_refuses_bad_data():
    config = pyrovae.resolve_config(tiny_config())
    data = pyrovae.load_data(config["data"])
    data.test_images[3, 3] = float("nan")
    vae = pyrovae.VAE.from_resolved_config(config)
    with pytest.raises(DataError, match="the data hold nan"):
        pyrovae.Trainer(vae, data, config, torch.device("cpu"), progress=False)


# ---------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_with_a_clear_error(tmp_path, tiny_toml, capsys):
    out = tmp_path / "run"
    code = main(["train", "--config", str(tiny_toml), "--out", str(out), "--quiet",
                 "--set", "train.lr=1000"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "training diverged in epoch 1" in err and "lower train.lr" in err, err
    # a run with no finished epoch: no checkpoint, no picture; it may be started afresh
    assert {p.name for p in out.iterdir()} == {run_dir.CONFIG_FILE, run_dir.METRICS_FILE,
                                               LOCK_FILE}


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, trained, monkeypatch):
    run = copy_run(trained, tmp_path / "run")
    before = snapshot(run)
    real_step = pyrovae.Trainer.train_step

    def exploding(self, x, y):
        loss = real_step(self, x, y)
        return loss * float("inf")

    monkeypatch.setattr(pyrovae.Trainer, "train_step", exploding)
    with pytest.raises(pyrovae.DivergenceError, match="keeps the checkpoint of epoch 2"):
        pyrovae.resume(run, epochs=3, progress=False)
    after = snapshot(run)
    assert run_dir.read_config(run)["train"]["epochs"] == 3  # --epochs is kept, as asked
    del before[run_dir.CONFIG_FILE], after[run_dir.CONFIG_FILE]
    assert after == before


# ---------------------------------------------------------------------------- faults
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch tiny run, and its config file."""
    root = tmp_path_factory.mktemp("reference")
    # 4 batches per epoch, no importance-sampled evaluation at the end: quick subprocesses
    config = tiny_config(data={"train_limit": 256, "test_limit": 128}, train={"epochs": 3},
                         eval={"num_samples": 0})
    path = root / "tiny3.toml"
    path.write_text(dumps_toml(config))
    pyrovae.train(config, out=root / "run", progress=False)
    return root / "run", path


def assert_same_run(run: Path, reference: Path) -> None:
    a = torch.load(run / run_dir.CHECKPOINT_FILE, weights_only=True)
    b = torch.load(reference / run_dir.CHECKPOINT_FILE, weights_only=True)
    assert a["epoch"] == b["epoch"]
    for key in ("model", "optimizer"):
        flat_a = torch.utils._pytree.tree_leaves(a[key])
        flat_b = torch.utils._pytree.tree_leaves(b[key])
        assert len(flat_a) == len(flat_b)
        for u, v in zip(flat_a, flat_b):
            assert torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
    assert torch.equal(a["torch_rng"], b["torch_rng"]) and torch.equal(a["data_rng"],
                                                                       b["data_rng"])
    assert numbers(run_dir.read_metrics(run)) == numbers(run_dir.read_metrics(reference))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyrovae", *args]


def test_full_disk_in_the_checkpoint_write_loses_nothing(tmp_path, reference, monkeypatch,
                                                          capsys):
    ref, config = reference
    out = tmp_path / "run"
    real_save = torch.save
    saves = []

    def full_disk_at_epoch_2(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:  # epoch 2's checkpoint: half written, then the disk is full
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_at_epoch_2)
    code = main(["train", "--config", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "No space left on device" in err and "--resume" in err, err
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(out / run_dir.CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, ref)


KILL = """
import io, os, signal, sys, torch
import pyrovae
from pyrovae.cli import main
mode, at, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
calls = []
def die():  # as kill -9 does: no clean-up, no exit handlers
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "step":  # at the at-th training step
    real_step = pyrovae.Trainer.train_step
    def step(self, x, y):
        calls.append(1)
        if len(calls) == at:
            die()
        return real_step(self, x, y)
    pyrovae.Trainer.train_step = step
else:  # inside the at-th checkpoint write, after keep bytes
    real_save = torch.save
    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            buffer = io.BytesIO()
            real_save(obj, buffer)
            f.write(buffer.getvalue()[:keep])
            f.flush()
            die()
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
sys.exit(main(sys.argv[4:]))
"""


def test_kill_9_in_training_and_in_the_checkpoint_write_then_resume(tmp_path, reference):
    """kill -9 at seeded random points, one in a training step, one inside a checkpoint
    write: what was written survives, stale temporaries go, and ``--resume`` (or, before the
    first checkpoint, training afresh into the same folder) ends bitwise where the
    uninterrupted run does."""
    ref, config = reference
    rng = random.Random(12)
    steps = 3 * 4  # epochs x batches of the reference run
    kills = {"step": (rng.randint(1, steps), 0), "save": (rng.randint(1, 3),
                                                          rng.randint(0, 20_000))}
    procs = {  # the two runs at once: two cores, half the wall time
        mode: subprocess.Popen([sys.executable, "-c", KILL, mode, str(at), str(keep), "train",
                                "--config", str(config), "--out", str(tmp_path / mode),
                                "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for mode, (at, keep) in kills.items()
    }
    again = {}
    for mode, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, err
        run, (at, _) = tmp_path / mode, kills[mode]
        if mode == "save":
            assert any(p.name.endswith(".tmp") for p in run.iterdir())  # the write was cut
        if (run / run_dir.CHECKPOINT_FILE).exists():  # the last complete checkpoint is intact
            epoch = torch.load(run / run_dir.CHECKPOINT_FILE, weights_only=True)["epoch"]
            assert epoch == (at - 1 if mode == "save" else (at - 1) // 4)
            again[mode] = _cli("train", "--resume", str(run), "--quiet")
        else:  # killed before the first epoch was written: a run started afresh
            again[mode] = _cli("train", "--config", str(config), "--out", str(run), "--quiet")
    resumed = {mode: subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True) for mode, argv in again.items()}
    for mode, proc in resumed.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        run = tmp_path / mode
        assert not any(p.name.endswith(".tmp") for p in run.iterdir())
        assert_same_run(run, ref)


def test_two_runs_into_one_folder_at_once(tmp_path, reference):
    """Of two ``train`` into the same ``--out`` started together, one trains and the other
    fails at once with exit 2 and one line; the run left behind is the winner's, whole."""
    ref, config = reference
    out = tmp_path / "run"
    procs = [subprocess.Popen(_cli("train", "--config", str(config), "--out", str(out),
                                   "--quiet"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(err for code, err in results if code == 2)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "in use by another pyrovae process" in err or "already holds a run" in err, err
    assert_same_run(out, ref)
