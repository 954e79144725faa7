"""The files of a run directory: atomic writes, clear errors on damaged files.

A run directory holds ``config.toml`` (the resolved config), ``checkpoint.pt`` (model,
optimizer, epoch counter and RNG states, rewritten atomically at each epoch end) and
``metrics.jsonl`` (one JSON object per epoch; ELBOs in nats per example).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import dumps_toml, load_config
from ..errors import CheckpointError, ConfigError

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
#: bumped when the checkpoint layout changes
CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash or error part-way leaves the previous ``path`` untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``run_dir/checkpoint.pt``."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write_bytes(Path(run_dir) / CHECKPOINT_FILE, lambda f: torch.save(state, f))


def load_checkpoint(run_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read ``run_dir/checkpoint.pt``; :class:`CheckpointError` if missing, truncated or alien."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at '{path}': is '{run_dir}' a pyrovae run directory "
            "(made by `pyrovae train --out`)?"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, I/O error
        raise CheckpointError(
            f"checkpoint '{path}' is damaged or truncated and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "restore it from a copy or start a new run"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint '{path}' is not a pyrovae checkpoint of format {CHECKPOINT_FORMAT}"
        )
    return state


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    text = dumps_toml(config).encode()
    atomic_write_bytes(Path(run_dir) / CONFIG_FILE, lambda f: f.write(text))


def read_config(run_dir: Path) -> dict[str, Any]:
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
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise CheckpointError(f"'{path}' line {n} is not valid JSON") from None
    return rows


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Atomically replace the metrics file with ``rows``."""
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, lambda f: f.write(text))
