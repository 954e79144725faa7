"""``pyrovae describe``: the model a config (or a run directory's config) defines, in words
and math; nothing is trained and no data is read."""

from __future__ import annotations

from pathlib import Path

from ..errors import PyrovaeError


def describe(config: str, *, overrides: list[str], toml: bool) -> None:
    """Print the model of the TOML file (or run directory) ``config`` with the ``KEY=VALUE``
    ``overrides`` applied; with ``toml``, also the complete config, every default filled in."""
    from ..config import apply_overrides, dumps_toml, read_config_file, resolve_config
    from ..describe import describe as describe_config
    from ..training.run_dir import CONFIG_FILE

    path = Path(config)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise PyrovaeError(
                f"'{path}' is a folder but not a run directory (it holds no {CONFIG_FILE}); "
                "give a TOML config file or a run directory"
            )
        path = path / CONFIG_FILE
    resolved = resolve_config(apply_overrides(read_config_file(path), overrides))
    print(describe_config(resolved))
    if toml:
        print()
        print(dumps_toml(resolved), end="")
