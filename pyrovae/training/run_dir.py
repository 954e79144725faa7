"""The files of a run directory: atomic writes, clear errors on damaged files.

A run directory holds ``config.toml`` (the resolved config), ``checkpoint.pt`` (model,
optimizer, learning-rate schedule, epoch counter, early-stopping counter and RNG states,
rewritten atomically at each epoch end), with a validation split ``best.pt`` (the same, of the
epoch with the best validation ELBO so far), ``metrics.jsonl`` (one JSON object per epoch;
ELBOs in nats per example, the epoch's learning rate), the picture of samples and
reconstructions, and what the loggers of ``[log]`` write (``metrics.csv``, ``steps.csv``,
``tensorboard/``, ``mlflow.db``, ``mlartifacts/``); a run of a ``model.program`` module also
keeps a copy of its source file, ``program.py``.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CSV_FILE,
    METRICS_FILE,
    PICTURE_FILE,
    PROGRAM_FILE,
    STEPS_CSV_FILE,
    atomic_write_bytes,
)
from ..config import Config, dumps_toml, load_config
from ..errors import CheckpointError, ConfigError
from ..memory import available_memory

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "CSV_FILE",
    "STEPS_CSV_FILE",
    "METRICS_FILE",
    "PICTURE_FILE",
    "PROGRAM_FILE",
    "atomic_write_bytes",
    "load_checkpoint",
    "read_config",
    "read_metrics",
    "save_checkpoint",
    "write_config",
    "write_metrics",
    "write_program_source",
]

#: MLflow's default local store and its artifacts (``log.mlflow``), the TensorBoard event
#: files (``log.tensorboard``): written by those libraries (:mod:`pyrovae.training.loggers`)
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
#: bumped when the checkpoint layout changes
CHECKPOINT_FORMAT = 1


def write_program_source(run_dir: Path, spec: str) -> None:
    """Keep a copy of the source file of the (imported) module of ``model.program = spec`` in
    ``run_dir/program.py``, so that the run rebuilds its model where the module cannot be
    imported (:func:`~pyrovae.models.factory.load_factory`); nothing for a module without
    a source file."""
    module = sys.modules.get(spec.split(":")[0])
    try:
        source = inspect.getsourcefile(module) if module is not None else None
    except TypeError:  # a built-in module
        source = None
    if source is None:
        return
    code = Path(source).read_bytes()
    atomic_write_bytes(Path(run_dir) / PROGRAM_FILE, lambda f: f.write(code), run_file=True)


def save_checkpoint(run_dir: Path, state: dict[str, Any], name: str = CHECKPOINT_FILE) -> None:
    """Atomically write ``state`` to ``run_dir/name`` (``checkpoint.pt`` or ``best.pt``)."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write_bytes(Path(run_dir) / name, lambda f: torch.save(state, f), run_file=True)


_DAMAGED = (
    "checkpoint '{path}' is damaged or truncated and cannot be read; restore it from a copy or "
    "start a new run"
)


def load_checkpoint(
    run_dir: Path, map_location: str | torch.device = "cpu", name: str = CHECKPOINT_FILE
) -> dict[str, Any]:
    """Read ``run_dir/name`` (``checkpoint.pt``, or ``best.pt``); :class:`CheckpointError` if
    missing, truncated or alien."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at '{path}': is '{run_dir}' a pyrovae run directory "
            "(made by `pyrovae train --out`)?"
        )
    size = path.stat().st_size
    if size > available_memory():
        raise CheckpointError(
            f"checkpoint '{path}' is {size / 1e9:.3g} GB, more than the memory available; it "
            "cannot be a pyrovae checkpoint that this machine can load"
        )
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign file's pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint '{path}' cannot be read: {exc.strerror or exc}"
        ) from None
    except pickle.UnpicklingError:
        # garbage and code look alike to the weights-only unpickler; torch's message suggests
        # weights_only=False, i.e. running the file's code: never
        raise CheckpointError(
            f"checkpoint '{path}' is damaged or not a pyrovae checkpoint: it holds bytes or "
            "objects other than tensors and plain data, which pyrovae does not load (it never "
            "runs code from a checkpoint); restore it from a copy or start a new run"
        ) from None
    except Exception:  # torch's unpickler on foreign bytes raises anything
        raise CheckpointError(_DAMAGED.format(path=path)) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint '{path}' is not a pyrovae checkpoint of format {CHECKPOINT_FORMAT}"
        )
    check_state(state, path)
    check_finite(state, path)
    return state


def _tensors(value: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every floating-point tensor in the nested dicts and lists ``value``, with its name
    (``model['decoder.net.0.weight']``, ``optimizer['state'][3]['exp_avg']``)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{name}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{name}[{i}]")


def check_finite(state: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` naming the first tensor of the model or optimizer state
    holding NaN or infinite values: such weights score every example as NaN (training never
    writes them: it stops on divergence before the epoch's checkpoint)."""
    for key in ("model", "optimizer"):
        for name, tensor in _tensors(state.get(key, {}), key):
            if not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(
                    f"checkpoint '{path}' is damaged: {name} holds {bad:,} NaN or infinite "
                    f"value(s) of {tensor.numel():,}; restore it from a copy, or retrain"
                )


def _is_tensor_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _is_optimizer_state(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("state"), Mapping)
        and isinstance(value.get("param_groups"), list)
        and all(isinstance(g, Mapping) for g in value["param_groups"])
    )


def _is_rng_state(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1


#: what each entry of a checkpoint must be: (check, description); ``epoch`` and ``model`` are
#: required, the others are checked when present
_STATE_ENTRIES: dict[str, tuple[Any, str]] = {
    "epoch": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "a whole number of epochs (>= 0)",
    ),
    "model": (_is_tensor_map, "a state dict (parameter names to tensors)"),
    "optimizer": (_is_optimizer_state, "an optimizer state dict"),
    "config": (lambda v: isinstance(v, Mapping), "a config table"),
    "torch_rng": (_is_rng_state, "a random-number state (a uint8 tensor)"),
    "data_rng": (_is_rng_state, "a random-number state (a uint8 tensor)"),
    "cuda_rng": (_is_rng_state, "a random-number state (a uint8 tensor)"),
    "program": (lambda v: isinstance(v, str), "the class name of a program module"),
    "lr_schedule": (lambda v: isinstance(v, Mapping), "a learning-rate scheduler state dict"),
    "selection": (lambda v: isinstance(v, Mapping), "the early-stopping counters"),
}


def check_state(state: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` when an entry of a loaded checkpoint has the wrong
    structure (a well-formed file that pyrovae did not write, or edited by hand)."""
    for key, (ok, expected) in _STATE_ENTRIES.items():
        if key not in state:
            if key in ("epoch", "model"):
                raise CheckpointError(f"checkpoint '{path}' has no {key!r} entry ({expected})")
            continue
        if not ok(state[key]):
            got = type(state[key]).__name__
            raise CheckpointError(
                f"checkpoint '{path}' is damaged: its {key!r} entry is a {got}, expected "
                f"{expected}; restore it from a copy or start a new run"
            )


def write_config(run_dir: Path, config: Config) -> None:
    text = dumps_toml(config).encode()
    atomic_write_bytes(Path(run_dir) / CONFIG_FILE, lambda f: f.write(text), run_file=True)


def read_config(run_dir: Path) -> Config:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} in '{run_dir}': not a pyrovae run directory")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CheckpointError(f"run config '{path}' is invalid: {exc}") from None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch metrics of a run, in order (empty if none yet)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise CheckpointError(f"metrics file '{path}' cannot be read: {reason}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, or a number of 5000 digits
                raise CheckpointError(f"'{path}' line {n} is not valid JSON") from None
            _check_metrics_row(row, path, n)
            rows.append(row)
    return rows


def _is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite number that a float holds (not a bool, not NaN, not an
    integer of hundreds of digits)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**1023


def _check_metrics_row(row: Any, path: Path, n: int) -> None:
    """A metrics row is an object with a whole ``epoch`` (>= 1) and numbers for the rest."""
    epoch = row.get("epoch") if isinstance(row, dict) else None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise CheckpointError(
            f"'{path}' line {n} is not a metrics row: expected a JSON object with a whole "
            "'epoch' (1 or more) and its ELBOs"
        )
    for key, value in row.items():
        if not _is_finite_number(value):
            raise CheckpointError(
                f"'{path}' line {n}: {key!r} is {value!r}, expected a finite number"
            )


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Atomically replace the metrics file with ``rows``."""
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, lambda f: f.write(text), run_file=True)
