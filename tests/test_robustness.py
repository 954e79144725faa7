"""The second robustness probe: users' own files, damaged runs, absurd command lines, signals,
a full disk and wrong user programs. Each attack ends with exit code 2 (143 for SIGTERM) and
one line of at most a few hundred characters on stderr, no traceback, nothing lost and
nothing half-made (:mod:`test_faults` holds the first probe's attacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_faults import snapshot

import pyrovae
from pyrovae.cli import main
from pyrovae.errors import MAX_MESSAGE

from conftest import tiny_config

#: "pyrovae COMMAND: error: " and a message of at most MAX_MESSAGE characters
MAX_LINE = MAX_MESSAGE + 40


def fails(capsys, argv: list[str], *fragments: str, root: Path | None = None) -> str:
    """``main(argv)`` exits 2 with one short line on stderr naming ``fragments``, no
    traceback, and every file under ``root`` as it was."""
    before = snapshot(root) if root else None
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert len(err) <= MAX_LINE, err
    for fragment in fragments:
        assert fragment in err, err
    if root:
        assert snapshot(root) == before, "the attack changed or left files"
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 1-epoch tiny run (copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("robust") / "run"
    pyrovae.train(tiny_config(), out=out, progress=False)
    return out


def copy_run(run: Path, to: Path) -> Path:
    to.mkdir()
    for path in run.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


# ------------------------------------------------------------------ command line, config
DIGITS_5000 = "9" * 5000


@pytest.mark.parametrize(
    "override, fragment",
    [
        (f"train.seed={DIGITS_5000}", "5,000 digits"),  # Python refuses to read it
        (f"train.lr={'9' * 4000}", "finite"),  # read, but no float holds it
        (f"train.seed={'9' * 4000}", "64 bits"),
    ],
)
def test_huge_number_in_set(capsys, tmp_path, tiny_toml, override, fragment):
    fails(
        capsys,
        ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"), "--set", override],
        fragment,
        root=tmp_path,
    )


def test_huge_number_in_config(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\nseed = {DIGITS_5000}\n")
    fails(
        capsys,
        ["train", "--config", str(config), "--out", str(tmp_path / "r")],
        "digits",
        root=tmp_path,
    )


def test_message_quotes_are_capped(capsys, tmp_path, tiny_toml):
    """A value of a megabyte is quoted in a few hundred characters."""
    value = "x" * (1 << 20)  # no "=": the message quotes the whole option
    fails(
        capsys,
        ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"), "--set", value],
        "key.path=value",
        root=tmp_path,
    )


@pytest.mark.parametrize("number", [DIGITS_5000, "9" * 4000, "1e999"])
def test_huge_number_in_metrics(capsys, run, tmp_path, number):
    damaged = copy_run(run, tmp_path / "run")
    (damaged / "metrics.jsonl").write_text(
        f'{{"epoch": 1, "train_elbo": {number}, "test_elbo": -100.0}}\n'
    )
    fails(
        capsys,
        ["plot", str(damaged), "--kind", "curves", "--out", str(tmp_path / "c.png")],
        "metrics.jsonl",
        root=tmp_path,
    )


# ------------------------------------------------------------------ run directories
@pytest.mark.parametrize("entry", ["model", "optimizer"])
def test_checkpoint_with_nan_is_refused_naming_the_tensor(capsys, run, tmp_path, entry):
    import torch

    damaged = copy_run(run, tmp_path / "run")
    state = torch.load(damaged / "checkpoint.pt", weights_only=True)
    if entry == "model":
        name = sorted(state["model"])[0]
        state["model"][name][0] = float("nan")
    else:
        name = "exp_avg"
        state["optimizer"]["state"][0]["exp_avg"].view(-1)[0] = float("inf")
    torch.save(state, damaged / "checkpoint.pt")
    for argv in (
        ["evaluate", str(damaged), "--num-samples", "2", "--limit", "4"],
        ["sample", str(damaged), "--num", "4", "--out", str(tmp_path / "s.png")],
        ["train", "--resume", str(damaged), "--epochs", "2"],
    ):
        fails(capsys, argv, name, "NaN or infinite", root=tmp_path)


def test_compare_refuses_a_run_with_itself(capsys, run, tmp_path):
    import os

    link = tmp_path / "link"
    link.symlink_to(run)
    for other in (f"{run}/", str(link), os.path.relpath(run)):
        fails(capsys, ["compare", str(run), other, "--num-samples", "2"], "given twice")


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--num-samples", "1000000000000"], "--num-samples 1,000,000"),
        # 1e3 chains x 1e5 steps x 256 examples: 2.56e10 evaluations, over 1e10
        (
            ["--method", "ais", "--num-samples", "1000", "--num-steps", "100000"],
            "--num-samples 390 ",
        ),
    ],
)
def test_absurd_estimates_are_refused_up_front(capsys, run, options, fragment):
    """Refused before a single draw, naming the cost and the most that is sensible."""
    import time

    start = time.perf_counter()
    fails(capsys, ["evaluate", str(run), *options], "would evaluate the model", fragment)
    assert time.perf_counter() - start < 30


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize(
    "name", ["checkpoint.pt", "config.toml", "metrics.jsonl", "samples_reconstructions.png"]
)
def test_no_command_writes_over_a_run_file(capsys, run, tmp_path, name):
    target = copy_run(run, tmp_path / "run")
    fails(
        capsys,
        ["sample", str(target), "--num", "4", "--out", str(target / name)],
        name,
        "only training",
        root=tmp_path,
    )
    link = tmp_path / "link.png"  # through a symbolic link too
    link.symlink_to(target / name)
    fails(
        capsys, ["plot", str(target), "--kind", "curves", "--out", str(link)], name, root=tmp_path
    )


def test_a_fifo_nobody_reads_is_refused_not_replaced(capsys, run, tmp_path):
    import os
    import stat

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    fails(capsys, ["sample", str(run), "--num", "4", "--out", str(fifo)], "FIFO")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_fifo_with_a_reader_and_a_device_are_written_into(capsys, run, tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    import time

    time.sleep(0.2)  # the reader opens the FIFO (it waits there for a writer)
    assert main(["sample", str(run), "--num", "4", "--out", str(fifo)]) == 0
    reader.join(timeout=30)
    assert received and received[0].startswith(b"\x89PNG"), received
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    # /dev/null stays the device it is (as root, it used to be replaced by a regular file)
    assert main(["sample", str(run), "--num", "4", "--out", os.devnull]) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    capsys.readouterr()


def test_disk_full_while_writing_a_checkpoint(capsys, tmp_path, tiny_toml, monkeypatch):
    """ENOSPC in the middle of torch.save of epoch 2's checkpoint: one line saying so, the
    checkpoint of epoch 1 intact, no temporary file, and the run resumes."""
    import errno
    import os

    out = tmp_path / "run"
    real_fdopen = os.fdopen
    kept: list[bytes] = []

    class Full:
        """A file on a disk that fills up after its first kilobyte."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1024:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        if (out / "checkpoint.pt").exists() and not kept:
            kept.append((out / "checkpoint.pt").read_bytes())
        return Full(f) if kept and ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}") else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    code = main(
        ["train", "--config", str(tiny_toml), "--out", str(out), "--epochs", "2", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "No space left" in err and "--resume" in err, err
    monkeypatch.undo()
    assert (out / "checkpoint.pt").read_bytes() == kept[0]
    assert sorted(p.name for p in out.iterdir()) == [  # no temporary file left behind
        ".pyrovae.lock",
        "checkpoint.pt",
        "config.toml",
        "metrics.jsonl",
        "samples_reconstructions.png",  # epoch 1's picture (log.images_every = 1)
    ]
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert torch_epoch(out) == 2


def torch_epoch(run: Path) -> int:
    from pyrovae.training.run_dir import load_checkpoint

    return load_checkpoint(run)["epoch"]


# ------------------------------------------------------------------ signals
def test_sigterm_is_an_interrupt_that_can_be_resumed(tmp_path):
    """SIGTERM (schedulers, ``timeout``) and Ctrl-C stop training with one line saying how to
    go on, the checkpoint of the last finished epoch kept; ``--resume`` continues it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pyrovae.config import dumps_toml

    config = tmp_path / "c.toml"
    config.write_text(dumps_toml(tiny_config(train={"epochs": 1000}, eval={"num_samples": 0})))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(pyrovae.__file__).parents[1])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrovae",
            "train",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and "SIGTERM" in err and "--resume" in err, err
    epoch = torch_epoch(out)
    assert main(["train", "--resume", str(out), "--epochs", str(epoch + 1), "--quiet"]) == 0
    assert torch_epoch(out) == epoch + 1


# ------------------------------------------------------------------ own images
def _png_folder(root: Path, n: int = 6, name: bytes = b"%d.png") -> Path:
    """Two class folders of ``n`` random 8x6 grey PNGs, named ``name % i`` (bytes)."""
    import os

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in (b"a", b"b"):
        folder = os.path.join(os.fsencode(root), c)
        os.makedirs(folder)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 6), dtype=np.uint8)).save(
                os.path.join(folder, name % i).decode("utf-8", "surrogateescape"), format="PNG"
            )
    return root


def _own_toml(tmp_path: Path, **data) -> Path:
    from data_files import own_config

    from pyrovae.config import dumps_toml

    config = tmp_path / "own.toml"
    config.write_text(dumps_toml(own_config(**data)))
    return config


def test_16_bit_pngs_are_scaled(tmp_path):
    """Levels v of a 16-bit grey PNG are read as v / 65535 (not clipped at 255: white)."""
    import numpy as np
    from data_files import resolved_data
    from PIL import Image

    levels = np.arange(48, dtype=np.uint16).reshape(8, 6) * 1365  # 0 .. 64155
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(levels).save(tmp_path / c / f"{i}.png")
    assert Image.open(tmp_path / "a" / "0.png").mode.startswith("I")
    data = pyrovae.load_data(
        resolved_data(dataset="folder", path=str(tmp_path), binarize="none", test_fraction=0.5)
    )
    expected = torch_tensor(levels.reshape(-1) / 65535)
    # float32 rounding of v / 65535: half an ulp of numbers below 1
    assert (data.test_images - expected).abs().max() < 2**-24


def torch_tensor(array):
    import torch

    return torch.as_tensor(array, dtype=torch.float32)


def test_decompression_bomb_is_refused(capsys, tmp_path):
    """A PNG whose header declares 10^10 pixels is refused before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    folder = _png_folder(tmp_path / "images")
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    (folder / "a" / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    config = _own_toml(tmp_path, dataset="folder", path=str(folder))
    fails(
        capsys,
        ["train", "--config", str(config), "--out", str(tmp_path / "run")],
        "bomb.png",
        "decompression bomb",
        root=tmp_path,
    )


def test_file_names_that_are_not_utf8(capsys, tmp_path):
    """Images named with bytes that are not UTF-8 are read; a data.path that is not UTF-8
    (a run's config could not record it) is refused in one line."""
    import os

    folder = _png_folder(tmp_path / "images", name=b"\xff%d.png")
    config = _own_toml(tmp_path, dataset="folder", path=str(folder))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    assert main(["evaluate", str(out), "--num-samples", "2", "--quiet"]) == 0
    capsys.readouterr()
    odd = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"\xfe"))
    _png_folder(Path(odd))
    from data_files import own_config

    with pytest.raises(pyrovae.DataError, match="not valid UTF-8"):
        pyrovae.train(own_config(dataset="folder", path=odd), out=tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2").exists()


def test_a_damaged_image_in_a_worker_is_one_line(tmp_path):
    """An image damaged after loading is met by a DataLoader worker: the error names the file
    and the reason, not the worker's traceback."""
    import torch
    from data_files import resolved_data

    folder = _png_folder(tmp_path / "images")
    data = pyrovae.load_data(
        resolved_data(
            dataset="folder", path=str(folder), in_memory=False, workers=1, test_fraction=0.5
        )
    )
    for path in (folder / "a").iterdir():
        path.write_bytes(b"not an image any more")
    with pytest.raises(pyrovae.DataError) as info:
        for _ in data.train_batches(2, torch.Generator().manual_seed(0)):
            pass
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "worker" not in message
    assert "not a readable" in message and "images/a/" in message, message


def test_data_workers_are_bounded_by_the_cpus(tmp_path):
    import os

    from data_files import resolved_data

    folder = _png_folder(tmp_path / "images")
    with pytest.warns(pyrovae.PyrovaeWarning, match="CPUs"):
        data = pyrovae.load_data(
            resolved_data(
                dataset="folder",
                path=str(folder),
                in_memory=False,
                workers=10**9,
                test_fraction=0.5,
            )
        )
    assert data.workers == len(os.sched_getaffinity(0))


# ------------------------------------------------------------------ own arrays
def _arrays() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "levels_0_255": (rng.integers(0, 256, (40, 12)).astype(np.float32), "divide them by 255"),
        "standardized": (rng.standard_normal((40, 12)).astype(np.float32), "rescale them"),
        "0-d": (np.array(3.0, dtype=np.float32), "0-d"),
        "no features": (np.zeros((40, 0), dtype=np.float32), "at least one feature"),
    }


@pytest.mark.parametrize(
    "name, binarize",
    [
        ("levels_0_255", "dynamic"),
        ("levels_0_255", "static"),
        ("standardized", "dynamic"),
        ("0-d", "dynamic"),
        ("no features", "dynamic"),
    ],
)
def test_array_values_checked_against_binarization(capsys, tmp_path, name, binarize):
    import numpy as np

    array, fragment = _arrays()[name]
    np.save(tmp_path / "x.npy", array)
    config = _own_toml(tmp_path, dataset="array", path=str(tmp_path / "x.npy"), binarize=binarize)
    fails(
        capsys,
        ["train", "--config", str(config), "--out", str(tmp_path / "run")],
        fragment,
        root=tmp_path,
    )


def test_truncated_npz(capsys, tmp_path):
    import numpy as np

    np.savez(
        tmp_path / "x.npz",
        x_train=np.zeros((40, 12), np.float32),
        x_test=np.zeros((8, 12), np.float32),
    )
    whole = (tmp_path / "x.npz").read_bytes()
    (tmp_path / "x.npz").write_bytes(whole[: len(whole) // 2])
    config = _own_toml(tmp_path, dataset="array", path=str(tmp_path / "x.npz"))
    fails(
        capsys,
        ["train", "--config", str(config), "--out", str(tmp_path / "run")],
        "truncated",
        root=tmp_path,
    )


def test_big_endian_arrays_read_as_native(tmp_path):
    import numpy as np
    from data_files import resolved_data

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 12)).astype(np.float32), rng.integers(0, 3, 40)
    loaded = {}
    for order in ("<", ">"):
        path = tmp_path / f"{order == '>'}.npz"
        np.savez(
            path,
            x_train=x.astype(order + "f4"),
            y_train=y.astype(order + "i8"),
            x_test=x[:8].astype(order + "f4"),
            y_test=y[:8].astype(order + "i8"),
        )
        loaded[order] = pyrovae.load_data(
            resolved_data(dataset="array", path=str(path), binarize="none")
        )
    assert loaded["<"].train_images.equal(loaded[">"].train_images)
    assert loaded["<"].train_labels.equal(loaded[">"].train_labels)


# ------------------------------------------------------------------ named data sets
def test_resume_and_evaluate_refused_after_mnist_files_changed(capsys, tmp_path):
    """A run records the hash of its data set's files under the data root, as of an own
    array file: a changed MNIST file is noticed."""
    from conftest import DATA_ROOT

    root = tmp_path / "data"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (DATA_ROOT / "MNIST" / "raw").glob("*-ubyte"):
        if source.name == "t10k-labels-idx1-ubyte":
            (raw / source.name).write_bytes(source.read_bytes())
        else:
            (raw / source.name).symlink_to(source)
    out = tmp_path / "run"
    pyrovae.train(tiny_config(train={"epochs": 1}), out=out, data_root=root, progress=False)
    labels = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    labels[-1] = (labels[-1] + 1) % 10  # one test label changed, still a valid file
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    fails(
        capsys,
        ["train", "--resume", str(out), "--epochs", "2", "--data-root", str(root)],
        "has changed",
        root=out,
    )
    fails(
        capsys,
        ["evaluate", str(out), "--num-samples", "2", "--data-root", str(root)],
        "has changed",
    )


# ------------------------------------------------------------------ user programs
@pytest.mark.parametrize(
    "factory, fragments",
    [
        ("raising", ["factory raised FileNotFoundError", "encoder.pt"]),
        ("no_x", ["no observed sample site 'x'", "'obs'"]),
        ("nan", ["NaN log-density at site 'x'"]),
        ("shape", ["(2, 783)", "(2, 784)"]),
        ("extra", ["['w']", "lacks"]),
    ],
)
def test_wrong_user_programs_are_one_line(capsys, tmp_path, tiny_toml, factory, fragments):
    fails(
        capsys,
        [
            "train",
            "--config",
            str(tiny_toml),
            "--out",
            str(tmp_path / "run"),
            "--program",
            f"bad_programs:{factory}",
            "--epochs",
            "1",
        ],
        *fragments,
        root=tmp_path,
    )


def test_a_good_user_program_still_trains(tmp_path, tiny_toml):
    assert (
        main(
            [
                "train",
                "--config",
                str(tiny_toml),
                "--out",
                str(tmp_path / "run"),
                "--program",
                "bad_programs:good",
                "--quiet",
            ]
        )
        == 0
    )
