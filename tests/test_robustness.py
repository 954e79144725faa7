"""The second robustness probe: users' own files, damaged runs, absurd command lines, signals,
a full disk and wrong user programs. Each attack ends with exit code 2 (143 for SIGTERM) and
one line of at most a few hundred characters on stderr, no traceback, nothing lost and
nothing half-made (:mod:`test_faults` holds the first probe's attacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pyrovae
from pyrovae.cli import main
from pyrovae.errors import MAX_MESSAGE

from conftest import tiny_config
from test_faults import snapshot

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
    fails(capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"),
                   "--set", override], fragment, root=tmp_path)


def test_huge_number_in_config(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f"[train]\nseed = {DIGITS_5000}\n")
    fails(capsys, ["train", "--config", str(config), "--out", str(tmp_path / "r")], "digits",
          root=tmp_path)


def test_message_quotes_are_capped(capsys, tmp_path, tiny_toml):
    """A value of a megabyte is quoted in a few hundred characters."""
    value = "x" * (1 << 20)  # no "=": the message quotes the whole option
    fails(capsys, ["train", "--config", str(tiny_toml), "--out", str(tmp_path / "r"),
                   "--set", value], "key.path=value", root=tmp_path)


@pytest.mark.parametrize("number", [DIGITS_5000, "9" * 4000, "1e999"])
def test_huge_number_in_metrics(capsys, run, tmp_path, number):
    damaged = copy_run(run, tmp_path / "run")
    (damaged / "metrics.jsonl").write_text(
        f'{{"epoch": 1, "train_elbo": {number}, "test_elbo": -100.0}}\n')
    fails(capsys, ["plot", str(damaged), "--kind", "curves", "--out",
                   str(tmp_path / "c.png")], "metrics.jsonl", root=tmp_path)


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
    for argv in (["evaluate", str(damaged), "--num-samples", "2", "--limit", "4"],
                 ["sample", str(damaged), "--num", "4", "--out", str(tmp_path / "s.png")],
                 ["train", "--resume", str(damaged), "--epochs", "2"]):
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
        (["--method", "ais", "--num-samples", "1000", "--num-steps", "100000"],
         "--num-samples 390 "),
    ],
)
def test_absurd_estimates_are_refused_up_front(capsys, run, options, fragment):
    """Refused before a single draw, naming the cost and the most that is sensible."""
    import time

    start = time.perf_counter()
    fails(capsys, ["evaluate", str(run), *options], "would evaluate the model", fragment)
    assert time.perf_counter() - start < 30


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("name", ["checkpoint.pt", "config.toml", "metrics.jsonl",
                                  "samples_reconstructions.png"])
def test_no_command_writes_over_a_run_file(capsys, run, tmp_path, name):
    target = copy_run(run, tmp_path / "run")
    fails(capsys, ["sample", str(target), "--num", "4", "--out", str(target / name)],
          name, "only training", root=tmp_path)
    link = tmp_path / "link.png"  # through a symbolic link too
    link.symlink_to(target / name)
    fails(capsys, ["plot", str(target), "--kind", "curves", "--out", str(link)], name,
          root=tmp_path)


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
    code = main(["train", "--config", str(tiny_toml), "--out", str(out), "--epochs", "2",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "No space left" in err and "--resume" in err, err
    monkeypatch.undo()
    assert (out / "checkpoint.pt").read_bytes() == kept[0]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml",
                                                     "metrics.jsonl"]
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
        [sys.executable, "-m", "pyrovae", "train", "--config", str(config), "--out", str(out),
         "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
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
