"""The version of pyrovae: the one place it is written (``pyproject.toml`` reads it from here,
``pyrovae --version`` prints it)."""

__version__ = "0.2.0.dev0"
